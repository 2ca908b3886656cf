"""Limits over time on a site or group, resolved to one effective limit per instant.

Precedence (DESIGN section 2): external > dr_event > capacity > scheduled > default. Each
component (kW, A per phase) is taken from the highest-precedence active source that sets it,
so an external kW limit does not lift a fuse's A limit set lower down. Several active items of
one source combine to their lowest value. Scheduled timeframes are cron start/end pairs in the
site's time zone: cron runs on local wall time, so they follow DST.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from croniter import croniter

from loadmgmt.model import NodeLimit

_MAX_STEPS = 10_000
_DST_SLACK = timedelta(hours=3)


class Source(StrEnum):
    """Where an effective limit came from."""

    EXTERNAL = "external"
    DR_EVENT = "dr_event"
    CAPACITY = "capacity"
    SCHEDULED = "scheduled"
    DEFAULT = "default"


PRECEDENCE: tuple[Source, ...] = tuple(Source)


@dataclass(frozen=True, slots=True)
class LimitValue:
    """A limit: kW and/or A per phase; None means "not limited by this source"."""

    power_kw: float | None = None
    current_a: float | None = None


@dataclass(frozen=True, slots=True)
class ScheduledLimit:
    """A recurring timeframe: active from each cron start until the next cron end."""

    start_cron: str
    end_cron: str
    value: LimitValue


@dataclass(frozen=True, slots=True)
class CapacityInterval:
    """A utility limit over [start, end)."""

    start: datetime
    end: datetime
    value: LimitValue


@dataclass(frozen=True, slots=True)
class DrEvent:
    """A demand-response event over [start, end): an absolute limit or a reduction."""

    start: datetime
    end: datetime
    value: LimitValue | None = None
    reduction_kw: float | None = None  # subtracted from what lower sources allow
    reduction_a: float | None = None


@dataclass(frozen=True, slots=True)
class ExternalLimit:
    """A limit set through an API, in force until `end` (from `start`, default: always)."""

    value: LimitValue
    end: datetime
    start: datetime | None = None


@dataclass(frozen=True)
class NodeLimits:
    """Everything that limits one node over time."""

    default: LimitValue
    scheduled: tuple[ScheduledLimit, ...] = ()
    capacities: tuple[CapacityInterval, ...] = ()
    dr_events: tuple[DrEvent, ...] = ()
    externals: tuple[ExternalLimit, ...] = ()
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Resolved:
    """The effective limit at an instant, who set it, and when that may next change."""

    value: LimitValue
    source: Source
    next_boundary: datetime | None

    def as_node_limit(self) -> NodeLimit:
        """The form `Snapshot.limits` takes."""
        return NodeLimit(self.value.power_kw, self.value.current_a, self.source.value)


def _check(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("instants must be tz-aware")


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _combine(values: list[LimitValue]) -> LimitValue | None:
    if not values:
        return None
    kw: float | None = None
    amps: float | None = None
    for v in values:
        kw = _min(kw, v.power_kw)
        amps = _min(amps, v.current_a)
    return LimitValue(kw, amps)


def _to_utc(naive: datetime, tz: ZoneInfo) -> datetime:
    """A local wall time as UTC: ambiguous -> first occurrence; skipped -> the jump instant."""
    u0 = naive.replace(tzinfo=tz).astimezone(UTC)
    if u0.astimezone(tz).replace(tzinfo=None) == naive:
        return u0
    u1 = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = min(u0, u1), max(u0, u1)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def _wall(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None)


def _last_at_or_before(expr: str, at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Latest occurrence at or before `at`: (local wall time, UTC)."""
    # Wall clocks run back at most a couple of hours in autumn: start the search past that.
    it = croniter(expr, _wall(at, tz) + _DST_SLACK)
    for _ in range(_MAX_STEPS):
        cand = it.get_prev(datetime)
        utc = _to_utc(cand, tz)
        if utc <= at:
            return cand, utc
    raise ValueError(f"cron {expr!r} has no occurrence before {at}")


def _first_after(expr: str, at: datetime, tz: ZoneInfo) -> datetime:
    """Earliest occurrence strictly after `at`, in UTC."""
    it = croniter(expr, _wall(at, tz) - _DST_SLACK)
    for _ in range(_MAX_STEPS):
        utc = _to_utc(it.get_next(datetime), tz)
        if utc > at:
            return utc
    raise ValueError(f"cron {expr!r} has no occurrence after {at}")


def _schedule_window(
    item: ScheduledLimit, at: datetime, tz: ZoneInfo
) -> tuple[bool, datetime | None]:
    """Whether `item` is active at `at`, and the next instant its state changes.

    Cron runs on naive local wall time (so "0 8 * * *" is 08:00 local in summer and winter);
    each occurrence maps to UTC once, so a skipped or repeated hour cannot break a window.
    """
    _, last_start = _last_at_or_before(item.start_cron, at, tz)
    end = _first_after(item.end_cron, last_start, tz)
    if at < end:
        return True, end.astimezone(at.tzinfo)
    return False, _first_after(item.start_cron, at, tz).astimezone(at.tzinfo)


def _between(start: datetime | None, end: datetime, at: datetime) -> bool:
    return (start is None or start <= at) and at < end


def resolve(limits: NodeLimits, at: datetime) -> Resolved:
    """The effective limit at `at`, the source that set it, and the next boundary."""
    _check(at)
    tz = ZoneInfo(limits.timezone)
    boundaries: list[datetime] = []

    def note(*instants: datetime | None) -> None:
        boundaries.extend(t for t in instants if t is not None and t > at)

    sched: list[LimitValue] = []
    for s in limits.scheduled:
        active, nxt = _schedule_window(s, at, tz)
        note(nxt)
        if active:
            sched.append(s.value)
    caps: list[LimitValue] = []
    for c in limits.capacities:
        note(c.start, c.end)
        if _between(c.start, c.end, at):
            caps.append(c.value)
    ext: list[LimitValue] = []
    for e in limits.externals:
        note(e.start, e.end)
        if _between(e.start, e.end, at):
            ext.append(e.value)
    dr_events = []
    for d in limits.dr_events:
        note(d.start, d.end)
        if _between(d.start, d.end, at):
            dr_events.append(d)

    layers: list[tuple[Source, LimitValue | None]] = [
        (Source.DEFAULT, limits.default),
        (Source.SCHEDULED, _combine(sched)),
        (Source.CAPACITY, _combine(caps)),
    ]
    kw, amps, src_kw, src_a = _stack(layers)
    if dr_events:
        dr_vals: list[LimitValue] = []
        for d in dr_events:
            if d.value is not None:
                dr_vals.append(d.value)
            if d.reduction_kw is not None and kw is not None:
                dr_vals.append(LimitValue(max(0.0, kw - d.reduction_kw), None))
            if d.reduction_a is not None and amps is not None:
                dr_vals.append(LimitValue(None, max(0.0, amps - d.reduction_a)))
        layers.append((Source.DR_EVENT, _combine(dr_vals)))
    layers.append((Source.EXTERNAL, _combine(ext)))
    kw, amps, src_kw, src_a = _stack(layers)
    source = min(
        (s for s in (src_kw, src_a) if s is not None),
        key=PRECEDENCE.index,
        default=Source.DEFAULT,
    )
    return Resolved(LimitValue(kw, amps), source, min(boundaries, default=None))


def _stack(
    layers: list[tuple[Source, LimitValue | None]],
) -> tuple[float | None, float | None, Source | None, Source | None]:
    """Apply layers lowest precedence first: each component from the highest that sets it."""
    kw: float | None = None
    amps: float | None = None
    src_kw: Source | None = None
    src_a: Source | None = None
    for source, value in sorted(layers, key=lambda x: -PRECEDENCE.index(x[0])):
        if value is None:
            continue
        if value.power_kw is not None:
            kw, src_kw = value.power_kw, source
        if value.current_a is not None:
            amps, src_a = value.current_a, source
    return kw, amps, src_kw, src_a


def lookahead(limits: NodeLimits, at: datetime, horizon: timedelta) -> Resolved:
    """The lowest limit in force anywhere in [at, at + horizon): anticipate drops, not rises.

    `source` is the source of the lowest kW (else A) value; `next_boundary` is the first
    boundary after `at` (re-plan then).
    """
    _check(at)
    first = resolve(limits, at)
    end = at + horizon
    kw, amps = first.value.power_kw, first.value.current_a
    source = first.source
    t = first.next_boundary
    for _ in range(_MAX_STEPS):
        if t is None or t >= end:
            break
        r = resolve(limits, t)
        if r.value.power_kw is not None and (kw is None or r.value.power_kw < kw):
            kw, source = r.value.power_kw, r.source
        if r.value.current_a is not None and (amps is None or r.value.current_a < amps):
            amps = r.value.current_a
            if first.value.power_kw is None:
                source = r.source
        t = r.next_boundary
    return Resolved(LimitValue(kw, amps), source, first.next_boundary)


def slot_limits(
    limits: NodeLimits, start: datetime, slot_s: int, slots: int
) -> tuple[NodeLimit, ...]:
    """One limit per slot: the lowest in force during that slot (for fleet snapshots)."""
    _check(start)
    out: list[NodeLimit] = []
    for n in range(slots):
        r = lookahead(limits, start + timedelta(seconds=n * slot_s), timedelta(seconds=slot_s))
        out.append(r.as_node_limit())
    return tuple(out)
