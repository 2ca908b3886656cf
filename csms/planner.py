"""Per-site planning: coalesce triggers, snapshot the site, allocate, and dispatch safely.

Each site has its own loop, so a slow plan for one site never delays another. Dispatch sends
every lowering (TxProfile or TxDefaultProfile floor) and waits for the answers before any raise;
a charger that rejects, times out or is offline counts at what it may draw on its own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms.charger_models import ModelRecord, model_key
from csms.clock import Clock, parse_iso
from csms.commands import Commands
from csms.config import LimitSpec, LoadConfig, SiteSpec
from csms.domain import Booted, DomainEvent, Metered, TransactionEvent201, TransactionStarted
from csms.live import ChargerState, ConnectorState, LiveState
from csms.ocpp import v16, v201
from csms.sites import SiteDirectory, connector_key
from csms.store import Store
from loadmgmt.allocator import allocate
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
from loadmgmt.model import Allocation, Connector, Demand, NodeLimit, Snapshot
from loadmgmt.network import compute_floors
from loadmgmt.profiles import (
    SEED_PRESETS,
    Capabilities,
    ChargingProfile,
    SchedulePeriod,
    SendPolicy,
    build_profiles,
    should_send,
)

log = structlog.get_logger("csms.planner")

# How far ahead floors look for the lowest limit: they must hold while Loadstar is away.
FLOOR_HORIZON = timedelta(hours=24)
# numberPhases goes out in every AC profile, so these seed-002 presets are the defaults.
TX_PRESET = SEED_PRESETS["ampcontrol-default-TxProfile-number-phases"]
TX_DEFAULT_PRESET = SEED_PRESETS["ampcontrol-default-TxDefaultProfile-number-phases"]
# A charger that failed to take a profile is retried after this long.
RETRY_AFTER_S = 60.0
# A second reading this long after a session's start if the first showed no power yet.
RAMP_RECHECK_S = 2.0


@dataclass(slots=True)
class _Send:
    key: str
    cp_id: str
    connector_id: int
    profile: ChargingProfile
    new_w: float
    current_w: float

    @property
    def lowering(self) -> bool:
        return self.new_w < self.current_w - 1e-6


def _on_firmware(verdict: Any, firmware: str | None) -> bool:
    """A stored verdict ({"firmware": ...}) that was reached on this firmware."""
    return isinstance(verdict, dict) and verdict.get("firmware") == (firmware or "")


async def _first_done(*aws: Awaitable[Any]) -> set[asyncio.Future[Any]]:
    """Wait for the first of `aws` to finish, cancel the rest; return the finished."""
    futures = {asyncio.ensure_future(a) for a in aws}
    done, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    return done


@dataclass(slots=True)
class _SiteLoop:
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    triggers: list[str] = field(default_factory=list)
    next_due: datetime | None = None
    planned: asyncio.Event = field(default_factory=asyncio.Event)
    plans: int = 0
    # A connector draws more than it may: plan without waiting out the coalescing window.
    urgent: bool = False
    urgent_wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Held:
    """What a connector holds beyond ConnectorState: the profile objects and retry times."""

    tx: ChargingProfile | None = None
    floor: ChargingProfile | None = None
    retry_at: datetime | None = None


class Planner:
    """Listens to committed domain events and keeps every site's chargers within its limits."""

    def __init__(self, directory: SiteDirectory, store: Store, commands: Commands, clock: Clock,
                 config: LoadConfig) -> None:
        self.directory = directory
        self.store = store
        self.commands = commands
        self.clock = clock
        self.config = config
        self.live = LiveState()
        self._loops: dict[str, _SiteLoop] = {}
        self._held: dict[str, _Held] = {}
        self._externals: dict[str, list[ExternalLimit]] = {}
        self._models: dict[str, ModelRecord] = {}
        self._model_of: dict[str, str] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self.policy = SendPolicy(
            hysteresis_a=config.hysteresis_a, hysteresis_w=config.hysteresis_kw * 1000.0,
            min_interval_s=config.min_update_interval_s,
            renew_before_s=config.profile_validity_s / 2,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, config_sites: list[SiteSpec]) -> None:
        """Restore sites, chargers, open sessions and external limits; one loop per site.

        Sites named in config.toml are written to the store at start (the file wins for
        them); sites created or changed later through the API are kept in the store.
        """
        for spec in config_sites:
            await self.store.save_site(spec.id, spec.model_dump(), self.clock.now())
        for raw in await self.store.list_sites():
            self.directory = self.directory.with_site(SiteSpec.model_validate(raw))
        self._models = {k: ModelRecord.from_json(v)
                        for k, v in (await self.store.list_model_records()).items()}
        for record in await self.store.list_charge_points():
            cp = self.live.charger(record.cp_id)
            cp.firmware = record.firmware
            self._model_of[record.cp_id] = model_key(record.vendor, record.model,
                                                     record.firmware, record.cp_id)
            # Verdicts hold for the firmware they were reached on; an update may change them.
            cp.ignores_profiles = _on_firmware(record.capabilities.get("ignores_profiles"),
                                               record.firmware)
            cp.follows_profiles = not cp.ignores_profiles and _on_firmware(
                record.capabilities.get("follows_profiles"), record.firmware)
            for conn in record.connectors:
                if conn.connector_id > 0:
                    cp.connector(conn.connector_id).status = conn.status
        for session in await self.store.list_sessions(active_only=True):
            c = self.live.charger(session.cp_id).connector(session.connector_id or 1)
            c.tx_id = session.ocpp_tx_id
        for row in await self.store.list_external_limits(self.clock.now()):
            self._externals.setdefault(row["node_id"], []).append(ExternalLimit(
                LimitValue(row["power_kw"], row["current_a"]), parse_iso(row["end"]),
                None if row["start"] is None else parse_iso(row["start"])))
        self._runner = asyncio.create_task(self._run(), name="planner")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
            self._runner = None

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for site_id in self.directory.specs:
                self._loop(site_id)
            await asyncio.Event().wait()

    def _loop(self, site_id: str) -> _SiteLoop:
        if site_id not in self._loops:
            self._loops[site_id] = _SiteLoop()
            if self._tasks is not None:
                self._tasks.create_task(self._site_loop(site_id), name=f"plan-{site_id}")
        return self._loops[site_id]

    # -- triggers ------------------------------------------------------------------------------

    def on_event(self, event: DomainEvent) -> None:
        """Bus listener: fold the event into the live state and ask for a re-plan."""
        if isinstance(event, Booted):
            self._model_of[event.cp_id] = model_key(event.vendor, event.model, event.firmware,
                                                    event.cp_id)
        conn = self.live.apply(event)
        urgent = False
        if conn is not None and isinstance(event, Metered | TransactionEvent201):
            urgent = self._check_follows_limit(conn)
            if not urgent:
                self._check_proven(conn)
            self._track_headroom(conn)
        started = isinstance(event, TransactionStarted) or (
            isinstance(event, TransactionEvent201) and event.event_type == "Started")
        if conn is not None and started and self._tasks is not None:
            # A start carries no power reading; ask for one now rather than a meter interval
            # later, so a charger that ignores its floor is seen (and counted) sooner.
            self._tasks.create_task(self._ask_meter_values(event.cp_id, conn.connector_id))
        site_id = self.directory.placement(event.cp_id).site_id
        self.request(site_id, type(event).__name__, urgent=urgent)

    async def _ask_meter_values(self, cp_id: str, connector_id: int) -> None:
        """Ask for a reading at a session's start, and once more if none showed power yet: a
        car that was still ramping up when the first was taken would otherwise go unseen for
        a whole meter interval."""
        started = self.clock.now()
        for attempt in range(2):
            if attempt:
                await self.clock.sleep(RAMP_RECHECK_S)
                c = self.live.charger(cp_id).connectors.get(connector_id)
                if c is None or c.tx_id is None or (
                        c.measured_at is not None and c.measured_at >= started
                        and (c.measured_w or 0.0) > 0.0):
                    return
            try:
                result = await self.commands.trigger_message(cp_id, "MeterValues", connector_id)
            except Exception:  # a child of the planner's task group: never end the site loops
                log.exception("meter_values_not_triggered", cp_id=cp_id)
                return
            if not result.ok:
                log.info("meter_values_not_triggered", cp_id=cp_id, status=result.status)
                return

    def request(self, site_id: str, trigger: str, *, urgent: bool = False) -> None:
        """Ask for a re-plan of `site_id`; requests within the coalescing window merge.

        An urgent request (a connector draws more than it may) skips the window.
        """
        loop = self._loop(site_id)
        loop.triggers.append(trigger)
        loop.urgent = loop.urgent or urgent
        if urgent:
            loop.urgent_wake.set()
        loop.wake.set()

    async def update_site(self, spec: SiteSpec) -> None:
        """Store a new or changed site (limits, groups, chargers) and re-plan it at once."""
        await self.store.save_site(spec.id, spec.model_dump(), self.clock.now())
        self.directory = self.directory.with_site(spec)
        # Chargers may have moved between sites: every site re-plans.
        for site_id in self.directory.specs:
            self.request(site_id, "config_change")

    async def set_external_limit(self, node_id: str, power_kw: float | None,
                                 current_a: float | None, end: datetime,
                                 start: datetime | None = None) -> None:
        """An external limit on a site or group until `end`; stored, then re-planned."""
        await self.store.add_external_limit(node_id, power_kw, current_a, start, end,
                                            self.clock.now())
        self._externals.setdefault(node_id, []).append(
            ExternalLimit(LimitValue(power_kw, current_a), end, start))
        site_id = self._site_of_node(node_id)
        self.request(site_id, "external_limit")

    def _site_of_node(self, node_id: str) -> str:
        for spec in self.directory.specs.values():
            if spec.id == node_id or any(g.id == node_id for g in spec.groups):
                return spec.id
        raise KeyError(f"no site or group {node_id!r}")

    async def wait_planned(self, site_id: str) -> None:
        """Wait for the next completed plan of `site_id` (tests and the CLI use this)."""
        loop = self._loop(site_id)
        loop.planned.clear()
        await loop.planned.wait()

    @staticmethod
    def _track_headroom(c: ConnectorState) -> None:
        """Remember since when a car draws well (1 kW) below its limit; forget it once it draws
        within 0.5 kW of it. The gap keeps a lent limit (measured + lend margin) lent while the
        car keeps drawing what it drew, and returns it when the car ramps up."""
        if c.measured_w is None or c.held_tx_w is None or c.measured_at is None:
            return
        if c.measured_w < c.held_tx_w - 1000.0:
            if c.below_since is None:
                c.below_since = c.measured_at
        elif c.measured_w >= c.held_tx_w - 500.0:
            c.below_since = None

    def _check_follows_limit(self, c: ConnectorState) -> bool:
        """Closed loop: a charger drawing well above an accepted limit is flagged.

        The limit is the one in force: the TxProfile while it is valid, else the accepted floor
        (a charger that ignores profiles from the first second of a session is pinned at its
        measured draw before any TxProfile goes out, and must be flagged all the same).
        Returns True when the connector draws more than it may: the site must re-plan now.
        """
        if c.tx_id is None or c.measured_w is None:
            return False
        limit = self._held_w(c, c.measured_at or self.clock.now())
        if limit is None or c.measured_w <= limit + self.config.ignore_margin_kw * 1000.0:
            c.over_limit_samples = 0
            return False
        if c.ignoring:
            return False  # already counted at its draw
        c.over_limit_samples += 1
        if c.over_limit_samples >= self.config.ignore_after_samples:
            log.warning("charger_ignores_profile", cp_id=c.cp_id,
                        connector_id=c.connector_id, limit_w=limit, measured_w=c.measured_w)
            self._flag_ignoring(self.live.charger(c.cp_id))
        return True

    def _check_proven(self, c: ConnectorState) -> None:
        """A charger whose car draws what a limit below the connector's maximum allows follows
        limits: its guard goes (DESIGN section 3), and stays gone on this firmware."""
        cp = self.live.charger(c.cp_id)
        if cp.follows_profiles or cp.ignores_profiles or c.tx_id is None or \
                c.measured_w is None:
            return
        limit = self._held_w(c, c.measured_at or self.clock.now())
        margin = self.config.ignore_margin_kw * 1000.0
        top = self.directory.connector(c.cp_id, c.connector_id).max_w()
        # Pressing against a limit that binds: a car drawing less than its limit proves nothing.
        if limit is None or limit + margin >= top or abs(c.measured_w - limit) > margin / 2:
            return
        cp.follows_profiles = True
        log.info("charger_follows_profiles", cp_id=cp.cp_id, connector_id=c.connector_id,
                 limit_w=limit, measured_w=c.measured_w)
        if self._tasks is not None:
            self._tasks.create_task(self._remember(
                cp.cp_id, "follows_profiles", cp.firmware or ""))

    def _flag_ignoring(self, cp: ChargerState) -> None:
        """Count every connector of `cp` at what it draws from now on, and remember it: after a
        restart or a reboot on the same firmware its next car is counted at its maximum from
        the first second."""
        cp.ignores_profiles = True
        cp.follows_profiles = False
        for c in cp.connectors.values():
            c.ignoring = True
        if self._tasks is not None:
            self._tasks.create_task(self._remember(cp.cp_id, "ignores_profiles",
                                                   cp.firmware or ""))

    async def _remember(self, cp_id: str, verdict: str, firmware: str) -> None:
        """Store a verdict on the charger for its firmware (the other one is cleared)."""
        other = "follows_profiles" if verdict == "ignores_profiles" else "ignores_profiles"
        # A child of the planner's task group: an error here must not end every site's loop.
        try:
            await self.store.save_capabilities(
                cp_id, {verdict: {"firmware": firmware}, other: None})
        except Exception:
            log.exception("charger_verdict_not_saved", cp_id=cp_id, verdict=verdict)

    # -- the loop ------------------------------------------------------------------------------

    async def _site_loop(self, site_id: str) -> None:
        loop = self._loops[site_id]
        while True:
            await self._wait(loop)
            if not loop.urgent:
                await self._coalesce(loop)
            loop.wake.clear()
            loop.urgent = False
            loop.urgent_wake.clear()
            triggers, loop.triggers = loop.triggers, []
            trigger = ",".join(sorted(set(triggers))) or "timer"
            try:
                await self.plan_site(site_id, trigger)
            except Exception:  # the edge of the site's task: keep planning the next time
                log.exception("plan_failed", site_id=site_id)
            loop.plans += 1
            loop.planned.set()

    async def _coalesce(self, loop: _SiteLoop) -> None:
        """Let requests gather for the coalescing window, unless an urgent one cuts it short."""
        await _first_done(loop.urgent_wake.wait(), self.clock.sleep(self.config.coalesce_s))

    async def _wait(self, loop: _SiteLoop) -> None:
        if loop.wake.is_set():
            return
        waiter = asyncio.ensure_future(loop.wake.wait())
        due = [] if loop.next_due is None else [self.clock.sleep(
            max(0.0, (loop.next_due - self.clock.now()).total_seconds()))]
        if waiter not in await _first_done(waiter, *due):
            loop.triggers.append("timer")

    # -- one plan ------------------------------------------------------------------------------

    def _node_limits(self, site_id: str, node_id: str, specs: list[LimitSpec],
                     static_kw: float | None, static_a: float | None) -> NodeLimits:
        tz = self.directory.specs[site_id].timezone
        default = LimitValue(static_kw, static_a)
        scheduled, capacities, drs = [], [], []
        externals = list(self._externals.get(node_id, []))
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
                    drs.append(DrEvent(start, end, value))
                else:
                    externals.append(ExternalLimit(value, end, start))
        return NodeLimits(default=default, scheduled=tuple(scheduled),
                          capacities=tuple(capacities), dr_events=tuple(drs),
                          externals=tuple(externals), timezone=tz)

    def _resolve(self, site_id: str, now: datetime,
                 horizon: timedelta) -> tuple[dict[str, NodeLimit], dict[str, Resolved]]:
        spec = self.directory.specs[site_id]
        statics: dict[str, tuple[float | None, float | None]] = {
            site_id: (spec.max_power_kw, spec.max_current_a)}
        for g in spec.groups:
            statics[g.id] = (g.max_power_kw, g.max_current_a)
        out: dict[str, NodeLimit] = {}
        resolved: dict[str, Resolved] = {}
        for node_id, specs in self.directory.limit_specs(site_id).items():
            kw, amps = statics[node_id]
            r = lookahead(self._node_limits(site_id, node_id, specs, kw, amps), now, horizon)
            resolved[node_id] = r
            out[node_id] = r.as_node_limit()
        return out, resolved

    def _chargers(self, site_id: str) -> list[ChargerState]:
        return [cp for cp in self.live.chargers.values()
                if cp.connectors and self.directory.placement(cp.cp_id).site_id == site_id]

    def _held_for(self, key: str) -> _Held:
        if key not in self._held:
            self._held[key] = _Held()
        return self._held[key]

    @staticmethod
    def _held_w(c: ConnectorState, at: datetime) -> float | None:
        """The accepted limit in force at `at`: the session's TxProfile while valid, else the
        floor (None: the charger took nothing from us)."""
        if c.tx_id is not None and c.held_tx_w is not None and (
                c.held_tx_valid_to is None or c.held_tx_valid_to > at):
            return c.held_tx_w
        return c.held_floor_w

    def _current_w(self, c: ConnectorState, conn: Connector, now: datetime) -> float:
        """What the connector may draw on its own right now, as far as we know."""
        held = self._held_w(c, now)
        return conn.max_w() if held is None else held

    def _demand(self, cp: ChargerState, c: ConnectorState, conn: Connector,
                now: datetime) -> Demand:
        pinned: float | None = None
        margin = self.config.ignore_margin_kw * 1000.0
        if not cp.online:
            pinned = self._current_w(c, conn, now)
        elif c.measured_w is not None and c.measured_w > self._current_w(c, conn, now) + margin:
            # Drawing more than we allowed: count what it draws now, before it is even flagged.
            pinned = c.measured_w
        elif c.ignoring:
            # Until its first meter value a known ignorer is counted at its maximum: the car
            # draws what it can from the first second, whatever the charger accepted.
            pinned = conn.max_w() if c.measured_w is None else \
                max(c.measured_w, self._current_w(c, conn, now))
        elif c.pinned_w is not None:
            pinned = c.pinned_w
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
        # How long it has drawn below its limit (not: how old the last meter value is).
        below_s = 0.0 if c.below_since is None else max(0.0, (now - c.below_since).total_seconds())
        return Demand(connector_id=conn.id, priority=conn.priority, vehicle_max_kw=vehicle_kw,
                      energy_to_charge_kwh=energy, departure=departure,
                      measured_w=c.measured_w, below_limit_for_s=below_s, pinned_w=pinned,
                      transaction_id=c.tx_id)

    def _guards(self, states: dict[str, tuple[ChargerState, ConnectorState]],
                by_key: dict[str, Connector], reserve: dict[str, float]) -> dict[str, float]:
        """Room to keep for chargers not yet seen following a limit (`Snapshot.guards`).

        A car on such a charger may draw its maximum from its first second, whatever the
        charger accepted. Its session is guarded until a reading shows it follows; of the idle
        ones, the site keeps room for the largest, so the next car to arrive fits either way.
        """
        if not self.config.guard_unproven:
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

    async def _capabilities(self, cps: list[ChargerState]) -> dict[str, Capabilities]:
        wanted = {cp.cp_id for cp in cps}
        out: dict[str, Capabilities] = {}
        for record in await self.store.list_charge_points():
            if record.cp_id not in wanted:
                continue
            spec = self.directory.charger_spec(record.cp_id)
            units = record.capabilities.get("rate_units") or ["A", "W"]
            unit = spec.unit or ("A" if "A" in units else "W")
            stack = record.capabilities.get("max_stack_level")
            # What the model really took beats what it reported (no answers yet: as reported).
            _key, learned = self._model_record(record.cp_id)
            unit, phases = learned.choose(unit, ac=True)  # type: ignore[arg-type]
            out[record.cp_id] = Capabilities(
                preferred_unit=unit,  # type: ignore[arg-type]
                max_stack_level=int(stack) if stack else 8,
                supports_number_phases=phases,
                tx_preset=TX_PRESET,
                tx_default_preset=TX_DEFAULT_PRESET,
            )
        return out

    async def plan_site(self, site_id: str, trigger: str) -> Allocation | None:
        """Plan one site now and dispatch the result; returns the allocation used."""
        now = self.clock.now()
        cfg = self.config
        validity = timedelta(seconds=cfg.profile_validity_s)
        cps = self._chargers(site_id)
        loop = self._loops[site_id]
        if not cps:
            loop.next_due = None
            return None
        limits, resolved = self._resolve(site_id, now, validity + timedelta(seconds=cfg.coalesce_s))
        floor_limits, _ = self._resolve(site_id, now, FLOOR_HORIZON)
        site = self.directory.site(site_id)
        connectors: list[Connector] = []
        demands: list[Demand] = []
        states: dict[str, tuple[ChargerState, ConnectorState]] = {}
        for cp in cps:
            for n, c in sorted(cp.connectors.items()):
                conn = self.directory.connector(cp.cp_id, n)
                connectors.append(conn)
                states[conn.id] = (cp, c)
                held = self._held_for(conn.id)
                if c.pinned_w is not None and held.retry_at is not None and held.retry_at <= now:
                    # Time to try again (idle connectors too: a rejected floor is retried).
                    c.pinned_w, held.retry_at = None, None
                if c.tx_id is not None:
                    demands.append(self._demand(cp, c, conn, now))
        base = Snapshot(site=site, connectors=tuple(connectors), sessions=tuple(demands),
                        groups=self.directory.groups(site_id),
                        charge_points=tuple(self.directory.charge_point(cp.cp_id) for cp in cps),
                        limits=limits, now=now)
        target_floors = compute_floors(replace(base, limits=floor_limits, sessions=()))
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
            # once in a session it is pinned at its draw (Planner._demand) instead.
            held = c.held_floor_w if c.held_floor_w is not None and not c.ignoring \
                else conn.max_w()
            reserve[key] = max(held, target_floors.get(key, 0.0))
        snapshot = replace(base, floors=reserve, guards=self._guards(states, by_key, reserve))
        allocation = await asyncio.to_thread(
            allocate, snapshot, time_limit_s=cfg.solve_time_limit_s, workers=cfg.workers)
        snapshot, allocation = await self._hold_small_lowerings(snapshot, allocation, states, now)
        if allocation.managed:
            await self._dispatch(site_id, snapshot, allocation, target_floors, states, now)
        await self._record(site_id, trigger, now, resolved, snapshot, allocation)
        loop.next_due = self._next_due(site_id, resolved, now)
        return allocation

    async def _hold_small_lowerings(
            self, snapshot: Snapshot, allocation: Allocation,
            states: dict[str, tuple[ChargerState, ConnectorState]],
            now: datetime) -> tuple[Snapshot, Allocation]:
        """Keep TxProfiles whose cut would be below the hysteresis, if the site allows it.

        Lending follows a tapering car down in small steps; each would be a flash write. The
        connectors are re-planned as pinned at what they hold, and that plan is used only if
        it fits every limit, so a cut needed for safety still goes out at once.
        """
        conns = {c.id: c for c in snapshot.connectors}
        small: dict[str, float] = {}
        for ca in allocation.connectors:
            cp, c = states[ca.connector_id]
            conn = conns[ca.connector_id]
            if not ca.active or ca.pinned or not cp.online or c.held_tx_w is None:
                continue
            # Due for renewal (or lapsed): it goes out anyway, at the new value. Held, it would
            # not be renewed at all and the car would drop to its floor.
            if c.held_tx_valid_to is not None and (c.held_tx_valid_to - now).total_seconds() \
                    <= self.policy.renew_before_s:
                continue
            band = self.policy.hysteresis_w
            if conn.number_phases is not None:
                band = min(band, conn.w_at_amps(self.policy.hysteresis_a))
            if 0 < c.held_tx_w - ca.power_w < band:
                small[ca.connector_id] = c.held_tx_w
        if not small:
            return snapshot, allocation
        held = replace(snapshot, sessions=tuple(
            replace(d, pinned_w=small[d.connector_id]) if d.connector_id in small else d
            for d in snapshot.sessions))
        again = await asyncio.to_thread(
            allocate, held, time_limit_s=self.config.solve_time_limit_s,
            workers=self.config.workers)
        if again.overloaded:
            return snapshot, allocation
        return held, again

    def _next_due(self, site_id: str, resolved: dict[str, Resolved],
                  now: datetime) -> datetime | None:
        """The earliest limit boundary, TxProfile renewal, retry, or deferred raise."""
        due: list[datetime] = [r.next_boundary for r in resolved.values()
                               if r.next_boundary is not None]
        # Plan a little before a boundary so a drop is in force at its start.
        due = [d - timedelta(seconds=self.config.profile_validity_s) for d in due]
        for cp in self._chargers(site_id):
            for n, c in cp.connectors.items():
                key = connector_key(cp.cp_id, n)
                held = self._held_for(key)
                if c.tx_id is not None and c.held_tx_valid_to is not None:
                    due.append(c.held_tx_valid_to - timedelta(seconds=self.policy.renew_before_s))
                if held.retry_at is not None:
                    due.append(held.retry_at)
                if c.last_sent_at is not None and c.tx_id is not None:
                    due.append(c.last_sent_at + timedelta(seconds=self.policy.min_interval_s))
        future = [d for d in due if d > now]
        return min(future) if future else None

    # -- dispatch ------------------------------------------------------------------------------

    def _synthetic(self, like: ChargingProfile, watts: float, conn: Connector) -> ChargingProfile:
        """`like` with one period at `watts`, in its unit: what the charger holds now."""
        unit = like.schedule.unit
        limit = watts / conn.w_at_amps(1.0) if unit == "A" else watts
        limit = math.floor(limit * 10 + 1e-9) / 10
        period = SchedulePeriod(0, limit, like.schedule.periods[0].number_phases)
        return replace(like, schedule=replace(like.schedule, periods=(period,)))

    def _profile_w(self, profile: ChargingProfile, conn: Connector, at: datetime) -> float:
        limit = profile.limit_at(at)
        if limit is None:
            limit = profile.schedule.periods[0].limit
        return conn.w_at_amps(limit) if profile.schedule.unit == "A" else limit

    async def _dispatch(self, site_id: str, snapshot: Snapshot, allocation: Allocation,
                        target_floors: dict[str, float], states: dict[str, tuple],
                        now: datetime) -> None:
        conns = {c.id: c for c in snapshot.connectors}
        cps = [cp for cp, _ in states.values()]
        caps = await self._capabilities(list({cp.cp_id: cp for cp in cps}.values()))
        with_floors = replace(allocation, connectors=tuple(
            replace(ca, floor_w=target_floors.get(ca.connector_id, 0.0))
            for ca in allocation.connectors))
        validity = int(self.config.profile_validity_s)
        profiles = build_profiles(with_floors, snapshot, caps, now=now, validity_s=validity,
                                  plan_validity_s=validity)
        sends: list[_Send] = []
        for profile in profiles:
            key = profile.connector_id
            cp, c = states[key]
            conn = conns[key]
            if not cp.online:
                continue
            held = self._held_for(key)
            new_w = self._profile_w(profile, conn, now)
            if profile.purpose == "TxDefaultProfile":
                current = c.held_floor_w if c.held_floor_w is not None else conn.max_w()
                if c.pinned_w is not None:
                    continue  # refused or unanswered: retried at held.retry_at, not every plan
                if held.floor is not None and c.held_floor_w is not None and \
                        held.floor.schedule.periods == profile.schedule.periods:
                    continue
                sends.append(_Send(key, cp.cp_id, c.connector_id, profile, new_w, current))
                continue
            if c.tx_id is None or c.pinned_w is not None or c.ignoring:
                continue
            current = self._current_w(c, conn, now)
            previous = held.tx if (held.tx is not None and c.held_tx_w is not None) \
                else self._synthetic(profile, current, conn)
            if new_w < current - 1e-6 or should_send(previous, profile, c.last_sent_at, now,
                                                      self.policy):
                sends.append(_Send(key, cp.cp_id, c.connector_id, profile, new_w, current))
        lowering = [s for s in sends if s.lowering]
        raising = [s for s in sends if not s.lowering]
        results = await asyncio.gather(*(self._send(s, states, now) for s in lowering))
        if not all(results):
            self.request(site_id, "lowering_failed")
            # Raises were planned assuming every lowered TxProfile took hold: if one did not,
            # re-plan around it first. A floor that did not take does not matter here: the
            # plan reserved the larger of the held and the new floor for idle connectors.
            if not all(ok for s, ok in zip(lowering, results, strict=True)
                       if s.profile.purpose == "TxProfile"):
                return
        await asyncio.gather(*(self._send(s, states, now) for s in raising))

    async def _send(self, send: _Send, states: dict[str, tuple], now: datetime) -> bool:
        cp, c = states[send.key]
        version = self.commands.version_of(cp.cp_id)
        if version is None and cp.protocol is not None:
            # Gone offline since the plan was made: translate for what it last spoke, and
            # Commands.send records the command as failed. (Taken as 1.6, a 2.0.1 session's
            # transaction id failed int() and the exception ended the whole plan.)
            version = v201.VERSION if cp.protocol.endswith(v201.VERSION) else v16.VERSION
        translate = v16.set_charging_profile if version in (None, v16.VERSION) \
            else v201.set_charging_profile
        action, payload = translate(send.connector_id, send.profile)
        result = await self.commands.send(cp.cp_id, action, payload)
        if result.status in ("accepted", "rejected"):
            await self._learn(cp.cp_id, send.profile, result.ok)
        held = self._held_for(send.key)
        if send.profile.purpose == "TxProfile":
            # The rate cap is about repeated updates of one session's limit, not its floor.
            c.last_sent_at = now
        if result.ok:
            if send.profile.purpose == "TxDefaultProfile":
                c.held_floor_w, held.floor = send.new_w, send.profile
            else:
                c.held_tx_w, held.tx = send.new_w, send.profile
                c.held_tx_valid_to = send.profile.valid_to
                c.over_limit_samples = 0
                if not cp.composite_verified:
                    await self._verify_composite(cp, c, send)
            return True
        # Not taken: count the connector at whichever of old and new is higher until it answers.
        c.pinned_w = max(send.current_w, send.new_w)
        held.retry_at = now + timedelta(seconds=RETRY_AFTER_S)
        log.warning("profile_not_taken", cp_id=cp.cp_id, connector_id=send.connector_id,
                    purpose=send.profile.purpose, status=result.status,
                    counted_w=c.pinned_w)
        return False

    def _model_record(self, cp_id: str) -> tuple[str, ModelRecord]:
        """The key and (possibly new, empty) record of the model `cp_id` booted as."""
        key = self._model_of.get(cp_id) or model_key(None, None, None, cp_id)
        return key, self._models.setdefault(key, ModelRecord())

    async def _learn(self, cp_id: str, profile: ChargingProfile, accepted: bool) -> None:
        """Count the charger model's answer; store the record when the next choice changes."""
        key, record = self._model_record(cp_id)
        first = not record.answers
        changed = record.learn(profile, accepted)
        if changed:
            log.info("charger_model_learned", cp_id=cp_id, model=key,
                     purpose=profile.purpose, unit=profile.schedule.unit, accepted=accepted)
        # Written on every change of verdict, and on first sight so the record is visible.
        if changed or first:
            await self.store.save_model_record(key, record.to_json(), self.clock.now())

    async def _verify_composite(self, cp: ChargerState, c: ConnectorState, send: _Send) -> None:
        """Ask the charger what it will really allow; flag it if that exceeds what it took.

        Done once per charger: a charger that reports our limit in its composite schedule is
        trusted to apply it; metering keeps checking that it does.
        """
        unit = send.profile.schedule.unit
        result = await self.commands.get_composite_schedule(cp.cp_id, send.connector_id, 60, unit)
        if not result.ok or result.response is None:
            return  # not supported or refused: metering alone has to tell
        schedule = result.response.get("chargingSchedule") or result.response.get("schedule")
        periods = (schedule or {}).get("chargingSchedulePeriod") or []
        if not periods:
            return
        limit = float(periods[-1]["limit"] if len(periods) > 1 else periods[0]["limit"])
        sent = send.profile.schedule.periods[0].limit
        tolerance = self.policy.hysteresis_a if unit == "A" else self.policy.hysteresis_w
        if limit > sent + tolerance:
            log.warning("charger_composite_ignores_profile", cp_id=cp.cp_id,
                        connector_id=c.connector_id, sent=sent, composite=limit, unit=unit)
            self._flag_ignoring(cp)
            self.request(self.directory.placement(cp.cp_id).site_id, "composite_mismatch",
                         urgent=True)
        else:
            cp.composite_verified = True
            key, record = self._model_record(cp.cp_id)
            if not record.composite_matches:
                record.composite_matches = True
                await self.store.save_model_record(key, record.to_json(), self.clock.now())

    async def _record(self, site_id: str, trigger: str, now: datetime,
                      resolved: dict[str, Resolved], snapshot: Snapshot,
                      allocation: Allocation) -> None:
        site_limit = resolved.get(site_id)
        inputs = {
            "connectors": len(snapshot.connectors),
            "sessions": len(snapshot.sessions),
            "pinned": [d.connector_id for d in snapshot.sessions if d.pinned_w is not None],
            "limits": {k: {"power_kw": v.power_kw, "current_a": v.current_a, "source": v.source}
                       for k, v in snapshot.limits.items()},
        }
        result = {ca.connector_id: {"power_w": ca.power_w, "floor_w": ca.floor_w,
                                    "active": ca.active, "pinned": ca.pinned}
                  for ca in allocation.connectors}
        await self.store.record_plan(
            site_id, now, trigger,
            site_limit.value.power_kw if site_limit else None,
            site_limit.value.current_a if site_limit else None,
            site_limit.source.value if site_limit else "default",
            allocation.status, allocation.solve_time_s, inputs, result,
        )
