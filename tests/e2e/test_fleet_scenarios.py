"""Simulated fleets against the real server: everything acknowledged is stored, exactly once."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from csms.config import Config
from csms.service import Loadstar
from csms.store import SqliteStore
from simulators.charger import SimCharger
from simulators.clock import SimClock
from simulators.ev import EV
from tests.conftest import make_config


def fleet_config(tmp_path: Path) -> Config:
    config = make_config(tmp_path)
    # Plans coalesce over 30 simulated seconds: at 120x that is a quarter of a real second.
    config.load.coalesce_s = 30.0
    return config


async def drive(charger: SimCharger, clock: SimClock, arrive_s: float, leave_s: float,
                rng: random.Random) -> None:
    """One car: arrive, charge, leave (or stop when full)."""
    await clock.sleep(arrive_s)
    ev = EV(battery_kwh=rng.choice([40.0, 60.0, 80.0]), soc=rng.uniform(0.1, 0.6),
            max_power_kw=rng.choice([7.4, 11.0, 22.0]))
    await charger.plug_in(1, ev, id_tag=f"TAG{charger.cp_id}")
    await clock.sleep(leave_s - arrive_s)
    await charger.unplug(1)


async def assert_store_matches(db: str, chargers: list[SimCharger]) -> tuple[int, int]:
    """Every acknowledged transaction and meter sample is in the store, counted exactly."""
    store = SqliteStore(db)
    await store.open()
    try:
        sessions = {(s.cp_id, s.ocpp_tx_id): s for s in await store.list_sessions()}
        txs = samples = 0
        for c in chargers:
            acked = c.samples_acked_by_tx()
            for tx in c.acknowledged_transactions:
                s = sessions.get((c.cp_id, str(tx)))
                assert s is not None, f"{c.cp_id} transaction {tx} acknowledged but not stored"
                assert s.meter_value_count == acked.get(tx, 0), (c.cp_id, tx)
                txs += 1
                samples += acked.get(tx, 0)
            stored_for_cp = [k for k in sessions if k[0] == c.cp_id]
            assert len(stored_for_cp) == len(c.acknowledged_transactions), c.cp_id
        return txs, samples
    finally:
        await store.close()


async def test_hundred_mixed_chargers_for_a_simulated_hour_are_stored_exactly(
        tmp_path: Path) -> None:
    config = fleet_config(tmp_path)
    clock = SimClock(speed=120)
    server = Loadstar(config, clock=clock)
    await server.start()
    url = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    chargers = [
        SimCharger(f"F{i:03d}", url, protocol="ocpp1.6" if i % 2 else "ocpp2.0.1", clock=clock,
                   meter_interval_s=60, seed=i)
        for i in range(100)
    ]
    wall = time.perf_counter()
    for c in chargers:
        await c.start()
    await asyncio.gather(*(asyncio.wait_for(c.booted.wait(), 30) for c in chargers))
    rng = random.Random(42)
    plans = []
    for c in chargers:
        arrive = rng.uniform(0, 900)
        plans.append(drive(c, clock, arrive, min(3600.0, arrive + rng.uniform(1200, 3000)), rng))
    await asyncio.gather(*plans)
    await asyncio.gather(*(c.wait_idle(timeout=30) for c in chargers))
    for c in chargers:
        await c.stop()
    await server.stop()
    wall = time.perf_counter() - wall
    txs, samples = await assert_store_matches(config.store.path, chargers)
    messages = sum(c.messages_sent + c.messages_received for c in chargers)
    print(f"\n100 chargers, 1 simulated hour: {wall:.1f} s wall, {txs} transactions, "
          f"{samples} meter samples, {messages} OCPP messages, {messages / wall:.0f} msg/s")
    assert txs >= 100 and samples > 0
    assert wall < 60


async def test_restart_mid_scenario_loses_nothing_and_transaction_ids_keep_increasing(
        tmp_path: Path) -> None:
    config = fleet_config(tmp_path)
    config.ocpp.port = 0
    clock = SimClock(speed=120)
    server = Loadstar(config, clock=clock)
    await server.start()
    port = server.ocpp_port
    url = f"ws://127.0.0.1:{port}/ocpp"
    chargers = [
        SimCharger(f"R{i:02d}", url, protocol="ocpp1.6" if i % 2 else "ocpp2.0.1", clock=clock,
                   meter_interval_s=60, reconnect_max_s=120, seed=i)
        for i in range(10)
    ]
    for c in chargers:
        await c.start()
    await asyncio.gather(*(asyncio.wait_for(c.booted.wait(), 30) for c in chargers))
    for c in chargers:
        await c.plug_in(1, EV(battery_kwh=80, soc=0.2, max_power_kw=11.0))
    await asyncio.gather(*(c.wait_for_tx_started(1, timeout=30) for c in chargers))
    await clock.sleep(600)
    ids_before = [int(tx) for c in chargers if c.v16 for tx in c.acknowledged_transactions]

    await server.stop()
    # While the server is down the cars keep charging; the chargers queue what they meter.
    await clock.sleep(600)
    config.ocpp.port = port
    server = Loadstar(config, clock=clock)
    await server.start()
    await asyncio.gather(*(asyncio.wait_for(c.wait_for(lambda c=c: c.online), 60)
                           for c in chargers))
    await clock.sleep(300)
    for c in chargers:
        await c.unplug(1)
        await c.plug_in(1, EV(battery_kwh=80, soc=0.5, max_power_kw=11.0))
    await asyncio.gather(*(c.wait_for(lambda c=c: len(c.acknowledged_transactions) == 2, 30)
                           for c in chargers))
    for c in chargers:
        await c.unplug(1)
    await asyncio.gather(*(c.wait_idle(timeout=30) for c in chargers))
    for c in chargers:
        await c.stop()
    await server.stop()
    ids_after = [int(tx) for c in chargers if c.v16 for tx in c.acknowledged_transactions[1:]]
    assert min(ids_after) > max(ids_before)
    txs, samples = await assert_store_matches(config.store.path, chargers)
    assert txs == 20 and samples > 0
