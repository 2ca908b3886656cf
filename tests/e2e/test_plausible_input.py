"""Only plausible input steers the plan (issue 11.4), end to end with real chargers.

A client that never booted Accepted takes no part in any plan, before a restart or after it;
a charger reporting a value that is not finite changes no other charger's limit and leaves
nothing in the store that is not a number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from csms.clock import parse_iso
from csms.store.base import MeterQuery
from tests.e2e.test_charger_memory import restart
from tests.e2e.test_load_management import (
    Site,
    answer_everything,
    big_ev,
    running_site,
    site_config,
    tx_limit,
    tx_purpose,
)
from tests.raw_client import RawClient

# A 22 kW car alone on the 50 kW site is given all it can draw: 31.2 A on three phases (the
# chargers' step), 21.5 kW. Twenty connectors' floors (6 A each) would leave it nothing.
FULL_W = 21_000.0


async def tx_limits(site: Site, cp_id: str) -> list[float]:
    """The limits of the TxProfiles `cp_id` accepted, oldest first."""
    sent = sorted((c for c in await site.server.store.list_commands(cp_id, limit=10_000)
                   if c.action == "SetChargingProfile" and c.status == "accepted"
                   and tx_purpose(c)), key=lambda c: c.id)
    return [tx_limit(c) for c in sent]


async def planned_for(site: Site, key: str, since: Any) -> list[float]:
    """What every plan started at or after `since` gave connector `key` (after asking one)."""
    site.server.planner.request("site", "test")
    plans = await site.planned_after(since)
    return [p["result"][key]["power_w"] for p in plans
            if parse_iso(p["ts"]) >= since and key in p["result"]]


async def a_car_at_full_power(site: Site, cp_id: str, protocol: str) -> None:
    charger = await site.add(cp_id, protocol)
    await charger.plug_in(1, big_ev())
    held = site.server.planner.live.charger(cp_id).connector(1)
    await site.until(lambda: (held.held_tx_w or 0.0) >= FULL_W, 300)


async def ghost_announces_twenty_connectors(site: Site, version: str, boot: bool) -> None:
    """A client that never boots Accepted (`boot`: it tries, and is refused) announces 20
    charging connectors, meters them, and leaves."""
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    ghost = await RawClient.connect(f"{site.url}/GHOST", subprotocol, answer_everything)
    now = site.clock.now().isoformat()
    try:
        if boot:
            answer = await ghost.ok("BootNotification",
                                    {"chargePointVendor": "V", "chargePointModel": "M"})
            assert answer["status"] == "Rejected"
        for n in range(1, 21):
            if version == "1.6":
                status = {"connectorId": n, "errorCode": "NoError", "status": "Charging",
                          "timestamp": now}
                meter = {"connectorId": n, "meterValue": [{"timestamp": now, "sampledValue": [
                    {"value": "22000", "measurand": "Power.Active.Import", "unit": "W"}]}]}
            else:
                status = {"timestamp": now, "connectorStatus": "Occupied", "evseId": n,
                          "connectorId": 1}
                meter = {"evseId": n, "meterValue": [{"timestamp": now, "sampledValue": [
                    {"value": 22000.0, "measurand": "Power.Active.Import"}]}]}
            for action, payload in (("StatusNotification", status), ("MeterValues", meter)):
                reply = await ghost.call(action, payload)
                assert reply[0] == 4 and reply[2] == "SecurityError", reply
    finally:
        await ghost.close()


@pytest.mark.parametrize(("allow_unknown", "version", "boot"), [
    (True, "1.6", False), (False, "1.6", False), (False, "1.6", True), (True, "2.0.1", False),
], ids=["unknown-allowed-1.6", "unknown-refused-1.6", "boot-rejected-1.6",
        "unknown-allowed-2.0.1"])
async def test_a_client_that_never_booted_changes_no_other_chargers_limit(
        tmp_path: Path, allow_unknown: bool, version: str, boot: bool) -> None:
    config = site_config(tmp_path)
    config.ocpp.allow_unknown_chargers = allow_unknown
    async with running_site(config) as site:
        for cp_id in ("SMART", "NEW"):
            await site.server.store.register_charge_point(cp_id)
        await a_car_at_full_power(site, "SMART", "ocpp1.6")
        live = site.server.planner.live
        before = await tx_limits(site, "SMART")

        await ghost_announces_twenty_connectors(site, version, boot)
        left_at = site.clock.now()
        await site.run_for(60)  # plans on every trigger the ghost could have caused
        assert min(await planned_for(site, "SMART/1", left_at)) >= FULL_W
        assert min((await tx_limits(site, "SMART"))[len(before) - 1:]) == before[-1]
        assert "GHOST" not in site.server.planner.chargers_in_plan("site")
        assert not getattr(live.chargers.get("GHOST"), "connectors", None)

        # A new process restores what the store holds: still nothing of the ghost.
        await restart(site)
        live = site.server.planner.live
        assert not getattr(live.chargers.get("GHOST"), "connectors", None)
        back_at = site.clock.now()
        # New chargers on the site are still given power, and the old one keeps its own.
        await a_car_at_full_power(site, "NEW", "ocpp2.0.1")
        assert min(await planned_for(site, "NEW/1", site.clock.now())) >= FULL_W
        assert min(await planned_for(site, "SMART/1", back_at)) >= FULL_W
        assert "GHOST" not in site.server.planner.chargers_in_plan("site")


async def test_a_charger_reporting_an_infinite_draw_changes_no_other_chargers_limit(
        tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with running_site(site_config(tmp_path)) as site:
            await a_car_at_full_power(site, "SMART", "ocpp1.6")
            before = await tx_limits(site, "SMART")
            liar = await RawClient.connect(f"{site.url}/LIAR", "ocpp1.6", answer_everything)
            try:
                await liar.ok("BootNotification", {"chargePointVendor": "V",
                                                   "chargePointModel": "M"})
                started = await liar.ok("StartTransaction", {
                    "connectorId": 1, "idTag": "T", "meterStart": 0,
                    "timestamp": site.clock.now().isoformat()})
                lie_at = site.clock.now()
                for value in ("1e309", "nan", "-inf"):
                    await liar.ok("MeterValues", {
                        "connectorId": 1, "transactionId": started["transactionId"],
                        "meterValue": [{"timestamp": site.clock.now().isoformat(),
                                        "sampledValue": [
                            {"value": value, "measurand": "Power.Active.Import",
                             "unit": "W"},
                            {"value": "100", "measurand": "Energy.Active.Import.Register",
                             "unit": "Wh"}]}]})
                    await site.run_for(1)
                await site.run_for(60)
                assert min(await planned_for(site, "SMART/1", lie_at)) >= FULL_W
                assert min((await tx_limits(site, "SMART"))[len(before) - 1:]) == before[-1]
                stored = await site.server.store.meter_series(MeterQuery(cp_ids=("LIAR",)))
                assert stored and all(math.isfinite(r.value) for r in stored)
                assert {r.measurand for r in stored} == {"Energy.Active.Import.Register"}
                assert site.server.planner.live.charger("LIAR").connector(1).measured_w is None
                assert sum(e["event"] == "sample_not_finite" and e["cp_id"] == "LIAR"
                           for e in logs) == 3
            finally:
                await liar.close()


def without_configuration_answer(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Accept what the server asks, but leave GetConfiguration for the test to answer."""
    return None if action == "GetConfiguration" else answer_everything(action, payload)


def status16(n: int, now: str) -> dict[str, Any]:
    return {"connectorId": n, "errorCode": "NoError", "status": "Preparing", "timestamp": now}


async def test_connectors_a_1_6_charger_did_not_declare_leave_the_plan_and_stay_out(
        tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with running_site(site_config(tmp_path)) as site:
            await a_car_at_full_power(site, "SMART", "ocpp1.6")
            live = site.server.planner.live
            liar = await RawClient.connect(f"{site.url}/TWO", "ocpp1.6",
                                           without_configuration_answer)
            try:
                await liar.ok("BootNotification", {"chargePointVendor": "V",
                                                   "chargePointModel": "M"})
                now = site.clock.now().isoformat()
                # Before it says how many it has, every number counts (as it always did).
                for n in range(1, 21):
                    await liar.ok("StatusNotification", status16(n, now))
                assert set(live.chargers["TWO"].connectors) == set(range(1, 21))
                while (ask := await liar.server_calls.get())[2] != "GetConfiguration":
                    pass
                await liar.ws.send(json.dumps([3, ask[1], {"configurationKey": [
                    {"key": "NumberOfConnectors", "readonly": True, "value": "2"}],
                    "unknownKey": []}]))
                await site.until(lambda: set(live.chargers["TWO"].connectors) == {1, 2}, 60)
                # From then on a third connector's reports are answered and change nothing.
                for action, payload in (
                        ("StatusNotification", status16(3, now)),
                        ("MeterValues", {"connectorId": 7, "meterValue": [
                            {"timestamp": now, "sampledValue": [
                                {"value": "22000", "measurand": "Power.Active.Import",
                                 "unit": "W"}]}]})):
                    assert await liar.ok(action, payload) == {}
                assert set(live.chargers["TWO"].connectors) == {1, 2}
                undeclared = [(e["connector_id"], e["declared"]) for e in logs
                              if e["event"] == "connector_undeclared" and e["cp_id"] == "TWO"]
                assert undeclared == [(3, 2), (7, 2)]
                held = live.charger("SMART").connector(1)
                await site.until(lambda: (held.held_tx_w or 0.0) >= FULL_W, 300)
                assert sorted(k for k in await planned_result_keys(site) if
                              k.startswith("TWO/")) == ["TWO/1", "TWO/2"]
            finally:
                await liar.close()
            # The store still holds the 18 it reported early; a new process takes none of them.
            await restart(site)
            assert set(site.server.planner.live.chargers["TWO"].connectors) == {1, 2}


async def planned_result_keys(site: Site) -> set[str]:
    """The connectors of the site's next plan."""
    since = site.clock.now()
    site.server.planner.request("site", "test")
    plans = await site.planned_after(since)
    return set(plans[-1]["result"])


async def test_evses_a_2_0_1_station_did_not_report_take_no_part_in_the_plan(
        tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with running_site(site_config(tmp_path)) as site:
            live = site.server.planner.live
            station = await RawClient.connect(f"{site.url}/DUO", "ocpp2.0.1", answer_everything)
            try:
                await station.ok("BootNotification", {
                    "reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}})
                now = site.clock.now().isoformat()
                await station.ok("NotifyReport", {
                    "requestId": 1, "generatedAt": now, "seqNo": 0, "reportData": [
                        {"component": {"name": "EVSE", "evse": {"id": n}},
                         "variable": {"name": "Available"},
                         "variableAttribute": [{"type": "Actual", "value": "true"}]}
                        for n in (1, 2)]})
                for n in (1, 2, 3, 20):
                    await station.ok("StatusNotification", {
                        "timestamp": now, "connectorStatus": "Occupied", "evseId": n,
                        "connectorId": 1})
                await site.until(lambda: set(live.charger("DUO").connectors) == {1, 2}, 60)
                assert "DUO/3" not in await planned_result_keys(site)
            finally:
                await station.close()
            assert set(live.chargers["DUO"].connectors) == {1, 2}
            assert [e["connector_id"] for e in logs if e["event"] == "connector_undeclared"
                    and e["cp_id"] == "DUO"] == [3, 20]


async def until_planned(site: Site, check: Any, limit_s: float) -> dict[str, Any]:
    """Plan the site every 10 simulated seconds until a plan's result passes `check`."""
    t0 = site.t()
    while True:
        since = site.clock.now()
        site.server.planner.request("site", "test")
        result = (await site.planned_after(since))[-1]["result"]
        if check(result):
            return result
        if site.t() - t0 > limit_s:
            raise AssertionError(f"no plan passed within {limit_s} simulated s: {result}")
        await site.run_for(10)


async def test_a_session_nobody_hears_of_stops_taking_a_share_and_gets_it_back_when_heard(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    silent_s = 120.0
    config.load.connector_silent_after_s = silent_s
    with capture_logs() as logs:
        async with running_site(config) as site:
            mute = await RawClient.connect(f"{site.url}/MUTE", "ocpp1.6", answer_everything)
            try:
                await mute.ok("BootNotification", {"chargePointVendor": "V",
                                                   "chargePointModel": "M"})
                started = await mute.ok("StartTransaction", {
                    "connectorId": 1, "idTag": "T", "meterStart": 0,
                    "timestamp": site.clock.now().isoformat()})
                talking = [await site.add(f"CAR{i}", protocol) for i, protocol in
                           enumerate(("ocpp1.6", "ocpp2.0.1"))]
                for c in talking:
                    await c.plug_in(1, big_ev())
                keys = ("CAR0/1", "CAR1/1")
                # Three sessions want 66 kW of the 50: the two that talk get less than all.
                await until_planned(site, lambda r: all(
                    k in r and r[k]["power_w"] < FULL_W for k in keys), 120)
                quiet_from = site.clock.now()
                # Unheard of, the third counts at what it holds until that lapses, then at its
                # floor: the two that talk get all they can draw.
                result = await until_planned(site, lambda r: r["MUTE/1"]["pinned"] and all(
                    r[k]["power_w"] >= FULL_W for k in keys), silent_s + 2 * 300.0)
                assert result["MUTE/1"]["power_w"] < 5_000.0
                assert (site.clock.now() - quiet_from).total_seconds() > silent_s
                assert [e["cp_id"] for e in logs if e["event"] == "connector_silent"] == ["MUTE"]
                # It speaks: it is planned as charging again.
                await mute.ok("MeterValues", {
                    "connectorId": 1, "transactionId": started["transactionId"],
                    "meterValue": [{"timestamp": site.clock.now().isoformat(), "sampledValue": [
                        {"value": "4000", "measurand": "Power.Active.Import", "unit": "W"}]}]})
                await until_planned(site, lambda r: not r["MUTE/1"]["pinned"], 60)
                assert any(e["event"] == "connector_heard_again" and e["cp_id"] == "MUTE"
                           for e in logs)
            finally:
                await mute.close()


async def test_a_silent_session_last_seen_drawing_over_its_limit_stays_counted_at_that_draw(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    silent_s = 120.0
    config.load.connector_silent_after_s = silent_s
    async with running_site(config) as site:
        mute = await RawClient.connect(f"{site.url}/MUTE", "ocpp1.6", answer_everything)
        try:
            await mute.ok("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
            started = await mute.ok("StartTransaction", {
                "connectorId": 1, "idTag": "T", "meterStart": 0,
                "timestamp": site.clock.now().isoformat()})
            for i, protocol in enumerate(("ocpp1.6", "ocpp2.0.1")):
                await (await site.add(f"CAR{i}", protocol)).plug_in(1, big_ev())
            held = site.server.planner.live.charger("MUTE").connector(1)
            await site.until(lambda: (held.held_tx_w or FULL_W) < 18_000.0, 120)
            # Its one word: it draws 22 kW, well over what it accepted; then nothing.
            await mute.ok("MeterValues", {
                "connectorId": 1, "transactionId": started["transactionId"],
                "meterValue": [{"timestamp": site.clock.now().isoformat(), "sampledValue": [
                    {"value": "22000", "measurand": "Power.Active.Import", "unit": "W"}]}]})
            quiet_from = site.clock.now()
            await site.run_for(silent_s + 300.0)  # silent, and its TxProfile has lapsed
            assert site.server.planner.live.silent(
                site.server.planner.live.chargers["MUTE"], held, site.clock.now())
            result = await until_planned(site, lambda r: True, 0)
            assert (site.clock.now() - quiet_from).total_seconds() > silent_s
            assert result["MUTE/1"]["pinned"] and result["MUTE/1"]["power_w"] >= 22_000.0
        finally:
            await mute.close()
