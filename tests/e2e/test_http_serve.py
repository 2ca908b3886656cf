"""`loadstar serve` with its HTTP app: keys made by the CLI work against the running child,
a revoked one stops, SIGTERM still ends it at once, a taken HTTP port ends it with one line."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.serve_process import ServeProcess
from tests.e2e.test_fatal_exits import exit_of, serve, write_config


async def cli(config: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_cli_keys_work_against_a_running_serve(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, tmp_path / "loadstar.db")
    await server.start()
    try:
        code, out = await cli(server.config, "keys", "create", "--scopes", "read", "--json")
        assert code == 0
        made = json.loads(out)
        assert made["scopes"] == ["read"] and made["key"].startswith("lsk_")
        headers = {"Authorization": f"Bearer {made['key']}"}
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
            assert (await client.get("/healthz")).json()["ok"] is True
            assert (await client.get("/v2/status/")).status_code == 401
            r = await client.get("/v2/status/", headers=headers)
            assert r.status_code == 200 and r.json()["data"][0]["store_ok"] is True
            code, out = await cli(server.config, "keys", "list", "--json")
            assert code == 0 and made["key"] not in out
            assert [(k["id"], k["revoked"]) for k in json.loads(out)] == [(made["id"], None)]
            assert (await cli(server.config, "keys", "revoke", str(made["id"])))[0] == 0
            assert (await client.get("/v2/status/", headers=headers)).status_code == 401
        started = time.monotonic()
        assert await server.terminate() == 0
        assert time.monotonic() - started < 5
    finally:
        if server.proc is not None and server.proc.returncode is None:
            await server.kill()


async def test_serve_without_http(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, tmp_path / "loadstar.db", http=False)
    await server.start()
    assert server.http_port == 0
    assert await server.terminate() == 0


async def test_a_taken_http_port_ends_serve_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await serve(write_config(tmp_path, tmp_path / "x.db", http_port=port))
        code, lines = await exit_of(proc)
    assert code == 1
    assert not any("Traceback" in line for line in lines), lines
    assert [line for line in lines if line.startswith("loadstar: ")] == [
        f"loadstar: cannot listen on 127.0.0.1:{port}: address already in use"]
