"""Safe dispatch: every lowering (TxProfile or TxDefaultProfile floor) goes out and is answered
before any raise; what each charger took is recorded, and a charger that rejects, times out or
is offline counts at what it may draw on its own.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from csms.delivery import same_delivery
from csms.live import ChargerState
from csms.ocpp import v16, v201
from csms.planning.context import PlanContext, Request
from csms.planning.held import current_w
from csms.planning.models import ModelBook
from csms.planning.snapshot import States
from csms.planning.verdicts import Verdicts
from loadmgmt.allocator import allocate
from loadmgmt.model import Allocation, Connector, Snapshot
from loadmgmt.profiles import (
    Capabilities,
    ChargingProfile,
    SchedulePeriod,
    build_profiles,
    should_send,
)

log = structlog.get_logger("csms.planner")

# A charger that failed to take a profile is retried after this long.
RETRY_AFTER_S = 60.0
# A profile refused again and again is retried ever more slowly, up to this.
RETRY_CAP_S = 3600.0
# CALLERROR codes that say the charger cannot take charging profiles at all (not: not now).
CANNOT_LIMIT = frozenset({"NotImplemented", "NotSupported"})


@dataclass(slots=True)
class Send:
    """One profile to send to one connector, with the limit it replaces (W)."""

    key: str
    cp_id: str
    connector_id: int
    profile: ChargingProfile
    new_w: float
    current_w: float
    # The connector's owed-profile count when this was planned: a later request for one
    # (another needs message while this was on its way) stays owed.
    owed: int = 0

    @property
    def lowering(self) -> bool:
        return self.new_w < self.current_w - 1e-6


def _synthetic(like: ChargingProfile, watts: float, conn: Connector) -> ChargingProfile:
    """`like` with one period at `watts`, in its unit: what the charger holds now."""
    unit = like.schedule.unit
    limit = watts / conn.w_at_amps(1.0) if unit == "A" else watts
    limit = math.floor(limit * 10 + 1e-9) / 10
    period = SchedulePeriod(0, limit, like.schedule.periods[0].number_phases)
    return replace(like, schedule=replace(like.schedule, periods=(period,)))


def _profile_w(profile: ChargingProfile, conn: Connector, at: datetime) -> float:
    """The limit of `profile` in force at `at` (else its first), in W."""
    limit = profile.limit_at(at)
    if limit is None:
        limit = profile.schedule.periods[0].limit
    return conn.w_at_amps(limit) if profile.schedule.unit == "A" else limit


class Dispatcher:
    """Turns an allocation into profiles and sends them, lowerings first."""

    def __init__(self, ctx: PlanContext, models: ModelBook, verdicts: Verdicts,
                 request: Request) -> None:
        self._ctx = ctx
        self._models = models
        self._verdicts = verdicts
        self._request = request

    async def hold_small_lowerings(
            self, snapshot: Snapshot, allocation: Allocation, states: States,
            now: datetime) -> tuple[Snapshot, Allocation]:
        """Keep TxProfiles whose cut would be below the hysteresis, if the site allows it.

        Lending follows a tapering car down in small steps; each would be a flash write. The
        connectors are re-planned as pinned at what they hold, and that plan is used only if
        it fits every limit, so a cut needed for safety still goes out at once.
        """
        policy = self._ctx.policy
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
                    <= policy.renew_before_s:
                continue
            band = policy.hysteresis_w
            if conn.number_phases is not None:
                band = min(band, conn.w_at_amps(policy.hysteresis_a))
            if 0 < c.held_tx_w - ca.power_w < band:
                small[ca.connector_id] = c.held_tx_w
        if not small:
            return snapshot, allocation
        held = replace(snapshot, sessions=tuple(
            replace(d, pinned_w=small[d.connector_id]) if d.connector_id in small else d
            for d in snapshot.sessions))
        again = await asyncio.to_thread(
            allocate, held, time_limit_s=self._ctx.config.solve_time_limit_s,
            workers=self._ctx.config.workers)
        if again.overloaded:
            return snapshot, allocation
        return held, again

    def _capabilities(self, cps: list[ChargerState]) -> dict[str, Capabilities]:
        out: dict[str, Capabilities] = {}
        known = self._ctx.store.capabilities(cp.cp_id for cp in cps)
        for cp_id, reported in known.items():
            spec = self._ctx.directory.charger_spec(cp_id)
            units = reported.get("rate_units") or ["A", "W"]
            unit = spec.unit or ("A" if "A" in units else "W")
            stack = reported.get("max_stack_level")
            # What the model really took beats what it reported (no answers yet: as reported).
            _key, learned = self._models.record(cp_id)
            unit, phases = learned.choose(unit, ac=True)  # type: ignore[arg-type]
            # Delivery presets chosen per charge point, network or customer (csms.delivery).
            tx_preset, tx_default_preset = self._ctx.presets(cp_id)
            out[cp_id] = Capabilities(
                preferred_unit=unit,  # type: ignore[arg-type]
                max_stack_level=int(stack) if stack else 8,
                supports_number_phases=phases,
                tx_preset=tx_preset,
                tx_default_preset=tx_default_preset,
            )
        return out

    async def dispatch(self, site_id: str, snapshot: Snapshot, allocation: Allocation,
                       target_floors: dict[str, float], states: States,
                       now: datetime) -> None:
        """Send what changed: lowerings first and awaited, then raises (if lowerings took)."""
        ctx = self._ctx
        conns = {c.id: c for c in snapshot.connectors}
        cps = [cp for cp, _ in states.values()]
        caps = self._capabilities(list({cp.cp_id: cp for cp in cps}.values()))
        with_floors = replace(allocation, connectors=tuple(
            replace(ca, floor_w=target_floors.get(ca.connector_id, 0.0))
            for ca in allocation.connectors))
        validity = int(ctx.config.profile_validity_s)
        profiles = build_profiles(with_floors, snapshot, caps, now=now, validity_s=validity,
                                  plan_validity_s=validity)
        sends: list[Send] = []
        for profile in profiles:
            key = profile.connector_id
            cp, c = states[key]
            conn = conns[key]
            if not cp.online or cp.uncontrollable is not None:
                continue  # an uncontrollable charger is counted at its draw, never sent to
            held = ctx.held_for(key)
            new_w = _profile_w(profile, conn, now)
            if profile.purpose == "TxDefaultProfile":
                current = c.held_floor_w if c.held_floor_w is not None else conn.max_w()
                if c.pinned_w is not None:
                    continue  # refused or unanswered: retried at held.retry_at, not every plan
                if held.floor is not None and c.held_floor_w is not None and \
                        held.floor.schedule.periods == profile.schedule.periods and \
                        same_delivery(held.floor, profile):  # a preset change resends it
                    continue
                sends.append(Send(key, cp.cp_id, c.connector_id, profile, new_w, current))
                continue
            if c.tx_id is None or c.pinned_w is not None or c.ignoring:
                continue
            current = current_w(c, conn, now)
            previous = held.tx if (held.tx is not None and c.held_tx_w is not None) \
                else _synthetic(profile, current, conn)
            # A lent car that ramped up gets its share back at once: the lend delay already
            # spaces these updates far wider than the raise cap would.
            last_sent_at = None if c.reclaiming else c.last_sent_at
            if new_w < current - 1e-6 or c.profile_owed > c.profile_sent or \
                    should_send(previous, profile, last_sent_at, now, ctx.policy) \
                    or not same_delivery(previous, profile):  # a preset change resends it
                sends.append(Send(key, cp.cp_id, c.connector_id, profile, new_w, current,
                                  c.profile_owed))
            else:
                c.reclaiming = False  # nothing to give back
        lowering = [s for s in sends if s.lowering]
        raising = [s for s in sends if not s.lowering]
        results = await asyncio.gather(*(self._send(s, states, now) for s in lowering))
        if not all(results):
            self._request(site_id, "lowering_failed")
            # Raises were planned assuming every lowered TxProfile took hold: if one did not,
            # re-plan around it first. A floor that did not take does not matter here: the
            # plan reserved the larger of the held and the new floor for idle connectors.
            if not all(ok for s, ok in zip(lowering, results, strict=True)
                       if s.profile.purpose == "TxProfile"):
                return
        await asyncio.gather(*(self._send(s, states, now) for s in raising))

    async def _send(self, send: Send, states: States, now: datetime) -> bool:
        cp, c = states[send.key]
        commands = self._ctx.commands
        version = commands.version_of(cp.cp_id)
        if version is None and cp.protocol is not None:
            # Gone offline since the plan was made: translate for what it last spoke, and
            # Commands.send records the command as failed. (Taken as 1.6, a 2.0.1 session's
            # transaction id failed int() and the exception ended the whole plan.)
            version = v201.VERSION if cp.protocol.endswith(v201.VERSION) else v16.VERSION
        translate = v16.set_charging_profile if version in (None, v16.VERSION) \
            else v201.set_charging_profile
        action, payload = translate(send.connector_id, send.profile)
        result = await commands.send(cp.cp_id, action, payload)
        if result.status in ("accepted", "rejected"):
            await self._models.learn(cp.cp_id, send.profile, result.ok)
        held = self._ctx.held_for(send.key)
        if send.profile.purpose == "TxProfile":
            # The rate cap is about repeated updates of one session's limit, not its floor.
            c.last_sent_at = now
        if result.ok:
            held.refusals = 0
            if send.profile.purpose == "TxDefaultProfile":
                c.held_floor_w, held.floor = send.new_w, send.profile
            else:
                if c.held_tx_w is None or send.new_w > c.held_tx_w:
                    c.raised_at = now
                c.held_tx_w, held.tx = send.new_w, send.profile
                c.reclaiming = False
                c.profile_sent = max(c.profile_sent, send.owed)
                c.held_tx_valid_to = send.profile.valid_to
                c.over_limit_samples = 0
                if not cp.composite_verified:
                    await self._verdicts.verify_composite(cp, c, send.connector_id, send.profile)
            return True
        # Not taken: count the connector at whichever of old and new is higher until it answers.
        c.pinned_w = max(send.current_w, send.new_w)
        if result.code in CANNOT_LIMIT:
            self._verdicts.flag_uncontrollable(cp, result.code)
            return False
        held.refusals += 1
        retry_s = min(RETRY_AFTER_S * 2 ** (held.refusals - 1), RETRY_CAP_S)
        held.retry_at = now + timedelta(seconds=retry_s)
        log.warning("profile_not_taken", cp_id=cp.cp_id, connector_id=send.connector_id,
                    purpose=send.profile.purpose, status=result.status, code=result.code,
                    counted_w=c.pinned_w, retry_in_s=retry_s)
        return False
