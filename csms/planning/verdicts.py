"""Closed-loop checks: "Accepted" is not proof (DESIGN section 3).

Readings show whether a charger follows the limit it took (proven), ignores it (flagged and
counted at its draw), or leaves headroom to lend; a composite schedule shows what it will
really allow. Verdicts are kept per charger and firmware.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from csms.live import ChargerState, ConnectorState
from csms.planning.context import PlanContext, Request
from csms.planning.held import held_w
from csms.planning.models import ModelBook
from loadmgmt.profiles import ChargingProfile

log = structlog.get_logger("csms.planner")

# A second reading this long after a session's start if the first showed no power yet.
RAMP_RECHECK_S = 2.0
# A car has ramped up to a raised limit this long after it was raised (IEC 61851-1 gives an
# EV 5 s to follow a new pilot duty cycle; one more for the meter).
RAMP_S = 6.0
# Below this a car is not charging (paused, full, or its electronics only).
CHARGING_W = 500.0
# A lent car's draw must move this much from what the last plan saw to lend anew.
LEND_BAND_W = 500.0


def on_firmware(verdict: Any, firmware: str | None) -> bool:
    """A stored verdict ({"firmware": ...}) that was reached on this firmware."""
    return isinstance(verdict, dict) and verdict.get("firmware") == (firmware or "")


def track_headroom(c: ConnectorState) -> None:
    """Remember since when a car draws well (1 kW) below its limit; forget it once it draws
    within 0.5 kW of it. The gap keeps a lent limit (measured + lend margin) lent while the
    car keeps drawing what it drew, and returns it when the car ramps up.

    A car that falls well below a limit it was seen drawing, and still charges, lends at
    once: it tapers or wants less, and holding its share for `lend_after_s` would idle the
    grid. So does one read well below a limit raised at least `RAMP_S` before. A car that
    never reached its limit may still be ramping up, and one that stopped drawing may be
    paused by a limit below its own minimum (it cannot show that it wants more at the least
    we may give): both wait the site's `lend_after_s`."""
    if c.measured_w is None or c.held_tx_w is None or c.measured_at is None:
        return
    if c.measured_w < c.held_tx_w - 1000.0:
        if c.below_since is None:
            c.below_since = c.measured_at
        if c.drawn_limit_w is not None and not c.fell_from_limit and \
                c.measured_w >= CHARGING_W:
            heard = c.heard_at or c.measured_at
            c.fell_from_limit = c.measured_w < c.drawn_limit_w - 1000.0 or \
                c.raised_at is None or (heard - c.raised_at).total_seconds() >= RAMP_S
    elif c.measured_w >= c.held_tx_w - 500.0:
        c.below_since = None
        c.drawn_limit_w, c.fell_from_limit = c.held_tx_w, False


def is_lent(c: ConnectorState, now: datetime, lend_after_s: float) -> bool:
    """The allocator lends this car's headroom: it fell from its limit, or has drawn well
    below it for `lend_after_s`."""
    return c.below_since is not None and (
        c.fell_from_limit or (now - c.below_since).total_seconds() >= lend_after_s)


def lends_more(c: ConnectorState, lent_before: bool, previous_w: float | None,
               now: datetime, lend_after_s: float) -> bool:
    """A reading that starts lending this car's headroom, or shows a lent car drawing a
    hysteresis (0.5 kW) less than before: its lent limit goes down in the next plan."""
    if not is_lent(c, now, lend_after_s) or c.measured_w is None:
        return False
    return not lent_before or (previous_w is not None and
                               previous_w - c.measured_w >= LEND_BAND_W)


def reading_inputs(cp: ChargerState, c: ConnectorState, now: datetime,
                   lend_after_s: float) -> tuple[object, ...] | None:
    """What a reading could change in the allocator's view of its connector; None when the
    draw itself is an input, so every reading must re-plan.

    The allocator reads a draw only where a car is lent headroom (capped near its draw) or
    counted at its draw (offline, ignoring, pinned), and the first reading of a car is
    judged. Two readings with equal inputs plan alike: at 1,000 metering chargers planning
    again on each was most of the server's work. A lent car's reading within a hysteresis
    (0.5 kW) of the draw the last plan saw would lend the same: it counts as equal.
    """
    if not cp.online or c.measured_w is None or c.ignoring or c.pinned_w is not None:
        return None
    lent = is_lent(c, now, lend_after_s)
    if lent and (c.planned_w is None or abs(c.measured_w - c.planned_w) >= LEND_BAND_W):
        return None
    return (lent, c.below_since is None, cp.follows_profiles, cp.ignores_profiles,
            c.held_tx_w, c.tx_id)


def reported_uncontrollable(caps: dict[str, Any]) -> str | None:
    """Why a charger's own report says profiles cannot limit it (None: they can, or it did
    not say)."""
    if caps.get("smart_charging") is False:
        return "reports no smart charging (SupportedFeatureProfiles or SmartChargingCtrlr)"
    raw = caps.get("raw") or {}
    if str(raw.get("Available", "")).strip().lower() == "false":
        return "reports SmartChargingCtrlr Available false"
    # 1.6 only: a 2.0.1 SmartChargingCtrlr.Entries is how many profiles are installed now
    # (0 on a fresh charger), not how many fit.
    if str(raw.get("MaxChargingProfilesInstalled", "")).strip() == "0":
        return "reports room for no charging profile (MaxChargingProfilesInstalled 0)"
    return None


class Verdicts:
    """Judges chargers by their readings and composite schedules; asks re-plans on a change."""

    def __init__(self, ctx: PlanContext, models: ModelBook, request: Request) -> None:
        self._ctx = ctx
        self._models = models
        self._request = request
        # Told (cp_id, firmware, reason) when a charger is learned uncontrollable: alerts.
        self.on_uncontrollable: list[Callable[[str, str | None, str], None]] = []

    def on_reading(self, c: ConnectorState) -> bool:
        """Judge a connector's new reading; True when it draws more than it may (re-plan now)."""
        urgent = self._check_follows_limit(c)
        if not urgent:
            self._check_proven(c)
        track_headroom(c)
        return urgent

    async def ask_meter_values(self, cp_id: str, connector_id: int) -> None:
        """Ask for a reading at a session's start, and once more if none showed power yet: a
        car that was still ramping up when the first was taken would otherwise go unseen for
        a whole meter interval."""
        ctx = self._ctx
        started = ctx.clock.now()
        for attempt in range(2):
            if attempt:
                await ctx.clock.sleep(RAMP_RECHECK_S)
                c = ctx.live.charger(cp_id).connectors.get(connector_id)
                if c is None or c.tx_id is None or (
                        c.measured_at is not None and c.measured_at >= started
                        and (c.measured_w or 0.0) > 0.0):
                    return
            try:
                result = await ctx.commands.trigger_message(cp_id, "MeterValues", connector_id)
            except Exception:  # a child of the planner's task group: never end the site loops
                log.exception("meter_values_not_triggered", cp_id=cp_id)
                return
            if not result.ok:
                log.info("meter_values_not_triggered", cp_id=cp_id, status=result.status)
                return

    def _check_follows_limit(self, c: ConnectorState) -> bool:
        """Closed loop: a charger drawing well above an accepted limit is flagged.

        The limit is the one in force: the TxProfile while it is valid, else the accepted floor
        (a charger that ignores profiles from the first second of a session is pinned at its
        measured draw before any TxProfile goes out, and must be flagged all the same).
        Returns True when the connector draws more than it may: the site must re-plan now.
        """
        ctx = self._ctx
        if c.tx_id is None or c.measured_w is None:
            return False
        limit = held_w(c, c.measured_at or ctx.clock.now())
        if limit is None or c.measured_w <= limit + ctx.config.ignore_margin_kw * 1000.0:
            c.over_limit_samples = 0
            return False
        if c.ignoring:
            return False  # already counted at its draw
        c.over_limit_samples += 1
        if c.over_limit_samples >= ctx.config.ignore_after_samples:
            log.warning("charger_ignores_profile", cp_id=c.cp_id,
                        connector_id=c.connector_id, limit_w=limit, measured_w=c.measured_w)
            self.flag_ignoring(ctx.live.charger(c.cp_id))
        return True

    def _check_proven(self, c: ConnectorState) -> None:
        """A charger whose car draws what a limit below the connector's maximum allows follows
        limits: its guard goes (DESIGN section 3), and stays gone on this firmware."""
        ctx = self._ctx
        cp = ctx.live.charger(c.cp_id)
        if cp.follows_profiles or cp.ignores_profiles or c.tx_id is None or \
                c.measured_w is None:
            return
        limit = held_w(c, c.measured_at or ctx.clock.now())
        margin = ctx.config.ignore_margin_kw * 1000.0
        top = ctx.directory.connector(c.cp_id, c.connector_id).max_w()
        # Pressing against a limit that binds: a car drawing less than its limit proves nothing.
        if limit is None or limit + margin >= top or abs(c.measured_w - limit) > margin / 2:
            return
        cp.follows_profiles = True
        log.info("charger_follows_profiles", cp_id=cp.cp_id, connector_id=c.connector_id,
                 limit_w=limit, measured_w=c.measured_w)
        if ctx.tasks is not None:
            ctx.tasks.create_task(self._remember(
                cp.cp_id, "follows_profiles", cp.firmware or ""))

    def flag_ignoring(self, cp: ChargerState, also: dict[str, Any] | None = None) -> None:
        """Count every connector of `cp` at what it draws from now on, and remember it: after a
        restart or a reboot on the same firmware its next car is counted at its maximum from
        the first second."""
        cp.ignores_profiles = True
        cp.follows_profiles = False
        for c in cp.connectors.values():
            c.ignoring = True
        if self._ctx.tasks is not None:
            self._ctx.tasks.create_task(self._remember(cp.cp_id, "ignores_profiles",
                                                       cp.firmware or "", also))

    def flag_uncontrollable(self, cp: ChargerState, code: str) -> None:
        """`cp` cannot be limited on this firmware: send it no profile again until its firmware
        changes, count it as ignoring limits, and remember it across restarts."""
        if cp.uncontrollable is not None:
            return
        cp.uncontrollable = f"SetChargingProfile answered {code}"
        cp.uncontrollable_by = "answer"
        log.warning("charger_uncontrollable", cp_id=cp.cp_id, firmware=cp.firmware,
                    reason=cp.uncontrollable)
        self.flag_ignoring(cp, {"uncontrollable": {"firmware": cp.firmware or "",
                                                   "reason": cp.uncontrollable}})
        self._tell_uncontrollable(cp)

    def _tell_uncontrollable(self, cp: ChargerState) -> None:
        for listener in self.on_uncontrollable:
            try:
                listener(cp.cp_id, cp.firmware, cp.uncontrollable or "uncontrollable")
            except Exception:  # a listener's fault must not stop the verdict
                log.exception("uncontrollable_listener_failed", cp_id=cp.cp_id)

    def review_controllability(self, cp: ChargerState) -> None:
        """Whether `cp` can be limited, by what the operator configured, else what it reported
        (1.6 SupportedFeatureProfiles, 2.0.1 SmartChargingCtrlr); kept until either changes.
        A charger's own NotImplemented answer to a profile is not undone here."""
        says = self._ctx.directory.charger_spec(cp.cp_id).controllable
        if cp.uncontrollable_by == "stored answer" and says is True:
            # The operator asks: a NotImplemented kept from before this start is tried again
            # (once: if it answers so again, that stands until its firmware changes).
            log.info("charger_asked_again", cp_id=cp.cp_id, was=cp.uncontrollable)
            self._forget_uncontrollable(cp)
            if self._ctx.tasks is not None:
                self._ctx.tasks.create_task(self._ctx.store.save_capabilities(
                    cp.cp_id, {"uncontrollable": None, "ignores_profiles": None}))
            return
        if cp.uncontrollable_by in ("answer", "stored answer"):
            return
        if says is False:
            reason, by = "set uncontrollable by the operator", "operator"
        elif says is True:
            reason, by = None, None
        else:
            caps = self._ctx.store.capabilities([cp.cp_id]).get(cp.cp_id, {})
            reason, by = reported_uncontrollable(caps), "report"
        if reason == cp.uncontrollable:
            return
        if reason is None:
            log.info("charger_controllable", cp_id=cp.cp_id, was=cp.uncontrollable)
            self._forget_uncontrollable(cp)
            return
        log.warning("charger_uncontrollable", cp_id=cp.cp_id, firmware=cp.firmware,
                    reason=reason)
        cp.uncontrollable, cp.uncontrollable_by = reason, by
        cp.ignores_profiles, cp.follows_profiles = True, False
        for c in cp.connectors.values():
            c.ignoring = True
        self._tell_uncontrollable(cp)

    @staticmethod
    def _forget_uncontrollable(cp: ChargerState) -> None:
        cp.uncontrollable = cp.uncontrollable_by = None
        cp.ignores_profiles = False
        for c in cp.connectors.values():
            c.ignoring = False

    async def _remember(self, cp_id: str, verdict: str, firmware: str,
                        also: dict[str, Any] | None = None) -> None:
        """Store a verdict on the charger for its firmware (the other one is cleared), with
        `also` in the same write."""
        other = "follows_profiles" if verdict == "ignores_profiles" else "ignores_profiles"
        # A child of the planner's task group: an error here must not end every site's loop.
        try:
            await self._ctx.store.save_capabilities(
                cp_id, {verdict: {"firmware": firmware}, other: None, **(also or {})})
        except Exception:
            log.exception("charger_verdict_not_saved", cp_id=cp_id, verdict=verdict)

    async def verify_composite(self, cp: ChargerState, c: ConnectorState, connector_id: int,
                               profile: ChargingProfile) -> None:
        """Ask the charger what it will really allow; flag it if that exceeds what it took.

        Done once per charger: a charger that reports our limit in its composite schedule is
        trusted to apply it; metering keeps checking that it does.
        """
        ctx = self._ctx
        unit = profile.schedule.unit
        result = await ctx.commands.get_composite_schedule(cp.cp_id, connector_id, 60, unit)
        if not result.ok or result.response is None:
            return  # not supported or refused: metering alone has to tell
        schedule = result.response.get("chargingSchedule") or result.response.get("schedule")
        periods = (schedule or {}).get("chargingSchedulePeriod") or []
        if not periods:
            return
        limit = float(periods[-1]["limit"] if len(periods) > 1 else periods[0]["limit"])
        sent = profile.schedule.periods[0].limit
        tolerance = ctx.policy.hysteresis_a if unit == "A" else ctx.policy.hysteresis_w
        if limit > sent + tolerance:
            log.warning("charger_composite_ignores_profile", cp_id=cp.cp_id,
                        connector_id=c.connector_id, sent=sent, composite=limit, unit=unit)
            self.flag_ignoring(cp)
            self._request(ctx.directory.placement(cp.cp_id).site_id, "composite_mismatch",
                          urgent=True)
        else:
            cp.composite_verified = True
            key, record = self._models.record(cp.cp_id)
            if not record.composite_matches:
                record.composite_matches = True
                await ctx.store.save_model_record(key, record.to_json(), ctx.clock.now())
