"""A bare OCPP relay for `bench.ocpp_load`: the floor a CSMS cannot go under on this machine.

`python -m bench.relay --port P [--heartbeat 30]` serves `ws://127.0.0.1:P/ocpp/{id}` with the
`ocpp` library's `ChargePoint` (1.6 and 2.0.1, by subprotocol) and `websockets`, and answers
BootNotification Accepted, Heartbeat, StatusNotification, Authorize, Start/StopTransaction,
TransactionEvent and MeterValues minimally. No logic, no store, no outbound calls: only framing,
the library's schema validation and routing. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import signal
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as A16
from ocpp.v16.enums import RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as r201
from ocpp.v201.enums import Action as A201
from ocpp.v201.enums import RegistrationStatusEnumType
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

HEARTBEAT_S = 30
_tx_ids = itertools.count(1)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Relay16(ChargePoint16):
    @on(A16.boot_notification)
    async def on_boot(self, **_: Any) -> r16.BootNotification:
        return r16.BootNotification(current_time=now(), interval=HEARTBEAT_S,
                                    status=RegistrationStatus.accepted)

    @on(A16.heartbeat)
    async def on_heartbeat(self, **_: Any) -> r16.Heartbeat:
        return r16.Heartbeat(current_time=now())

    @on(A16.status_notification)
    async def on_status(self, **_: Any) -> r16.StatusNotification:
        return r16.StatusNotification()

    @on(A16.authorize)
    async def on_authorize(self, **_: Any) -> r16.Authorize:
        return r16.Authorize(id_tag_info={"status": "Accepted"})

    @on(A16.start_transaction)
    async def on_start(self, **_: Any) -> r16.StartTransaction:
        return r16.StartTransaction(transaction_id=next(_tx_ids),
                                    id_tag_info={"status": "Accepted"})

    @on(A16.stop_transaction)
    async def on_stop(self, **_: Any) -> r16.StopTransaction:
        return r16.StopTransaction()

    @on(A16.meter_values)
    async def on_meter(self, **_: Any) -> r16.MeterValues:
        return r16.MeterValues()


class Relay201(ChargePoint201):
    @on(A201.boot_notification)
    async def on_boot(self, **_: Any) -> r201.BootNotification:
        return r201.BootNotification(current_time=now(), interval=HEARTBEAT_S,
                                     status=RegistrationStatusEnumType.accepted)

    @on(A201.heartbeat)
    async def on_heartbeat(self, **_: Any) -> r201.Heartbeat:
        return r201.Heartbeat(current_time=now())

    @on(A201.status_notification)
    async def on_status(self, **_: Any) -> r201.StatusNotification:
        return r201.StatusNotification()

    @on(A201.authorize)
    async def on_authorize(self, **_: Any) -> r201.Authorize:
        return r201.Authorize(id_token_info={"status": "Accepted"})

    @on(A201.transaction_event)
    async def on_tx(self, event_type: str, **_: Any) -> r201.TransactionEvent:
        if event_type == "Started":
            return r201.TransactionEvent(id_token_info={"status": "Accepted"})
        return r201.TransactionEvent()

    @on(A201.meter_values)
    async def on_meter(self, **_: Any) -> r201.MeterValues:
        return r201.MeterValues()


async def on_connect(ws: ServerConnection) -> None:
    assert ws.request is not None
    cp_id = ws.request.path.rstrip("/").rsplit("/", 1)[-1] or "?"
    cls = Relay201 if ws.subprotocol == "ocpp2.0.1" else Relay16
    try:
        await cls(cp_id, ws).start()
    except ConnectionClosed:
        pass


async def main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(on_connect, host, port, subprotocols=["ocpp1.6", "ocpp2.0.1"],  # type: ignore[list-item]
                     ping_interval=30, ping_timeout=30, server_header="relay"):
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--heartbeat", type=int, default=HEARTBEAT_S)
    args = ap.parse_args()
    HEARTBEAT_S = args.heartbeat
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.host, args.port))
