"""2.0.1 ReservationStatusUpdate (H04): the station says a reservation expired or was removed."""

from __future__ import annotations

import structlog

from csms.ocpp.context import HandlerContext, Payload
from csms.ocpp.station_reports import required
from csms.store.authlist import RESERVATION_UPDATES

log = structlog.get_logger("csms.ocpp.reservation_status")


async def reservation_status_update(ctx: HandlerContext, p: Payload) -> Payload:
    """Keep the notification and end the reservation it names (if it is ours and open)."""
    reservation_id = required(p, "reservationId", int)
    update = required(p, "reservationUpdateStatus", str)
    central = ctx.central
    await central.charger_event(ctx.cp_id, "ReservationStatusUpdate", p)
    status = RESERVATION_UPDATES.get(update)
    record = None
    if status is not None:
        record = await central.store.set_reservation_status(
            reservation_id, status, central.now(), cp_id=ctx.cp_id, charger_status=update,
            only_open=True)
    log.info("reservation_status_update", cp_id=ctx.cp_id, reservation_id=reservation_id,
             update=update, known=record is not None)
    return {}
