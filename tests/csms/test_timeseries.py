"""Time-weighted resampling of step series (csms.timeseries), as the profile views use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from csms.timeseries import add, choose_resolution, hold, resample

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_bucket_averages_by_time_covered() -> None:
    # 10 kW for 45 s then 30 kW for 15 s: the minute averages 15 kW.
    points = resample([(at(0), at(45), 10.0), (at(45), at(60), 30.0)], at(0), at(120), 60)
    assert points == [(at(0), 15.0), (at(60), None)]


def test_gaps_do_not_pull_the_average_down() -> None:
    assert resample([(at(30), at(60), 8.0)], at(0), at(60), 60) == [(at(0), 8.0)]


def test_the_last_bucket_may_be_partial() -> None:
    points = resample([(at(0), at(90), 2.0)], at(0), at(90), 60)
    assert points == [(at(0), 2.0), (at(60), 2.0)]


def test_readings_hold_until_the_next_and_not_forever() -> None:
    segs = hold([(at(0), 1.0), (at(10), 2.0), (at(100), 3.0)], max_hold_s=30, until=at(110))
    assert segs == [(at(0), at(10), 1.0), (at(10), at(40), 2.0), (at(100), at(110), 3.0)]


def test_the_resolution_follows_the_window() -> None:
    assert choose_resolution(T0, T0 + timedelta(days=2)) == "1m"  # the document's example
    assert choose_resolution(T0, T0 + timedelta(days=7)) == "15m"
    assert choose_resolution(T0, T0 + timedelta(days=365)) == "5h"
    assert choose_resolution(T0, T0 + timedelta(days=3650)) == "2d"


def test_series_add_pointwise_keeping_absence() -> None:
    a = [(at(0), 1.0), (at(60), None), (at(120), None)]
    b = [(at(0), 2.0), (at(60), 5.0), (at(120), None)]
    assert add(a, b) == [(at(0), 3.0), (at(60), 5.0), (at(120), None)]


steps = st.lists(st.tuples(st.integers(1, 600), st.floats(-50, 50)), min_size=1, max_size=30)


@given(steps, st.sampled_from([7, 60, 900]))
def test_a_fully_covered_series_keeps_its_integral(pieces: list[tuple[int, float]],
                                                  step: int) -> None:
    segments, t = [], 0
    for width, value in pieces:
        segments.append((at(t), at(t + width), value))
        t += width
    points = resample(segments, at(0), at(t), step)
    integral = sum(v * (e - s).total_seconds() for s, e, v in segments)
    widths = [min(step, t - k * step) for k in range(len(points))]
    assert all(v is not None for _, v in points)
    assert abs(sum(v * w for (_, v), w in zip(points, widths, strict=True)) - integral) \
        <= 1e-6 * max(1.0, abs(integral))


@given(steps, st.integers(1, 1000))
def test_every_average_lies_between_the_values_it_averages(
        pieces: list[tuple[int, float]], step: int) -> None:
    segments, t = [], 0
    for width, value in pieces:
        segments.append((at(t), at(t + width), value))
        t += width
    low, high = min(v for _, v in pieces), max(v for _, v in pieces)
    for _, v in resample(segments, at(0), at(t), step):
        assert v is not None and low - 1e-9 <= v <= high + 1e-9
