"""Station notifications about firmware and log transfers, for both versions: each is kept as
a charger event, as before, and moves the request it is about (csms.transfers) on.

FirmwareStatusNotification (2.0.1), SignedFirmwareStatusNotification,
PublishFirmwareStatusNotification and LogStatusNotification name the request by requestId;
1.6 FirmwareStatusNotification and DiagnosticsStatusNotification carry none, so they follow
the charger's latest open request of their kind. Idle names no request (the station answers a
TriggerMessage with it when nothing is under way) and moves none.
"""

from __future__ import annotations

import structlog

from csms.ocpp.context import Handler, HandlerContext, Payload
from csms.ocpp.station_reports import required
from csms.store.transfers import FIRMWARE, LOG, PUBLISH

log = structlog.get_logger("csms.ocpp.transfer_status")


def transfer_status(kind: str, family: str, *, by_request_id: bool) -> Handler:
    """A handler for notification `kind`: store it, follow the request, answer {}."""

    async def handle(ctx: HandlerContext, p: Payload) -> Payload:
        status = required(p, "status", str)
        request_id = None
        if by_request_id and "requestId" in p:
            request_id = required(p, "requestId", int)
        central = ctx.central
        await central.charger_event(ctx.cp_id, kind, p)
        if status == "Idle":
            return {}
        record = await central.store.notify_transfer(ctx.cp_id, family, request_id, status,
                                                     central.now())
        log.info("transfer_status", cp_id=ctx.cp_id, kind=kind, status=status,
                 request_id=request_id, transfer=None if record is None else record.id)
        return {}

    handle.__name__ = f"transfer_status_{kind}"
    return handle


# Both versions share these; 1.6's plain notifications have no requestId.
FIRMWARE_STATUS_16 = transfer_status("FirmwareStatusNotification", FIRMWARE,
                                     by_request_id=False)
DIAGNOSTICS_STATUS_16 = transfer_status("DiagnosticsStatusNotification", LOG,
                                        by_request_id=False)
FIRMWARE_STATUS_201 = transfer_status("FirmwareStatusNotification", FIRMWARE,
                                      by_request_id=True)
SIGNED_FIRMWARE_STATUS = transfer_status("SignedFirmwareStatusNotification", FIRMWARE,
                                         by_request_id=True)
PUBLISH_FIRMWARE_STATUS = transfer_status("PublishFirmwareStatusNotification", PUBLISH,
                                          by_request_id=True)
LOG_STATUS = transfer_status("LogStatusNotification", LOG, by_request_id=True)
