"""The EV model and the simulated clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from simulators.clock import SimClock
from simulators.ev import EV


def test_ev_takes_its_maximum_until_the_taper_then_less() -> None:
    ev = EV(battery_kwh=50, soc=0.5, max_power_kw=11)
    assert ev.acceptance_w() == 11000
    ev.soc = 0.9
    assert ev.acceptance_w() == pytest.approx(5500)
    ev.soc = 0.999
    assert ev.acceptance_w() == pytest.approx(11000 * 0.05)  # floor, so it does finish


def test_ev_draws_the_smaller_of_offer_and_acceptance_and_pauses_below_6_a() -> None:
    ev = EV(max_power_kw=11, phases=3)
    assert ev.draw_w(22000) == 11000
    assert ev.draw_w(7000) == 7000
    assert ev.draw_w(6 * 230 * 3) == pytest.approx(4140)
    assert ev.draw_w(6 * 230 * 3 - 10) == 0  # below 6 A per phase: the car pauses
    one = EV(max_power_kw=7.4, phases=1)
    assert one.draw_w(1400) == 1400 and one.draw_w(1300) == 0


def test_charge_integrates_energy_and_stops_at_the_target() -> None:
    ev = EV(battery_kwh=10, soc=0.5, max_power_kw=10, target_soc=0.7)
    wh = ev.charge(10000, 360)  # 6 min at 10 kW = 1 kWh
    assert wh == pytest.approx(1000) and ev.soc == pytest.approx(0.6)
    wh = ev.charge(10000, 3600)
    assert wh == pytest.approx(1000) and ev.full and ev.energy_needed_wh == 0
    assert ev.charge(10000, 60) == 0


def test_taper_makes_the_last_20_percent_slower_than_constant_power() -> None:
    ev = EV(battery_kwh=10, soc=0.8, max_power_kw=10)
    wh = ev.charge(10000, 720)  # 2 kWh would fit at full power
    assert 0 < wh < 2000 * 0.75
    assert not ev.full


def test_invalid_evs_are_refused() -> None:
    with pytest.raises(ValueError):
        EV(phases=4)
    with pytest.raises(ValueError):
        EV(soc=1.5)


def test_clock_runs_speed_times_faster_from_its_start() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = SimClock(speed=600, start=start)
    assert clock.now().tzinfo is not None
    t0 = time.monotonic()
    time.sleep(0.05)
    elapsed_wall = time.monotonic() - t0
    sim = (clock.now() - start).total_seconds()
    assert sim == pytest.approx(elapsed_wall * 600, rel=0.3)
    assert clock.wall_seconds(60) == pytest.approx(0.1)


async def test_clock_sleep_is_in_simulated_seconds() -> None:
    clock = SimClock(speed=1000)
    before = clock.now()
    t0 = time.monotonic()
    await clock.sleep(50)  # 50 ms of wall time
    assert time.monotonic() - t0 < 0.5
    assert (clock.now() - before).total_seconds() >= 50 * 0.95
    await asyncio.wait_for(clock.sleep(-5), 0.1)


def test_clock_requires_aware_start_and_positive_speed() -> None:
    with pytest.raises(ValueError):
        SimClock(start=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        SimClock(speed=0)
