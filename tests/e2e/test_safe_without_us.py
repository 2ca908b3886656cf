"""If Loadstar dies, every charger falls back to its floor by itself and the site stays safe."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from csms.clock import iso
from simulators.charger import SimCharger
from simulators.clock import SimClock
from simulators.ev import EV
from tests.e2e.serve_process import ServeProcess

SITE_W = 50_000.0
FLOOR_W = 6 * 230 * 3  # 6 A on three phases: the IEC 61851 minimum each connector can hold
VALIDITY_S = 120

LOAD_TOML = f"""
[load]
coalesce_s = 2.0
profile_validity_s = {VALIDITY_S}
min_update_interval_s = 10

[[sites]]
id = "site"
max_power_kw = 50.0
chargers = ["*"]

[[chargers]]
match = "*"
max_power_kw = 22.0
max_current_a = 32.0
"""


async def settle(clock: SimClock, chargers: list[SimCharger], seconds: int,
                 peaks: list[float]) -> None:
    """Advance simulated time second by second, recording the site's total draw."""
    for _ in range(seconds):
        await clock.sleep(1)
        peaks.append(sum(c.total_draw_w() for c in chargers))


async def test_killed_server_leaves_every_charger_on_its_floor_and_the_site_within_limit(
        tmp_path: Path) -> None:
    speed = 20.0
    clock = SimClock(speed=speed, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    epoch = time.time() - clock.elapsed() / speed
    clock_args = ("--clock-speed", str(speed), "--clock-start", iso(clock.start),
                  "--clock-epoch", repr(epoch))
    db = tmp_path / "safe.db"
    serve = ServeProcess(tmp_path, db, tail_toml=LOAD_TOML, args=clock_args)
    port = await serve.start()
    url = f"ws://127.0.0.1:{port}/ocpp"
    chargers = [
        SimCharger(f"S{i}", url, protocol="ocpp1.6" if i % 2 else "ocpp2.0.1", clock=clock,
                   meter_interval_s=10, reconnect_min_s=1, reconnect_max_s=5, seed=i)
        for i in range(6)
    ]
    draws: list[float] = []
    for c in chargers:
        await c.start()
    for c in chargers:
        await c.wait_for(lambda c=c: c.booted.is_set(), timeout=30)
    await settle(clock, chargers, 30, draws)
    for c in chargers[:5]:
        await c.plug_in(1, EV(battery_kwh=100, soc=0.1, max_power_kw=22))
        await settle(clock, chargers, 60, draws)
    # Five cars share the site, well above their floors. The sixth charger has never been seen
    # following a limit, so room for its maximum (22 kW) is kept (load.guard_unproven).
    drawn = sum(c.total_draw_w() for c in chargers)
    assert drawn > 0.95 * (SITE_W * 0.98 - 22_000), drawn
    assert all(c.current_draw_w(1) > FLOOR_W + 500 for c in chargers[:5])
    assert max(draws) <= SITE_W

    await serve.kill()
    down = [c.composite_limit_w(1) for c in chargers]
    assert all(limit < 22_000 for limit in down[:5])
    await chargers[5].plug_in(1, EV(battery_kwh=100, soc=0.1, max_power_kw=22))
    await settle(clock, chargers, 5, draws)
    assert chargers[5].current_draw_w(1) <= FLOOR_W + 1
    await settle(clock, chargers, VALIDITY_S + 30, draws)
    # Every TxProfile has lapsed: each charger draws at most its standing floor.
    for c in chargers:
        assert c.current_draw_w(1) <= FLOOR_W + 1, (c.cp_id, c.current_draw_w(1))
    assert max(draws) <= SITE_W

    restarted = ServeProcess(tmp_path, db, port=port, tail_toml=LOAD_TOML, args=clock_args)
    await restarted.start()
    for _ in range(300):
        await settle(clock, chargers, 1, draws)
        if sum(c.total_draw_w() for c in chargers) > 40_000:
            break
    assert sum(c.total_draw_w() for c in chargers) > 40_000, "full allocation did not resume"
    assert max(draws) <= SITE_W
    for c in chargers:
        await c.stop()
    assert await restarted.terminate() == 0
