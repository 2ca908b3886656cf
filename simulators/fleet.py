"""Run many simulated chargers against a CSMS from a scenario, and summarise what happened.

`run_fleet` is the runner (scenario, site limit, per-charger options; `loadstar simulate`
calls it with its defaults); `format_summary` prints a `Summary`. The site draw series
is rebuilt afterwards from each connector's exact draw change points (no sampling task), one
value per simulated second, and the peak is exact.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulators.charger import SimCharger
from simulators.clock import Clock, SimClock
from simulators.ev import EV


@dataclass(frozen=True)
class Arrival:
    """One car: plugs into `connector` of charger number `charger` (0-based) at `arrive_s`
    simulated seconds after the fleet is up, and leaves at `depart_s` (or charges till full)."""

    charger: int
    connector: int
    arrive_s: float
    depart_s: float
    battery_kwh: float = 60.0
    soc: float = 0.2
    target_soc: float = 1.0
    max_power_kw: float = 11.0
    phases: int = 3
    id_tag: str | None = None

    @property
    def energy_need_kwh(self) -> float:
        """Energy the car wants before it leaves."""
        return max(0.0, (self.target_soc - self.soc) * self.battery_kwh)

    def make_ev(self) -> EV:
        """The EV for this arrival."""
        return EV(battery_kwh=self.battery_kwh, soc=self.soc, target_soc=self.target_soc,
                  max_power_kw=self.max_power_kw, phases=self.phases)


@dataclass
class Summary:
    """What a fleet run did, as the chargers saw it (server acknowledgements only)."""

    chargers: int
    protocol: str
    connectors: int
    duration_s: float
    speed: float
    transactions: int = 0  # acknowledged by the server
    transactions_started: int = 0  # started locally (some may have been refused)
    meter_samples: int = 0  # sampledValue entries acknowledged
    meter_messages: int = 0
    energy_kwh: float = 0.0
    messages: int = 0  # OCPP frames sent + received
    messages_sent: int = 0
    wall_s: float = 0.0
    peak_w: float = 0.0
    site_limit_w: float | None = None
    seconds_over_limit: int = 0
    booted: int = 0
    online_at_end: int = 0
    profiles_installed: int = 0
    errors: list[str] = field(default_factory=list)
    draw_w: list[float] = field(default_factory=list)  # site draw, one value a simulated second

    @property
    def messages_per_s(self) -> float:
        """OCPP frames per wall second."""
        return self.messages / self.wall_s if self.wall_s else 0.0


def protocol_of(index: int, protocol: str) -> str:
    """'mixed' alternates 1.6J and 2.0.1; otherwise every charger speaks `protocol`."""
    if protocol == "mixed":
        return "ocpp1.6" if index % 2 else "ocpp2.0.1"
    if protocol not in ("ocpp1.6", "ocpp2.0.1"):
        raise ValueError("protocol must be ocpp1.6, ocpp2.0.1 or mixed")
    return protocol


def make_scenario(
    chargers: int,
    connectors: int,
    duration_s: float,
    *,
    seed: int = 1,
    sessions_per_connector: int = 1,
) -> list[Arrival]:
    """A reproducible day at a car park: each connector sees `sessions_per_connector` cars.

    With one session, cars arrive in the first quarter of the run and stay 40-70 % of it;
    with more, the run is cut into equal slots and each car arrives early in its slot.
    """
    rng = random.Random(seed)
    out: list[Arrival] = []
    slot = duration_s / max(1, sessions_per_connector)
    for i in range(chargers):
        for n in range(1, connectors + 1):
            for k in range(sessions_per_connector):
                base = k * slot
                arrive = base + rng.uniform(0, slot / 4)
                depart = min(base + slot, arrive + rng.uniform(0.4, 0.7) * slot)
                battery = rng.choice([40.0, 60.0, 80.0])
                soc = rng.uniform(0.1, 0.6)
                out.append(Arrival(
                    charger=i, connector=n, arrive_s=arrive, depart_s=depart,
                    battery_kwh=battery, soc=soc, target_soc=rng.choice([0.8, 0.9, 1.0]),
                    max_power_kw=rng.choice([7.4, 11.0, 22.0]),
                ))
    return out


async def _car(charger: SimCharger, clock: Clock, t0: datetime, car: Arrival) -> None:
    await clock.sleep((t0 + timedelta(seconds=car.arrive_s) - clock.now()).total_seconds())
    tag = car.id_tag or f"SIM{charger.cp_id}{car.connector}"
    await charger.plug_in(car.connector, car.make_ev(), id_tag=tag[:20])
    await clock.sleep((t0 + timedelta(seconds=car.depart_s) - clock.now()).total_seconds())
    await charger.unplug(car.connector)


def site_series(
    fleet: Sequence[SimCharger], start: datetime, duration_s: float
) -> tuple[list[float], float]:
    """Total draw (W) at every simulated second from `start`, and the exact peak in between."""
    changes: list[tuple[datetime, int, float]] = []
    key = 0
    for charger in fleet:
        for n in charger.conns:
            changes.extend((at, key, w) for at, w in charger.draw_log(n))
            key += 1
    changes.sort(key=lambda c: c[0])
    end = start + timedelta(seconds=duration_s)
    current = [0.0] * key
    total = 0.0
    peak = 0.0
    series: list[float] = []
    idx = 0
    for second in range(int(duration_s) + 1):
        at = start + timedelta(seconds=second)
        while idx < len(changes) and changes[idx][0] <= at:
            _, k, w = changes[idx]
            total += w - current[k]
            current[k] = w
            if changes[idx][0] >= start:
                peak = max(peak, total)
            idx += 1
        peak = max(peak, total)
        series.append(max(0.0, total))
        if at >= end:
            break
    return series, peak


async def run_fleet(
    url: str,
    *,
    chargers: int,
    protocol: str = "mixed",
    connectors: int = 1,
    duration_s: float = 3600.0,
    speed: float = 60.0,
    scenario: Sequence[Arrival] | None = None,
    site_limit_kw: float | None = None,
    clock: Clock | None = None,
    seed: int = 1,
    meter_interval_s: int = 60,
    prefix: str = "SIM",
    password: str | None = None,
    ssl: Any = None,
    modes: Sequence[str] | None = None,
    boot_timeout_s: float = 60.0,
    drain_timeout_s: float = 30.0,
    **charger_options: Any,
) -> Summary:
    """Boot a fleet, play `scenario` (default: `make_scenario`), drain, and summarise.

    `modes[i]` sets charger i's mode (normal | reject_profiles | ignore_profiles);
    `charger_options` go to every `SimCharger`.
    """
    clock = clock or SimClock(speed=speed)
    fleet = [
        SimCharger(
            f"{prefix}{i:04d}", url, protocol=protocol_of(i, protocol), connectors=connectors,
            clock=clock, meter_interval_s=meter_interval_s, seed=i, password=password, ssl=ssl,
            mode=(modes[i] if modes else "normal"), **charger_options,
        )
        for i in range(chargers)
    ]
    installed = [0]

    def count(event: Any) -> None:
        if event.kind == "installed":
            installed[0] += 1

    for c in fleet:
        c.on_profile = count
    summary = Summary(chargers, protocol, connectors, duration_s, speed)
    summary.site_limit_w = site_limit_kw * 1000.0 if site_limit_kw is not None else None
    wall = time.perf_counter()
    try:
        for c in fleet:
            await c.start()
        booted = await asyncio.gather(
            *(asyncio.wait_for(c.booted.wait(), boot_timeout_s) for c in fleet),
            return_exceptions=True,
        )
        for c, result in zip(fleet, booted, strict=True):
            if isinstance(result, BaseException):
                summary.errors.append(f"{c.cp_id}: not booted ({c.last_error or 'timeout'})")
        summary.booted = sum(1 for c in fleet if c.booted.is_set())
        t0 = clock.now()
        cars = scenario if scenario is not None else make_scenario(
            chargers, connectors, duration_s, seed=seed)
        await asyncio.gather(*(
            _car(fleet[car.charger], clock, t0, car)
            for car in cars
            if car.charger < len(fleet) and fleet[car.charger].booted.is_set()
        ))
        if summary.booted:  # with no charger up there is nothing to wait out
            await clock.sleep((t0 + timedelta(seconds=duration_s) - clock.now()).total_seconds())
        for c in fleet:
            for n, conn in c.conns.items():
                if conn.ev is not None:
                    await c.unplug(n)
        drained = await asyncio.gather(
            *(c.wait_idle(drain_timeout_s) for c in fleet), return_exceptions=True)
        for c, result in zip(fleet, drained, strict=True):
            if isinstance(result, BaseException):
                summary.errors.append(f"{c.cp_id}: queue not drained ({c.last_error or ''})")
        summary.online_at_end = sum(1 for c in fleet if c.online)
    finally:
        await asyncio.gather(*(c.stop() for c in fleet), return_exceptions=True)
    summary.wall_s = time.perf_counter() - wall
    summary.transactions = sum(len(c.acknowledged_transactions) for c in fleet)
    summary.transactions_started = sum(len(c.transactions) for c in fleet)
    summary.meter_samples = sum(c.samples_acked for c in fleet)
    summary.meter_messages = sum(t.meter_messages_acked for c in fleet for t in c.transactions)
    summary.energy_kwh = sum(t.energy_wh for c in fleet for t in c.transactions) / 1000.0
    summary.messages_sent = sum(c.messages_sent + c.results_sent for c in fleet)
    summary.messages = sum(c.messages_sent + c.results_sent + c.messages_received for c in fleet)
    summary.profiles_installed = installed[0]
    summary.draw_w, summary.peak_w = site_series(fleet, t0, duration_s)
    if summary.site_limit_w is not None:
        summary.seconds_over_limit = sum(
            1 for w in summary.draw_w if w > summary.site_limit_w + 1.0)
    return summary


def format_summary(s: Summary) -> str:
    """A short human-readable report of a run."""
    lines = [
        f"chargers        {s.chargers} ({s.protocol}, {s.connectors} connector(s) each), "
        f"{s.booted} booted",
        f"simulated       {s.duration_s:.0f} s at {s.speed:g}x, {s.wall_s:.1f} s wall",
        f"transactions    {s.transactions} acknowledged",
        f"meter samples   {s.meter_samples} acknowledged ({s.meter_messages} messages)",
        f"energy          {s.energy_kwh:.1f} kWh",
        f"OCPP messages   {s.messages} ({s.messages_per_s:.0f}/s), {s.messages_sent} sent",
        f"profiles        {s.profiles_installed} installed",
        f"peak site draw  {s.peak_w / 1000:.1f} kW",
    ]
    if s.site_limit_w is not None:
        lines.append(f"site limit      {s.site_limit_w / 1000:.1f} kW, exceeded for "
                     f"{s.seconds_over_limit} sampled s")
    lines.append(f"online at end   {s.online_at_end}/{s.chargers}")
    lines.extend(f"error           {e}" for e in s.errors[:10])
    return "\n".join(lines)
