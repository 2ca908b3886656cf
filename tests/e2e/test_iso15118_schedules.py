"""ISO 15118 charging needs and schedules (OCPP 2.0.1 K15, K17) with a raw 2.0.1 station: the
EV's needs get its transaction a TxProfile at once, every new needs message another, and an EV
schedule above that profile is rejected and the profile sent again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from csms.service import Loadstar
from tests.raw_client import RawClient, default_answer

TX = "TX-15118"
NOW = "2026-12-01T10:00:00Z"


def station(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Takes every profile; has no composite schedule to show."""
    if action == "SetChargingProfile":
        return {"status": "Accepted"}
    if action == "GetCompositeSchedule":
        return {"status": "Rejected"}
    if action in ("TriggerMessage", "ClearChargingProfile"):
        return {"status": "Accepted"}
    return default_answer(action, payload)


async def next_profile(c: RawClient) -> dict[str, Any]:
    """The next SetChargingProfile the station is sent (other calls are skipped)."""
    while True:
        call = await asyncio.wait_for(c.server_calls.get(), 15)
        if call[2] == "SetChargingProfile":
            return call[3]["chargingProfile"]


async def tx_profile(c: RawClient) -> dict[str, Any]:
    """The next TxProfile the station is sent."""
    while True:
        profile = await next_profile(c)
        if profile["chargingProfilePurpose"] == "TxProfile":
            return profile


async def charging_station(url: str) -> RawClient:
    c = await RawClient.connect(url, "ocpp2.0.1", station)
    await c.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
        "vendorName": "Acme", "model": "HLC-1"}})
    await c.ok("StatusNotification", {"timestamp": NOW, "connectorStatus": "Occupied",
                                      "evseId": 1, "connectorId": 1})
    await c.ok("TransactionEvent", {
        "eventType": "Started", "timestamp": NOW, "triggerReason": "CablePluggedIn",
        "seqNo": 0, "transactionInfo": {"transactionId": TX, "chargingState": "EVConnected"},
        "evse": {"id": 1, "connectorId": 1}})
    await tx_profile(c)  # the session's first share
    return c


def needs(energy_wh: int) -> dict[str, Any]:
    return {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "AC_three_phase", "departureTime": "2026-12-01T18:00:00Z",
        "acChargingParameters": {"energyAmount": energy_wh, "evMinCurrent": 6,
                                 "evMaxCurrent": 32, "evMaxVoltage": 400}}}


def ev_schedule(watts: float) -> dict[str, Any]:
    """A schedule from now on (the TxProfile it is judged against lapses within minutes)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"timeBase": now, "evseId": 1, "chargingSchedule": {
        "id": 1, "chargingRateUnit": "W", "duration": 3600,
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": watts}]}}


async def test_k15_charging_needs_get_the_transaction_a_tx_profile_at_once(
        server: Loadstar, url) -> None:
    c = await charging_station(url("HLC1"))
    answer = await c.ok("NotifyEVChargingNeeds", needs(30000))
    assert answer["status"] == "Accepted"
    # Equal to what it holds, yet sent: the EV waits for a schedule for its transaction.
    first = await next_profile(c)
    assert first["chargingProfilePurpose"] == "TxProfile" and first["transactionId"] == TX
    await c.close()


async def test_k17_every_new_charging_needs_message_brings_a_new_tx_profile(
        server: Loadstar, url) -> None:
    c = await charging_station(url("HLC2"))
    for energy_wh in (30000, 12000, 12000):
        await c.ok("NotifyEVChargingNeeds", needs(energy_wh))
        profile = await tx_profile(c)
        assert profile["transactionId"] == TX
    await c.close()


async def test_k15_an_ev_schedule_above_its_tx_profile_is_rejected_and_the_profile_resent(
        server: Loadstar, url) -> None:
    c = await charging_station(url("HLC3"))
    await c.ok("NotifyEVChargingNeeds", needs(30000))
    sent = await tx_profile(c)
    limit = sent["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
    watts = limit * 230 * 3 if sent["chargingSchedule"][0]["chargingRateUnit"] == "A" else limit
    within = await c.ok("NotifyEVChargingSchedule", ev_schedule(watts * 0.5))
    assert within["status"] == "Accepted"
    above = await c.ok("NotifyEVChargingSchedule", ev_schedule(watts * 2))
    assert above["status"] == "Rejected"
    again = await tx_profile(c)
    assert again["transactionId"] == TX
    assert again["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == limit
    await c.close()
