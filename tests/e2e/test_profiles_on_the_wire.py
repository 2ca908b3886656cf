"""Both protocol versions receive schema-valid profiles in the unit each charger is set for."""

from __future__ import annotations

import asyncio
import math
import uuid
from pathlib import Path
from typing import Any

import pytest

from csms.config import ChargerSpec, SiteSpec
from csms.ocpp.framing import validate
from csms.service import Loadstar
from tests.conftest import make_config
from tests.raw_client import RawClient, default_answer


def accept_profiles(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A charger that takes profiles, and answers what a CSMS asks after a start."""
    if action in ("SetChargingProfile", "ClearChargingProfile"):
        return {"status": "Accepted"}
    if action == "TriggerMessage":
        return {"status": "Rejected"}
    if action == "GetCompositeSchedule":
        return {"status": "Rejected"}
    return default_answer(action, payload)


async def next_profile(client: RawClient, purpose: str) -> list[Any]:
    while True:
        call = await asyncio.wait_for(client.server_calls.get(), 10)
        if call[2] == "SetChargingProfile":
            body = call[3].get("csChargingProfiles") or call[3].get("chargingProfile")
            if body["chargingProfilePurpose"] == purpose:
                return call


@pytest.fixture
async def site_server(tmp_path: Path):
    config = make_config(tmp_path)
    config.load.coalesce_s = 0.02
    config.sites = [SiteSpec(id="site", max_power_kw=50, chargers=["*"])]
    config.chargers = [ChargerSpec(match="W-*", unit="W"), ChargerSpec(match="*", unit="A")]
    service = Loadstar(config)
    await service.start()
    yield service
    await service.stop()


@pytest.mark.parametrize("cp_id, unit", [("A-16", "A"), ("W-16", "W")])
async def test_ocpp16_charger_gets_floor_then_tx_profile_valid_against_schema(
        site_server: Loadstar, cp_id: str, unit: str) -> None:
    url = f"ws://127.0.0.1:{site_server.ocpp_port}/ocpp/{cp_id}"
    c = await RawClient.connect(url, "ocpp1.6", accept_profiles)
    await c.ok("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    await c.ok("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                      "status": "Available"})
    floor = await next_profile(c, "TxDefaultProfile")
    validate("1.6", "SetChargingProfile", floor[3], response=False)
    assert floor[3]["connectorId"] == 1
    sched = floor[3]["csChargingProfiles"]["chargingSchedule"]
    assert sched["chargingRateUnit"] == unit
    assert sched["chargingSchedulePeriod"][0]["numberPhases"] == 3
    start = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                                            "timestamp": "2026-11-23T10:00:00Z"})
    tx = await next_profile(c, "TxProfile")
    validate("1.6", "SetChargingProfile", tx[3], response=False)
    body = tx[3]["csChargingProfiles"]
    assert body["transactionId"] == start["transactionId"]
    assert body["chargingSchedule"]["chargingRateUnit"] == unit
    assert "validTo" in body and body["chargingSchedule"]["duration"] > 0
    limit = body["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    # One car alone: its 22 kW rating less the 2 % buffer every node keeps (DESIGN section 3).
    granted_w = 22000 * 0.98
    assert limit == (math.floor(granted_w / (3 * 230) * 10) / 10 if unit == "A" else granted_w)
    await c.close()


@pytest.mark.parametrize("cp_id, unit", [("A-201", "A"), ("W-201", "W")])
async def test_ocpp201_charger_gets_floor_then_tx_profile_valid_against_schema(
        site_server: Loadstar, cp_id: str, unit: str) -> None:
    url = f"ws://127.0.0.1:{site_server.ocpp_port}/ocpp/{cp_id}"
    c = await RawClient.connect(url, "ocpp2.0.1", accept_profiles)
    await c.ok("BootNotification", {"reason": "PowerUp",
                                    "chargingStation": {"model": "M", "vendorName": "V"}})
    await c.ok("StatusNotification", {"timestamp": "2026-11-23T10:00:00Z",
                                      "connectorStatus": "Available", "evseId": 1,
                                      "connectorId": 1})
    floor = await next_profile(c, "TxDefaultProfile")
    validate("2.0.1", "SetChargingProfile", floor[3], response=False)
    assert floor[3]["evseId"] == 1
    [sched] = floor[3]["chargingProfile"]["chargingSchedule"]
    assert sched["chargingRateUnit"] == unit
    tx_id = str(uuid.uuid4())
    await c.ok("TransactionEvent", {
        "eventType": "Started", "timestamp": "2026-11-23T10:00:00Z", "seqNo": 0,
        "triggerReason": "Authorized", "transactionInfo": {"transactionId": tx_id},
        "evse": {"id": 1, "connectorId": 1}, "idToken": {"idToken": "T", "type": "Central"}})
    tx = await next_profile(c, "TxProfile")
    validate("2.0.1", "SetChargingProfile", tx[3], response=False)
    body = tx[3]["chargingProfile"]
    assert body["transactionId"] == tx_id
    [sched] = body["chargingSchedule"]
    assert sched["chargingRateUnit"] == unit
    assert sched["chargingSchedulePeriod"][0]["numberPhases"] == 3
    await c.close()


async def test_a_site_changed_at_run_time_is_stored_and_replanned(site_server: Loadstar) -> None:
    url = f"ws://127.0.0.1:{site_server.ocpp_port}/ocpp/A-CHG"
    c = await RawClient.connect(url, "ocpp1.6", accept_profiles)
    await c.ok("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    await c.ok("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                      "status": "Available"})
    await c.ok("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                                    "timestamp": "2026-11-23T10:00:00Z"})
    first = await next_profile(c, "TxProfile")
    assert first[3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0][
        "limit"] > 20
    assert site_server.planner is not None
    await site_server.planner.update_site(SiteSpec(id="site", max_power_kw=10, chargers=["*"]))
    lowered = await next_profile(c, "TxProfile")
    limit = lowered[3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
    assert limit["limit"] * 3 * 230 <= 10_000 * 0.98
    assert [s["max_power_kw"] for s in await site_server.store.list_sites()] == [10]
    await c.close()
