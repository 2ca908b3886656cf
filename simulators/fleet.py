"""Run many simulated chargers against a CSMS from a scenario, and summarise what happened."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from simulators.charger import SimCharger
from simulators.clock import SimClock
from simulators.ev import EV


@dataclass
class Summary:
    """What a fleet run did, as the chargers saw it."""

    chargers: int
    protocol: str
    connectors: int
    duration_s: float
    speed: float
    transactions: int = 0
    meter_samples: int = 0
    energy_kwh: float = 0.0
    messages: int = 0
    wall_s: float = 0.0
    peak_w: float = 0.0
    online_at_end: int = 0
    draw_w: list[float] = field(default_factory=list)  # site draw, one value a simulated second

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s else 0.0


def protocol_of(index: int, protocol: str) -> str:
    """'mixed' alternates 1.6J and 2.0.1; otherwise every charger speaks `protocol`."""
    if protocol == "mixed":
        return "ocpp1.6" if index % 2 else "ocpp2.0.1"
    return protocol


async def _car(charger: SimCharger, connector: int, clock: SimClock, arrive_s: float,
               leave_s: float, rng: random.Random) -> None:
    await clock.sleep(arrive_s)
    ev = EV(battery_kwh=rng.choice([40.0, 60.0, 80.0]), soc=rng.uniform(0.1, 0.6),
            max_power_kw=rng.choice([7.4, 11.0, 22.0]))
    await charger.plug_in(connector, ev, id_tag=f"SIM{charger.cp_id}{connector}"[:20])
    await clock.sleep(leave_s - arrive_s)
    await charger.unplug(connector)


async def run_simulate(url: str, chargers: int, protocol: str = "mixed", connectors: int = 1,
                       duration_s: float = 3600.0, speed: float = 60.0, seed: int = 1,
                       meter_interval_s: int = 60, prefix: str = "SIM") -> Summary:
    """Boot `chargers` simulated chargers, run one car per connector, and summarise the run.

    Cars arrive in the first quarter of the run and stay between 40 % and 70 % of it.
    """
    clock = SimClock(speed=speed)
    rng = random.Random(seed)
    fleet = [
        SimCharger(f"{prefix}{i:04d}", url, protocol=protocol_of(i, protocol),
                   connectors=connectors, clock=clock, meter_interval_s=meter_interval_s, seed=i)
        for i in range(chargers)
    ]
    summary = Summary(chargers, protocol, connectors, duration_s, speed)
    wall = time.perf_counter()
    for c in fleet:
        await c.start()
    await asyncio.gather(*(c.wait_for(lambda c=c: c.booted.is_set(), 60) for c in fleet))
    start = clock.elapsed()

    async def sample() -> None:
        while True:
            total = sum(c.total_draw_w() for c in fleet)
            summary.draw_w.append(total)
            summary.peak_w = max(summary.peak_w, total)
            await clock.sleep(1.0)

    sampler = asyncio.create_task(sample())
    cars = []
    for c in fleet:
        for n in range(1, connectors + 1):
            arrive = rng.uniform(0, duration_s / 4)
            leave = min(duration_s, arrive + rng.uniform(0.4, 0.7) * duration_s)
            cars.append(_car(c, n, clock, arrive, leave, rng))
    await asyncio.gather(*cars)
    await clock.sleep(max(0.0, duration_s - (clock.elapsed() - start)))
    sampler.cancel()
    await asyncio.gather(*(c.wait_idle(30) for c in fleet), return_exceptions=True)
    summary.online_at_end = sum(1 for c in fleet if c.online)
    for c in fleet:
        await c.stop()
    summary.wall_s = time.perf_counter() - wall
    summary.transactions = sum(len(c.acknowledged_transactions) for c in fleet)
    summary.meter_samples = sum(c.samples_acked for c in fleet)
    summary.energy_kwh = sum(sum(c.energy_by_tx_wh().values()) for c in fleet) / 1000.0
    summary.messages = sum(c.messages_sent + c.messages_received for c in fleet)
    return summary


def format_summary(s: Summary) -> str:
    """A short human-readable report of a run."""
    return "\n".join([
        f"chargers        {s.chargers} ({s.protocol}, {s.connectors} connector(s) each)",
        f"simulated       {s.duration_s:.0f} s at {s.speed:g}x, {s.wall_s:.1f} s wall",
        f"transactions    {s.transactions} acknowledged",
        f"meter samples   {s.meter_samples} acknowledged",
        f"energy          {s.energy_kwh:.1f} kWh",
        f"OCPP messages   {s.messages} ({s.messages_per_s:.0f}/s)",
        f"peak site draw  {s.peak_w / 1000:.1f} kW",
        f"online at end   {s.online_at_end}/{s.chargers}",
    ])
