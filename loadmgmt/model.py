"""Frozen domain records the allocator reads (Snapshot) and writes (Allocation).

Everything is in SI units inside the allocator: watts for power, amperes for current per
grid phase. Configuration fields keep the names and units of DESIGN section 2 (kW, A).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from loadmgmt.units import CurrentType, amps_to_w, is_ac, pcf

Objective = Literal["load_sharing", "fleet", "off"]
FloorsPolicy = Literal["fit", "zero"]
Wiring = Literal["arithmetic", "phasor"]
Transformer = Literal["delta_wye"]
SolverStatus = Literal["optimal", "feasible", "greedy"]

PHASES: tuple[int, int, int] = (1, 2, 3)
OPT_OUT = 0
DEFAULT_PRIORITY = 3
# Resolution used when a site sets no power step; 10 W keeps kW limits exact to 0.01 kW.
DEFAULT_RESOLUTION_W = 10.0

_EMPTY: Mapping[str, object] = MappingProxyType({})


def priority_weight(priority: int) -> float:
    """Fair-share weight of a priority: 1 (very high) -> 5 ... 5 (very low) -> 1; 0 -> 6."""
    if not 0 <= priority <= 5:
        raise ValueError(f"priority must be 0..5, got {priority}")
    return float(6 - priority)


@dataclass(frozen=True, slots=True)
class Site:
    """A grid connection: the root node of the tree."""

    id: str
    max_power_kw: float
    max_current_a: float | None = None
    buffer: float = 0.02
    timezone: str = "UTC"
    objective: Objective = "load_sharing"
    min_power_kw: float = 1.0
    power_step_kw: float | None = None
    fallback_power_kw: float | None = None
    floors: FloorsPolicy = "fit"
    # Line-to-neutral grid voltage, used to spread a DC charger's draw over its AC phases.
    grid_voltage_v: float = 230.0
    # Headroom lending (objective step 4): after this long measured below its limit a
    # session is capped near its measured draw (at once when it fell from its limit).
    lend_after_s: float = 120.0
    lend_margin_kw: float = 1.0
    # Fleet: a session that declares no departure is planned to leave this long after it
    # started (or, start unknown, after the allocator first saw it).
    default_dwell_h: float = 8.0
    # How per-phase limits count currents: "arithmetic" adds magnitudes (safe for any wiring,
    # the default), "phasor" adds them as the declared wiring implies (loadmgmt.phasors).
    wiring: Wiring = "arithmetic"
    # A delta-wye transformer feeding the site (phasor wiring only): its primary line-current
    # limit (A, in primary amps) and both line-to-line nameplate voltages.
    transformer: Transformer | None = None
    transformer_primary_a: float | None = None
    transformer_primary_v: float | None = None
    transformer_secondary_v: float | None = None

    def __post_init__(self) -> None:
        if self.wiring not in ("arithmetic", "phasor"):
            raise ValueError(f"{self.id}: wiring must be arithmetic or phasor")
        if self.transformer is None:
            return
        if self.transformer != "delta_wye" or self.wiring != "phasor":
            raise ValueError(f"{self.id}: a transformer needs wiring phasor (delta_wye)")
        needed = (self.transformer_primary_a, self.transformer_primary_v,
                  self.transformer_secondary_v)
        if any(v is None or v <= 0 for v in needed):
            raise ValueError(f"{self.id}: a transformer needs its primary limit (A) and "
                             "primary and secondary voltages (V)")

    @property
    def step_w(self) -> float:
        """Granularity of every limit in watts."""
        if self.power_step_kw and self.power_step_kw > 0:
            return self.power_step_kw * 1000.0
        return DEFAULT_RESOLUTION_W


@dataclass(frozen=True, slots=True)
class Group:
    """An intermediate node (sub-network, circuit) with optional kW and per-phase A limits."""

    id: str
    parent_id: str
    max_power_kw: float | None = None
    max_current_a: float | None = None


@dataclass(frozen=True, slots=True)
class ChargePoint:
    """A charger as a node: its connectors share its kW/A limits."""

    id: str
    parent_id: str
    max_power_kw: float | None = None
    max_current_a: float | None = None


@dataclass(frozen=True, slots=True)
class Connector:
    """One outlet (OCPP 1.6 connector, OCPP 2.0.1 EVSE)."""

    id: str  # "CP1/1"
    charge_point_id: str
    parent_id: str  # the group or site the charge point hangs from
    current_type: CurrentType = CurrentType.AC_PHASE3_LN
    voltage_v: float = 230.0
    power_factor: float = 1.0
    # Grid phases in the connector's own L1, L2, L3 order (phase rotation). AC_phase1 uses one
    # phase (line to neutral) or two (line to line, e.g. 208 V in North America).
    phases: tuple[int, ...] = PHASES
    max_power_kw: float = 22.0
    max_current_a: float | None = None
    min_current_a: float = 6.0  # IEC 61851-1: below 6 A an AC car cannot charge
    priority: int = DEFAULT_PRIORITY

    def amps_per_w(self, grid_voltage_v: float = 230.0) -> dict[int, float]:
        """Grid current (A) on each phase it draws from, per watt delivered."""
        if not self.phases or any(p not in PHASES for p in self.phases):
            raise ValueError(f"{self.id}: phases must be drawn from 1..3, got {self.phases}")
        if self.current_type is CurrentType.DC:
            return {p: 1.0 / (len(self.phases) * grid_voltage_v) for p in self.phases}
        per = 1.0 / (pcf(self.current_type) * self.power_factor * self.voltage_v)
        return {p: per for p in self.phases}

    def max_w(self) -> float:
        """Connector maximum in watts (the lower of its kW and A ratings)."""
        cap = self.max_power_kw * 1000.0
        if self.max_current_a is not None:
            cap = min(cap, self.w_at_amps(self.max_current_a))
        return cap

    def min_w(self) -> float:
        """Hardware minimum in watts: the 6 A equivalent for AC, 0 for DC."""
        if is_ac(self.current_type):
            return self.w_at_amps(self.min_current_a)
        return 0.0

    def w_at_amps(self, current_a: float) -> float:
        """Power drawn at `current_a` per phase (or DC amps)."""
        return amps_to_w(current_a, self.current_type, self.voltage_v, self.power_factor)

    @property
    def number_phases(self) -> int | None:
        """OCPP numberPhases for AC (1 or 3), None for DC."""
        if not is_ac(self.current_type):
            return None
        return 1 if self.current_type is CurrentType.AC_PHASE1 else 3


@dataclass(frozen=True, slots=True)
class Demand:
    """An active session on a connector, as the allocator sees it."""

    connector_id: str
    priority: int = DEFAULT_PRIORITY  # 0 = opt-out (maximum), 1 very high .. 5 very low
    vehicle_max_kw: float | None = None
    energy_to_charge_kwh: float | None = None
    departure: datetime | None = None
    measured_w: float | None = None
    below_limit_for_s: float = 0.0  # how long measured_w has stayed well below its limit
    # It drew its limit and then fell well below it (tapering, a full battery, a car that
    # wants less): its headroom is lent at once, not after `Site.lend_after_s`.
    fell_from_limit: bool = False
    # A draw the allocator must count as consumed and leave unchanged (charger rejected,
    # timed out, offline, or accepts and ignores profiles).
    pinned_w: float | None = None
    transaction_id: str | int | None = None
    started_at: datetime | None = None  # when the session began (fleet: default departure)


Session = Demand


@dataclass(frozen=True)
class FleetCarry:
    """What a fleet plan hands to the next call (kept by the caller: `allocate` stays pure).

    Keys are `session_key(demand)`. `plans` are the per-slot grants (W) from `made_at`;
    `first_seen` anchors the default departure of sessions that declare none.
    """

    made_at: datetime
    slot_s: int
    plans: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    first_seen: Mapping[str, datetime] = field(default_factory=dict)


def session_key(demand: Demand) -> str:
    """A session's identity across calls: its connector and transaction."""
    return f"{demand.connector_id}|{demand.transaction_id}"


@dataclass(frozen=True, slots=True)
class NodeLimit:
    """An effective limit on a node: kW and/or A per phase (either may be absent)."""

    power_kw: float | None = None
    current_a: float | None = None
    source: str = "default"


@dataclass(frozen=True)
class Snapshot:
    """Everything `allocate` needs, frozen at `now` (tz-aware UTC)."""

    site: Site
    connectors: tuple[Connector, ...]
    sessions: tuple[Demand, ...] = ()
    groups: tuple[Group, ...] = ()
    charge_points: tuple[ChargePoint, ...] = ()
    # Effective limit per node id as resolved by loadmgmt.limits (already with look-ahead);
    # the allocator uses the lower of this and the node's configured maximum.
    limits: Mapping[str, NodeLimit] = field(default_factory=lambda: _EMPTY)  # type: ignore[arg-type]
    now: datetime | None = None
    objective: Objective | None = None  # None: the site's objective
    horizon_slots: int = 96
    slot_s: int = 900
    # Fleet only: per node, one limit per slot (missing nodes use `limits`).
    slot_limits: Mapping[str, tuple[NodeLimit, ...]] = field(
        default_factory=lambda: _EMPTY  # type: ignore[arg-type]
    )
    # Floors (W) the chargers actually hold as TxDefaultProfile; None: compute them.
    floors: Mapping[str, float] | None = None
    # Guards (W): count these connectors at this much (their charger has not yet been seen
    # following a limit, so a car on it may draw its maximum), as far as that fits once every
    # admitted session has its minimum. The guard is reserved, never granted as a limit.
    guards: Mapping[str, float] = field(default_factory=lambda: _EMPTY)  # type: ignore[arg-type]
    # Fleet: the previous call's `Allocation.fleet_carry` (its plan and what it knew).
    fleet_carry: FleetCarry | None = None

    @property
    def effective_objective(self) -> Objective:
        """The objective in force: the snapshot's override, else the site's."""
        return self.objective or self.site.objective


@dataclass(frozen=True, slots=True)
class ConnectorAllocation:
    """What one connector gets."""

    connector_id: str
    power_w: float
    current_a: tuple[float, float, float]  # grid phases 1, 2, 3
    floor_w: float = 0.0
    plan_w: tuple[float, ...] = ()  # fleet: one value per slot, plan_w[0] == power_w
    active: bool = False  # a session is present
    pinned: bool = False
    transaction_id: str | int | None = None


@dataclass(frozen=True)
class Allocation:
    """The allocator's answer for one site."""

    site_id: str
    connectors: tuple[ConnectorAllocation, ...]
    status: SolverStatus
    solve_time_s: float
    objective: Mapping[str, float] = field(default_factory=dict)
    start: datetime | None = None
    slot_s: int = 900
    managed: bool = True  # False for objective "off": nothing should be sent
    overloaded: tuple[str, ...] = ()  # nodes over their limit even with every free session at 0
    fleet_carry: FleetCarry | None = None  # fleet: pass to the next call's Snapshot

    def by_connector(self) -> dict[str, ConnectorAllocation]:
        """Index the per-connector results by connector id."""
        return {c.connector_id: c for c in self.connectors}


def round_down(value: float, step: float) -> float:
    """Largest multiple of `step` not above `value` (tolerant of float noise)."""
    return math.floor(value / step + 1e-9) * step


def round_up(value: float, step: float) -> float:
    """Smallest multiple of `step` not below `value` (tolerant of float noise)."""
    return math.ceil(value / step - 1e-9) * step

