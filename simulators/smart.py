"""Smart charging as a charge point implements it: profiles, validity, stacking, composite.

Pure code (no I/O, time passed in), shared by the OCPP 1.6 and 2.0.1 sides of the simulated
charger. Profiles are normalised into one `Profile` type:

- purpose: ``max`` (1.6 ChargePointMaxProfile / 2.0.1 ChargingStationMaxProfile, connector 0,
  caps the whole charger), ``external`` (2.0.1 ChargingStationExternalConstraints), ``txdefault``
  and ``tx``. Within a purpose the highest stackLevel whose schedule is active wins (a
  connector-specific profile beats a station-wide one at the same level); when it lapses the
  next one down applies. An active TxProfile overrides the TxDefaultProfile.
- the composite limit at an instant is the minimum of the hardware limit, the winning
  external constraint, the winning tx/txdefault and the station maximum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

MAX = "max"
EXTERNAL = "external"
TXDEFAULT = "txdefault"
TX = "tx"

PURPOSE_FROM_OCPP = {
    "ChargePointMaxProfile": MAX,
    "ChargingStationMaxProfile": MAX,
    "ChargingStationExternalConstraints": EXTERNAL,
    "TxDefaultProfile": TXDEFAULT,
    "TxProfile": TX,
}
PURPOSE_TO_V16 = {MAX: "ChargePointMaxProfile", TXDEFAULT: "TxDefaultProfile", TX: "TxProfile"}
PURPOSE_TO_V201 = {
    MAX: "ChargingStationMaxProfile",
    EXTERNAL: "ChargingStationExternalConstraints",
    TXDEFAULT: "TxDefaultProfile",
    TX: "TxProfile",
}
RECURRENCE_S = {"Daily": 86400, "Weekly": 7 * 86400}


def parse_dt(text: str) -> datetime:
    """Parse an OCPP date-time (RFC 3339); a missing offset is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(at: datetime) -> str:
    """Format an instant the way chargers do: UTC, milliseconds, 'Z'."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Period:
    """One chargingSchedulePeriod: from `start_s` after the schedule start, `limit` applies."""

    start_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class Schedule:
    """A chargingSchedule (the first one, for 2.0.1 profiles that carry several)."""

    unit: str
    periods: tuple[Period, ...]
    start: datetime | None = None
    duration_s: int | None = None
    min_rate: float | None = None
    schedule_id: int | None = None


@dataclass(frozen=True)
class Limit:
    """A limit as a profile states it: `value` in `unit` (A per phase, or W)."""

    value: float
    unit: str
    phases: int | None = None


@dataclass(frozen=True)
class Profile:
    """A charging profile installed on connector/EVSE `connector` (0 = whole charger)."""

    id: int
    stack_level: int
    purpose: str
    kind: str
    schedule: Schedule
    connector: int
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    installed_at: datetime | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def origin(self, at: datetime, tx_start: datetime | None) -> datetime | None:
        """Start of the schedule occurrence that covers `at` (None: not started)."""
        if self.kind == "Relative":
            return tx_start
        start = self.schedule.start or self.valid_from or self.installed_at
        if start is None:
            return None
        if self.kind == "Recurring":
            period = RECURRENCE_S.get(self.recurrency or "Daily", 86400)
            if at < start:
                return None
            cycles = math.floor((at - start).total_seconds() / period)
            return start + timedelta(seconds=cycles * period)
        return start

    def period_at(self, at: datetime, tx_start: datetime | None = None) -> Period | None:
        """The period in force at `at`, or None if the profile does not apply then."""
        if self.valid_from is not None and at < self.valid_from:
            return None
        if self.valid_to is not None and at >= self.valid_to:
            return None
        origin = self.origin(at, tx_start)
        if origin is None:
            return None
        offset = (at - origin).total_seconds()
        if offset < 0:
            return None
        if self.schedule.duration_s is not None and offset >= self.schedule.duration_s:
            return None
        current = None
        for period in self.schedule.periods:
            if period.start_s <= offset + 1e-9:
                current = period
            else:
                break
        return current

    def limit_at(self, at: datetime, tx_start: datetime | None = None) -> Limit | None:
        """The limit this profile states at `at`, or None."""
        period = self.period_at(at, tx_start)
        if period is None:
            return None
        return Limit(period.limit, self.schedule.unit, period.number_phases)

    def boundaries(
        self, after: datetime, until: datetime, tx_start: datetime | None
    ) -> list[datetime]:
        """Instants in (after, until] at which this profile's limit may change."""
        marks: list[datetime] = []
        for edge in (self.valid_from, self.valid_to):
            if edge is not None:
                marks.append(edge)
        origins: list[datetime] = []
        if self.kind == "Recurring":
            period = RECURRENCE_S.get(self.recurrency or "Daily", 86400)
            first = self.origin(after, tx_start)
            base = first if first is not None else (self.schedule.start or after)
            at = base
            while at <= until:
                origins.append(at)
                at = at + timedelta(seconds=period)
        else:
            origin = self.origin(after, tx_start)
            if origin is not None:
                origins.append(origin)
        for origin in origins:
            for period in self.schedule.periods:
                marks.append(origin + timedelta(seconds=period.start_s))
            if self.schedule.duration_s is not None:
                marks.append(origin + timedelta(seconds=self.schedule.duration_s))
        return [m for m in marks if after < m <= until]


class ProfileError(ValueError):
    """A profile the charger refuses; `reason` is the OCPP 2.0.1 style reasonCode."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


def _schedule_from(data: dict) -> Schedule:
    periods = tuple(
        Period(
            start_s=int(p["startPeriod"]),
            limit=float(p["limit"]),
            number_phases=int(p["numberPhases"]) if p.get("numberPhases") is not None else None,
        )
        for p in data.get("chargingSchedulePeriod", [])
    )
    return Schedule(
        unit=str(data["chargingRateUnit"]),
        periods=periods,
        start=parse_dt(data["startSchedule"]) if data.get("startSchedule") else None,
        duration_s=int(data["duration"]) if data.get("duration") is not None else None,
        min_rate=float(data["minChargingRate"]) if data.get("minChargingRate") else None,
        schedule_id=int(data["id"]) if data.get("id") is not None else None,
    )


def _common(data: dict, schedule: Schedule, connector: int, installed_at: datetime) -> Profile:
    purpose = PURPOSE_FROM_OCPP.get(data["chargingProfilePurpose"])
    if purpose is None:
        raise ProfileError("InvalidProfile", f"purpose {data['chargingProfilePurpose']}")
    tx_id = data.get("transactionId")
    return Profile(
        id=int(data.get("chargingProfileId", data.get("id", 0))),
        stack_level=int(data["stackLevel"]),
        purpose=purpose,
        kind=str(data["chargingProfileKind"]),
        schedule=schedule,
        connector=connector,
        recurrency=data.get("recurrencyKind"),
        valid_from=parse_dt(data["validFrom"]) if data.get("validFrom") else None,
        valid_to=parse_dt(data["validTo"]) if data.get("validTo") else None,
        transaction_id=str(tx_id) if tx_id is not None else None,
        installed_at=installed_at,
        raw=data,
    )


def profile_from_v16(cs: dict, connector: int, installed_at: datetime) -> Profile:
    """Build a `Profile` from a 1.6 csChargingProfiles object."""
    return _common(cs, _schedule_from(cs["chargingSchedule"]), connector, installed_at)


def profile_from_v201(cp: dict, evse_id: int, installed_at: datetime) -> Profile:
    """Build a `Profile` from a 2.0.1 ChargingProfileType (its first chargingSchedule)."""
    schedules = cp.get("chargingSchedule") or []
    if not schedules:
        raise ProfileError("InvalidSchedule", "no chargingSchedule")
    return _common(cp, _schedule_from(schedules[0]), evse_id, installed_at)


def validate_profile(
    profile: Profile,
    *,
    version: str,
    max_stack_level: int,
    max_periods: int,
    allowed_units: Iterable[str],
) -> None:
    """Raise `ProfileError` if a charger with these limits would refuse `profile`."""
    sched = profile.schedule
    if profile.stack_level < 0 or profile.stack_level > max_stack_level:
        raise ProfileError("InvalidStackLevel", f"stackLevel {profile.stack_level}")
    if sched.unit not in set(allowed_units):
        raise ProfileError("UnsupportedRateUnit", f"chargingRateUnit {sched.unit}")
    if not sched.periods:
        raise ProfileError("InvalidSchedule", "no periods")
    if len(sched.periods) > max_periods:
        raise ProfileError("InvalidSchedule", f"{len(sched.periods)} periods > {max_periods}")
    if sched.periods[0].start_s != 0:
        raise ProfileError("InvalidSchedule", "first startPeriod must be 0")
    starts = [p.start_s for p in sched.periods]
    if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
        raise ProfileError("InvalidSchedule", "startPeriod not increasing")
    for p in sched.periods:
        if p.limit < 0 or not math.isfinite(p.limit):
            raise ProfileError("InvalidSchedule", "negative limit")
        if p.number_phases is not None and p.number_phases not in (1, 2, 3):
            raise ProfileError("InvalidSchedule", "numberPhases must be 1..3")
    if profile.kind == "Recurring" and profile.recurrency not in RECURRENCE_S:
        raise ProfileError("InvalidProfile", "Recurring needs recurrencyKind")
    if profile.kind == "Relative" and sched.start is not None and version != "1.6":
        # K01.FR.41 (2.0.1): a Relative schedule has no startSchedule.
        raise ProfileError("InvalidSchedule", "Relative profile with startSchedule")
    if profile.kind in ("Absolute", "Recurring") and sched.start is None and version != "1.6":
        # K01.FR.40 (2.0.1); many 1.6 central systems omit it, so 1.6 starts it on receipt.
        raise ProfileError("InvalidSchedule", "startSchedule required")
    if profile.purpose == MAX:
        if profile.connector != 0:
            raise ProfileError("InvalidProfile", "station maximum only on connector/EVSE 0")
        if profile.kind == "Relative":
            raise ProfileError("InvalidProfile", "station maximum cannot be Relative")
    if profile.purpose == TX and profile.connector == 0:
        raise ProfileError("InvalidProfile", "TxProfile needs a connector/EVSE > 0")
    if profile.purpose == EXTERNAL and version == "1.6":
        raise ProfileError("InvalidProfile", "no external constraints in 1.6")
    if profile.valid_to is not None and profile.valid_from is not None:
        if profile.valid_to <= profile.valid_from:
            raise ProfileError("InvalidProfile", "validTo before validFrom")


def _overlap(a: Profile, b: Profile) -> bool:
    earliest, latest = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    lo = max(a.valid_from or earliest, b.valid_from or earliest)
    hi = min(a.valid_to or latest, b.valid_to or latest)
    return lo < hi


class ProfileStore:
    """The set of profiles a charger holds, with the replacement rules of each version."""

    def __init__(self) -> None:
        self.profiles: dict[int, Profile] = {}

    def __len__(self) -> int:
        return len(self.profiles)

    def install(self, profile: Profile, *, version: str) -> list[Profile]:
        """Install `profile`; return the profiles it replaced (raise ProfileError on conflict).

        1.6 (3.13.2): a profile with the same id, or the same stackLevel and purpose on the same
        connector (and, for TxProfile, transaction), is replaced. 2.0.1 replaces on the same id
        only and rejects a second profile with the same stackLevel/purpose on the same EVSE with
        overlapping validity (K01.FR.06; K01.FR.39 for TxProfile of one transaction).
        """
        replaced: list[Profile] = []
        for other in list(self.profiles.values()):
            if other.id == profile.id:
                replaced.append(other)
                continue
            same_slot = (
                other.purpose == profile.purpose
                and other.stack_level == profile.stack_level
                and other.connector == profile.connector
                and (profile.purpose != TX or other.transaction_id == profile.transaction_id)
            )
            if not same_slot:
                continue
            if version == "1.6":
                replaced.append(other)
            elif _overlap(other, profile):
                raise ProfileError("DuplicateProfile", f"conflicts with profile {other.id}")
        for old in replaced:
            del self.profiles[old.id]
        self.profiles[profile.id] = profile
        return replaced

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> list[Profile]:
        """Remove profiles by id, or by every criterion given; return what was removed."""
        if profile_id is not None:
            found = self.profiles.pop(profile_id, None)
            return [found] if found is not None else []
        removed = [
            p
            for p in self.profiles.values()
            if (connector is None or p.connector == connector)
            and (purpose is None or p.purpose == purpose)
            and (stack_level is None or p.stack_level == stack_level)
        ]
        for p in removed:
            del self.profiles[p.id]
        return removed

    def bind_tx(self, connector: int, transaction_id: str) -> None:
        """Give unbound TxProfiles on `connector` the id of its (now known) transaction."""
        for p in list(self.profiles.values()):
            if p.purpose == TX and p.connector == connector and p.transaction_id is None:
                self.profiles[p.id] = replace(p, transaction_id=transaction_id)

    def _best(
        self, candidates: Iterable[Profile], at: datetime, tx_start: datetime | None
    ) -> Limit | None:
        best: Limit | None = None
        best_key: tuple[int, bool] | None = None
        for p in candidates:
            limit = p.limit_at(at, tx_start)
            if limit is None:
                continue
            key = (p.stack_level, p.connector != 0)
            if best_key is None or key > best_key:
                best, best_key = limit, key
        return best

    def connector_limits(
        self,
        connector: int,
        at: datetime,
        *,
        tx_id: str | None,
        tx_start: datetime | None,
    ) -> list[Limit]:
        """Limits on `connector` alone at `at` (external + tx-or-txdefault; no station max).

        `tx_start` is the transaction start (or, with no transaction, the instant a Relative
        TxDefaultProfile would start from, as GetCompositeSchedule asks).
        """
        limits: list[Limit] = []
        mine = [p for p in self.profiles.values() if p.connector in (0, connector)]
        external = self._best((p for p in mine if p.purpose == EXTERNAL), at, tx_start)
        if external is not None:
            limits.append(external)
        tx_limit = None
        if tx_id is not None:
            tx_limit = self._best(
                (
                    p
                    for p in mine
                    if p.purpose == TX
                    and p.connector == connector
                    and (p.transaction_id is None or p.transaction_id == tx_id)
                ),
                at,
                tx_start,
            )
        if tx_limit is None:
            tx_limit = self._best((p for p in mine if p.purpose == TXDEFAULT), at, tx_start)
        if tx_limit is not None:
            limits.append(tx_limit)
        return limits

    def station_limit(self, at: datetime) -> Limit | None:
        """The ChargePointMax/ChargingStationMax limit in force at `at`, if any."""
        return self._best(
            (p for p in self.profiles.values() if p.purpose == MAX and p.connector == 0), at, None
        )

    def boundaries(
        self,
        after: datetime,
        until: datetime,
        tx_starts: dict[int, datetime | None],
    ) -> list[datetime]:
        """Sorted instants in (after, until] at which any limit may change."""
        marks: set[datetime] = set()
        for p in self.profiles.values():
            starts: Sequence[datetime | None]
            if p.kind == "Relative":
                if p.connector == 0:
                    starts = list(tx_starts.values())
                else:
                    starts = [tx_starts.get(p.connector)]
            else:
                starts = [None]
            for start in starts:
                if p.kind == "Relative" and start is None:
                    continue
                marks.update(p.boundaries(after, until, start))
        return sorted(marks)


def to_watts(limit: Limit, phases_in_use: int, voltage_v: float) -> float:
    """Convert a limit to watts for a load on `phases_in_use` phases at `voltage_v` (L-N)."""
    if limit.unit == "W":
        return limit.value
    phases = phases_in_use if limit.phases is None else min(limit.phases, phases_in_use)
    return limit.value * voltage_v * phases


def from_watts(watts: float, unit: str, phases: int, voltage_v: float) -> float:
    """Convert watts to `unit` (A per phase over `phases` phases, or W)."""
    if unit == "W":
        return watts
    return watts / (voltage_v * max(1, phases))


def water_fill(demands: Sequence[float], cap: float) -> list[float]:
    """Share `cap` max-min fairly: nobody gets more than asked, the rest split evenly."""
    shares = [0.0] * len(demands)
    left = max(0.0, cap)
    pending = sorted(range(len(demands)), key=lambda i: demands[i])
    while pending:
        fair = left / len(pending)
        i = pending[0]
        if demands[i] <= fair:
            shares[i] = max(0.0, demands[i])
            left -= shares[i]
            pending.pop(0)
        else:
            for j in pending:
                shares[j] = fair
            break
    return shares


def composite_periods(
    evaluate: Callable[[datetime], tuple[float, int | None]],
    start: datetime,
    duration_s: int,
    boundaries: Iterable[datetime],
) -> list[Period]:
    """Sample `evaluate` at `start` and at every boundary; merge equal neighbours.

    Offsets are whole seconds (a boundary inside a second starts the next whole second, so
    the reported schedule never allows more than the profiles do for long).
    """
    offsets = {0}
    end = start + timedelta(seconds=duration_s)
    for mark in boundaries:
        if start < mark < end:
            offsets.add(math.ceil((mark - start).total_seconds() - 1e-9))
    periods: list[Period] = []
    for off in sorted(offsets):
        if off >= duration_s:
            continue
        limit, phases = evaluate(start + timedelta(seconds=off))
        if periods and periods[-1].limit == limit and periods[-1].number_phases == phases:
            continue
        periods.append(Period(off, limit, phases))
    return periods
