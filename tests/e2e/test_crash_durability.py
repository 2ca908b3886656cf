"""What the server acknowledged survives `kill -9`; SIGTERM shuts down gracefully."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from csms.store import SqliteStore
from tests.e2e.serve_process import ServeProcess
from tests.raw_client import RawClient


async def test_every_acknowledged_meter_value_survives_kill_9_mid_burst(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    serve = ServeProcess(tmp_path, db)
    await serve.start()
    client = await RawClient.connect(serve.url("BURST"), "ocpp1.6")
    await client.ok("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    start = await client.ok("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                                                 "timestamp": "2026-11-23T10:00:00Z"})
    tx = start["transactionId"]
    acked: list[str] = []
    enough = asyncio.Event()

    async def worker(offset: int) -> None:
        # Four senders keep several frames queued at the server when the kill lands.
        for i in range(offset, 100_000, 4):
            uid = uuid.uuid4().hex
            value = f"{i * 10}"
            frame = [2, uid, "MeterValues", {"connectorId": 1, "transactionId": tx,
                     "meterValue": [{"timestamp": f"2026-11-23T10:00:{i % 60:02d}Z",
                                     "sampledValue": [{"value": value}]}]}]
            reply = await client.send_raw(json.dumps(frame), reply_id=uid)
            if reply[0] == 3:
                acked.append(value)
            if len(acked) >= 200:
                enough.set()

    async def killer() -> None:
        await enough.wait()
        await serve.kill()

    workers = [asyncio.create_task(worker(k)) for k in range(4)]
    await killer()
    results = await asyncio.gather(*workers, return_exceptions=True)
    assert all(isinstance(r, ConnectionClosed | TimeoutError) for r in results), results
    await client.close()
    assert len(acked) >= 200 and serve.proc is not None and serve.proc.returncode is not None

    restarted = ServeProcess(tmp_path, db)
    await restarted.start()
    await restarted.terminate()
    store = SqliteStore(str(db))
    await store.open()
    async with store.db.execute(
        "SELECT value FROM meter_values WHERE cp_id='BURST'") as cur:
        stored = {f"{int(r[0])}" for r in await cur.fetchall()}
    await store.close()
    missing = [v for v in acked if v not in stored]
    assert missing == [], f"{len(missing)} acknowledged meter values lost"


async def test_sigterm_closes_chargers_and_leaves_them_offline(tmp_path: Path) -> None:
    db = tmp_path / "term.db"
    serve = ServeProcess(tmp_path, db)
    await serve.start()
    client = await RawClient.connect(serve.url("TERM"), "ocpp2.0.1")
    await client.ok("BootNotification", {"reason": "PowerUp",
                                         "chargingStation": {"model": "M", "vendorName": "V"}})
    assert await serve.terminate() == 0
    await asyncio.wait_for(client.ws.wait_closed(), 10)
    assert client.ws.close_code == 1000
    store = SqliteStore(str(db))
    await store.open()
    cp = await store.get_charge_point("TERM")
    await store.close()
    assert cp is not None and cp.online is False and cp.protocol == "ocpp2.0.1"
