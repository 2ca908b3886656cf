"""GetTransactionStatus (2.0.1 E14) and GetChargingProfiles (K09), whose report comes in
ReportChargingProfiles parts assembled per requestId."""

from __future__ import annotations

import asyncio

import pytest

from csms.config import Config
from csms.helper_versions import WrongVersion
from csms.service import Loadstar
from tests.e2e.stations import station


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False
    config.ocpp.configure_after_boot = False
    return config


def profile(profile_id: int, limit: float) -> dict:
    return {"id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative", "chargingSchedule": [{
                "id": profile_id, "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}]}


async def test_e14_get_transaction_status_returns_the_station_answer(server: Loadstar,
                                                                     url) -> None:
    c = await station(url, "TXS", "ocpp2.0.1", {"GetTransactionStatus": lambda p: {
        "messagesInQueue": "transactionId" in p, "ongoingIndicator": False}})
    result = await server.station_queries.transaction_status("TXS", "tx-42")
    assert result.ok and result.response == {"messagesInQueue": True,
                                             "ongoingIndicator": False}
    call = await asyncio.wait_for(c.server_calls.get(), 10)
    assert call[2:] == ["GetTransactionStatus", {"transactionId": "tx-42"}]
    anything = await server.station_queries.transaction_status("TXS")
    assert anything.response == {"messagesInQueue": False, "ongoingIndicator": False}
    await c.close()


async def test_k09_get_charging_profiles_returns_the_report_assembled_from_its_parts(
        server: Loadstar, url) -> None:
    c = await station(url, "GCP", "ocpp2.0.1",
                      {"GetChargingProfiles": lambda p: {"status": "Accepted"}})
    asked = asyncio.create_task(server.station_queries.charging_profiles(
        "GCP", evse_id=1, purpose="TxDefaultProfile", timeout_s=10))
    call = await asyncio.wait_for(c.server_calls.get(), 10)
    assert call[2] == "GetChargingProfiles"
    request = call[3]
    assert request["evseId"] == 1
    assert request["chargingProfile"] == {"chargingProfilePurpose": "TxDefaultProfile"}
    await c.ok("ReportChargingProfiles", {"requestId": request["requestId"],
                                          "chargingLimitSource": "CSO", "evseId": 1,
                                          "tbc": True, "chargingProfile": [profile(1, 16)]})
    assert not asked.done()
    await c.ok("ReportChargingProfiles", {"requestId": request["requestId"],
                                          "chargingLimitSource": "EMS", "evseId": 1,
                                          "chargingProfile": [profile(2, 10)]})
    report = await asked
    assert report.status == "Accepted" and report.complete
    assert [(p["chargingLimitSource"], p["chargingProfile"]["id"]) for p in report.profiles] \
        == [("CSO", 1), ("EMS", 2)]
    await c.close()


async def test_k09_no_profiles_needs_no_report_and_a_missing_part_times_out(
        server: Loadstar, url) -> None:
    answers = iter([{"status": "NoProfiles"}, {"status": "Accepted"}])
    c = await station(url, "GCP0", "ocpp2.0.1", {"GetChargingProfiles": lambda p: next(answers)})
    none = await server.station_queries.charging_profiles("GCP0", stack_level=0)
    assert none.status == "NoProfiles" and none.complete and none.profiles == []
    asked = asyncio.create_task(server.station_queries.charging_profiles(
        "GCP0", profile_ids=[7], timeout_s=1.0))
    await asyncio.wait_for(c.server_calls.get(), 10)
    request = (await asyncio.wait_for(c.server_calls.get(), 10))[3]
    await c.ok("ReportChargingProfiles", {"requestId": request["requestId"],
                                          "chargingLimitSource": "CSO", "evseId": 0,
                                          "tbc": True, "chargingProfile": [profile(7, 8)]})
    partial = await asked
    assert partial.status == "Accepted" and not partial.complete
    assert [p["chargingProfile"]["id"] for p in partial.profiles] == [7]
    await c.close()


async def test_2_0_1_only_helpers_refuse_a_1_6_charger_before_sending(server: Loadstar,
                                                                     url) -> None:
    c = await station(url, "OLD16", "ocpp1.6", {})
    with pytest.raises(WrongVersion, match="2.0.1 only"):
        await server.station_queries.charging_profiles("OLD16", stack_level=0)
    with pytest.raises(WrongVersion):
        await server.station_queries.transaction_status("OLD16")
    with pytest.raises(WrongVersion):
        await server.variables.get("OLD16", [("OCPPCommCtrlr", "HeartbeatInterval")])
    with pytest.raises(WrongVersion):
        await server.transfers.publish_firmware("OLD16", "https://x/y.bin", "0" * 32)
    assert await server.store.list_commands("OLD16", limit=10) == []
    await c.close()
