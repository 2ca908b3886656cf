"""`loadstar reserve`, `cancel-reservation` and `local-list sync` reach a running server's
chargers through its HTTP relay (a real server, real HTTP port, a raw 2.0.1 / 1.6 client)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.cli.app import app
from adapters.http.server import HttpServer
from csms.config import Config
from csms.service import Loadstar
from tests.adapters.catalog_helpers import key
from tests.e2e.authlist_charger import ListCharger


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False
    return config


async def cli(tmp_path: Path, config: Config, http: HttpServer, api_key: str,
              *args: str) -> tuple[int, str]:
    """Run `loadstar ARGS` in a thread (it runs its own event loop) against the server."""
    toml = tmp_path / "cli.toml"
    toml.write_text(f'[store]\npath = "{config.store.path}"\n')
    argv = [*args, "--config", str(toml), "--url", f"http://127.0.0.1:{http.port}",
            "--api-key", api_key]
    result = await asyncio.to_thread(CliRunner().invoke, app, argv)
    return result.exit_code, result.output


def last_json(out: str) -> dict[str, Any]:
    """The JSON object the verb printed last (the server's own log lines share stdout here)."""
    start = 0 if out.startswith("{") else out.rindex("\n{") + 1
    value: dict[str, Any] = json.loads(out[start:])
    return value


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_h01_h02_cli_reserves_and_cancels_through_the_relay(
        server: Loadstar, url: Callable[[str], str], http: HttpServer, config: Config,
        tmp_path: Path, version: str) -> None:
    charger = ListCharger(version)
    client = await charger.connect(url("CLI1"))
    api_key = (await key(server, "read", "write"))["Authorization"].split()[1]
    try:
        code, out = await cli(tmp_path, config, http, api_key, "reserve", "CLI1",
                              "--connector", "1", "--id-tag", "DRIVER", "--minutes", "20")
        assert code == 0, out
        reservation = last_json(out)
        assert reservation["status"] == "reserved"
        assert "ReserveNow" in charger.actions()
        # The server recorded the CALL as a command (it went through its relay).
        commands = await server.store.list_commands("CLI1", limit=20)
        assert any(c.action == "ReserveNow" and c.status == "accepted" for c in commands)
        code, out = await cli(tmp_path, config, http, api_key, "cancel-reservation",
                              str(reservation["id"]))
        assert code == 0, out
        stored = await server.store.get_reservation(reservation["id"])
        assert stored is not None and stored.status == "cancelled"
    finally:
        await client.close()


async def test_d01_cli_local_list_sync_sends_the_list_through_the_relay(
        server: Loadstar, url: Callable[[str], str], http: HttpServer, config: Config,
        tmp_path: Path) -> None:
    charger = ListCharger("1.6")
    client = await charger.connect(url("CLI2"))
    api_key = (await key(server, "read", "write"))["Authorization"].split()[1]
    try:
        # Tags added straight to the store: no automatic sync, the CLI's is the one.
        await server.store.put_id_tag("CLI-TAG", "Accepted")
        code, out = await cli(tmp_path, config, http, api_key, "local-list", "sync", "CLI2")
        assert code == 0, out
        assert last_json(out)["status"] == "sent"
        assert list(charger.entries) == ["CLI-TAG"] and charger.list_version == 1
        record = await server.store.local_list("CLI2")
        assert record is not None and record.version == 1 and not record.out_of_date
    finally:
        await client.close()
