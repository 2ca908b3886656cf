"""Load management end to end: the real server and simulated chargers on one simulated clock.

Every test runs Loadstar in-process with a `SimClock` shared with websocket `SimCharger`s, so
"a second" below is a simulated second. Site draw is checked two ways: a sampler reads the sum
of the cars' actual draw at every simulated second (as a meter on the grid connection would),
and the chargers' exact draw logs (change points of each connector's draw) are swept for the
peak, which also catches spikes shorter than a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from csms.clock import parse_iso
from csms.config import ChargerSpec, Config, LimitSpec, SiteSpec
from csms.domain import TransactionEnded, TransactionEvent201
from csms.service import Loadstar
from simulators.charger import SimCharger
from simulators.clock import SimClock
from simulators.ev import EV
from tests.conftest import make_config
from tests.raw_client import RawClient, default_answer

SITE_KW = 50.0
SITE_W = SITE_KW * 1000.0
SPEED = 60.0
COALESCE_S = 2.0
# The rate cap for raises. 10 s keeps it well under the gaps between arrivals and departures
# (120 s) while still being much longer than a coalescing window, so that a test that bounds
# "raise after a departure" by coalesce + dispatch really measures the planner, and the cap only
# enters through renewals that happened shortly before (accounted for below).
MIN_UPDATE_S = 10.0
VALIDITY_S = 300.0
METER_S = 10
# 6 A on three phases at 230 V: the floor compute_floors gives every connector here.
FLOOR_W = 6 * 3 * 230.0
# Sampling tolerance: the chargers round limits down, so 1 W covers float noise only.
EPS_W = 1.0


def big_ev(max_kw: float = 22.0) -> EV:
    """A car that will not fill up within a test: it always wants its maximum."""
    return EV(battery_kwh=500.0, soc=0.1, max_power_kw=max_kw)


def floor_held(live: Any, cp_id: str) -> bool:
    """Whether connector 1 of `cp_id` holds a floor (False while the charger or the connector
    is not known yet)."""
    cp = live.chargers.get(cp_id)
    c = None if cp is None else cp.connectors.get(1)
    return c is not None and bool(c.held_floor_w)


def site_config(tmp_path: Path, **load: Any) -> Config:
    config = make_config(tmp_path)
    # The server sets every charger's meter interval after boot; keep it short.
    config.ocpp.meter_sample_interval_s = METER_S
    config.load.coalesce_s = COALESCE_S
    config.load.min_update_interval_s = MIN_UPDATE_S
    config.load.profile_validity_s = VALIDITY_S
    for key, value in load.items():
        setattr(config.load, key, value)
    config.sites = [SiteSpec(id="site", max_power_kw=SITE_KW, chargers=["*"])]
    config.chargers = [ChargerSpec(match="*", max_power_kw=22, max_current_a=32)]
    return config


def live_session_ended(event: Any) -> bool:
    """A session's end, in either protocol's domain event."""
    return isinstance(event, TransactionEnded) or (
        isinstance(event, TransactionEvent201) and event.event_type == "Ended")


def tx_limit(cmd: Any) -> float:
    """The limit of a SetChargingProfile command's single schedule period."""
    body = cmd.payload.get("csChargingProfiles") or cmd.payload.get("chargingProfile")
    schedule = body["chargingSchedule"]
    schedule = schedule[0] if isinstance(schedule, list) else schedule
    return float(schedule["chargingSchedulePeriod"][0]["limit"])


def tx_purpose(cmd: Any) -> bool:
    """A SetChargingProfile command carrying a TxProfile."""
    body = cmd.payload.get("csChargingProfiles") or cmd.payload.get("chargingProfile")
    return body["chargingProfilePurpose"] == "TxProfile"


@dataclass(frozen=True)
class Reading:
    """A reading as the planner took it in, and what it made of the connector."""

    at: datetime  # when the planner had folded it in
    cp_id: str
    connector: int
    tx_id: str | None
    w: float | None
    ignoring: bool


@dataclass
class Site:
    """A running server, its chargers and a per-second sampler of the site's actual draw."""

    server: Loadstar
    clock: SimClock
    url: str
    chargers: list[SimCharger] = field(default_factory=list)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (sim s, total W)
    readings: list[Reading] = field(default_factory=list)
    # Every domain event, with when the planner had taken it in.
    events: list[tuple[datetime, Any]] = field(default_factory=list)
    _sampler: asyncio.Task[None] | None = None

    def watch_readings(self) -> None:
        """Record each domain event, and each new reading, the moment the planner has folded
        it in.

        A bus listener added after the planner's runs right after it, so a plan that started
        at or after a recorded instant is known to have seen that reading.
        """
        planner = self.server.planner
        assert planner is not None
        seen: dict[tuple[str, int], datetime] = {}

        def on_event(event: Any) -> None:
            cp = planner.live.chargers.get(getattr(event, "cp_id", ""))
            for n, c in (cp.connectors.items() if cp is not None else ()):
                if c.measured_at is not None and seen.get((c.cp_id, n)) != c.measured_at:
                    seen[(c.cp_id, n)] = c.measured_at
                    self.readings.append(Reading(self.clock.now(), c.cp_id, n, c.tx_id,
                                                 c.measured_w, c.ignoring))
            self.events.append((self.clock.now(), event))

        self.server.bus.listen(on_event)

    def total_w(self) -> float:
        return sum(c.total_draw_w() for c in self.chargers)

    def t(self) -> float:
        return self.clock.elapsed()

    async def add(self, cp_id: str, protocol: str, **kwargs: Any) -> SimCharger:
        options: dict[str, Any] = {"meter_interval_s": METER_S, "reconnect_min_s": 1.0,
                                   "reconnect_max_s": 5.0, "max_power_kw": 22.0}
        options.update(kwargs)
        c = SimCharger(cp_id, self.url, protocol=protocol, clock=self.clock, **options)
        self.chargers.append(c)
        await c.start()
        await asyncio.wait_for(c.booted.wait(), 10)
        return c

    def start_sampling(self) -> None:
        async def sample() -> None:
            while True:
                await self.clock.sleep(1)
                self.samples.append((self.t(), self.total_w()))

        self._sampler = asyncio.create_task(sample(), name="site-sampler")

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        for c in self.chargers:
            await c.stop()
        await self.server.stop()

    def peak_sample(self, after: float = 0.0) -> tuple[float, float]:
        """The highest sampled total (time, W) at or after `after` simulated seconds."""
        return max(((t, w) for t, w in self.samples if t >= after), key=lambda s: s[1])

    def exact_totals(self, after: datetime | None = None) -> list[tuple[datetime, float]]:
        """(instant, total W from then on) at every change point of all connectors' draw
        logs (at or after `after`)."""
        logs = [c.draw_log(n) for c in self.chargers for n in c.conns]
        instants = sorted({at for log in logs for at, _ in log
                           if after is None or at >= after})
        totals = []
        for at in instants:
            total = 0.0
            for log in logs:
                w = 0.0
                for when, watts in log:
                    if when > at:
                        break
                    w = watts
                total += w
            totals.append((at, total))
        return totals

    def exact_peak(self, after: datetime | None = None) -> tuple[datetime, float]:
        """The highest total draw over all change points of all connectors' draw logs."""
        return max(self.exact_totals(after), key=lambda x: x[1],
                   default=(self.clock.start, 0.0))

    def over_spans(self, limit_w: float) -> list[tuple[datetime, datetime | None]]:
        """[from, until) spans in which the exact total draw was above `limit_w` (None: still
        over at the end of the logs)."""
        spans: list[tuple[datetime, datetime | None]] = []
        start: datetime | None = None
        for at, total in self.exact_totals():
            if total > limit_w and start is None:
                start = at
            elif total <= limit_w and start is not None:
                spans.append((start, at))
                start = None
        if start is not None:
            spans.append((start, None))
        return spans

    async def run_for(self, sim_s: float) -> None:
        await self.clock.sleep(sim_s)

    async def four_cars_and_an_idle_ignorer(
            self, **ignoring: Any) -> tuple[list[SimCharger], SimCharger]:
        """Four well-behaved chargers whose cars arrive 30 s apart, and an idle charger that
        accepts limits and ignores them (`ignoring`: more SimCharger options for it)."""
        normal = [await self.add(f"N{i}", protocol(i)) for i in range(4)]
        ignorer = await self.add("IGN", "ocpp2.0.1", mode="ignore_profiles", **ignoring)
        self.start_sampling()
        await self.run_for(30)
        for c in normal:
            await c.plug_in(1, big_ev())
            await self.run_for(30)
        return normal, ignorer

    async def until_taken_in(self, cp_id: str) -> datetime:
        """Advance second by second until the planner has taken in the end of `cp_id`'s
        session; return when it had."""
        while True:
            ended = [at for at, event in self.events if getattr(event, "cp_id", None) == cp_id
                     and live_session_ended(event)]
            if ended:
                return ended[-1]
            await self.clock.sleep(1)

    def session_readings(self, cp_id: str, since: datetime) -> list[Reading]:
        """The readings of `cp_id`'s sessions the planner took in since `since`."""
        return [r for r in self.readings
                if r.cp_id == cp_id and r.at >= since and r.tx_id is not None]

    async def until_readings(self, predicate: Callable[[], bool], cp_id: str, since: datetime,
                             readings: int) -> None:
        """Advance second by second until `predicate()`; fail once `cp_id` has sent more than
        `readings` readings without it. Readings, not seconds, bound the wait: they come every
        meter interval of simulated time, however busy the machine is."""
        while not predicate():
            if len(self.session_readings(cp_id, since)) > readings:
                raise AssertionError(f"not reached within {readings} readings of {cp_id}")
            await self.clock.sleep(1)

    async def planned_after(self, at: datetime) -> list[dict[str, Any]]:
        """All plans of the site, oldest first, once one that started at or after `at` is
        recorded (a plan is recorded when its dispatch is done)."""
        planner = self.server.planner
        assert planner is not None
        while True:
            plans = sorted(await self.server.store.list_plans("site", limit=10_000),
                           key=lambda p: p["id"])
            if plans and parse_iso(plans[-1]["ts"]) >= at:
                return plans
            await planner.wait_planned("site")

    async def until(self, predicate: Callable[[], bool], limit_s: float) -> float:
        """Advance second by second until `predicate()`; return the simulated seconds taken."""
        t0 = self.t()
        while not predicate():
            if self.t() - t0 > limit_s:
                raise AssertionError(f"not reached within {limit_s} simulated seconds")
            await self.clock.sleep(1)
        return self.t() - t0


@contextlib.asynccontextmanager
async def running_site(config: Config, start: datetime | None = None,
                       speed: float = SPEED) -> AsyncIterator[Site]:
    clock = SimClock(speed=speed, start=start or datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    server = Loadstar(config, clock=clock)
    await server.start()
    site = Site(server, clock, f"ws://127.0.0.1:{server.ocpp_port}/ocpp")
    site.watch_readings()
    try:
        yield site
    finally:
        await site.stop()


def protocol(i: int) -> str:
    return "ocpp1.6" if i % 2 == 0 else "ocpp2.0.1"


async def test_site_limit_never_exceeded_as_six_cars_arrive_and_leave(tmp_path: Path) -> None:
    async with running_site(site_config(tmp_path)) as site:
        chargers = [await site.add(f"CP{i}", protocol(i)) for i in range(6)]
        site.start_sampling()
        await site.run_for(30)  # every charger gets its floor
        for c in chargers:
            await c.plug_in(1, big_ev())
            await site.run_for(60)
        # Six cars share the site: nearly all of it is used, none of it more.
        assert site.total_w() > 0.9 * SITE_W
        store = site.server.store
        for i, leaving in enumerate(chargers[:4]):
            staying = [c for c in chargers if c is not leaving and c.conns[1].ev is not None]
            before = {c.cp_id: c.current_draw_w(1) for c in staying}
            t0 = site.t()
            await leaving.unplug(1)
            ended = await site.until_taken_in(leaving.cp_id)
            # Every remaining car gets a share of what the leaving one drew: at once, save
            # the coalescing window, the dispatch and (worst case) the rate cap of a charger
            # whose TxProfile was just renewed. In events: each is raised by the first plan
            # after the departure, or by the first after its rate cap ran out. (How many
            # simulated seconds those take depends on the machine's load.)
            # (600 simulated s only guards against a hang; the bound is the plan below.)
            await site.until(lambda staying=staying, before=before: all(
                c.current_draw_w(1) > before[c.cp_id] + 500 for c in staying), 600)
            plans = await site.planned_after(ended)
            starts = [parse_iso(p["ts"]) for p in plans]
            first_after = min(t for t in starts if t >= ended)
            for c in staying:
                sent = sorted((cmd for cmd in await store.list_commands(c.cp_id, limit=10_000)
                               if cmd.action == "SetChargingProfile"
                               and cmd.status == "accepted" and tx_purpose(cmd)),
                              key=lambda cmd: cmd.id)
                earlier = [cmd.created_at for cmd in sent if cmd.created_at < ended]
                held = tx_limit(next(cmd for cmd in reversed(sent) if cmd.created_at < ended))
                raised = next(cmd for cmd in sent
                              if cmd.created_at >= ended and tx_limit(cmd) > held)
                capped_until = earlier[-1] + timedelta(seconds=MIN_UPDATE_S) if earlier \
                    else first_after
                due = first_after if capped_until <= first_after else \
                    min(t for t in starts if t >= capped_until)
                by = max(t for t in starts if t <= raised.created_at)
                assert by <= due, (c.cp_id, ended, by, due)
            took = site.t() - t0
            print(f"departure {i}: others raised {took:.0f} s after t={t0:.0f}")
            await site.run_for(max(0.0, 60 - took))
        t, peak = site.peak_sample()
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
        at, exact = site.exact_peak()
        assert exact <= SITE_W + EPS_W, f"site drew {exact:.0f} W at {at}"


async def test_rejecting_offline_and_ignoring_chargers_do_not_push_the_site_over(
        tmp_path: Path) -> None:
    async with running_site(site_config(tmp_path)) as site:
        rejecting = await site.add("REJ", "ocpp1.6", mode="reject_profiles")
        # Reconnect backoff is in wall seconds: 2 s at 60x keeps it away ~120 simulated s.
        flaky = await site.add("OFF", "ocpp2.0.1", reconnect_min_s=2.0)
        normal = [await site.add(f"N{i}", protocol(i)) for i in range(2)]
        ignoring = await site.add("IGN", "ocpp2.0.1", mode="ignore_profiles")
        site.start_sampling()
        await site.run_for(30)
        # Nothing it accepts: counted at its maximum from the start, idle or not.
        await rejecting.plug_in(1, big_ev())
        await site.run_for(30)
        for c in (flaky, *normal):
            await c.plug_in(1, big_ev())
            await site.run_for(30)
        t, peak = site.peak_sample()
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"

        # Offline mid-session: it keeps drawing what it holds; the rest is planned around it.
        t_off = site.t()
        await flaky.disconnect()
        await site.run_for(60)
        assert not flaky.online
        assert flaky.current_draw_w(1) > 0
        t, peak = site.peak_sample(after=t_off)
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
        await flaky.wait_for(lambda: flaky.online, timeout=10)
        await site.run_for(30)

        # Accepts and ignores: its car draws its maximum the moment it plugs in, whatever it
        # accepted. It has never been seen following a limit, so the site kept room for it.
        t_plug = site.t()
        await ignoring.plug_in(1, big_ev(11.0))
        live = site.server.planner.live
        await site.until(lambda: live.chargers["IGN"].connectors[1].ignoring, 120)
        t_flag = site.t()
        await site.run_for(60)
        assert ignoring.current_draw_w(1) == 11_000.0
        at, exact = site.exact_peak(after=site.clock.start + timedelta(seconds=t_plug - 1))
        assert exact <= SITE_W + EPS_W, f"site drew {exact:.0f} W at {at}"

        await ignoring.unplug(1)
        await site.run_for(30)
        assert live.chargers["IGN"].connectors[1].ignoring, "forgotten when the session ended"
        t_again = site.t()
        await ignoring.plug_in(1, big_ev(11.0))
        await site.run_for(60)
        assert ignoring.current_draw_w(1) == 11_000.0
        t, peak = site.peak_sample(after=t_flag)
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
        at, exact = site.exact_peak(after=site.clock.start + timedelta(seconds=t_again - 1))
        assert exact <= SITE_W + EPS_W, f"site drew {exact:.0f} W at {at}"
        assert sum(c.total_draw_w() for c in site.chargers) > 0.85 * SITE_W


async def test_with_unproven_chargers_guarded_a_first_ever_ignoring_car_never_pushes_the_site_over(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.load.guard_unproven = True
    async with running_site(config) as site:
        normal, ignoring = await site.four_cars_and_an_idle_ignorer()
        live = site.server.planner.live
        # Each drew what its limit allowed: trusted from then on.
        assert all(live.chargers[c.cp_id].follows_profiles for c in normal)
        # The only charger never seen following a limit keeps room for its car's maximum.
        await ignoring.plug_in(1, big_ev(11.0))
        await site.until(lambda: live.chargers["IGN"].connectors[1].ignoring, 120)
        await site.run_for(60)
        assert ignoring.current_draw_w(1) == 11_000.0
        at, exact = site.exact_peak()
        assert exact <= SITE_W + EPS_W, f"site drew {exact:.0f} W at {at}"
        # Once every charger is known, nothing is held back: the cars use the site.
        assert sum(c.total_draw_w() for c in site.chargers) > 0.85 * SITE_W
        record = await site.server.store.get_charge_point(normal[0].cp_id)
        assert record is not None
        assert record.capabilities["follows_profiles"] == {"firmware": normal[0].firmware}


async def test_without_guards_a_first_ever_ignoring_car_is_over_only_until_its_first_reading(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.load.guard_unproven = False
    async with running_site(config) as site:
        _normal, ignoring = await site.four_cars_and_an_idle_ignorer()
        # Counted at its floor, its car draws 11 kW from the plug-in until the first reading:
        # a start asks for one at once, and the first plan that sees a reading above what the
        # connector may draw counts it at that draw and lowers the others. How long that takes
        # in simulated seconds depends on how busy the machine is (at 60x a 100 ms stall is
        # 6 s), so the window is bounded by those events, not by a number of seconds.
        plugged = site.clock.now()
        await ignoring.plug_in(1, big_ev(11.0))
        live = site.server.planner.live
        # Flagged once `ignore_after_samples` readings showed it over (counted in readings,
        # not seconds: how soon a reading is taken in depends on the machine's load).
        await site.until_readings(lambda: live.chargers["IGN"].connectors[1].ignoring, "IGN",
                                  plugged, config.load.ignore_after_samples + 2)
        readings = site.session_readings("IGN", plugged)
        flagged = next(i for i, r in enumerate(readings, 1) if r.ignoring)
        assert flagged <= config.load.ignore_after_samples, readings
        # The plan that follows the first reading is recorded once its dispatch is done.
        first = readings[0]
        await site.planned_after(first.at)
        await site.run_for(60)
        store = site.server.store

        # A start asks for a reading at once, rather than a meter interval later.
        asked = [c for c in await store.list_commands("IGN", limit=1000)
                 if c.action == "TriggerMessage" and c.created_at >= plugged
                 and c.payload.get("requestedMessage") == "MeterValues"]
        assert asked, "no reading asked for at the start of the session"
        # The first reading of the session, as the planner took it in: the car at 11 kW.
        assert first.w is not None and first.w > FLOOR_W + 1000.0, first
        seen_at = first.at
        # The first plan after it counts the car at its draw and lowers the others.
        plans = await site.planned_after(seen_at)
        i = next(i for i, p in enumerate(plans) if parse_iso(p["ts"]) >= seen_at)
        plan_at = parse_iso(plans[i]["ts"])
        next_plan_at = parse_iso(plans[i + 1]["ts"]) if i + 1 < len(plans) else None
        assert "IGN/1" in plans[i]["inputs"]["pinned"], plans[i]
        lowered = [c for n in _normal for c in await store.list_commands(n.cp_id, limit=1000)
                   if c.action == "SetChargingProfile" and c.created_at >= plan_at
                   and (next_plan_at is None or c.created_at < next_plan_at)]
        assert lowered and all(c.status == "accepted" for c in lowered), lowered
        in_force = max(c.answered_at for c in lowered if c.answered_at is not None)
        # Over the limit only between its car's start and those lowerings taking hold.
        spans = site.over_spans(SITE_W + EPS_W)
        assert spans, "the first-ever car did not push the site over: the test proves nothing"
        assert all(plugged <= a and b is not None and b <= in_force for a, b in spans), (
            spans, plugged, seen_at, in_force)
        t, peak = site.peak_sample(after=(in_force - site.clock.start).total_seconds())
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
        print(f"over {sum(((b or in_force) - a).total_seconds() for a, b in spans):.1f} "
              f"simulated s; first reading {(seen_at - plugged).total_seconds():.1f} s after "
              f"the plug-in, lowerings in force {(in_force - seen_at).total_seconds():.1f} s "
              f"after it")


async def test_a_zero_floor_site_keeps_a_refusing_chargers_maximum_in_reserve(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.sites[0].floors = "zero"  # new cars wait for Loadstar: no standing floors to reserve
    async with running_site(config) as site:
        rejecting = await site.add("REJ", "ocpp1.6", mode="reject_profiles")
        normal = [await site.add(f"N{i}", protocol(i)) for i in range(4)]
        site.start_sampling()
        await site.run_for(30)
        for c in normal:
            await c.plug_in(1, big_ev())
            await site.run_for(30)
        # It holds no floor of 0 (it took nothing): a car there draws its maximum at once.
        assert sum(c.total_draw_w() for c in normal) <= SITE_W - 22_000 + EPS_W
        t_plug = site.t()
        await rejecting.plug_in(1, big_ev())
        await site.run_for(60)
        assert rejecting.current_draw_w(1) == 22_000.0
        at, exact = site.exact_peak(after=site.clock.start + timedelta(seconds=t_plug - 1))
        assert exact <= SITE_W + EPS_W, f"site drew {exact:.0f} W at {at}"
        t, peak = site.peak_sample()
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"


async def assert_in_force_before(site: Site, chargers: list[SimCharger], start: datetime,
                                 limit_w: float) -> None:
    """A few seconds before `start` the chargers already hold profiles that keep the sum of
    their limits at `start` within `limit_w`; from `start` on their draw stays within it."""
    await site.clock.sleep_until(start - timedelta(seconds=5))
    held = sum(c.composite_limit_w(1, at=start) for c in chargers)
    assert held <= limit_w + EPS_W, f"limits at {start:%H:%M:%S} add up to {held:.0f} W"
    await site.clock.sleep_until(start)
    t_start = site.t()
    await site.run_for(30)
    t, peak = site.peak_sample(after=t_start)
    assert peak <= limit_w + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
    at, exact = site.exact_peak(after=start)
    assert exact <= limit_w + EPS_W, f"site drew {exact:.0f} W at {at}"
    # The site is not left idle: the cars share the lower limit.
    assert site.total_w() > 0.8 * limit_w


async def test_scheduled_and_external_limits_are_in_force_on_every_charger_before_they_start(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    # 30 kW from 08:05 to 08:30 every day, in the site's time zone (UTC); the clock starts at
    # 07:58:00, so the next start is seven simulated minutes ahead: beyond the look-ahead of
    # one profile validity (5 min), so the site starts at its full 50 kW.
    config.sites[0].limits = [LimitSpec(kind="scheduled", power_kw=30.0,
                                        start_cron="5 8 * * *", end_cron="30 8 * * *")]
    day = datetime(2026, 11, 23, tzinfo=UTC)
    async with running_site(config, start=day.replace(hour=7, minute=58)) as site:
        chargers = [await site.add(f"L{i}", protocol(i)) for i in range(4)]
        for c in chargers:
            await c.plug_in(1, big_ev())
        site.start_sampling()
        await site.run_for(60)
        assert site.total_w() > 0.9 * SITE_W
        await assert_in_force_before(site, chargers, day.replace(hour=8, minute=5), 30_000.0)

        external_start = day.replace(hour=8, minute=10)
        await site.server.planner.set_external_limit(
            "site", power_kw=20.0, current_a=None, start=external_start,
            end=day.replace(hour=8, minute=20))
        await assert_in_force_before(site, chargers, external_start, 20_000.0)


def tx_profiles(commands: list[Any]) -> list[tuple[datetime, float, datetime, str]]:
    """(sent at, limit, validTo, transaction) of every accepted TxProfile, oldest first."""
    out = []
    for cmd in sorted(commands, key=lambda c: c.id):
        if cmd.action != "SetChargingProfile" or cmd.status != "accepted":
            continue
        body = cmd.payload.get("csChargingProfiles") or cmd.payload.get("chargingProfile")
        if body["chargingProfilePurpose"] != "TxProfile":
            continue
        schedule = body["chargingSchedule"]
        schedule = schedule[0] if isinstance(schedule, list) else schedule
        assert schedule["chargingRateUnit"] == "A"
        [period] = schedule["chargingSchedulePeriod"]
        out.append((parse_iso(body["validFrom"]), float(period["limit"]),
                    parse_iso(body["validTo"]), str(body["transactionId"])))
    return out


async def test_steady_hour_with_tapering_cars_sends_no_more_profiles_than_the_caps_allow(
        tmp_path: Path) -> None:
    hour = 3600.0
    min_interval = 30.0
    config = site_config(tmp_path, min_update_interval_s=min_interval)
    renew_before = config.load.profile_validity_s / 2
    async with running_site(config, speed=240) as site:
        chargers = [await site.add(f"H{i}", protocol(i)) for i in range(6)]
        site.start_sampling()
        # Chargers are up (floors confirmed) before the cars come: a session that starts
        # while another charger's floor is unconfirmed is planned at 0 A (that charger might
        # draw its maximum), which is a start-up transient and not what this test is about.
        live = site.server.planner.live
        await site.until(lambda: all(floor_held(live, c.cp_id) for c in chargers), 60)
        t0 = site.clock.now()
        # Cars in their taper (above 80 % charge) draw a little less every minute, and the
        # planner lends what they leave to the others: a stream of small changes that the
        # hysteresis and the rate cap must absorb. Two big cars draw their maximum throughout.
        for i, c in enumerate(chargers):
            ev = big_ev() if i < 2 else EV(battery_kwh=60.0, soc=0.86 + 0.02 * i,
                                           max_power_kw=22.0, taper_floor=0.05)
            await c.plug_in(1, ev)
        await site.run_for(hour)
        t, peak = site.peak_sample()
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
        for c in chargers:
            sent = tx_profiles(await site.server.store.list_commands(c.cp_id, limit=10_000))
            assert sent, c.cp_id
            # Six minimums (6 A) fit the site many times over: no car is ever paused.
            assert min(limit for _, limit, _, _ in sent) >= 6.0, (c.cp_id, sent[:3])
            renewals = hour / (VALIDITY_S - renew_before)
            cap = 1 + hour / min_interval + renewals
            assert len(sent) <= cap, (c.cp_id, len(sent), cap)
            raises = [sent[0][0]]
            for (_, prev, valid_to, tx_prev), (t_new, new, _, tx_new) in zip(
                    sent, sent[1:], strict=False):
                if tx_new != tx_prev or new < prev:
                    continue  # a new session, or a lowering: never held back
                renewal = (valid_to - t_new).total_seconds() <= renew_before + COALESCE_S
                assert renewal or new - prev >= config.load.hysteresis_a - 1e-9, (
                    c.cp_id, t_new - t0, prev, new)
                if not renewal:
                    raises.append(t_new)
            gaps = [(b - a).total_seconds() for a, b in zip(raises, raises[1:], strict=False)]
            assert all(g >= min_interval - 1e-6 for g in gaps), (c.cp_id, gaps)
            print(f"{c.cp_id}: {len(sent)} TxProfiles in an hour, {len(raises) - 1} raises, "
                  f"limits {[round(x[1], 1) for x in sent][:30]}")


async def test_a_lent_car_that_ramps_up_gets_its_share_back_without_waiting_out_the_raise_cap(
        tmp_path: Path) -> None:
    cap_s = 60.0
    config = site_config(tmp_path, min_update_interval_s=cap_s)
    async with running_site(config) as site:
        lender = await site.add("LEND", "ocpp1.6")
        others = [await site.add("BIG0", "ocpp2.0.1"), await site.add("BIG1", "ocpp1.6")]
        site.start_sampling()
        live = site.server.planner.live
        await site.until(lambda: all(floor_held(live, c.cp_id) for c in (lender, *others)), 60)
        slow = EV(battery_kwh=500.0, soc=0.1, max_power_kw=4.0)
        await lender.plug_in(1, slow)
        for c in others:
            await c.plug_in(1, big_ev())
        held = live.chargers["LEND"].connectors[1]
        # A third of the site each, until the planner lends what the slow car leaves.
        await site.until(lambda: held.held_tx_w is not None and held.held_tx_w < 7000.0, 400)
        lent_w, lent_at = held.held_tx_w, site.t()
        slow.max_power_kw = 22.0  # the car ramps up right after its headroom was lent
        waited = await site.until(lambda: (held.held_tx_w or 0.0) > lent_w + 5000.0, cap_s)
        assert site.t() - lent_at < cap_s / 2, "the share came back only with the raise cap"
        assert waited <= 2 * METER_S + 2 * COALESCE_S, waited
        t, peak = site.peak_sample()
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"


async def test_a_car_that_falls_from_its_limit_is_lent_at_once_not_after_the_lend_delay(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    async with running_site(config) as site:
        lend_after_s = site.server.planner.directory.site("site").lend_after_s
        chargers = [await site.add("FALL", "ocpp1.6"), await site.add("BIG0", "ocpp2.0.1"),
                    await site.add("BIG1", "ocpp1.6")]
        site.start_sampling()
        live = site.server.planner.live
        await site.until(lambda: all(floor_held(live, c.cp_id) for c in chargers), 60)
        car = big_ev()
        await chargers[0].plug_in(1, car)
        for c in chargers[1:]:
            await c.plug_in(1, big_ev())
        held = live.chargers["FALL"].connectors[1]
        # A third of the site each, drawn in full: the car is seen at its limit.
        await site.until(lambda: held.drawn_limit_w is not None, 120)
        share_w = held.held_tx_w
        assert share_w is not None
        car.max_power_kw = share_w / 1000.0 / 3  # it tapers to a third of its share
        fell_at = site.t()
        waited = await site.until(lambda: (held.held_tx_w or share_w) < share_w / 2, 120)
        # Within a meter interval or two, not after the site's lend delay.
        assert waited <= 2 * METER_S + 2 * COALESCE_S < lend_after_s, (waited, fell_at)
        others = [live.chargers[c.cp_id].connectors[1] for c in chargers[1:]]
        await site.until(lambda: all((o.held_tx_w or 0.0) > share_w + 1000.0 for o in others),
                         2 * config.load.min_update_interval_s + 2 * COALESCE_S)
        t, peak = site.peak_sample()
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"


async def profile_calls(site: Site, cp_id: str) -> int:
    return sum(1 for cmd in await site.server.store.list_commands(cp_id, limit=10_000)
               if cmd.action == "SetChargingProfile")


async def test_a_charger_that_cannot_be_limited_gets_no_profile_after_it_said_so(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    async with running_site(config) as site:
        old = [await site.add("OLD16", "ocpp1.6", mode="no_smart_charging", firmware="1.0"),
               await site.add("OLD201", "ocpp2.0.1", mode="no_smart_charging", firmware="1.0")]
        smart = await site.add("SMART", "ocpp1.6")
        site.start_sampling()
        live = site.server.planner.live
        await site.until(lambda: all(live.chargers[c.cp_id].uncontrollable for c in old), 120)
        for c in (*old, smart):
            await c.plug_in(1, big_ev())
        await site.run_for(900)  # many plans: cars arriving, meter values, renewals
        for c in old:
            # The one floor it answered NotImplemented to, and nothing after it.
            assert await profile_calls(site, c.cp_id) == 1, c.cp_id
        assert await profile_calls(site, "SMART") > 1
        # Two uncontrollable 22 kW cars and the smart one at its minimum fit the 50 kW site.
        t, peak = site.peak_sample()
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
        # New firmware may have smart charging: it is asked once more.
        await old[0].stop()
        site.chargers.remove(old[0])
        again = await site.add("OLD16", "ocpp1.6", mode="no_smart_charging", firmware="2.0")
        await site.until(lambda: live.chargers["OLD16"].firmware == "2.0"
                         and live.chargers["OLD16"].uncontrollable is not None, 120)
        asked = await profile_calls(site, "OLD16")
        assert asked >= 2  # asked again (what was under way when it answered may follow)
        await again.plug_in(1, big_ev())
        await site.run_for(600)
        assert await profile_calls(site, "OLD16") == asked  # and never after it said so


async def test_a_plan_that_lets_the_site_draw_over_its_limit_is_recorded_and_never_silent(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    with capture_logs() as logs:
        async with running_site(config) as site:
            old = [await site.add(f"OLD{i}", "ocpp1.6", mode="no_smart_charging")
                   for i in range(2)]
            site.start_sampling()
            live = site.server.planner.live
            await site.until(lambda: all(live.chargers[c.cp_id].uncontrollable for c in old),
                             120)
            for c in old:
                await c.plug_in(1, big_ev())
            await site.run_for(60)
            # The grid operator cuts the site to 30 kW for ten minutes; the two cars that
            # cannot be limited go on drawing 44 kW.
            cut_at = site.clock.now()
            assert site.server.planner is not None
            await site.server.planner.set_external_limit(
                "site", 30.0, None, end=cut_at + timedelta(minutes=10))
            await site.until(lambda: any(e["event"] == "site_over_limit" for e in logs), 300)
            plans = await site.planned_after(cut_at)
            over = [p["inputs"]["overloaded"]["site"] for p in plans
                    if parse_iso(p["ts"]) >= cut_at and p["inputs"].get("overloaded")]
            assert over and max(o["over_w"] for o in over) >= 44_000 - 30_000 - 500, over
            assert all(e["log_level"] == "warning" for e in logs
                       if e["event"] == "site_over_limit")
            # The cut ends: back within the limit, and it says so.
            await site.until(lambda: any(e["event"] == "site_back_within_limit"
                                         for e in logs), 900)
            last = (await site.planned_after(site.clock.now()))[-1]
            assert not last["inputs"].get("overloaded")


def answer_everything(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A raw charger that accepts what the server asks (profiles, triggers, settings)."""
    return default_answer(action, payload) or {"status": "Accepted"}


async def test_a_reading_of_a_gigawatt_takes_no_room_from_another_charger(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    with capture_logs() as logs:
        async with running_site(config) as site:
            smart = await site.add("SMART", "ocpp1.6")
            site.start_sampling()
            await smart.plug_in(1, big_ev())
            live = site.server.planner.live
            held = live.charger("SMART").connector(1)
            await site.until(lambda: (held.held_tx_w or 0.0) > 20_000.0, 120)
            liar = await RawClient.connect(f"{site.url}/LIAR", "ocpp1.6", answer_everything)
            try:
                await liar.ok("BootNotification", {"chargePointVendor": "V",
                                                   "chargePointModel": "M"})
                started = await liar.ok("StartTransaction", {
                    "connectorId": 1, "idTag": "T", "meterStart": 0,
                    "timestamp": site.clock.now().isoformat()})
                await liar.ok("MeterValues", {
                    "connectorId": 1, "transactionId": started["transactionId"],
                    "meterValue": [{"timestamp": site.clock.now().isoformat(), "sampledValue": [
                        {"value": "1000000000", "measurand": "Power.Active.Import",
                         "unit": "W"}]}]})
                await site.until(lambda: any(e["event"] == "reading_implausible"
                                             for e in logs), 60)
                lie_at = site.clock.now()
                site.server.planner.request("site", "test")  # plan with the lie in the state
                plans = await site.planned_after(lie_at)
                later = [p for p in plans if parse_iso(p["ts"]) >= lie_at]
                for plan in later:
                    assert plan["result"]["LIAR/1"]["power_w"] <= 22_000.0
                    assert plan["result"]["SMART/1"]["power_w"] > 0.0
                assert not live.chargers["LIAR"].ignores_profiles
            finally:
                await liar.close()
