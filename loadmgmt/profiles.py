"""Allocation -> version-neutral charging profiles, plus the "gentle on hardware" rules.

One builder serves OCPP 1.6 and 2.0.1: the version adapters only rename fields. How profiles
go out (purpose, stack level, unit, numberPhases, all at once or one by one) comes from the
delivery presets of seed 002 ("Configurations"), resolved charge point -> network -> the
customer's `isDefault` preset.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from loadmgmt.model import Allocation, Connector, Snapshot
from loadmgmt.units import is_ac

Unit = Literal["A", "W"]
Purpose = Literal["TxProfile", "TxDefaultProfile", "ChargePointMaxProfile"]
Kind = Literal["Absolute", "Relative", "Recurring"]
DeliveryType = Literal["All", "Sequential"]


@dataclass(frozen=True, slots=True)
class DeliveryPreset:
    """One seed-002 delivery preset (`deliveryOptions.presets.<purpose>.<name>.settings`)."""

    name: str
    purpose: Purpose
    stack_level: int
    number_phases: bool = False
    charging_rate_unit: Unit | None = None  # None: the charger's preferred unit
    use_transaction_id: bool = True
    limit_delivery_type: DeliveryType = "All"
    kind: Kind = "Absolute"
    use_charging_profile_id: bool = True
    time_zone: str = "utc"


def preset_from_settings(name: str, settings: Mapping[str, Any]) -> DeliveryPreset:
    """Parse a seed-002 preset `settings` object."""
    return DeliveryPreset(
        name=name,
        purpose=settings["chargingProfilePurpose"],
        stack_level=int(settings["stackLevel"]),
        number_phases=bool(settings.get("numberPhases", False)),
        charging_rate_unit=settings.get("chargingRateUnit"),
        use_transaction_id=bool(settings.get("useTransactionId", True)),
        limit_delivery_type=settings.get("limitDeliveryType", "All"),
        kind=settings.get("chargingProfileKind", "Absolute"),
        use_charging_profile_id=bool(settings.get("useChargingProfileId", True)),
        time_zone=settings.get("timeZone", "utc"),
    )


def _seed_presets() -> dict[str, DeliveryPreset]:
    out: dict[str, DeliveryPreset] = {}
    variants = [
        ("ampcontrol-default-{p}", False, None, "All"),
        ("ampcontrol-squential-{p}", False, None, "Sequential"),  # sic, as in the seed
        ("ampcontrol-sequential-ampere-{p}", False, "A", "Sequential"),
        ("ampcontrol-default-{p}-number-phases", True, None, "All"),
        ("ampcontrol-sequential-ampere-number-phases-{p}", True, "A", "Sequential"),
    ]
    for purpose, level in (("TxProfile", 2), ("TxDefaultProfile", 1)):
        for pattern, phases, unit, delivery in variants:
            name = pattern.format(p=purpose)
            out[name] = DeliveryPreset(
                name=name,
                purpose=purpose,  # type: ignore[arg-type]
                stack_level=level,
                number_phases=phases,
                charging_rate_unit=unit,  # type: ignore[arg-type]
                limit_delivery_type=delivery,  # type: ignore[arg-type]
            )
    return out


SEED_PRESETS: Mapping[str, DeliveryPreset] = _seed_presets()
DEFAULT_TX_PRESET = SEED_PRESETS["ampcontrol-default-TxProfile"]
DEFAULT_TX_DEFAULT_PRESET = SEED_PRESETS["ampcontrol-default-TxDefaultProfile"]


def resolve_preset(
    purpose: Purpose,
    *names: str | None,
    presets: Mapping[str, DeliveryPreset] = SEED_PRESETS,
) -> DeliveryPreset:
    """First non-empty preset name (charge point, then network) else the default for purpose."""
    for name in names:
        if name:
            preset = presets[name]
            if preset.purpose != purpose:
                raise ValueError(f"preset {name!r} is for {preset.purpose}, not {purpose}")
            return preset
    return DEFAULT_TX_PRESET if purpose == "TxProfile" else DEFAULT_TX_DEFAULT_PRESET


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a charge point accepts (configured, then learned from its answers)."""

    preferred_unit: Unit = "A"
    max_stack_level: int = 8
    supports_number_phases: bool = True
    tx_preset: DeliveryPreset = DEFAULT_TX_PRESET
    tx_default_preset: DeliveryPreset = DEFAULT_TX_DEFAULT_PRESET


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    """A schedule period: from `start_period` seconds, at most `limit` (unit of the schedule)."""

    start_period: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    """A charging schedule; `start` is set for Absolute profiles."""

    unit: Unit
    periods: tuple[SchedulePeriod, ...]
    start: datetime | None = None
    duration: int | None = None
    min_charging_rate: float | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """Version-neutral charging profile for one connector (connector id "CP/n")."""

    id: int
    connector_id: str
    stack_level: int
    purpose: Purpose
    kind: Kind
    schedule: ChargingSchedule
    transaction_id: str | int | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    # A schedule's limits all in one profile, or one limit at a time (seed 002's
    # limitDeliveryType: "Sequential" profiles hold only the period in force).
    delivery: DeliveryType = "All"
    # Whether the preset and charger want numberPhases on the wire; the value is always set
    # on AC periods so the adapter can decide without recomputing it.
    send_number_phases: bool = True

    def limit_at(self, at: datetime) -> float | None:
        """The limit in force at `at` (None outside validity or schedule)."""
        if self.valid_from and at < self.valid_from:
            return None
        if self.valid_to and at >= self.valid_to:
            return None
        origin = self.schedule.start or self.valid_from
        offset = 0.0 if origin is None else (at - origin).total_seconds()
        if offset < 0:
            return None
        if self.schedule.duration is not None and offset >= self.schedule.duration:
            return None
        current = None
        for p in self.schedule.periods:
            if p.start_period <= offset:
                current = p.limit
        return current


def default_profile_id(connector_id: str, purpose: Purpose) -> int:
    """A stable positive 31-bit id per connector and purpose (replaces, never piles up)."""
    return zlib.crc32(f"{connector_id}|{purpose}".encode()) & 0x7FFFFFFF or 1


def _limit_in(unit: Unit, power_w: float, conn: Connector) -> float:
    """Round down so a charger never gets more than its grant: 0.1 A, or 1 W."""
    if unit == "A":
        amps = power_w / conn.w_at_amps(1.0) if power_w > 0 else 0.0
        return math.floor(amps * 10 + 1e-9) / 10
    return float(math.floor(power_w + 1e-9))


def _unit_for(preset: DeliveryPreset, caps: Capabilities, conn: Connector) -> Unit:
    if not is_ac(conn.current_type):
        return "W"  # an A limit means nothing on the DC side
    return preset.charging_rate_unit or caps.preferred_unit


def _min_rate(unit: Unit, conn: Connector, site_min_w: float) -> float | None:
    if unit == "A":
        return conn.min_current_a if is_ac(conn.current_type) else None
    return float(math.ceil(max(conn.min_w(), site_min_w)))


def build_profiles(
    allocation: Allocation,
    snapshot: Snapshot,
    capabilities: Mapping[str, Capabilities],
    *,
    now: datetime,
    validity_s: int = 900,
    include_defaults: bool = True,
    plan_validity_s: int | None = None,
    profile_id: Any = default_profile_id,
) -> list[ChargingProfile]:
    """One TxProfile per active, unpinned session, and one TxDefaultProfile (floor) per connector.

    `capabilities` is keyed by charge point id (missing: defaults). TxProfiles lapse after
    `validity_s` (validTo, and the schedule's duration) so a charger falls back to its floor on
    its own if we disappear; the planner renews them. A fleet plan becomes one period per slot
    (equal neighbours merged), valid for the plan, or only `plan_validity_s` (the planner
    bounds it like any TxProfile: a day-long schedule would outlive a dead Loadstar).
    """
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    conns = {c.id: c for c in snapshot.connectors}
    site_min_w = snapshot.site.min_power_kw * 1000.0
    out: list[ChargingProfile] = []
    for ca in allocation.connectors:
        conn = conns[ca.connector_id]
        caps = capabilities.get(conn.charge_point_id, Capabilities())
        nph = conn.number_phases
        if include_defaults:
            preset = caps.tx_default_preset
            unit = _unit_for(preset, caps, conn)
            level = min(preset.stack_level, max(0, caps.max_stack_level - 1))
            out.append(
                ChargingProfile(
                    id=profile_id(ca.connector_id, "TxDefaultProfile"),
                    connector_id=ca.connector_id,
                    stack_level=level,
                    purpose="TxDefaultProfile",
                    kind="Relative" if preset.kind == "Relative" else "Absolute",
                    schedule=ChargingSchedule(
                        unit=unit,
                        periods=(SchedulePeriod(0, _limit_in(unit, ca.floor_w, conn), nph),),
                        start=None if preset.kind == "Relative" else now,
                        min_charging_rate=_min_rate(unit, conn, site_min_w),
                    ),
                    valid_from=now,
                    delivery=preset.limit_delivery_type,
                    send_number_phases=preset.number_phases and caps.supports_number_phases,
                )
            )
        if not ca.active or ca.pinned:
            continue
        preset = caps.tx_preset
        unit = _unit_for(preset, caps, conn)
        plan = ca.plan_w or (ca.power_w,)
        fleet = len(plan) > 1
        # A present-only plan is one period of `validity_s`; a fleet plan one per slot.
        slot = allocation.slot_s if fleet else validity_s
        duration = len(plan) * slot
        if fleet and plan_validity_s is not None:
            plan = plan[: max(1, math.ceil(plan_validity_s / slot))]
            duration = min(len(plan) * slot, plan_validity_s)
        periods: list[SchedulePeriod] = []
        for n, p in enumerate(plan):
            lim = _limit_in(unit, p, conn)
            if periods and periods[-1].limit == lim:
                continue  # merge equal neighbours: fewer periods, same meaning
            periods.append(SchedulePeriod(n * slot, lim, nph))
        if preset.limit_delivery_type == "Sequential" and len(periods) > 1:
            # One limit at a time, for chargers that take one period only: this one lapses
            # when the next would start, and the planner sends the next (a renewal) by then.
            duration = periods[1].start_period
            periods = periods[:1]
        level = min(preset.stack_level, caps.max_stack_level)
        out.append(
            ChargingProfile(
                id=profile_id(ca.connector_id, "TxProfile"),
                connector_id=ca.connector_id,
                stack_level=level,
                purpose="TxProfile",
                kind="Absolute",  # a relative TxProfile would restart at every renewal
                schedule=ChargingSchedule(
                    unit=unit,
                    periods=tuple(periods),
                    start=now,
                    duration=duration,
                    min_charging_rate=_min_rate(unit, conn, site_min_w),
                ),
                transaction_id=ca.transaction_id if preset.use_transaction_id else None,
                valid_from=now,
                valid_to=now + timedelta(seconds=duration),
                delivery=preset.limit_delivery_type,
                send_number_phases=preset.number_phases and caps.supports_number_phases,
            )
        )
    return out


# --------------------------------------------------------------------------- gentle on hardware


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """Hysteresis and rate cap for raises; lowerings always go out at once."""

    hysteresis_a: float = 1.0
    hysteresis_w: float = 500.0
    min_interval_s: float = 30.0
    renew_before_s: float = 120.0  # resend a TxProfile this long before it lapses


def _limits(profile: ChargingProfile) -> list[float]:
    return [p.limit for p in profile.schedule.periods]


def is_lowering(previous: ChargingProfile | None, new: ChargingProfile, now: datetime) -> bool:
    """True if `new` allows less than `previous` at some instant both cover (or units differ)."""
    if previous is None:
        return True  # nothing known is held: treat as the safe, urgent kind
    if previous.schedule.unit != new.schedule.unit:
        return True
    horizon = int(max(new.schedule.duration or 0, previous.schedule.duration or 0, 1))
    for off in _offsets(previous, new, now, horizon):
        at = now + timedelta(seconds=off)
        p = previous.limit_at(at)
        n = new.limit_at(at)
        if p is not None and n is not None and n < p - 1e-9:
            return True
    return False


def _offsets(a: ChargingProfile, b: ChargingProfile, now: datetime, horizon: int) -> list[int]:
    offs = {0}
    for prof in (a, b):
        origin = prof.schedule.start or now
        for p in prof.schedule.periods:
            t = (origin + timedelta(seconds=p.start_period) - now).total_seconds()
            if 0 < t < horizon:
                offs.add(int(math.ceil(t)))
    return sorted(offs)


def should_send(
    previous: ChargingProfile | None,
    new: ChargingProfile,
    last_sent_at: datetime | None,
    now: datetime,
    policy: SendPolicy | None = None,
) -> bool:
    """Send `new`? Lowerings always; raises past the hysteresis and the per-charger interval.

    `previous` is what the charger holds (its last accepted profile for this slot).
    """
    policy = policy or SendPolicy()
    if previous is None:
        return True
    if is_lowering(previous, new, now):
        return True
    if previous.valid_to is not None and (previous.valid_to - now).total_seconds() <= (
        policy.renew_before_s
    ):
        return True  # about to lapse: renewing keeps the grant, and is never a raise above it
    if _limits(previous) == _limits(new) and previous.schedule.unit == new.schedule.unit:
        return False
    band = policy.hysteresis_a if new.schedule.unit == "A" else policy.hysteresis_w
    horizon = int(max(new.schedule.duration or 0, 1))
    rise = 0.0
    for off in _offsets(previous, new, now, horizon):
        at = now + timedelta(seconds=off)
        p = previous.limit_at(at)
        n = new.limit_at(at)
        if p is not None and n is not None:
            rise = max(rise, n - p)
    if rise < band:
        return False
    if last_sent_at is not None and (now - last_sent_at).total_seconds() < policy.min_interval_s:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """A profile to send and what the charger holds now."""

    new: ChargingProfile
    previous: ChargingProfile | None = None
    charge_point_id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def order_lowering_first(
    changes: Iterable[ProfileChange], now: datetime
) -> tuple[list[ProfileChange], list[ProfileChange]]:
    """Split into (lowerings, raises), each in a stable order; send all lowerings first."""
    lower: list[ProfileChange] = []
    raise_: list[ProfileChange] = []
    for ch in sorted(changes, key=lambda c: (c.new.connector_id, c.new.purpose)):
        (lower if is_lowering(ch.previous, ch.new, now) else raise_).append(ch)
    return lower, raise_


def ordered(changes: Sequence[ProfileChange], now: datetime) -> list[ProfileChange]:
    """All changes, lowerings first (the dispatch order)."""
    lower, raise_ = order_lowering_first(changes, now)
    return lower + raise_


# --------------------------------------------------------------------------- what an EV plans


@dataclass(frozen=True, slots=True)
class EvSchedule:
    """A schedule an EV means to follow (2.0.1 NotifyEVChargingSchedule), in watts."""

    start: datetime
    periods: tuple[tuple[float, float], ...]  # (seconds from start, limit in W), in order
    duration_s: float | None = None


def ev_schedule_excess(ev: EvSchedule, profile: ChargingProfile,
                       to_w: Callable[[float], float], tolerance_w: float = 1.0
                       ) -> tuple[datetime, float, float] | None:
    """The first instant where `ev` asks more than `profile` allows, with both limits in W
    (None: it never does). `to_w` turns a limit of the profile's unit into watts; where the
    profile is not in force, it sets no bound."""
    instants = {ev.start + timedelta(seconds=start) for start, _ in ev.periods}
    origin = profile.schedule.start or profile.valid_from or ev.start
    instants |= {origin + timedelta(seconds=p.start_period) for p in profile.schedule.periods}
    end = None if ev.duration_s is None else ev.start + timedelta(seconds=ev.duration_s)
    for at in sorted(instants):
        if at < ev.start or (end is not None and at >= end):
            continue
        offset = (at - ev.start).total_seconds()
        asked = next((limit for start, limit in reversed(ev.periods) if start <= offset), None)
        allowed = profile.limit_at(at)
        if asked is None or allowed is None:
            continue
        if asked > to_w(allowed) + tolerance_w:
            return at, asked, to_w(allowed)
    return None
