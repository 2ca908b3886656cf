"""Time series for the profile views: step functions resampled by time-weighted average.

Pure: no I/O, no clock. A series is a list of segments `(start, end, value)`, each value held
over [start, end); the profile views build them from plans, limits and meter values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

Segment = tuple[datetime, datetime, float]
Point = tuple[datetime, float | None]

# Seed 002's resolutions (`resolution` query parameter), in seconds.
RESOLUTIONS: dict[str, int] = {"1m": 60, "15m": 900, "5h": 5 * 3600, "2d": 2 * 86400,
                               "4w": 28 * 86400}
# About this many points at most when the resolution is chosen from the window (a 2-day window
# gives 1-minute points, as the document's example says).
TARGET_POINTS = 3000
# A forced resolution may not make more points than this (a year at 1m would be 525,600).
MAX_POINTS = 100_000


def choose_resolution(start: datetime, end: datetime) -> str:
    """The finest seed resolution giving at most about TARGET_POINTS points over the window."""
    width = (end - start).total_seconds()
    for name, step in RESOLUTIONS.items():
        if width / step <= TARGET_POINTS:
            return name
    return "4w"


def point_count(start: datetime, end: datetime, step_s: int) -> int:
    """Buckets of `step_s` seconds covering [start, end) (the last may be partial)."""
    width = (end - start).total_seconds()
    return max(0, math.ceil(width / step_s))


def resample(segments: Iterable[Segment], start: datetime, end: datetime,
             step_s: int) -> list[Point]:
    """One point per bucket [start + k*step, start + (k+1)*step) within [start, end): the
    time-weighted average of the segments over the part of the bucket they cover (None where
    none does). Segments must not overlap."""
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    n = point_count(start, end, step_s)
    weighted = [0.0] * n
    covered = [0.0] * n
    for s, e, value in segments:
        s, e = max(s, start), min(e, end)
        if e <= s:
            continue
        first = int((s - start).total_seconds() // step_s)
        last = min(n - 1, math.ceil((e - start).total_seconds() / step_s) - 1)
        for k in range(first, last + 1):
            b0 = start + timedelta(seconds=k * step_s)
            b1 = min(end, b0 + timedelta(seconds=step_s))
            overlap = (min(e, b1) - max(s, b0)).total_seconds()
            if overlap > 0:
                weighted[k] += value * overlap
                covered[k] += overlap
    return [(start + timedelta(seconds=k * step_s),
             weighted[k] / covered[k] if covered[k] > 0 else None) for k in range(n)]


def hold(points: Sequence[tuple[datetime, float]], max_hold_s: float,
         until: datetime | None = None) -> list[Segment]:
    """Readings as a step function: each value holds until the next reading, for at most
    `max_hold_s` (a silent meter says nothing about later), and not past `until`."""
    out: list[Segment] = []
    for i, (t, value) in enumerate(points):
        stop = t + timedelta(seconds=max_hold_s)
        if i + 1 < len(points):
            stop = min(stop, points[i + 1][0])
        if until is not None:
            stop = min(stop, until)
        if stop > t:
            out.append((t, stop, value))
    return out


def add(a: Sequence[Point], b: Sequence[Point]) -> list[Point]:
    """Pointwise sum of two series on the same buckets; a missing value counts as absent."""
    out: list[Point] = []
    for (t, x), (_, y) in zip(a, b, strict=True):
        out.append((t, None if x is None and y is None else (x or 0.0) + (y or 0.0)))
    return out
