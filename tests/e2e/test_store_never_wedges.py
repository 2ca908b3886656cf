"""A charger whose connection dies in the middle of a write cannot stop the others."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

from csms.service import Loadstar
from tests.raw_client import RawClient

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "X1"}


async def charge(url: Callable[[str], str], cp_id: str) -> None:
    c = await RawClient.connect(url(cp_id), "ocpp1.6")
    try:
        assert (await c.ok("BootNotification", BOOT))["status"] == "Accepted"
        start = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                                                "timestamp": "2026-01-01T00:00:00Z"})
        tx = start["transactionId"]
        await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": "2026-01-01T00:10:00Z",
             "sampledValue": [{"value": "1000", "measurand": "Energy.Active.Import.Register"}]}]})
        await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 2000,
                                       "timestamp": "2026-01-01T00:20:00Z"})
    finally:
        await c.close()


def handler_tasks(server: Loadstar) -> set[asyncio.Task[None]]:
    assert server.server._server is not None
    return set(server.server._server.handler_tasks)


async def test_connections_killed_mid_write_then_100_chargers_boot_and_transact(
        server: Loadstar, url: Callable[[str], str]) -> None:
    for steps in range(30):
        c = await RawClient.connect(url(f"VICTIM-{steps}"), "ocpp1.6")
        await c.ok("BootNotification", BOOT)
        (task,) = handler_tasks(server)
        await c.ws.send(json.dumps([2, uuid.uuid4().hex, "StartTransaction", {
            "connectorId": 1, "idTag": "T", "meterStart": 0,
            "timestamp": "2026-01-01T00:00:00Z"}]))
        # Kill the charger's task at a different point of its write each round.
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task})
        await c.close()

    await asyncio.gather(*(charge(url, f"CP-{i:03}") for i in range(100)))
    sessions = [s for s in await server.store.list_sessions() if s.cp_id.startswith("CP-")]
    assert len(sessions) == 100
    assert all(s.stopped_at is not None and s.energy_kwh == 2.0 for s in sessions)
    assert server.store.health.ok
