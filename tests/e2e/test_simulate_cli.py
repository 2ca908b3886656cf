"""`loadstar simulate` runs a fleet against a real server and prints its summary."""

from __future__ import annotations

import asyncio
import sys

from csms.service import Loadstar


async def test_simulate_command_runs_a_mixed_fleet_and_the_store_agrees(server: Loadstar) -> None:
    url = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms.cli", "simulate", "--url", url, "--chargers", "4",
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
