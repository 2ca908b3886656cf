"""Charging profiles as the simulated charger holds them: stacking, validity, composite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulators import smart

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def v16(
    pid: int,
    purpose: str,
    limit: float | list[tuple[int, float]],
    *,
    stack: int = 0,
    unit: str = "A",
    kind: str = "Absolute",
    start: datetime | None = T0,
    duration: int | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    tx: int | None = None,
    phases: int | None = None,
    recurrency: str | None = None,
) -> dict:
    """A 1.6 csChargingProfiles object."""
    periods = limit if isinstance(limit, list) else [(0, limit)]
    sched: dict = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": s, "limit": v, **({"numberPhases": phases} if phases else {})}
            for s, v in periods
        ],
    }
    if start is not None:
        sched["startSchedule"] = smart.iso(start)
    if duration is not None:
        sched["duration"] = duration
    prof: dict = {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": sched,
    }
    for key, value in (("validFrom", valid_from), ("validTo", valid_to)):
        if value is not None:
            prof[key] = smart.iso(value)
    if tx is not None:
        prof["transactionId"] = tx
    if recurrency:
        prof["recurrencyKind"] = recurrency
    return prof


def store_with(*items: tuple[dict, int]) -> smart.ProfileStore:
    store = smart.ProfileStore()
    for data, connector in items:
        store.install(smart.profile_from_v16(data, connector, T0), version="1.6")
    return store


def test_iso_and_parse_round_trip_in_utc() -> None:
    assert smart.iso(T0) == "2026-03-02T12:00:00.000Z"
    assert smart.parse_dt("2026-03-02T12:00:00Z") == T0
    assert smart.parse_dt("2026-03-02T13:00:00+01:00") == T0
    assert smart.parse_dt("2026-03-02T12:00:00") == T0  # no offset: UTC


def test_period_follows_start_periods_duration_and_validity() -> None:
    p = smart.profile_from_v16(
        v16(1, "TxDefaultProfile", [(0, 16.0), (600, 8.0)], duration=1800,
            valid_to=T0 + timedelta(hours=2)),
        1,
        T0,
    )
    assert p.limit_at(T0 - timedelta(seconds=1)) is None  # before startSchedule
    assert p.limit_at(T0) == smart.Limit(16.0, "A", None)
    assert p.limit_at(T0 + timedelta(seconds=599)).value == 16.0
    assert p.limit_at(T0 + timedelta(seconds=600)).value == 8.0
    assert p.limit_at(T0 + timedelta(seconds=1800)) is None  # duration over
    assert sorted(p.boundaries(T0, T0 + timedelta(hours=3), None)) == [
        T0 + timedelta(seconds=600),
        T0 + timedelta(seconds=1800),
        T0 + timedelta(hours=2),
    ]


def test_relative_profile_starts_with_the_transaction() -> None:
    p = smart.profile_from_v16(
        v16(1, "TxDefaultProfile", [(0, 10.0), (60, 20.0)], kind="Relative", start=None), 1, T0
    )
    tx_start = T0 + timedelta(minutes=5)
    assert p.limit_at(T0, None) is None
    assert p.limit_at(tx_start + timedelta(seconds=30), tx_start).value == 10.0
    assert p.limit_at(tx_start + timedelta(seconds=61), tx_start).value == 20.0


def test_daily_recurring_profile_repeats() -> None:
    p = smart.profile_from_v16(
        v16(1, "ChargePointMaxProfile", [(0, 32.0), (3600, 10.0)], kind="Recurring",
            recurrency="Daily"),
        0,
        T0,
    )
    assert p.limit_at(T0 + timedelta(days=3, minutes=30)).value == 32.0
    assert p.limit_at(T0 + timedelta(days=3, minutes=90)).value == 10.0
    marks = p.boundaries(T0 + timedelta(hours=23), T0 + timedelta(hours=26), None)
    assert T0 + timedelta(hours=24) in marks and T0 + timedelta(hours=25) in marks


def test_higher_stack_level_wins_and_lower_applies_when_it_lapses() -> None:
    store = store_with(
        (v16(1, "TxDefaultProfile", 16.0, stack=0), 0),
        (v16(2, "TxDefaultProfile", 6.0, stack=1, duration=600), 0),
    )
    at = T0 + timedelta(seconds=10)
    assert store.connector_limits(1, at, tx_id="7", tx_start=T0) == [smart.Limit(6.0, "A")]
    later = T0 + timedelta(seconds=600)
    assert store.connector_limits(1, later, tx_id="7", tx_start=T0) == [smart.Limit(16.0, "A")]


def test_tx_profile_overrides_default_and_falls_back_when_valid_to_passes() -> None:
    store = store_with(
        (v16(1, "TxDefaultProfile", 6.0, stack=0), 0),
        (v16(2, "TxProfile", 32.0, stack=5, tx=42, valid_to=T0 + timedelta(minutes=15)), 1),
    )
    during = T0 + timedelta(minutes=1)
    assert store.connector_limits(1, during, tx_id="42", tx_start=T0)[0].value == 32.0
    # Another transaction does not get that TxProfile.
    assert store.connector_limits(1, during, tx_id="43", tx_start=T0)[0].value == 6.0
    after = T0 + timedelta(minutes=15)
    assert store.connector_limits(1, after, tx_id="42", tx_start=T0)[0].value == 6.0
    assert T0 + timedelta(minutes=15) in store.boundaries(T0, after, {1: T0})


def test_connector_specific_default_beats_station_wide_at_the_same_level() -> None:
    store = store_with(
        (v16(1, "TxDefaultProfile", 20.0, stack=1), 0),
        (v16(2, "TxDefaultProfile", 10.0, stack=1), 2),
    )
    assert store.connector_limits(2, T0, tx_id="1", tx_start=T0)[0].value == 10.0
    assert store.connector_limits(1, T0, tx_id="1", tx_start=T0)[0].value == 20.0


def test_station_maximum_is_separate_from_connector_limits() -> None:
    store = store_with((v16(1, "ChargePointMaxProfile", 11000.0, unit="W"), 0))
    assert store.connector_limits(1, T0, tx_id="1", tx_start=T0) == []
    assert store.station_limit(T0) == smart.Limit(11000.0, "W")


def test_v16_replaces_same_id_or_same_slot() -> None:
    store = store_with((v16(1, "TxDefaultProfile", 16.0, stack=2), 1))
    replaced = store.install(
        smart.profile_from_v16(v16(9, "TxDefaultProfile", 8.0, stack=2), 1, T0), version="1.6"
    )
    assert [p.id for p in replaced] == [1] and list(store.profiles) == [9]
    replaced = store.install(
        smart.profile_from_v16(v16(9, "TxDefaultProfile", 4.0, stack=3), 1, T0), version="1.6"
    )
    assert [p.id for p in replaced] == [9] and store.profiles[9].stack_level == 3


def test_v201_rejects_a_second_profile_in_the_same_slot_with_overlapping_validity() -> None:
    def prof(pid: int, valid_from: datetime | None = None, valid_to: datetime | None = None):
        data = v16(pid, "TxDefaultProfile", 16.0, stack=1, valid_from=valid_from,
                   valid_to=valid_to)
        data["id"] = data.pop("chargingProfileId")
        data["chargingSchedule"] = [dict(data["chargingSchedule"], id=1)]
        return smart.profile_from_v201(data, 1, T0)

    store = smart.ProfileStore()
    store.install(prof(1, valid_to=T0 + timedelta(hours=1)), version="2.0.1")
    with pytest.raises(smart.ProfileError) as err:
        store.install(prof(2), version="2.0.1")
    assert err.value.reason == "DuplicateProfile"
    # Same id replaces (K01.FR.05); disjoint validity stacks.
    store.install(prof(1), version="2.0.1")
    store.clear(profile_id=1)
    store.install(prof(3, valid_to=T0), version="2.0.1")
    store.install(prof(4, valid_from=T0), version="2.0.1")
    assert sorted(store.profiles) == [3, 4]


def test_clear_by_id_or_by_criteria() -> None:
    store = store_with(
        (v16(1, "TxDefaultProfile", 16.0, stack=0), 0),
        (v16(2, "TxDefaultProfile", 10.0, stack=1), 1),
        (v16(3, "ChargePointMaxProfile", 40.0, stack=0), 0),
    )
    assert store.clear(profile_id=99) == []
    assert [p.id for p in store.clear(connector=0, purpose=smart.TXDEFAULT)] == [1]
    assert [p.id for p in store.clear(stack_level=1)] == [2]
    assert [p.id for p in store.clear()] == [3]


@pytest.mark.parametrize(
    ("data", "connector", "version", "reason"),
    [
        (v16(1, "TxDefaultProfile", [(10, 16.0)]), 1, "1.6", "InvalidSchedule"),
        (v16(1, "TxDefaultProfile", [(0, 16.0), (0, 8.0)]), 1, "1.6", "InvalidSchedule"),
        (v16(1, "TxDefaultProfile", 16.0, stack=9), 1, "1.6", "InvalidStackLevel"),
        (v16(1, "ChargePointMaxProfile", 16.0), 1, "1.6", "InvalidProfile"),
        (v16(1, "TxProfile", 16.0), 0, "1.6", "InvalidProfile"),
        (v16(1, "TxDefaultProfile", 16.0, start=None), 1, "2.0.1", "InvalidSchedule"),
        (v16(1, "ChargePointMaxProfile", 16.0, kind="Relative", start=None), 0, "1.6",
         "InvalidProfile"),
    ],
)
def test_validation_refuses_what_a_charger_refuses(
    data: dict, connector: int, version: str, reason: str
) -> None:
    profile = smart.profile_from_v16(data, connector, T0)
    with pytest.raises(smart.ProfileError) as err:
        smart.validate_profile(profile, version=version, max_stack_level=8, max_periods=24,
                               allowed_units=("A", "W"))
    assert err.value.reason == reason


def test_v16_absolute_without_start_schedule_starts_on_receipt() -> None:
    p = smart.profile_from_v16(v16(1, "TxDefaultProfile", 16.0, start=None), 1, T0)
    smart.validate_profile(p, version="1.6", max_stack_level=8, max_periods=24,
                           allowed_units=("A", "W"))
    assert p.limit_at(T0).value == 16.0 and p.limit_at(T0 - timedelta(seconds=1)) is None


def test_unit_conversion_uses_the_phases_actually_in_use() -> None:
    assert smart.to_watts(smart.Limit(16.0, "A"), 3, 230.0) == pytest.approx(11040.0)
    assert smart.to_watts(smart.Limit(16.0, "A"), 1, 230.0) == pytest.approx(3680.0)
    assert smart.to_watts(smart.Limit(16.0, "A", phases=1), 3, 230.0) == pytest.approx(3680.0)
    assert smart.to_watts(smart.Limit(7000.0, "W"), 1, 230.0) == 7000.0
    assert smart.from_watts(11040.0, "A", 3, 230.0) == pytest.approx(16.0)


def test_water_fill_is_max_min_fair() -> None:
    assert smart.water_fill([2.0, 10.0, 10.0], 12.0) == [2.0, 5.0, 5.0]
    assert smart.water_fill([2.0, 3.0], 100.0) == [2.0, 3.0]
    assert smart.water_fill([5.0, 5.0], 0.0) == [0.0, 0.0]


def test_composite_periods_merge_and_round_boundaries_up() -> None:
    store = store_with(
        (v16(1, "TxDefaultProfile", 16.0, stack=0), 0),
        (v16(2, "TxDefaultProfile", [(0, 10.0), (300, 10.0), (600, 6.0)], stack=1,
             duration=1200), 1),
    )

    def evaluate(at: datetime) -> tuple[float, int | None]:
        return store.connector_limits(1, at, tx_id=None, tx_start=T0)[0].value, 3

    periods = smart.composite_periods(evaluate, T0, 3600, store.boundaries(T0, T0 + timedelta(
        hours=1), {1: None}))
    assert periods == [
        smart.Period(0, 10.0, 3),
        smart.Period(600, 6.0, 3),
        smart.Period(1200, 16.0, 3),
    ]
    start = T0 + timedelta(milliseconds=400)
    periods = smart.composite_periods(evaluate, start, 900, [T0 + timedelta(seconds=600)])
    assert [p.start_s for p in periods] == [0, 600]
