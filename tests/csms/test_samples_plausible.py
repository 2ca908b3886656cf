"""Only physically possible meter values become numbers in the store and the plan (issue 11.4).

A value that is not finite is dropped (SQLite cannot read NaN back, and an infinite draw would
steer the plan); a negative import power is clamped to 0; a negative energy register is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from csms.config import Config
from csms.domain import Metered
from csms.live import LiveState
from csms.ocpp.samples import samples_v16, samples_v201
from csms.plausible import declared_connectors, is_declared, reported_evses
from csms.service import Loadstar
from csms.store.base import MeterQuery
from tests.raw_client import RawClient

START = datetime.now(UTC).replace(microsecond=0)
NOW = START.isoformat()
POWER = "Power.Active.Import"
ENERGY = "Energy.Active.Import.Register"


def v16(value: str, measurand: str = POWER, at: str = NOW) -> list[dict]:
    return [{"timestamp": at, "sampledValue": [
        {"value": value, "measurand": measurand, "unit": "W"},
        {"value": "1234", "measurand": ENERGY, "unit": "Wh"}]}]


def v201(value: float, multiplier: int = 0, measurand: str = POWER) -> list[dict]:
    return [{"timestamp": NOW, "sampledValue": [
        {"value": value, "measurand": measurand,
         "unitOfMeasure": {"unit": "W", "multiplier": multiplier}},
        {"value": 1234.0, "measurand": ENERGY, "unitOfMeasure": {"unit": "Wh"}}]}]


@pytest.mark.parametrize("text", ["1e309", "-1e309", "inf", "Infinity", "-inf", "nan", "NaN",
                                  "9" * 400], ids=lambda t: t if len(t) < 20 else "400-nines")
def test_a_1_6_value_that_is_not_finite_is_dropped_and_logged(text: str) -> None:
    with capture_logs() as logs:
        samples = samples_v16(v16(text))
    assert [(s.measurand, s.value) for s in samples] == [(ENERGY, 1234.0)]
    dropped = [e for e in logs if e["event"] == "sample_not_finite"]
    assert len(dropped) == 1 and dropped[0]["measurand"] == POWER
    assert dropped[0]["log_level"] == "warning"


@pytest.mark.parametrize(("value", "multiplier"), [
    (1.0, 400),            # 10.0**400 overflows
    (1.0, 2**63 - 1),      # the largest multiplier a schema-valid message can carry
    (1e300, 9),            # both finite, the product is not
    (10**400, 0),          # a JSON integer no float can hold
], ids=["10**400", "10**(2**63-1)", "1e300*10**9", "401-digit-integer"])
def test_a_2_0_1_value_its_multiplier_makes_infinite_is_dropped_and_logged(
        value: float, multiplier: int) -> None:
    with capture_logs() as logs:
        samples = samples_v201(v201(value, multiplier))
    assert [(s.measurand, s.value) for s in samples] == [(ENERGY, 1234.0)]
    assert [e["measurand"] for e in logs if e["event"] == "sample_not_finite"] == [POWER]


def test_a_2_0_1_multiplier_still_scales_finite_values() -> None:
    assert [s.value for s in samples_v201(v201(7.4, 3))] == [7400.0, 1234.0]
    assert [s.value for s in samples_v201(v201(5.0, -400))] == [0.0, 1234.0]


def test_a_negative_import_power_is_clamped_to_zero() -> None:
    with capture_logs() as logs:
        samples = samples_v16(v16("-35.5")) + samples_v201(v201(-0.2, 3))
    assert [s.value for s in samples if s.measurand == POWER] == [0.0, 0.0]
    assert sum(e["event"] == "sample_negative_clamped" for e in logs) == 2


def test_a_negative_energy_register_is_dropped() -> None:
    with capture_logs() as logs:
        samples = samples_v16(v16("-5", ENERGY)) + samples_v201(v201(-5.0, 0, ENERGY))
    assert [s.value for s in samples] == [1234.0, 1234.0]
    assert sum(e["event"] == "sample_negative_dropped" for e in logs) == 2


def test_a_measurand_that_can_be_negative_keeps_its_sign() -> None:
    samples = samples_v16(v16("-0.93", "Power.Factor")) + samples_v16(v16("-800", "Power.Offered"))
    assert sorted(s.value for s in samples if s.measurand != ENERGY) == [-800.0, -0.93]


# -- what reaches the store -----------------------------------------------------------------


async def stored(server: Loadstar, cp_id: str) -> list[float]:
    return [r.value for r in await server.store.meter_series(MeterQuery(cp_ids=(cp_id,)))]


async def test_a_1_6_charger_sending_non_finite_values_is_answered_and_nothing_non_finite_is_stored(
        server: Loadstar, url: Callable[[str], str]) -> None:
    client = await RawClient.connect(url("NAN16"), "ocpp1.6")
    try:
        await client.ok("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        for i, text in enumerate(("1e309", "nan", "-inf")):
            at = (START + timedelta(seconds=i)).isoformat()
            await client.ok("MeterValues", {"connectorId": 1, "meterValue": v16(text, at=at)})
        await client.ok("MeterValues", {"connectorId": 1, "meterValue": v16(
            "-12", ENERGY, at=(START + timedelta(seconds=9)).isoformat())})
        values = await stored(server, "NAN16")
    finally:
        await client.close()
    # The energy register beside each bad value is kept: one bad value costs only itself.
    assert values == [1234.0] * 4


async def test_a_2_0_1_transaction_event_with_an_overflowing_sample_is_kept_without_it(
        server: Loadstar, url: Callable[[str], str]) -> None:
    client = await RawClient.connect(url("NAN201"), "ocpp2.0.1")
    try:
        await client.ok("BootNotification", {"reason": "PowerUp",
                                             "chargingStation": {"vendorName": "V", "model": "M"}})
        await client.ok("TransactionEvent", {
            "eventType": "Started", "timestamp": NOW, "triggerReason": "CablePluggedIn",
            "seqNo": 0, "transactionInfo": {"transactionId": "TX-INF"},
            "evse": {"id": 1, "connectorId": 1}, "meterValue": v201(1.0, 400)})
        await client.ok("MeterValues", {"evseId": 1, "meterValue": v201(1e300, 9)})
        values = await stored(server, "NAN201")
        sessions = await server.store.list_sessions(active_only=True)
    finally:
        await client.close()
    assert values == [1234.0, 1234.0]
    assert all(math.isfinite(v) for v in values)
    assert [s.ocpp_tx_id for s in sessions if s.cp_id == "NAN201"] == ["TX-INF"]


# -- declared connectors ----------------------------------------------------------------------


@pytest.mark.parametrize(("capabilities", "declared"), [
    ({}, None), ({"connectors": 2}, 2), ({"evses": 3}, 3),
    # Nothing a charger could mean as a count: taken as not declared (every number counts).
    ({"connectors": 0}, None), ({"connectors": -1}, None), ({"connectors": "2"}, None),
    ({"connectors": True}, None),
])
def test_only_a_positive_whole_count_is_a_declaration(capabilities: dict, declared: int | None,
                                                      ) -> None:
    assert declared_connectors(capabilities) == declared
    assert is_declared(capabilities, 3) == (declared is None or declared >= 3)


def test_a_reports_evse_components_declare_its_highest_evse() -> None:
    def evse(n: object) -> dict:
        return {"component": {"name": "EVSE", "evse": {"id": n}}, "variable": {"name": "Power"}}
    assert reported_evses([evse(1), evse(4), {"component": {"name": "Connector",
                                                            "evse": {"id": 9}}}]) == 4
    assert reported_evses([{"component": {"name": "SmartChargingCtrlr"}}, evse("x")]) is None


# -- silent sessions ------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "silent_after_s"), [
    ({}, 900.0),                                               # 3 x 60 s, but at least 900 s
    ({"ocpp": {"meter_sample_interval_s": 600}}, 1800.0),      # three missed readings
    ({"ocpp": {"meter_sample_interval_s": 0}}, 0.0),           # no readings: silence is normal
    ({"load": {"connector_silent_after_s": 60}}, 60.0),        # as set
])
def test_the_silence_before_a_session_stops_being_planned_follows_the_meter_interval(
        settings: dict, silent_after_s: float) -> None:
    assert Config.model_validate(settings).load.connector_silent_after_s == silent_after_s


class Ticking:
    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at


def test_a_session_is_silent_once_unheard_of_for_longer_than_the_limit() -> None:
    clock = Ticking()
    live = LiveState(clock, 100.0)
    cp = live.charger("CP")
    cp.online = True
    idle, busy = cp.connector(1), cp.connector(2)
    busy.tx_id = "7"  # restored at start: unheard of since then
    clock.at = START + timedelta(seconds=100)
    assert not live.silent(cp, busy, clock.now())
    clock.at = START + timedelta(seconds=101)
    with capture_logs() as logs:
        assert live.silent(cp, busy, clock.now())
        assert live.silent(cp, busy, clock.now())
        assert not live.silent(cp, idle, clock.now())  # no session: counted at its floor anyway
        live.apply(Metered("CP", 2, ()))
        assert not live.silent(cp, busy, clock.now() + timedelta(seconds=100))
    assert [e["event"] for e in logs] == ["connector_silent", "connector_heard_again"]
    cp.online = False  # an offline charger is counted at what it holds anyway
    assert not live.silent(cp, busy, clock.now() + timedelta(seconds=500))
    assert not LiveState(clock, 0.0).silent(cp, busy, clock.now() + timedelta(days=1))
