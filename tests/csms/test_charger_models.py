"""Learning what a charger model accepts from its answers, and remembering what it ignores."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.charger_models import REFUSED_AFTER, ModelRecord, model_key, profile_shape
from csms.domain import Booted
from csms.live import LiveState
from loadmgmt.profiles import ChargingProfile, ChargingSchedule, SchedulePeriod

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def profile(unit: str = "A", phases: int | None = 3, purpose: str = "TxProfile",
            connector: str = "CP/1") -> ChargingProfile:
    schedule = ChargingSchedule(unit, (SchedulePeriod(0, 16.0, phases),))  # type: ignore[arg-type]
    return ChargingProfile(1, connector, 2, purpose, "Absolute", schedule)  # type: ignore[arg-type]


def test_a_model_that_refuses_amps_is_sent_watts_after_repeated_refusals() -> None:
    record = ModelRecord()
    assert record.choose("A", ac=True) == ("A", True)
    for _ in range(REFUSED_AFTER - 1):
        record.learn(profile("A"), accepted=False)
    assert record.choose("A", ac=True) == ("A", True), "one refusal may be a race"
    assert record.learn(profile("A"), accepted=False)
    assert record.choose("A", ac=True) == ("W", True)
    record.learn(profile("W"), accepted=True)
    # What was accepted stays the choice, even after a later refusal of it.
    record.learn(profile("W"), accepted=False)
    assert record.choose("A", ac=True) == ("W", True)


def test_number_phases_is_dropped_only_when_both_units_with_it_were_refused() -> None:
    record = ModelRecord()
    for unit in ("A", "W"):
        for _ in range(REFUSED_AFTER):
            record.learn(profile(unit, 3), accepted=False)
    assert record.choose("A", ac=True) == ("A", False)
    record.learn(profile("A", None), accepted=True)
    assert record.choose("W", ac=True) == ("A", False)


def test_a_model_that_refuses_everything_keeps_the_preferred_shape() -> None:
    record = ModelRecord()
    for unit in ("A", "W"):
        for phases in (3, None):
            for _ in range(REFUSED_AFTER):
                record.learn(profile(unit, phases), accepted=False)
    assert record.choose("A", ac=True) == ("A", True)


def test_dc_profiles_go_out_in_watts_whatever_was_learned_for_amps() -> None:
    record = ModelRecord()
    record.learn(profile("A"), accepted=True)
    assert record.choose("A", ac=False) == ("W", True)


def test_answers_for_the_whole_charger_and_one_connector_are_both_recorded() -> None:
    record = ModelRecord()
    record.learn(profile(connector="CP/0", purpose="TxDefaultProfile"), accepted=True)
    record.learn(profile(), accepted=True)
    assert record.answers == {"TxDefaultProfile": {"A/np/cp": {"accepted": 1}},
                              "TxProfile": {"A/np/connector": {"accepted": 1}}}
    assert ModelRecord.from_json(record.to_json()) == record
    assert profile_shape(profile("W", None)) == "W/no-np/connector"


def test_model_key_is_vendor_model_and_firmware_or_the_charger_when_unknown() -> None:
    assert model_key("ACME", "Box", "1.2", "CP1") == "ACME|Box|1.2"
    assert model_key(None, "", None, "CP1") == "charger:CP1"


def boot(firmware: str) -> Booted:
    return Booted("CP1", "ocpp1.6", "ACME", "Box", firmware=firmware)


def test_an_ignoring_charger_stays_flagged_over_a_reboot_on_the_same_firmware() -> None:
    live = LiveState()
    live.apply(boot("1.0"))
    cp = live.charger("CP1")
    cp.ignores_profiles = True
    cp.connector(1).ignoring = True
    live.apply(boot("1.0"))
    assert cp.connector(1).ignoring
    assert cp.connector(2).ignoring, "a connector first seen later inherits the verdict"
    live.apply(boot("1.1"))
    assert not cp.ignores_profiles and not cp.connector(1).ignoring
