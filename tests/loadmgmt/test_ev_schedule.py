"""Judging an ISO 15118 EV's schedule against the TxProfile its transaction holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loadmgmt.profiles import (
    ChargingProfile,
    ChargingSchedule,
    EvSchedule,
    SchedulePeriod,
    ev_schedule_excess,
)

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
VOLTS = 230.0 * 3


def held(*periods: tuple[int, float]) -> ChargingProfile:
    """A TxProfile in amps, valid five minutes from T0."""
    return ChargingProfile(
        id=1, connector_id="CP/1", stack_level=1, purpose="TxProfile", kind="Absolute",
        schedule=ChargingSchedule("A", tuple(SchedulePeriod(s, a) for s, a in periods),
                                  start=T0, duration=300),
        transaction_id="T", valid_from=T0, valid_to=T0 + timedelta(seconds=300))


def amps_to_w(amps: float) -> float:
    return amps * VOLTS


def test_a_schedule_within_every_period_of_the_profile_passes() -> None:
    ev = EvSchedule(T0, ((0.0, 16 * VOLTS), (120.0, 10 * VOLTS)), 3600)
    assert ev_schedule_excess(ev, held((0, 16.0), (120, 10.0)), amps_to_w) is None


def test_the_first_instant_above_the_profile_is_named_with_both_limits() -> None:
    ev = EvSchedule(T0, ((0.0, 16 * VOLTS),), 3600)
    at, asked, allowed = ev_schedule_excess(ev, held((0, 16.0), (120, 10.0)), amps_to_w) or (
        None, 0.0, 0.0)
    assert at == T0 + timedelta(seconds=120)
    assert asked == 16 * VOLTS and allowed == 10 * VOLTS


def test_where_the_profile_is_not_in_force_it_sets_no_bound() -> None:
    later = EvSchedule(T0 + timedelta(seconds=600), ((0.0, 32 * VOLTS),), 3600)
    assert ev_schedule_excess(later, held((0, 6.0)), amps_to_w) is None
