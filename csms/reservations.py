"""Reservations (1.6 5.13 ReserveNow / 5.3 CancelReservation, 2.0.1 H01/H02/H04).

A reservation is stored before ReserveNow goes out (its row id is the reservationId), then
carries the charger's answer; it ends cancelled, expired (its expiry passed, or 2.0.1
ReservationStatusUpdate Expired), removed (ReservationStatusUpdate Removed) or used (a
transaction started with its reservationId).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog

from csms.clock import Clock, iso
from csms.domain import DomainEvent, TransactionEvent201, TransactionStarted
from csms.local_list_plan import TOKEN_TYPES, V16
from csms.store import Store
from csms.store.authlist import ReservationRecord
from csms.typed_calls import Channel, Payload

log = structlog.get_logger("csms.reservations")

# How often open reservations are checked for expiry (they are stored, not timed in memory,
# so reservations made through the CLI expire too).
EXPIRY_CHECK_S = 30.0


class NoSuchReservation(LookupError):
    """No open reservation has that id."""


def reserve_now_payload(version: str, reservation: ReservationRecord) -> Payload:
    """The ReserveNow request for `reservation` in the charger's OCPP version."""
    if version == V16:
        p: Payload = {"connectorId": reservation.connector_id or 0,
                      "expiryDate": iso(reservation.expiry), "idTag": reservation.id_tag,
                      "reservationId": reservation.id}
        if reservation.parent_id_tag:
            p["parentIdTag"] = reservation.parent_id_tag
        return p
    p = {"id": reservation.id, "expiryDateTime": iso(reservation.expiry),
         "idToken": {"idToken": reservation.id_tag, "type": "ISO14443"}}
    if reservation.connector_id:
        p["evseId"] = reservation.connector_id
    if reservation.parent_id_tag:
        p["groupIdToken"] = {"idToken": reservation.parent_id_tag, "type": "Central"}
    return p


class Reservations:
    """Reserve, cancel, and follow what the charger says became of a reservation."""

    def __init__(self, store: Store, channel: Channel, clock: Clock) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock
        self._tasks: set[asyncio.Task[ReservationRecord | None]] = set()
        self._next_check: datetime | None = None

    async def reserve(self, cp_id: str, connector_id: int | None, id_tag: str,
                      expiry: datetime) -> ReservationRecord:
        """Store a reservation and send ReserveNow; the record carries the answer
        (`reserved`, `rejected` with the charger's status, or `failed`)."""
        version = await self.channel.version(cp_id)
        if version is None:
            raise ValueError(f"charge point {cp_id!r} has never connected")
        tag = (await self.store.all_id_tags()).get(id_tag, {})
        parent = tag.get("parent")
        now = self.clock.now()
        record = await self.store.add_reservation(cp_id, connector_id, id_tag, parent, expiry,
                                                  now)
        p = reserve_now_payload(version, record)
        if version != V16:
            p["idToken"]["type"] = TOKEN_TYPES.get(tag.get("group") or "", "ISO14443")
        result = await self.channel.send(cp_id, "ReserveNow", p)
        charger_status = (result.response or {}).get("status")
        status = "reserved" if charger_status == "Accepted" else (
            "rejected" if charger_status else "failed")
        updated = await self.store.set_reservation_status(
            record.id, status, self.clock.now(), charger_status=charger_status,
            only_open=True)
        log.info("reserve_now", cp_id=cp_id, reservation_id=record.id, status=status,
                 charger_status=charger_status, error=result.error)
        # An answer that came after the reservation was already ended (used, expired) keeps
        # that ending.
        return updated or await self._get(record.id)

    async def cancel(self, reservation_id: int) -> ReservationRecord:
        """CancelReservation; an accepted one ends `cancelled`. Raises NoSuchReservation."""
        record = await self.store.get_reservation(reservation_id)
        if record is None or record.status not in ("requested", "reserved"):
            raise NoSuchReservation(reservation_id)
        result = await self.channel.send(record.cp_id, "CancelReservation",
                                         {"reservationId": reservation_id})
        charger_status = (result.response or {}).get("status")
        log.info("cancel_reservation", cp_id=record.cp_id, reservation_id=reservation_id,
                 charger_status=charger_status, error=result.error)
        if charger_status != "Accepted":
            return record
        updated = await self.store.set_reservation_status(
            reservation_id, "cancelled", self.clock.now(), only_open=True)
        return updated or await self._get(reservation_id)

    async def used(self, cp_id: str, reservation_id: int,
                   transaction_id: str | None) -> ReservationRecord | None:
        """A transaction started with the reservation: it ends `used`."""
        record = await self.store.set_reservation_status(
            reservation_id, "used", self.clock.now(), cp_id=cp_id,
            transaction_id=transaction_id, only_open=True)
        log.info("reservation_used", cp_id=cp_id, reservation_id=reservation_id,
                 transaction_id=transaction_id, known=record is not None)
        return record

    async def expire(self, *, force: bool = False) -> int:
        """Mark open reservations past their expiry `expired` (at most every EXPIRY_CHECK_S
        unless `force`); how many were."""
        now = self.clock.now()
        if not force and self._next_check is not None and now < self._next_check:
            return 0
        self._next_check = now + timedelta(seconds=EXPIRY_CHECK_S)
        count = await self.store.expire_reservations(now)
        if count:
            log.info("reservations_expired", count=count)
        return count

    async def _get(self, reservation_id: int) -> ReservationRecord:
        record = await self.store.get_reservation(reservation_id)
        assert record is not None
        return record

    def on_event(self, event: DomainEvent) -> None:
        """Bus listener: a 1.6 StartTransaction or 2.0.1 TransactionEvent with a reservationId
        uses the reservation (the event is committed; marking it need not hold the answer)."""
        reservation_id = getattr(event, "reservation_id", None)
        if reservation_id is None or not isinstance(
                event, TransactionStarted | TransactionEvent201):
            return
        task = asyncio.ensure_future(self.used(event.cp_id, reservation_id, event.ocpp_tx_id))
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[ReservationRecord | None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reservation_use_failed", error=str(task.exception()))

    async def idle(self) -> None:
        """Wait until reservations being marked used are (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))
