"""Per-site planning: coalesce triggers, snapshot the site, allocate, and dispatch safely.

`Planner` is the coordinator: it restores state at start, folds committed domain events into
the live state and asks for re-plans; one plan is snapshot -> allocate -> dispatch -> record.
The parts live in `csms.planning` (see its docstring), one concern each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple

import structlog
from pydantic import ValidationError

from csms.charger_models import ModelRecord, model_key
from csms.clock import Clock, parse_iso
from csms.commands import Commands
from csms.config import LoadConfig, SiteSpec
from csms.domain import (
    Booted,
    DomainEvent,
    EvChargingNeeds,
    EvChargingSchedule,
    Metered,
    TransactionEvent201,
    TransactionStarted,
)
from csms.live import ChargerState, ConnectorState, LiveState, connector_of_tx
from csms.planning.admission import CLOSED_KEY, Admission, worst_case_w
from csms.planning.context import PlanContext, PresetsFor, TagPriority
from csms.planning.dispatch import Dispatcher
from csms.planning.held import Held
from csms.planning.loop import SiteLoop, SiteLoops
from csms.planning.models import ModelBook
from csms.planning.placed import Placed
from csms.planning.records import record_plan
from csms.planning.snapshot import Snapshots
from csms.planning.verdicts import Verdicts, is_lent, lends_more, on_firmware, reading_inputs
from csms.plausible import is_declared
from csms.sites import ChargerFacts, SiteDirectory, connector_key
from csms.store import Store
from loadmgmt.allocator import allocate
from loadmgmt.limits import ExternalLimit, LimitValue, Resolved
from loadmgmt.model import Allocation, Connector, FleetCarry
from loadmgmt.profiles import EvSchedule, SendPolicy, ev_schedule_excess

log = structlog.get_logger("csms.planner")


def _schedule_w(limit: float, unit: str, phases: int | None, conn: Connector) -> float:
    """A schedule limit in watts on `conn` (amps per phase on `phases`, else all of its own)."""
    if unit != "A":
        return limit
    watts = conn.w_at_amps(limit)
    own = conn.number_phases
    return watts * phases / own if phases and own and phases < own else watts

# A reading this many times the connector's maximum is a meter or firmware fault, not load.
IMPLAUSIBLE_FACTOR = 1.5
# The most a connector was seen drawing is stored when it grows by at least this (W).
LEARN_STEP_W = 100.0


def _via(part: str, name: str) -> Any:
    """An attribute of the planner that lives on one of its parts (read and write)."""
    return property(
        lambda self: getattr(getattr(self, part), name),
        lambda self, value: setattr(getattr(self, part), name, value),
    )


class Reading(NamedTuple):
    """A periodic reading's charger and connector, and its site's lend delay."""

    cp: ChargerState
    c: ConnectorState
    lend_after_s: float


class Planner:
    """Listens to committed domain events and keeps every site's chargers within its limits."""

    # The shared state lives on the parts; these names keep it reachable where it always was.
    directory: SiteDirectory = _via("_ctx", "directory")
    store: Store = _via("_ctx", "store")
    commands: Commands = _via("_ctx", "commands")
    clock: Clock = _via("_ctx", "clock")
    config: LoadConfig = _via("_ctx", "config")
    live: LiveState = _via("_ctx", "live")
    policy: SendPolicy = _via("_ctx", "policy")
    _held: dict[str, Held] = _via("_ctx", "held")
    _tasks: asyncio.TaskGroup | None = _via("_ctx", "tasks")
    _loops: dict[str, SiteLoop] = _via("_site_loops", "loops")
    _externals: dict[str, list[ExternalLimit]] = _via("_snapshots", "externals")
    _models: dict[str, ModelRecord] = _via("_model_book", "records")
    _model_of: dict[str, str] = _via("_model_book", "model_of")

    def __init__(self, directory: SiteDirectory, store: Store, commands: Commands, clock: Clock,
                 config: LoadConfig, *, tag_priority: TagPriority | None = None,
                 presets: PresetsFor | None = None) -> None:
        self._ctx = PlanContext(directory, store, commands, clock, config,
                                tag_priority=tag_priority, presets=presets)
        self._site_loops = SiteLoops(self._ctx, self.plan_site)
        self._snapshots = Snapshots(self._ctx)
        self._model_book = ModelBook(self._ctx)
        self._verdicts = Verdicts(self._ctx, self._model_book, self.request)
        # Hear each charger found unlimitable (cp_id, firmware, reason): alerts.
        self.on_uncontrollable = self._verdicts.on_uncontrollable
        # site -> node -> amounts, of the site's last plan (nodes it let draw over their limit)
        self._overloaded: dict[str, dict[str, dict[str, float]]] = {}
        # Per site, what the last fleet plan hands to the next (the allocator keeps no state).
        self._fleet_carry: dict[str, FleetCarry] = {}
        # Hear each plan's overloads (and the one that clears them): alerts, webhooks.
        self.on_overload: list[Callable[[str, dict[str, dict[str, float]]], None]] = []
        # site -> (what its unlimitable connectors may draw at once, its limit) in W.
        self.unlimitable: dict[str, tuple[float, float | None]] = {}
        # site -> node -> the kW limit its last plan (since start) used; the networks view.
        self.limits_used: dict[str, dict[str, float | None]] = {}
        self._admission = Admission(self._ctx)
        self._dispatcher = Dispatcher(self._ctx, self._model_book, self._verdicts, self.request)
        self._runner: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, config_sites: list[SiteSpec],
                    overrides: Mapping[str, dict[str, Any]] | None = None) -> None:
        """Restore sites, chargers, open sessions and external limits; one loop per site.

        Sites named in config.toml are written to the store at start, with what the API
        changed on them (`overrides`, by site) laid over the file's values; sites created
        through the API are kept in the store.
        """
        for spec in config_sites:
            spec = self._overridden(spec, (overrides or {}).get(spec.id))
            await self.store.save_site(spec.id, spec.model_dump(), self.clock.now())
        for raw in await self.store.list_sites():
            self.directory = self.directory.with_site(SiteSpec.model_validate(raw))
        self.directory = self.directory.with_chargers(await self.store.list_charger_facts())
        self._models = {k: ModelRecord.from_json(v)
                        for k, v in (await self.store.list_model_records()).items()}
        for record in await self.store.list_charge_points():
            cp = self.live.charger(record.cp_id)
            cp.firmware = record.firmware
            cp.last_seen = record.last_seen
            self._model_of[record.cp_id] = model_key(record.vendor, record.model,
                                                     record.firmware, record.cp_id)
            # Verdicts hold for the firmware they were reached on; an update may change them.
            cp.ignores_profiles = on_firmware(record.capabilities.get("ignores_profiles"),
                                              record.firmware)
            uncontrollable = record.capabilities.get("uncontrollable")
            if on_firmware(uncontrollable, record.firmware):
                cp.uncontrollable = str(uncontrollable.get("reason") or "uncontrollable")
                cp.uncontrollable_by = "stored answer"
            cp.follows_profiles = not cp.ignores_profiles and on_firmware(
                record.capabilities.get("follows_profiles"), record.firmware)
            for conn in record.connectors:
                if conn.connector_id > 0 and is_declared(record.capabilities, conn.connector_id):
                    cp.connector(conn.connector_id).status = conn.status
            for n in record.capabilities.get(CLOSED_KEY) or ():
                if isinstance(n, int) and n > 0:
                    cp.connector(n).closed = True
            for n, w in (record.capabilities.get("max_seen_w") or {}).items():
                if str(n).isdigit() and isinstance(w, int | float) and int(n) > 0:
                    cp.connector(int(n)).max_seen_w = float(w)
        for session in await self.store.list_sessions(active_only=True):
            c = self.live.charger(session.cp_id).connector(session.connector_id or 1)
            c.tx_id = session.ocpp_tx_id
            c.id_tag = session.id_tag
        for row in await self.store.list_external_limits(self.clock.now()):
            self._externals.setdefault(row["node_id"], []).append(ExternalLimit(
                LimitValue(row["power_kw"], row["current_a"]), parse_iso(row["end"]),
                None if row["start"] is None else parse_iso(row["start"])))
        self._runner = asyncio.create_task(self._run(), name="planner")

    def _plausible(self, c: ConnectorState, previous_w: float | None) -> bool:
        """A reading above what the connector can carry (by half again) cannot be true: it is
        dropped, so it neither flags the charger nor takes room from the others."""
        if c.measured_w is None:
            return True
        top = self.directory.connector(c.cp_id, c.connector_id).max_w()
        if c.measured_w <= top * IMPLAUSIBLE_FACTOR:
            return True
        log.warning("reading_implausible", cp_id=c.cp_id, connector_id=c.connector_id,
                    measured_w=c.measured_w, connector_max_w=top)
        c.measured_w = previous_w
        return False

    def _learn_max(self, c: ConnectorState) -> None:
        """Keep the most the connector has been measured drawing (what a car on it counts at
        where it cannot be limited); stored with the charger when it grows by a step."""
        w = c.measured_w
        if w is None or w <= (c.max_seen_w or 0.0):
            return
        stored, c.max_seen_w = c.max_seen_w, w
        if self._tasks is None or (stored is not None and w - stored < LEARN_STEP_W):
            return
        cp = self.live.chargers[c.cp_id]
        seen = {str(n): x.max_seen_w for n, x in cp.connectors.items()
                if x.max_seen_w is not None}
        self._tasks.create_task(self.store.save_capabilities(c.cp_id, {"max_seen_w": seen}))

    def _say_unlimitable(self, site_id: str, worst_w: float,
                         resolved: dict[str, Resolved]) -> None:
        """Flag (at start and on every change) a site whose unlimitable chargers alone could
        draw more than its limit; `unlimitable` keeps the figures for the operator's views."""
        limit = resolved.get(site_id)
        limit_w = None if limit is None or limit.value.power_kw is None \
            else limit.value.power_kw * 1000.0
        now = (round(worst_w, 1), limit_w)
        if self.unlimitable.get(site_id) == now:
            return
        self.unlimitable[site_id] = now
        if limit_w is not None and worst_w > limit_w:
            log.warning("site_unlimitable_can_exceed_limit", site_id=site_id,
                        worst_case_w=round(worst_w, 1), limit_w=limit_w)

    def _say_overload(self, site_id: str, overloads: dict[str, dict[str, float]]) -> None:
        """Never silent: a plan that lets a node draw over its limit is logged at warning,
        every time, and the return within the limit once; `on_overload` hears both."""
        before = self._overloaded.get(site_id, {})
        for node, amounts in overloads.items():
            log.warning("site_over_limit" if node == site_id else "group_over_limit",
                        site_id=site_id, node=node, **amounts)
        for node in before.keys() - overloads.keys():
            log.info("site_back_within_limit" if node == site_id else "group_back_within_limit",
                     site_id=site_id, node=node)
        self._overloaded[site_id] = overloads
        if overloads or before:
            for listener in self.on_overload:
                try:
                    listener(site_id, overloads)
                except Exception:  # one listener's fault must not stop the plans
                    log.exception("overload_listener_failed", site_id=site_id)

    @staticmethod
    def _overridden(spec: SiteSpec, override: dict[str, Any] | None) -> SiteSpec:
        """`spec` with the API's changes over it; the file alone if they no longer fit it."""
        if not override:
            return spec
        try:
            return SiteSpec.model_validate({**spec.model_dump(), **override, "id": spec.id})
        except ValidationError as exc:
            log.error("site_override_dropped", site_id=spec.id, error=str(exc))
            return spec

    async def stop(self) -> None:
        """Cancel every site loop and what they started; the state stays as it was."""
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
                self._site_loops.loop(site_id)
            await asyncio.Event().wait()

    # -- triggers ------------------------------------------------------------------------------

    def on_event(self, event: DomainEvent) -> None:
        """Bus listener: fold the event into the live state and ask for a re-plan."""
        if isinstance(event, Booted):
            self._model_of[event.cp_id] = model_key(event.vendor, event.model, event.firmware,
                                                    event.cp_id)
        reading = self._reading_of(event)
        now = self.clock.now()
        before: tuple[object, ...] | None = None
        lent = False
        if reading is not None:
            before = reading_inputs(reading.cp, reading.c, now, reading.lend_after_s)
            lent = is_lent(reading.c, now, reading.lend_after_s)
        previous_w = None if reading is None else reading.c.measured_w
        conn = self.live.apply(event)
        self.live.charger(event.cp_id).last_seen = now
        urgent = False
        if conn is not None and isinstance(event, Metered | TransactionEvent201):
            if not self._plausible(conn, previous_w):
                return
            self._learn_max(conn)
            urgent = self._verdicts.on_reading(conn)
            if lent and conn.below_since is None:
                # A lent car ramps up: its share goes back now (DESIGN section 3), not after
                # the coalescing window; the others are lowered first as always.
                conn.reclaiming = urgent = True
            elif reading is not None and lends_more(conn, lent, previous_w, now,
                                                    reading.lend_after_s):
                # Its headroom is lent (or more of it): a lowering of this car that frees
                # room for the others, planned now rather than after the window.
                urgent = True
            if not urgent and before is not None and reading is not None and \
                    before == reading_inputs(reading.cp, reading.c, now, reading.lend_after_s):
                return  # a periodic reading that changes nothing the allocator sees
        started = isinstance(event, TransactionStarted) or (
            isinstance(event, TransactionEvent201) and event.event_type == "Started")
        if conn is not None and started and self._tasks is not None:
            # A start carries no power reading; ask for one now rather than a meter interval
            # later, so a charger that ignores its floor is seen (and counted) sooner.
            self._tasks.create_task(self._verdicts.ask_meter_values(event.cp_id,
                                                                    conn.connector_id))
        if conn is not None and isinstance(event, EvChargingNeeds):
            # ISO 15118 (K15, K17): the EV waits for a schedule; its transaction gets a
            # TxProfile from a plan made now, even one equal to what it holds.
            conn.profile_owed += 1
            urgent = True
        site_id = self.directory.placement(event.cp_id).site_id
        self.request(site_id, type(event).__name__, urgent=urgent)

    def _reading_of(self, event: DomainEvent) -> Reading | None:
        """The charger and connector a periodic reading is about, and its site's lend delay
        (None: not a periodic reading, or about nothing we know)."""
        if isinstance(event, TransactionEvent201):
            if event.event_type != "Updated" or event.trigger_reason != "MeterValuePeriodic":
                return None
            cp = self.live.chargers.get(event.cp_id)
            c = None if cp is None else connector_of_tx(cp, event.ocpp_tx_id)
        elif isinstance(event, Metered) and event.connector_id > 0:
            cp = self.live.chargers.get(event.cp_id)
            c = None if cp is None else cp.connectors.get(event.connector_id)
        else:
            return None
        if cp is None or c is None:
            return None
        site = self.directory.site(self.directory.placement(event.cp_id).site_id)
        return Reading(cp, c, site.lend_after_s)

    def judge_ev_schedule(self, schedule: EvChargingSchedule) -> str | None:
        """Why an EV's schedule asks more than the TxProfile its transaction holds (None: it
        does not, or it holds none of ours); when it does, the profile goes out again."""
        cp = self.live.chargers.get(schedule.cp_id)
        c = None if cp is None else cp.connectors.get(schedule.connector_id)
        held = self._ctx.held.get(connector_key(schedule.cp_id, schedule.connector_id))
        if c is None or c.tx_id is None or held is None or held.tx is None:
            return None
        conn = self.directory.connector(schedule.cp_id, schedule.connector_id)
        ev = EvSchedule(schedule.time_base, tuple(
            (start, _schedule_w(limit, schedule.unit, phases, conn))
            for start, limit, phases in sorted(schedule.periods)), schedule.duration_s)
        held_tx = held.tx
        excess = ev_schedule_excess(ev, held_tx, lambda limit: _schedule_w(
            limit, held_tx.schedule.unit, None, conn))
        if excess is None:
            return None
        at, asked_w, allowed_w = excess
        c.profile_owed += 1
        self.request(self.directory.placement(schedule.cp_id).site_id, "EvChargingSchedule",
                     urgent=True)
        return (f"asks {asked_w:.0f} W at {at.isoformat()}, above the {allowed_w:.0f} W of the "
                "TxProfile it holds")

    def placed(self) -> Placed:
        """Known chargers by site and by the node they hang from (rebuilt only on change)."""
        return self._ctx.placed()

    def request(self, site_id: str, trigger: str, *, urgent: bool = False) -> None:
        """Ask for a re-plan of `site_id`; requests within the coalescing window merge.

        An urgent request (a connector draws more than it may) skips the window.
        """
        self._site_loops.request(site_id, trigger, urgent=urgent)

    async def update_site(self, spec: SiteSpec) -> None:
        """Store a new or changed site (limits, groups, chargers) and re-plan it at once."""
        await self.store.save_site(spec.id, spec.model_dump(), self.clock.now())
        self.directory = self.directory.with_site(spec)
        # Chargers may have moved between sites: every site re-plans.
        for site_id in self.directory.specs:
            self.request(site_id, "config_change")

    def apply_charger(self, cp_id: str, facts: ChargerFacts | None) -> None:
        """Use a charger's own (stored) facts, None: the config patterns; re-plan the sites it
        left and joined."""
        before = self.directory.placement(cp_id).site_id
        self.directory = self.directory.with_chargers({cp_id: facts})
        for site_id in {before, self.directory.placement(cp_id).site_id}:
            self.request(site_id, "charger_change")

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
        await self._site_loops.wait_planned(site_id)

    def chargers_in_plan(self, site_id: str) -> list[str]:
        """Ids of the chargers the next plan of `site_id` covers."""
        return sorted(cp.cp_id for cp in self._snapshots.chargers(site_id))

    # -- one plan ------------------------------------------------------------------------------

    async def plan_site(self, site_id: str, trigger: str) -> Allocation | None:
        """Plan one site now and dispatch the result; returns the allocation used."""
        now = self.clock.now()
        cfg = self.config
        cps = self._snapshots.chargers(site_id)
        loop = self._loops[site_id]
        if not cps:
            loop.next_due = None
            return None
        for cp in cps:
            self._verdicts.review_controllability(cp)
        built = self._snapshots.build(site_id, cps, now)
        planned = replace(built.snapshot, fleet_carry=self._fleet_carry.get(site_id))
        allocation = await asyncio.to_thread(
            allocate, planned, time_limit_s=cfg.solve_time_limit_s, workers=cfg.workers)
        snapshot, allocation = await self._dispatcher.hold_small_lowerings(
            planned, allocation, built.states, now)
        if allocation.fleet_carry is not None:
            self._fleet_carry[site_id] = allocation.fleet_carry
        else:
            self._fleet_carry.pop(site_id, None)
        if allocation.managed:
            await self._dispatcher.dispatch(site_id, snapshot, allocation, built.target_floors,
                                            built.states, now)
        worst_w = worst_case_w(snapshot, built.states)
        overload = await record_plan(self.store, site_id, trigger, now, built.resolved,
                                     snapshot, allocation, worst_w, built.target_floors)
        self._say_overload(site_id, overload)
        self._admission.review(site_id, snapshot, built.states)
        self._say_unlimitable(site_id, worst_w, built.resolved)
        self.limits_used[site_id] = {k: v.power_kw for k, v in snapshot.limits.items()}
        loop.next_due = self._site_loops.next_due(self._snapshots.chargers(site_id),
                                                  built.resolved, now)
        return allocation
