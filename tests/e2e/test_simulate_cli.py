"""`loadstar simulate` runs a fleet against a real server and prints its summary; bad arguments
and a dead URL end it at once."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest

from csms.service import Loadstar


async def test_simulate_command_runs_a_mixed_fleet_and_the_store_agrees(server: Loadstar) -> None:
    url = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "simulate", "--url", url, "--chargers", "4",
        "--protocol", "mixed", "--connectors", "2", "--duration", "600", "--speed", "120",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "transactions    8 acknowledged" in text
    sessions = await server.store.list_sessions()
    assert len([s for s in sessions if s.cp_id.startswith("SIM")]) == 8
    protocols = {cp.protocol for cp in await server.store.list_charge_points()}
    assert protocols == {"ocpp1.6", "ocpp2.0.1"}


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapters.cli", "simulate", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "option"), [
    (("--chargers", "-5"), "--chargers"),
    (("--chargers", "0"), "--chargers"),
    (("--connectors", "0"), "--connectors"),
    (("--speed", "0"), "--speed"),
    (("--speed", "-2"), "--speed"),
    (("--duration", "-1"), "--duration"),
    (("--protocol", "ocpp3"), "--protocol"),
    (("--url", "http://127.0.0.1:9000/ocpp"), "--url"),
])
def test_nonsensical_arguments_are_usage_errors(args: tuple[str, ...], option: str) -> None:
    done = simulate("--url", "ws://127.0.0.1:1/ocpp", *args)
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for '{option}'" in done.stderr
    assert "Traceback" not in done.stderr


def test_simulate_against_a_dead_url_fails_at_once() -> None:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ocpp"
    started = time.monotonic()
    done = simulate("--url", url, "--chargers", "2", "--duration", "600")
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"loadstar: cannot connect to {url}: connection refused"]
