"""The simulated charger without a network: its messages, answers and physics.

A scripted "server" drains the charger's outbox, checks every CALL against the `ocpp` JSON
schemas and answers it; central-system CALLs go straight into `handle_call`, and every answer
is checked against the schemas as well. Time is a manual clock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulators import smart
from simulators.charger import SimCharger, _error_code, _Reply, validate_call, validate_result
from simulators.ev import EV

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.t = T0

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> datetime:
        self.t += timedelta(seconds=seconds)
        return self.t

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(0)


class Server:
    """Answers what the charger sends, validating both directions against the schemas."""

    def __init__(self, cp: SimCharger) -> None:
        self.cp = cp
        self.sent: list[tuple[str, dict]] = []
        self.ids = itertools.count(100)
        self.id_status = "Accepted"

    def answer(self, action: str, payload: dict) -> dict:
        now = smart.iso(self.cp.clock.now())
        if self.cp.v16:
            table: dict[str, Callable[[], dict]] = {
                "Authorize": lambda: {"idTagInfo": {"status": self.id_status}},
                "StartTransaction": lambda: {
                    "transactionId": next(self.ids),
                    "idTagInfo": {"status": self.id_status},
                },
                "BootNotification": lambda: {
                    "status": "Accepted", "currentTime": now, "interval": 300},
                "Heartbeat": lambda: {"currentTime": now},
            }
        else:
            table = {
                "Authorize": lambda: {"idTokenInfo": {"status": self.id_status}},
                "BootNotification": lambda: {
                    "status": "Accepted", "currentTime": now, "interval": 300},
                "Heartbeat": lambda: {"currentTime": now},
            }
        return table.get(action, dict)()

    async def drain(self) -> list[tuple[str, dict]]:
        """Let background flows run and answer everything queued; return what was sent."""
        out: list[tuple[str, dict]] = []
        for _ in range(10):
            await asyncio.sleep(0)
            while self.cp._outbox:
                item = self.cp._outbox.popleft()
                payload = item.payload if item.payload is not None else item.build()
                validate_call(item.action, payload, self.cp.version)
                result = self.answer(item.action, payload)
                validate_result(item.action, result, self.cp.version)
                if item.on_result is not None:
                    item.on_result(payload, result)
                if not item.future.done():
                    item.future.set_result(result)
                out.append((item.action, payload))
        self.sent.extend(out)
        return out

    def call(self, action: str, payload: dict) -> tuple[dict, Any]:
        """A central-system CALL: validated request in, validated answer out."""
        validate_call(action, payload, self.cp.version)
        result, followup = self.cp.handle_call(action, payload)
        validate_result(action, result, self.cp.version)
        return result, followup


def make(protocol: str = "ocpp1.6", **kw: Any) -> tuple[SimCharger, Server, ManualClock]:
    clock = ManualClock()
    cp = SimCharger("CP1", "ws://127.0.0.1:1/ocpp", protocol=protocol, clock=clock, **kw)
    cp._t_advanced = clock.now()
    cp._accepted.set()  # as if connected and booted
    cp.boot_status = "Accepted"
    return cp, Server(cp), clock


def actions(sent: list[tuple[str, dict]]) -> list[str]:
    return [a for a, _ in sent]


def sampled(payload: dict, measurand: str, phase: str | None = None) -> float:
    for mv in payload.get("meterValue") or payload.get("transactionData") or []:
        for sv in mv["sampledValue"]:
            if sv.get("measurand") == measurand and sv.get("phase") == phase:
                return float(sv["value"])
    raise KeyError(measurand)


# ------------------------------------------------------------------ sessions


async def test_v16_session_start_meter_values_and_stop() -> None:
    cp, server, clock = make(connectors=2)
    await cp.plug_in(1, EV(battery_kwh=60, soc=0.2, max_power_kw=11), "TAG1")
    sent = await server.drain()
    assert actions(sent) == ["StatusNotification", "Authorize", "StartTransaction",
                             "StatusNotification"]
    assert sent[0][1]["status"] == "Preparing" and sent[3][1]["status"] == "Charging"
    assert sent[2][1]["meterStart"] == 0 and sent[2][1]["connectorId"] == 1
    tx = await cp.wait_for_tx_started(1, timeout=1)
    assert tx.transaction_id == 100 and cp.acknowledged_transactions == [100]

    cp._step(clock.advance(60))
    sent = await server.drain()
    assert actions(sent) == ["MeterValues"]
    mv = sent[0][1]
    assert mv["transactionId"] == 100
    assert sampled(mv, "Energy.Active.Import.Register") == pytest.approx(11000 / 60, abs=0.1)
    assert sampled(mv, "Power.Active.Import") == 11000
    assert sampled(mv, "Current.Import", "L1") == pytest.approx(11000 / 690, abs=0.01)
    assert sampled(mv, "Current.Import", "L3") == pytest.approx(11000 / 690, abs=0.01)
    assert sampled(mv, "SoC") == pytest.approx(20.3, abs=0.05)

    clock.advance(30)
    await cp.unplug(1)
    sent = await server.drain()
    assert actions(sent) == ["StopTransaction", "StatusNotification"]
    stop = sent[0][1]
    assert stop["transactionId"] == 100 and stop["reason"] == "EVDisconnected"
    assert stop["meterStop"] == round(11000 * 90 / 3600)
    assert [mv["sampledValue"][0]["context"] for mv in stop["transactionData"]] == [
        "Transaction.Begin", "Transaction.End"]
    assert sent[1][1]["status"] == "Available"
    assert tx.stop_acknowledged and tx.energy_wh == pytest.approx(11000 * 90 / 3600)
    # 4 periodic samples (energy, power, L1-L3 counted once each... ) plus transactionData.
    assert tx.samples_acked == len(mv["meterValue"][0]["sampledValue"]) + 2
    assert cp.samples_acked_by_tx() == {100: tx.samples_acked}


async def test_v201_transaction_events_share_an_id_and_count_seq_no() -> None:
    cp, server, clock = make("ocpp2.0.1")
    await cp.plug_in(1, EV(max_power_kw=7.0, phases=1), "TOKEN")
    sent = await server.drain()
    assert actions(sent) == ["StatusNotification", "Authorize", "TransactionEvent"]
    assert sent[0][1] == {"timestamp": smart.iso(T0), "connectorStatus": "Occupied",
                          "evseId": 1, "connectorId": 1}
    started = sent[2][1]
    assert started["eventType"] == "Started" and started["seqNo"] == 0
    assert started["triggerReason"] == "Authorized"
    assert started["idToken"] == {"idToken": "TOKEN", "type": "ISO14443"}
    assert started["evse"] == {"id": 1, "connectorId": 1}
    assert started["numberOfPhasesUsed"] == 1
    assert started["transactionInfo"]["chargingState"] == "Charging"
    tx_id = started["transactionInfo"]["transactionId"]
    assert cp.acknowledged_transactions == [tx_id]

    cp._step(clock.advance(60))
    (updated,) = [p for _, p in await server.drain()]
    assert updated["eventType"] == "Updated" and updated["seqNo"] == 1
    assert updated["triggerReason"] == "MeterValuePeriodic"
    assert sampled(updated, "Power.Active.Import") == 7000
    assert sampled(updated, "Current.Import", "L1") == pytest.approx(7000 / 230, abs=0.01)
    assert sampled(updated, "Current.Import", "L2") == 0

    await cp.unplug(1)
    sent = await server.drain()
    assert actions(sent) == ["TransactionEvent", "StatusNotification"]
    ended = sent[0][1]
    assert ended["eventType"] == "Ended" and ended["seqNo"] == 2
    assert ended["triggerReason"] == "EVDeparted"
    assert ended["transactionInfo"] == {"transactionId": tx_id, "chargingState": "Idle",
                                        "stoppedReason": "EVDisconnected"}
    assert sent[1][1]["connectorStatus"] == "Available"
    assert cp.transactions[0].stop_acknowledged


async def test_offline_transaction_messages_queue_and_carry_the_later_transaction_id() -> None:
    cp, server, clock = make()
    cp._accepted.clear()  # offline: no Authorize (LocalAuthorizeOffline), no status messages
    await cp.plug_in(1, EV(), "TAG")
    await asyncio.sleep(0)
    cp._step(clock.advance(60))
    await cp.unplug(1)
    assert [i.action for i in cp._outbox] == ["StartTransaction", "MeterValues",
                                              "StopTransaction"]
    cp._accepted.set()
    sent = await server.drain()
    assert actions(sent) == ["StartTransaction", "MeterValues", "StopTransaction"]
    assert sent[1][1]["transactionId"] == sent[2][1]["transactionId"] == 100


async def test_v201_events_made_offline_are_flagged() -> None:
    cp, server, clock = make("ocpp2.0.1")
    await cp.plug_in(1, EV(), "TAG")
    await server.drain()
    cp._accepted.clear()
    cp._step(clock.advance(60))
    cp._accepted.set()
    (event,) = [p for _, p in await server.drain()]
    assert event["offline"] is True and event["seqNo"] == 1


async def test_rejected_id_tag_stops_the_transaction_v16() -> None:
    cp, server, clock = make()
    await cp.plug_in(1, EV(), "TAG")
    await server.drain()
    server.id_status = "Blocked"
    await cp.unplug(1)
    await server.drain()
    cp._step(clock.advance(1))
    await cp.plug_in(1, EV(), "BAD")
    sent = await server.drain()
    assert actions(sent) == ["StatusNotification", "Authorize"]  # refused before starting
    assert cp._conn(1).tx is None and cp._conn(1).auth_rejected


async def test_full_ev_ends_the_transaction() -> None:
    cp, server, clock = make("ocpp2.0.1")
    ev = EV(battery_kwh=1, soc=0.5, target_soc=0.6, max_power_kw=11)
    await cp.plug_in(1, ev)
    await server.drain()
    wake = cp._next_wake(clock.now())
    assert wake == pytest.approx(100 / 11000 * 3600)  # predicted full before the meter tick
    cp._step(clock.advance(wake))
    sent = await server.drain()
    ended = [p for a, p in sent if a == "TransactionEvent" and p["eventType"] == "Ended"]
    assert ended and ended[0]["transactionInfo"]["stoppedReason"] == "SOCLimitReached"
    assert ev.full and cp.transactions[0].energy_wh == pytest.approx(100, abs=0.01)


# ------------------------------------------------------------------ smart charging


def tx_default(pid: int, amps: float, *, stack: int = 0, purpose: str = "TxDefaultProfile",
               **extra: Any) -> dict:
    return {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": smart.iso(T0),
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": amps}],
        },
        **extra,
    }


async def test_tx_profile_lapses_back_to_the_default_by_itself_with_exact_energy() -> None:
    cp, server, clock = make()
    events: list = []
    cp.on_profile = events.append
    res, _ = server.call("SetChargingProfile",
                         {"connectorId": 0, "csChargingProfiles": tx_default(1, 10.0)})
    assert res == {"status": "Accepted"}
    await cp.plug_in(1, EV(battery_kwh=100, soc=0.1, max_power_kw=22), "TAG")
    await server.drain()
    assert cp.current_draw_w(1) == pytest.approx(10 * 230 * 3)
    assert cp._conn(1).status == "Charging"

    valid_to = T0 + timedelta(minutes=15)
    res, _ = server.call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": tx_default(
        2, 32.0, stack=1, purpose="TxProfile", transactionId=100, validTo=smart.iso(valid_to))})
    assert res == {"status": "Accepted"}
    assert cp.current_draw_w(1) == pytest.approx(22000)  # the connector's own 22 kW
    assert cp.composite_limit_w(1) == pytest.approx(22000)
    assert cp._next_wake(clock.now()) == pytest.approx(60)  # the meter tick comes first

    clock.advance(20 * 60)
    assert cp.current_draw_w(1) == pytest.approx(6900)  # fell back at validTo
    expected = 22000 * 15 / 60 + 6900 * 5 / 60
    assert cp.transactions[0].energy_wh == pytest.approx(expected, rel=1e-6)
    assert (valid_to, pytest.approx(6900)) in cp.draw_log(1)

    await cp.unplug(1)
    assert [e.kind for e in events] == ["installed", "installed", "cleared"]
    assert events[-1].purpose == "TxProfile" and 2 not in cp.profiles.profiles


async def test_composite_schedule_reports_the_real_stack() -> None:
    cp, server, clock = make()
    server.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": tx_default(1, 16.0)})
    prof = tx_default(2, 8.0, stack=1)
    prof["chargingSchedule"]["duration"] = 600
    server.call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": prof})
    server.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": tx_default(
        3, 20000.0, purpose="ChargePointMaxProfile") | {"chargingSchedule": {
            "chargingRateUnit": "W", "startSchedule": smart.iso(T0),
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 9000.0}]}}})
    res, _ = server.call("GetCompositeSchedule",
                         {"connectorId": 1, "duration": 1800, "chargingRateUnit": "A"})
    assert res["status"] == "Accepted" and res["scheduleStart"] == smart.iso(T0)
    periods = res["chargingSchedule"]["chargingSchedulePeriod"]
    # 8 A until 600 s, then 16 A capped by 9 kW / (230 V x 3) = 13.0 A.
    assert periods == [{"startPeriod": 0, "limit": 8.0, "numberPhases": 3},
                       {"startPeriod": 600, "limit": 13.0, "numberPhases": 3}]
    res, _ = server.call("GetCompositeSchedule", {"connectorId": 0, "duration": 60})
    assert res["chargingSchedule"]["chargingRateUnit"] == "W"
    assert res["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 9000.0}]
    res, _ = server.call("GetCompositeSchedule", {"connectorId": 7, "duration": 60})
    assert res == {"status": "Rejected"}


async def test_station_maximum_is_shared_between_connectors() -> None:
    cp, server, clock = make(connectors=2)
    server.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": tx_default(
        1, 32.0, purpose="ChargePointMaxProfile")})
    for n in (1, 2):
        await cp.plug_in(n, EV(max_power_kw=22), f"T{n}")
    await server.drain()
    assert cp.current_draw_w(1) == pytest.approx(16 * 690)
    assert cp.current_draw_w(2) == pytest.approx(16 * 690)
    assert cp.total_draw_w() <= 32 * 690 + 1e-6


async def test_limit_below_6_a_suspends_the_ev() -> None:
    cp, server, clock = make()
    await cp.plug_in(1, EV(), "TAG")
    await server.drain()
    server.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": tx_default(1, 4.0)})
    cp._step(clock.advance(1))
    sent = await server.drain()
    assert cp.current_draw_w(1) == 0
    assert sent[-1] == ("StatusNotification", sent[-1][1]) and sent[-1][1]["status"] == (
        "SuspendedEVSE")


async def test_tx_profile_without_a_transaction_is_rejected() -> None:
    cp, server, _ = make()
    res, _ = server.call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": tx_default(
        1, 10.0, purpose="TxProfile")})
    assert res == {"status": "Rejected"}
    event = cp.profile_events.get_nowait()
    assert event.kind == "rejected" and event.reason == "TxNotFound"


async def test_modes_reject_and_ignore_profiles() -> None:
    cp, server, _ = make(mode="reject_profiles")
    res, _ = server.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": tx_default(
        1, 10.0)})
    assert res == {"status": "Rejected"} and len(cp.profiles) == 0

    cp, server, _ = make(mode="ignore_profiles")
    res, _ = server.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": tx_default(
        1, 10.0)})
    assert res == {"status": "Accepted"}
    await cp.plug_in(1, EV(max_power_kw=11), "TAG")
    await server.drain()
    assert cp.current_draw_w(1) == 11000  # keeps drawing its maximum
    assert cp.composite_limit_w(1) == pytest.approx(6900)  # while claiming the profile


async def test_clear_charging_profile_by_criteria_v16() -> None:
    cp, server, _ = make()
    server.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": tx_default(1, 10.0)})
    server.call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": tx_default(
        2, 12.0, stack=1)})
    res, _ = server.call("ClearChargingProfile", {"id": 42})
    assert res == {"status": "Unknown"}
    res, _ = server.call("ClearChargingProfile", {"connectorId": 1, "stackLevel": 1})
    assert res == {"status": "Accepted"} and list(cp.profiles.profiles) == [1]
    res, _ = server.call("ClearChargingProfile", {"chargingProfilePurpose": "TxDefaultProfile"})
    assert res == {"status": "Accepted"} and len(cp.profiles) == 0


async def test_v201_profiles_need_a_matching_transaction_and_no_duplicates() -> None:
    cp, server, clock = make("ocpp2.0.1")
    base = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": 1, "startSchedule": smart.iso(T0),
                                  "chargingRateUnit": "W",
                                  "chargingSchedulePeriod": [{"startPeriod": 0,
                                                              "limit": 7000.0}]}]}
    res, _ = server.call("SetChargingProfile", {"evseId": 0, "chargingProfile": base})
    assert res == {"status": "Accepted"}
    res, _ = server.call("SetChargingProfile", {"evseId": 0, "chargingProfile": base | {"id": 2}})
    assert res["status"] == "Rejected" and res["statusInfo"]["reasonCode"] == "DuplicateProfile"
    res, _ = server.call("SetChargingProfile", {"evseId": 1, "chargingProfile": base | {"id": 3}})
    assert res["status"] == "Rejected"  # same level on EVSE 0 and EVSE 1 (K01.FR.52)
    await cp.plug_in(1, EV(max_power_kw=11), "TAG")
    await server.drain()
    tx_id = cp.transactions[0].transaction_id
    tx = base | {"id": 5, "stackLevel": 1, "chargingProfilePurpose": "TxProfile"}
    res, _ = server.call("SetChargingProfile", {"evseId": 1, "chargingProfile": tx})
    assert res["statusInfo"]["reasonCode"] == "TxNotFound"  # no transactionId
    res, _ = server.call("SetChargingProfile",
                         {"evseId": 1, "chargingProfile": tx | {"transactionId": tx_id}})
    assert res == {"status": "Accepted"}
    assert cp.current_draw_w(1) == 7000
    res, _ = server.call("GetCompositeSchedule",
                         {"evseId": 1, "duration": 300, "chargingRateUnit": "W"})
    assert res["schedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 7000.0}]
    res, _ = server.call("ClearChargingProfile", {"chargingProfileCriteria": {
        "chargingProfilePurpose": "TxProfile"}})
    assert res == {"status": "Accepted"} and cp.current_draw_w(1) == 7000  # default is 7 kW too


async def test_remote_start_with_profile_before_the_car_arrives_v16() -> None:
    cp, server, _ = make()
    profile = tx_default(9, 8.0, purpose="TxProfile")
    res, start = server.call("RemoteStartTransaction",
                             {"connectorId": 1, "idTag": "REMOTE", "chargingProfile": profile})
    assert res == {"status": "Accepted"}
    await start()
    await cp.plug_in(1, EV(max_power_kw=22), "IGNORED")
    sent = await server.drain()
    assert "Authorize" not in actions(sent)  # AuthorizeRemoteTxRequests=false
    start_req = next(p for a, p in sent if a == "StartTransaction")
    assert start_req["idTag"] == "REMOTE"
    assert cp.profiles.profiles[9].transaction_id == "100"  # bound once the id is known
    assert cp.current_draw_w(1) == pytest.approx(8 * 690)
    res, stop = server.call("RemoteStopTransaction", {"transactionId": 100})
    assert res == {"status": "Accepted"}
    await stop()
    sent = await server.drain()
    assert next(p for a, p in sent if a == "StopTransaction")["reason"] == "Remote"
    res, _ = server.call("RemoteStopTransaction", {"transactionId": 100})
    assert res == {"status": "Rejected"}


async def test_request_start_transaction_v201_reports_remote_start_id() -> None:
    cp, server, _ = make("ocpp2.0.1")
    await cp.plug_in(1, EV(), "LOCAL")
    server.id_status = "Invalid"
    await server.drain()  # local authorization refused: connector waits with the car
    res, start = server.call("RequestStartTransaction",
                             {"evseId": 1, "remoteStartId": 77,
                              "idToken": {"idToken": "APP", "type": "Central"}})
    assert res == {"status": "Accepted"}
    await start()
    sent = await server.drain()
    started = next(p for a, p in sent if a == "TransactionEvent")
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 77


# ------------------------------------------------------------------ configuration


async def test_get_configuration_has_the_smart_charging_keys() -> None:
    cp, server, _ = make()
    res, _ = server.call("GetConfiguration", {})
    keys = {k["key"]: k for k in res["configurationKey"]}
    assert keys["ChargingScheduleAllowedChargingRateUnit"]["value"] == "Current,Power"
    for key in ("ChargeProfileMaxStackLevel", "ChargingScheduleMaxPeriods",
                "MaxChargingProfilesInstalled", "MeterValueSampleInterval",
                "MeterValuesSampledData", "HeartbeatInterval", "NumberOfConnectors"):
        assert key in keys
    res, _ = server.call("GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
    assert res["unknownKey"] == ["Nope"] and len(res["configurationKey"]) == 1


async def test_change_configuration_statuses_and_effect() -> None:
    cp, server, _ = make()
    assert server.call("ChangeConfiguration", {"key": "MeterValueSampleInterval",
                                               "value": "15"})[0] == {"status": "Accepted"}
    assert cp._meter_interval() == 15
    assert server.call("ChangeConfiguration", {"key": "MeterValueSampleInterval",
                                               "value": "soon"})[0] == {"status": "Rejected"}
    assert server.call("ChangeConfiguration", {"key": "NumberOfConnectors",
                                               "value": "4"})[0] == {"status": "Rejected"}
    assert server.call("ChangeConfiguration", {"key": "Unknown",
                                               "value": "1"})[0] == {"status": "NotSupported"}
    assert server.call("ChangeConfiguration", {"key": "MeterValuesSampledData",
                                               "value": "Energy.Active.Import.Register,RPM"}
                       )[0] == {"status": "Rejected"}


async def test_v201_get_and_set_variables() -> None:
    cp, server, _ = make("ocpp2.0.1")

    def get(component: str, name: str, **kw: Any) -> dict:
        item: dict = {"component": {"name": component}, "variable": {"name": name}}
        if "instance" in kw:
            item["variable"]["instance"] = kw["instance"]
        res, _ = server.call("GetVariables", {"getVariableData": [item]})
        return res["getVariableResult"][0]

    assert get("SmartChargingCtrlr", "RateUnit")["attributeValue"] == "A,W"
    assert get("SmartChargingCtrlr", "Enabled")["attributeValue"] == "true"
    assert get("SmartChargingCtrlr", "PeriodsPerSchedule")["attributeValue"] == "24"
    assert get("SmartChargingCtrlr", "ProfileStackLevel")["attributeValue"] == "8"
    assert get("SmartChargingCtrlr", "Entries", instance="ChargingProfiles")[
        "attributeValue"] == "0"
    assert get("SampledDataCtrlr", "TxUpdatedInterval")["attributeValue"] == "60"
    assert "SoC" in get("SampledDataCtrlr", "TxUpdatedMeasurands")["attributeValue"]
    assert get("SmartChargingCtrlr", "Nope")["attributeStatus"] == "UnknownVariable"
    assert get("NoSuchCtrlr", "Enabled")["attributeStatus"] == "UnknownComponent"

    res, _ = server.call("SetVariables", {"setVariableData": [
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"},
         "attributeValue": "30"},
        {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"},
         "attributeValue": "W"},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
         "attributeValue": "-1"},
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedMeasurands"},
         "attributeValue": "Energy.Active.Import.Register,Power.Active.Import"},
    ]})
    assert [r["attributeStatus"] for r in res["setVariableResult"]] == [
        "Accepted", "Rejected", "Rejected", "Accepted"]
    assert cp._meter_interval() == 30
    assert cp._measurands("periodic") == ["Energy.Active.Import.Register", "Power.Active.Import"]


async def test_v201_base_report_is_sent_as_notify_report_chunks() -> None:
    cp, server, _ = make("ocpp2.0.1", connectors=2)
    res, followup = server.call("GetBaseReport", {"requestId": 5, "reportBase": "FullInventory"})
    assert res == {"status": "Accepted"}
    task = asyncio.ensure_future(followup())
    sent: list = []
    while not task.done():
        sent += await server.drain()
    reports = [p for a, p in sent if a == "NotifyReport"]
    assert len(reports) >= 2 and [r["seqNo"] for r in reports] == list(range(len(reports)))
    assert [r["tbc"] for r in reports] == [True] * (len(reports) - 1) + [False]
    names = {(d["component"]["name"], d["variable"]["name"])
             for r in reports for d in r["reportData"]}
    assert ("SmartChargingCtrlr", "RateUnit") in names and ("EVSE", "Power") in names


async def test_trigger_message_sends_what_was_asked() -> None:
    cp, server, _ = make(connectors=2)
    res, followup = server.call("TriggerMessage", {"requestedMessage": "StatusNotification"})
    assert res == {"status": "Accepted"}
    await followup()
    sent = await server.drain()
    assert [p["connectorId"] for _, p in sent] == [0, 1, 2]
    res, _ = server.call("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 5})
    assert res == {"status": "Rejected"}


async def test_availability_is_scheduled_while_a_transaction_runs() -> None:
    cp, server, _ = make()
    await cp.plug_in(1, EV(), "TAG")
    await server.drain()
    res, _ = server.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert res == {"status": "Scheduled"}
    await cp.unplug(1)
    sent = await server.drain()
    assert sent[-1][1]["status"] == "Unavailable"
    res, _ = server.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "X"})
    assert res == {"status": "Rejected"}


# ------------------------------------------------------------------ RPC errors


async def test_unknown_actions_and_bad_payloads_become_call_errors() -> None:
    cp, _, _ = make()
    with pytest.raises(_Reply) as err:
        cp.handle_call("MakeCoffee", {})
    assert err.value.code == "NotImplemented"
    with pytest.raises(_Reply) as err:
        cp.handle_call("ReserveNow", {"connectorId": 1, "expiryDate": smart.iso(T0),
                                      "idTag": "X", "reservationId": 1})
    assert err.value.code == "NotSupported"
    with pytest.raises(_Reply) as err:
        cp.handle_call("ChangeConfiguration", {"key": "HeartbeatInterval"})
    assert err.value.code == "ProtocolError"
    with pytest.raises(_Reply) as err:
        cp.handle_call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "1",
                                               "extra": 1})
    assert _error_code("1.6", err.value.code) == "FormationViolation"
    assert _error_code("2.0.1", "FormationViolation") == "FormatViolation"
    assert cp.handle_call("DataTransfer", {"vendorId": "x"})[0] == {"status": "UnknownVendorId"}


async def test_boot_and_status_payloads_are_schema_valid() -> None:
    for protocol in ("ocpp1.6", "ocpp2.0.1"):
        cp, _, _ = make(protocol, connectors=2)
        validate_call("BootNotification", cp._boot_payload(), cp.version)
        cp._send_all_statuses()
        items = list(cp._outbox)
        assert len(items) == (3 if cp.v16 else 2)
        for item in items:
            validate_call(item.action, item.build(), cp.version)


class _ClosedSocket:
    """A websocket whose connection is gone: every send fails at once, without suspending."""

    def __init__(self) -> None:
        self.sends = 0

    async def send(self, _text: str) -> None:
        from websockets.exceptions import ConnectionClosed

        self.sends += 1
        if self.sends > 50:
            raise RuntimeError("the sender kept resending on a dead connection")
        raise ConnectionClosed(None, None)


async def test_a_charger_stopping_with_a_transaction_message_queued_stops_sending() -> None:
    # Seen as a suite hang: while stopping, the sender retried a send that fails without ever
    # suspending, so the event loop (and every timeout) starved.
    cp, _server, _clock = make()
    dead = _ClosedSocket()
    cp._ws = dead  # type: ignore[assignment]
    cp._stopping = True
    queued = cp._enqueue("MeterValues", lambda: {"connectorId": 1, "meterValue": []},
                         transactional=True, on_result=None)
    await cp._sender()
    assert dead.sends == 1
    assert not queued.done(), "a transaction message stays queued, as in a real charger"
    queued.cancel()
