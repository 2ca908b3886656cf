"""Limits over time: precedence, DST-correct cron timeframes, boundaries, look-ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadmgmt.limits import (
    CapacityInterval,
    DrEvent,
    ExternalLimit,
    LimitValue,
    NodeLimits,
    ScheduledLimit,
    Source,
    lookahead,
    resolve,
    slot_limits,
)

T0 = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _all_sources() -> NodeLimits:
    return NodeLimits(
        default=LimitValue(100.0),
        scheduled=(ScheduledLimit("0 * * * *", "59 * * * *", LimitValue(90.0)),),
        capacities=(CapacityInterval(T0 - HOUR, T0 + HOUR, LimitValue(80.0)),),
        dr_events=(DrEvent(T0 - HOUR, T0 + 2 * HOUR, LimitValue(70.0)),),
        externals=(ExternalLimit(LimitValue(120.0), end=T0 + 3 * HOUR),),
    )


def test_precedence_is_external_then_dr_then_capacity_then_scheduled_then_default() -> None:
    limits = _all_sources()
    assert resolve(limits, T0).source is Source.EXTERNAL
    assert resolve(limits, T0).value.power_kw == 120.0  # external sets, even upward
    no_ext = NodeLimits(limits.default, limits.scheduled, limits.capacities, limits.dr_events)
    assert resolve(no_ext, T0).source is Source.DR_EVENT
    no_dr = NodeLimits(limits.default, limits.scheduled, limits.capacities)
    assert resolve(no_dr, T0).source is Source.CAPACITY
    only_sched = NodeLimits(limits.default, limits.scheduled)
    assert resolve(only_sched, T0 + timedelta(minutes=5)).source is Source.SCHEDULED
    assert resolve(NodeLimits(limits.default), T0).source is Source.DEFAULT


def test_an_external_kw_limit_keeps_the_lower_sources_current_limit() -> None:
    limits = NodeLimits(
        default=LimitValue(100.0, 63.0),
        externals=(ExternalLimit(LimitValue(50.0), end=T0 + HOUR),),
    )
    r = resolve(limits, T0)
    assert r.value == LimitValue(50.0, 63.0)


def test_dr_reduction_subtracts_from_what_lower_sources_allow() -> None:
    limits = NodeLimits(
        default=LimitValue(100.0),
        capacities=(CapacityInterval(T0 - HOUR, T0 + HOUR, LimitValue(80.0)),),
        dr_events=(DrEvent(T0 - HOUR, T0 + HOUR, reduction_kw=30.0),),
    )
    assert resolve(limits, T0).value.power_kw == 50.0
    assert resolve(limits, T0).source is Source.DR_EVENT


def test_external_limit_ends_at_its_end_time_and_that_is_the_next_boundary() -> None:
    end = T0 + timedelta(minutes=17)
    limits = NodeLimits(LimitValue(100.0), externals=(ExternalLimit(LimitValue(10.0), end),))
    assert resolve(limits, T0).next_boundary == end
    assert resolve(limits, end).value.power_kw == 100.0
    assert resolve(limits, end - timedelta(seconds=1)).value.power_kw == 10.0


def _office_hours(tz: str) -> NodeLimits:
    return NodeLimits(
        LimitValue(100.0),
        scheduled=(ScheduledLimit("0 8 * * 1-5", "0 18 * * 1-5", LimitValue(40.0)),),
        timezone=tz,
    )


@pytest.mark.parametrize(
    ("utc_start", "utc_end"),
    [
        (datetime(2024, 1, 15, 7, 0, tzinfo=UTC), datetime(2024, 1, 15, 17, 0, tzinfo=UTC)),
        (datetime(2024, 7, 15, 6, 0, tzinfo=UTC), datetime(2024, 7, 15, 16, 0, tzinfo=UTC)),
    ],
)
def test_cron_timeframes_follow_local_wall_time_across_dst(
    utc_start: datetime, utc_end: datetime
) -> None:
    limits = _office_hours("Europe/Amsterdam")
    before = resolve(limits, utc_start - timedelta(minutes=1))
    assert before.value.power_kw == 100.0 and before.next_boundary == utc_start
    during = resolve(limits, utc_start)
    assert during.value.power_kw == 40.0 and during.next_boundary == utc_end
    assert resolve(limits, utc_end).value.power_kw == 100.0


def test_cron_start_in_the_skipped_spring_hour_starts_at_the_jump() -> None:
    limits = NodeLimits(
        LimitValue(100.0),
        scheduled=(ScheduledLimit("30 2 * * *", "0 4 * * *", LimitValue(50.0)),),
        timezone="Europe/Amsterdam",
    )
    jump = datetime(2024, 3, 31, 1, 0, tzinfo=UTC)  # 02:00 CET -> 03:00 CEST
    assert resolve(limits, jump - timedelta(minutes=1)).next_boundary == jump
    assert resolve(limits, jump).value.power_kw == 50.0
    assert resolve(limits, jump).next_boundary == datetime(2024, 3, 31, 2, 0, tzinfo=UTC)


def test_cron_window_in_the_repeated_autumn_hour_runs_once_and_stays_on() -> None:
    limits = NodeLimits(
        LimitValue(100.0),
        scheduled=(ScheduledLimit("30 2 * * *", "0 4 * * *", LimitValue(50.0)),),
        timezone="Europe/Amsterdam",
    )
    first = datetime(2024, 10, 27, 0, 30, tzinfo=UTC)  # 02:30 CEST
    for minutes in (0, 45, 59, 60, 90, 149):
        r = resolve(limits, first + timedelta(minutes=minutes))
        assert r.value.power_kw == 50.0, minutes
        assert r.next_boundary == datetime(2024, 10, 27, 3, 0, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2025, 12, 31)))
def test_next_boundary_is_where_the_schedule_changes_state(naive: datetime) -> None:
    at = naive.replace(tzinfo=UTC)
    limits = _office_hours("America/New_York")
    r = resolve(limits, at)
    assert r.next_boundary is not None and r.next_boundary > at
    # Nothing changes before the boundary; something does at it.
    mid = at + (r.next_boundary - at) / 2
    assert resolve(limits, mid).value == r.value
    assert resolve(limits, r.next_boundary).value != r.value


def test_lookahead_anticipates_a_drop_but_not_a_rise() -> None:
    drop = NodeLimits(
        LimitValue(100.0),
        capacities=(CapacityInterval(T0 + HOUR, T0 + 2 * HOUR, LimitValue(30.0)),),
    )
    assert lookahead(drop, T0, 2 * HOUR).value.power_kw == 30.0
    assert lookahead(drop, T0, timedelta(minutes=30)).value.power_kw == 100.0
    rise = NodeLimits(
        LimitValue(100.0),
        capacities=(CapacityInterval(T0 - HOUR, T0 + HOUR, LimitValue(30.0)),),
    )
    r = lookahead(rise, T0, 4 * HOUR)
    assert r.value.power_kw == 30.0 and r.next_boundary == T0 + HOUR


def test_slot_limits_take_the_lowest_limit_inside_each_slot() -> None:
    limits = NodeLimits(
        LimitValue(100.0),
        capacities=(
            CapacityInterval(
                T0 + timedelta(minutes=20), T0 + timedelta(minutes=25), LimitValue(10.0)
            ),
        ),
    )
    slots = slot_limits(limits, T0, 900, 4)
    assert [s.power_kw for s in slots] == [100.0, 10.0, 100.0, 100.0]
    assert slots[1].source == "capacity"


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        resolve(NodeLimits(LimitValue(1.0)), datetime(2024, 1, 1))
