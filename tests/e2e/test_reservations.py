"""Reservations (2.0.1 H01/H02/H04; 1.6 5.13 ReserveNow, 5.3 CancelReservation) against raw
clients of both versions: the reservation is stored with the charger's answer and follows what
becomes of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from csms.config import Config
from csms.service import Loadstar
from tests.e2e.authlist_charger import ListCharger, now_iso

VERSIONS = ["1.6", "2.0.1"]


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False
    return config


def in_minutes(minutes: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)


@pytest.mark.parametrize("version", VERSIONS)
async def test_h01_reserve_now_is_stored_with_the_answer(
        server: Loadstar, url: Callable[[str], str], version: str) -> None:
    await server.id_tags.create({"value": "DRIVER", "parent_id_tag": "FLEET"})
    charger = ListCharger(version)
    client = await charger.connect(url("RS1"))
    try:
        until = in_minutes(30)
        reservation = await server.reservations.reserve("RS1", 1, "DRIVER", until)
        assert reservation.status == "reserved" and reservation.charger_status == "Accepted"
        sent = next(p for a, p in charger.calls if a == "ReserveNow")
        if charger.v16:
            assert sent["reservationId"] == reservation.id and sent["connectorId"] == 1
            assert sent["idTag"] == "DRIVER" and sent["parentIdTag"] == "FLEET"
            assert datetime.fromisoformat(sent["expiryDate"]) == until
        else:
            assert sent["id"] == reservation.id and sent["evseId"] == 1
            assert sent["idToken"]["idToken"] == "DRIVER"
            assert sent["groupIdToken"]["idToken"] == "FLEET"
            assert datetime.fromisoformat(sent["expiryDateTime"]) == until
        stored = await server.store.get_reservation(reservation.id)
        assert stored == reservation and stored.expiry == until
    finally:
        await client.close()


@pytest.mark.parametrize("version", VERSIONS)
async def test_h01_a_refused_reservation_keeps_the_chargers_status(
        server: Loadstar, url: Callable[[str], str], version: str) -> None:
    charger = ListCharger(version, reserve_answer="Occupied")
    client = await charger.connect(url("RS2"))
    try:
        reservation = await server.reservations.reserve("RS2", 1, "ANY", in_minutes(5))
        assert reservation.status == "rejected" and reservation.charger_status == "Occupied"
        assert await server.store.list_reservations("RS2", open_only=True) == []
    finally:
        await client.close()


async def test_h01_a_reservation_for_an_offline_charger_fails(server: Loadstar,
                                                              url: Callable[[str], str]) -> None:
    charger = ListCharger("1.6")
    client = await charger.connect(url("RS3"))
    await client.close()
    await server.store.flush()
    reservation = await server.reservations.reserve("RS3", 0, "ANY", in_minutes(5))
    assert reservation.status == "failed" and reservation.charger_status is None


@pytest.mark.parametrize("version", VERSIONS)
async def test_h02_cancel_reservation_ends_it(server: Loadstar, url: Callable[[str], str],
                                             version: str) -> None:
    charger = ListCharger(version)
    client = await charger.connect(url("RS4"))
    try:
        reservation = await server.reservations.reserve("RS4", 2, "ANY", in_minutes(30))
        cancelled = await server.reservations.cancel(reservation.id)
        assert cancelled.status == "cancelled"
        assert ("CancelReservation", {"reservationId": reservation.id}) in charger.calls
        assert charger.reservations == {}
    finally:
        await client.close()


@pytest.mark.parametrize("update,status", [("Expired", "expired"), ("Removed", "removed")])
async def test_h04_reservation_status_update_ends_the_reservation(
        server: Loadstar, url: Callable[[str], str], update: str, status: str) -> None:
    charger = ListCharger("2.0.1")
    client = await charger.connect(url("RS5"))
    try:
        reservation = await server.reservations.reserve("RS5", 1, "ANY", in_minutes(30))
        assert await client.ok("ReservationStatusUpdate", {
            "reservationId": reservation.id, "reservationUpdateStatus": update}) == {}
        stored = await server.store.get_reservation(reservation.id)
        assert stored is not None and stored.status == status
        assert stored.charger_status == update
    finally:
        await client.close()


async def test_h04_a_status_update_for_another_stations_reservation_changes_nothing(
        server: Loadstar, url: Callable[[str], str]) -> None:
    owner, other = ListCharger("2.0.1"), ListCharger("2.0.1")
    owner_client = await owner.connect(url("RS6"))
    other_client = await other.connect(url("RS7"))
    try:
        reservation = await server.reservations.reserve("RS6", 1, "ANY", in_minutes(30))
        assert await other_client.ok("ReservationStatusUpdate", {
            "reservationId": reservation.id, "reservationUpdateStatus": "Removed"}) == {}
        stored = await server.store.get_reservation(reservation.id)
        assert stored is not None and stored.status == "reserved"
    finally:
        await owner_client.close()
        await other_client.close()


async def test_5_13_a_start_transaction_with_the_reservation_id_uses_it(
        server: Loadstar, url: Callable[[str], str]) -> None:
    charger = ListCharger("1.6")
    client = await charger.connect(url("RS8"))
    try:
        reservation = await server.reservations.reserve("RS8", 1, "DRIVER", in_minutes(30))
        started = await client.ok("StartTransaction", {
            "connectorId": 1, "idTag": "DRIVER", "meterStart": 0, "timestamp": now_iso(),
            "reservationId": reservation.id})
        await server.reservations.idle()
        stored = await server.store.get_reservation(reservation.id)
        assert stored is not None and stored.status == "used"
        assert stored.transaction_id == str(started["transactionId"])
    finally:
        await client.close()


async def test_h01_a_transaction_event_with_the_reservation_id_uses_it(
        server: Loadstar, url: Callable[[str], str]) -> None:
    charger = ListCharger("2.0.1")
    client = await charger.connect(url("RS9"))
    try:
        reservation = await server.reservations.reserve("RS9", 1, "DRIVER", in_minutes(30))
        await client.ok("TransactionEvent", {
            "eventType": "Started", "timestamp": now_iso(), "triggerReason": "Authorized",
            "seqNo": 0, "transactionInfo": {"transactionId": "TX-RES"},
            "evse": {"id": 1, "connectorId": 1}, "reservationId": reservation.id,
            "idToken": {"idToken": "DRIVER", "type": "ISO14443"}})
        await server.reservations.idle()
        stored = await server.store.get_reservation(reservation.id)
        assert stored is not None and stored.status == "used"
        assert stored.transaction_id == "TX-RES"
    finally:
        await client.close()


async def test_h01_reservations_past_their_expiry_are_marked_expired(
        server: Loadstar, url: Callable[[str], str]) -> None:
    charger = ListCharger("1.6")
    client = await charger.connect(url("RS10"))
    try:
        late = await server.reservations.reserve("RS10", 1, "ANY", in_minutes(-1))
        current = await server.reservations.reserve("RS10", 2, "ANY", in_minutes(30))
        assert await server.reservations.expire(force=True) == 1
        assert (await server.store.get_reservation(late.id)).status == "expired"
        assert (await server.store.get_reservation(current.id)).status == "reserved"
    finally:
        await client.close()
