"""The allocator's input for one site, built from live state: limits, chargers, sessions, floors.

Floors are sized for the lowest limit of the next day; the plan reserves them for idle
connectors, and guards room for chargers not yet seen following a limit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from csms.clock import parse_iso
from csms.config import LimitSpec
from csms.live import ChargerState, ConnectorState
from csms.planning.context import PlanContext
from csms.planning.held import current_w
from loadmgmt.limits import (
    CapacityInterval,
    DrEvent,
    ExternalLimit,
    LimitValue,
    NodeLimits,
    Resolved,
    ScheduledLimit,
    lookahead,
)
from loadmgmt.model import Connector, Demand, NodeLimit, Snapshot
from loadmgmt.network import compute_floors

# How far ahead floors look for the lowest limit: they must hold while Loadstar is away.
FLOOR_HORIZON = timedelta(hours=24)

# Each connector of a plan: id -> (its charger's state, its own).
States = dict[str, tuple[ChargerState, ConnectorState]]


def _forgotten(cp: ChargerState, before: datetime) -> bool:
    """Offline and silent since `before`, with no session open: left out of the plans."""
    return (not cp.online and (cp.last_seen is None or cp.last_seen < before)
            and all(c.tx_id is None for c in cp.connectors.values()))


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    """A snapshot and what dispatch and the plan record need beside it."""

    snapshot: Snapshot
    states: States
    target_floors: dict[str, float]
    resolved: dict[str, Resolved]


def cannot_limit(cp: ChargerState, c: ConnectorState) -> bool:
    """Whether a car on `c` draws what it can whatever we send."""
    return cp.uncontrollable is not None or cp.ignores_profiles or c.ignoring


def learned_max_w(c: ConnectorState, conn: Connector) -> float:
    """The most a car on `c` can draw where we cannot limit it: the highest draw measured on it
    (a 22 kW rating that never gave more than 11 kW counts at 11 kW), its rating until then."""
    if c.max_seen_w is None:
        return conn.max_w()
    return min(conn.max_w(), c.max_seen_w)


class Snapshots:
    """Builds each plan's snapshot; holds the external limits set through the API."""

    def __init__(self, ctx: PlanContext) -> None:
        self._ctx = ctx
        self.externals: dict[str, list[ExternalLimit]] = {}

    def _node_limits(self, site_id: str, node_id: str, specs: list[LimitSpec],
                     static_kw: float | None, static_a: float | None) -> NodeLimits:
        tz = self._ctx.directory.specs[site_id].timezone
        default = LimitValue(static_kw, static_a)
        scheduled, capacities, drs = [], [], []
        externals = list(self.externals.get(node_id, []))
        for s in specs:
            value = LimitValue(s.power_kw, s.current_a)
            if s.kind == "default":
                default = value
            elif s.kind == "scheduled" and s.start_cron and s.end_cron:
                scheduled.append(ScheduledLimit(s.start_cron, s.end_cron, value))
            elif s.start and s.end:
                start, end = parse_iso(s.start), parse_iso(s.end)
                if s.kind == "capacity":
                    capacities.append(CapacityInterval(start, end, value))
                elif s.kind == "dr_event":
                    drs.append(DrEvent(start, end, value, reduction_kw=s.reduction_kw))
                else:
                    externals.append(ExternalLimit(value, end, start))
        return NodeLimits(default=default, scheduled=tuple(scheduled),
                          capacities=tuple(capacities), dr_events=tuple(drs),
                          externals=tuple(externals), timezone=tz)

    def site_limits(self, site_id: str) -> NodeLimits:
        """Everything that limits the site node itself over time (the HTTP capacity view)."""
        spec = self._ctx.directory.specs[site_id]
        specs = self._ctx.directory.limit_specs(site_id)[site_id]
        return self._node_limits(site_id, site_id, specs, spec.max_power_kw, spec.max_current_a)

    def resolve(self, site_id: str, now: datetime,
                horizon: timedelta) -> tuple[dict[str, NodeLimit], dict[str, Resolved]]:
        """Each node's effective limit over `horizon` from `now` (drops anticipated)."""
        spec = self._ctx.directory.specs[site_id]
        statics: dict[str, tuple[float | None, float | None]] = {
            site_id: (spec.max_power_kw, spec.max_current_a)}
        for g in spec.groups:
            statics[g.id] = (g.max_power_kw, g.max_current_a)
        out: dict[str, NodeLimit] = {}
        resolved: dict[str, Resolved] = {}
        for node_id, specs in self._ctx.directory.limit_specs(site_id).items():
            kw, amps = statics[node_id]
            r = lookahead(self._node_limits(site_id, node_id, specs, kw, amps), now, horizon)
            resolved[node_id] = r
            out[node_id] = r.as_node_limit()
        return out, resolved

    def chargers(self, site_id: str) -> list[ChargerState]:
        """The chargers the next plan of `site_id` covers (long-forgotten ones left out)."""
        ctx = self._ctx
        forgotten_before = ctx.clock.now() - timedelta(
            seconds=ctx.config.forget_offline_after_s)
        chargers = ctx.live.chargers
        return [cp for cp in (chargers[cp_id] for cp_id in ctx.placed().by_site.get(site_id, ()))
                if cp.connectors and not _forgotten(cp, forgotten_before)]

    def _demand(self, cp: ChargerState, c: ConnectorState, conn: Connector,
                now: datetime) -> Demand:
        pinned: float | None = None
        margin = self._ctx.config.ignore_margin_kw * 1000.0
        c.planned_w = c.measured_w
        api = c.api
        if api is not None and api.external:
            # Run by another CSMS, which applies our optimization: it is never online here,
            # and counts at its draw only when a reading shows more than its maximum.
            if c.measured_w is not None and c.measured_w > conn.max_w() + margin:
                pinned = c.measured_w
        elif not cp.online:
            pinned = current_w(c, conn, now)
        elif c.measured_w is not None and c.measured_w > current_w(c, conn, now) + margin:
            # Drawing more than we allowed: count what it draws now, before it is even flagged.
            pinned = c.measured_w
        elif c.ignoring:
            # Until its first meter value a known ignorer is counted at the most it can draw:
            # the car draws what it can from the first second, whatever the charger accepted.
            pinned = learned_max_w(c, conn) if c.measured_w is None else \
                max(c.measured_w, current_w(c, conn, now))
        elif c.pinned_w is not None:
            pinned = c.pinned_w
        elif self._ctx.live.silent(cp, c, now):  # unheard of: what it holds, no share
            pinned = current_w(c, conn, now)
        vehicle_kw = None
        energy = departure = None
        if c.needs is not None:
            if c.needs.ev_max_power_w:
                vehicle_kw = c.needs.ev_max_power_w / 1000.0
            elif c.needs.ev_max_current_a:
                vehicle_kw = conn.w_at_amps(c.needs.ev_max_current_a) / 1000.0
            if c.needs.energy_amount_wh is not None:
                energy = c.needs.energy_amount_wh / 1000.0
            departure = c.needs.departure
        # Seed 002: the id tag's priority "takes precedence over connector priority", and what
        # the API was told about the session beats both.
        tag_priority = self._ctx.tag_priority(c.id_tag)
        priority = conn.priority if tag_priority is None else tag_priority
        if api is not None:
            priority = priority if api.priority is None else api.priority
            vehicle_kw = api.vehicle_max_kw if api.vehicle_max_kw is not None else vehicle_kw
            if api.energy_to_charge_kwh is not None:
                energy = api.energy_to_charge_kwh
            departure = api.departure if api.departure is not None else departure
        # How long it has drawn below its limit (not: how old the last meter value is).
        below_s = 0.0 if c.below_since is None else max(0.0, (now - c.below_since).total_seconds())
        return Demand(connector_id=conn.id, priority=priority, vehicle_max_kw=vehicle_kw,
                      energy_to_charge_kwh=energy, departure=departure,
                      measured_w=c.measured_w, below_limit_for_s=below_s,
                      fell_from_limit=c.fell_from_limit,
                      pinned_w=pinned,
                      transaction_id=c.tx_id)

    def _guards(self, states: States, by_key: dict[str, Connector],
                reserve: dict[str, float]) -> dict[str, float]:
        """Room to keep for chargers not yet seen following a limit (`Snapshot.guards`).

        A car on such a charger may draw its maximum from its first second, whatever the
        charger accepted. Its session is guarded until a reading shows it follows; of the idle
        ones, the site keeps room for the largest, so the next car to arrive fits either way.
        """
        if not self._ctx.config.guard_unproven:
            return {}
        guards: dict[str, float] = {}
        idle: list[tuple[float, str]] = []
        for key, (cp, c) in states.items():
            if not cp.online or cp.follows_profiles or cp.ignores_profiles or c.ignoring:
                continue
            top = by_key[key].max_w()
            if c.tx_id is not None:
                if c.pinned_w is None:
                    guards[key] = top
            elif top > reserve.get(key, 0.0):
                idle.append((top - reserve.get(key, 0.0), key))
        if idle:
            # The largest gap; among equals the first id, so plans do not flip between them.
            gap = max(g for g, _ in idle)
            key = min(k for g, k in idle if g == gap)
            guards[key] = by_key[key].max_w()
        return guards

    def build(self, site_id: str, cps: list[ChargerState], now: datetime) -> SiteSnapshot:
        """The snapshot of `site_id` over chargers `cps`, with floors reserved and guards kept.

        A refused or unanswered profile whose retry time has come is forgotten here, so the
        connector is planned (and sent to) again.
        """
        ctx = self._ctx
        cfg = ctx.config
        validity = timedelta(seconds=cfg.profile_validity_s)
        limits, resolved = self.resolve(site_id, now, validity + timedelta(seconds=cfg.coalesce_s))
        floor_limits, _ = self.resolve(site_id, now, FLOOR_HORIZON)
        site = ctx.directory.site(site_id)
        connectors: list[Connector] = []
        demands: list[Demand] = []
        states: States = {}
        by_id: dict[str, Connector] = {}
        for cp in cps:
            for n, c in sorted(cp.connectors.items()):
                conn = ctx.directory.connector(cp.cp_id, n)
                connectors.append(conn)
                states[conn.id] = (cp, c)
                by_id[conn.id] = conn
                held = ctx.held_for(conn.id)
                if c.pinned_w is not None and held.retry_at is not None and held.retry_at <= now:
                    # Time to try again (idle connectors too: a rejected floor is retried).
                    c.pinned_w, held.retry_at = None, None
                if c.tx_id is not None:
                    demands.append(self._demand(cp, c, conn, now))
        base = Snapshot(site=site, connectors=tuple(connectors), sessions=tuple(demands),
                        groups=ctx.directory.groups(site_id),
                        charge_points=tuple(ctx.directory.charge_point(cp.cp_id) for cp in cps),
                        limits=limits, now=now)
        # What cannot be limited takes no floor and counts at what it may draw, so the floors
        # of the others fit beside it (when Loadstar is gone as now).
        pins = {d.connector_id: d.pinned_w for d in demands}
        # A pin (its draw now) may be below what it may draw (a car can ramp up at any time):
        # the larger counts, and a pin at 0 W is a draw like any other.
        fixed = {key: 0.0 if c.closed else max(pins.get(key) or 0.0,
                                               learned_max_w(c, by_id[key]))
                 for key, (cp, c) in states.items() if cannot_limit(cp, c)}
        target_floors = compute_floors(replace(base, limits=floor_limits, sessions=()), fixed)
        # Until a charger confirms a floor, its idle connectors may draw what they held before
        # (or their maximum): reserve the larger. A connector in a session is bounded by its
        # TxProfile (or pinned at what it may draw when that did not take), so only the floor
        # it is about to get counts for it: reserving an unconfirmed floor at the maximum there
        # too starved every session of a charger that had just booted (0 A TxProfiles).
        reserve = {}
        by_key = {x.id: x for x in connectors}
        for key, (_cp, c) in states.items():
            conn = by_key[key]
            if c.tx_id is not None:
                reserve[key] = target_floors.get(key, 0.0)
                continue
            # An idle connector that ignores profiles may draw its maximum when a car arrives;
            # once in a session it is pinned at its draw (Snapshots._demand) instead.
            if c.closed:
                reserve[key] = 0.0  # made unavailable by us: it cannot start a car
                continue
            held = c.held_floor_w if c.held_floor_w is not None and not c.ignoring \
                else learned_max_w(c, conn) if c.ignoring else conn.max_w()
            reserve[key] = max(held, target_floors.get(key, 0.0))
        snapshot = replace(base, floors=reserve, guards=self._guards(states, by_key, reserve))
        return SiteSnapshot(snapshot, states, target_floors, resolved)
