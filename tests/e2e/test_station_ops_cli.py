"""`loadstar firmware`, `logs`, `variables` and `charging-profiles` reach a running server's
stations through its HTTP relay (a real server, a real HTTP port, raw 1.6 / 2.0.1 stations)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.cli.app import app
from adapters.http.server import HttpServer
from csms.config import Config
from csms.service import Loadstar
from tests.adapters.catalog_helpers import key
from tests.e2e.stations import sent, station


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False
    config.ocpp.configure_after_boot = False
    return config


async def cli(tmp_path: Path, config: Config, *args: str) -> tuple[int, Any]:
    """Run `loadstar ARGS` in a thread (it runs its own event loop); its JSON output."""
    toml = tmp_path / "cli.toml"
    toml.write_text(f'[store]\npath = "{config.store.path}"\n')
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--config", str(toml)])
    out = result.output
    # The JSON the verb printed last (the server's own log lines share stdout here).
    start = min((i for i in (out.find("\n{"), out.find("\n[")) if i >= 0), default=-1)
    text = out if out[:1] in "[{" else out[start + 1:]
    try:
        return result.exit_code, json.loads(text)
    except ValueError:
        return result.exit_code, out


async def test_l01_cli_updates_firmware_through_the_relay_and_shows_its_status(
        server: Loadstar, url, http: HttpServer, config: Config, tmp_path: Path) -> None:
    c = await station(url, "CLIFW", "ocpp2.0.1",
                      {"UpdateFirmware": lambda p: {"status": "Accepted"}})
    api_key = (await key(server, "read", "write"))["Authorization"].split()[1]
    relay = ["--url", f"http://127.0.0.1:{http.port}", "--api-key", api_key]
    code, record = await cli(tmp_path, config, "firmware", "update", "CLIFW",
                             "https://fw.example/2.1.bin", "--at", "2026-12-01T03:00:00Z",
                             "--retries", "2", *relay)
    assert code == 0, record
    [call] = await sent(c, "UpdateFirmware")
    assert call["requestId"] == record["request_id"] and call["retries"] == 2
    # The server recorded the CALL as a command: it went through its relay.
    commands = await server.store.list_commands("CLIFW", limit=10)
    assert any(x.action == "UpdateFirmware" and x.status == "accepted" for x in commands)
    await c.ok("FirmwareStatusNotification", {"status": "Installed",
                                              "requestId": record["request_id"]})
    code, listed = await cli(tmp_path, config, "firmware", "status", "CLIFW")
    assert code == 0 and listed[0]["status"] == "Installed" and not listed[0]["open"]
    await c.close()


async def test_5_8_cli_gets_diagnostics_and_b06_gets_split_variables(
        server: Loadstar, url, http: HttpServer, config: Config, tmp_path: Path) -> None:
    c16 = await station(url, "CLIDG", "ocpp1.6",
                        {"GetDiagnostics": lambda p: {"fileName": "d.zip"}})
    c201 = await station(url, "CLIVAR", "ocpp2.0.1", {})
    await c201.ok("NotifyReport", {"requestId": 1, "generatedAt": "2026-12-01T00:00:00Z",
                                   "seqNo": 0, "reportData": [{
                                       "component": {"name": "DeviceDataCtrlr"},
                                       "variable": {"name": "ItemsPerMessage",
                                                    "instance": "GetVariables"},
                                       "variableAttribute": [{"value": "1"}]}]})
    api_key = (await key(server, "read", "write"))["Authorization"].split()[1]
    relay = ["--url", f"http://127.0.0.1:{http.port}", "--api-key", api_key]
    code, record = await cli(tmp_path, config, "logs", "get", "CLIDG", "ftp://logs.example/",
                             "--since", "2026-11-30T00:00:00Z", *relay)
    assert code == 0 and record["file_name"] == "d.zip" and record["action"] == "GetDiagnostics"
    code, results = await cli(tmp_path, config, "variables", "get", "CLIVAR",
                              "OCPPCommCtrlr.HeartbeatInterval", "SmartChargingCtrlr.RateUnit",
                              *relay)
    assert code == 0, results
    assert [r["attributeValue"] for r in results] == ["3", "A,W"]
    assert [len(p["getVariableData"]) for p in await sent(c201, "GetVariables")] == [1, 1]
    await c16.close()
    await c201.close()


async def test_cli_without_an_api_key_or_for_an_unknown_charger_exits_non_zero(
        server: Loadstar, http: HttpServer, config: Config, tmp_path: Path) -> None:
    code, _ = await cli(tmp_path, config, "logs", "get", "NOPE", "ftp://x/")
    assert code == 2
    api_key = (await key(server, "read", "write"))["Authorization"].split()[1]
    code, out = await cli(tmp_path, config, "logs", "get", "NOPE", "ftp://x/", "--url",
                          f"http://127.0.0.1:{http.port}", "--api-key", api_key)
    assert code == 1, out
