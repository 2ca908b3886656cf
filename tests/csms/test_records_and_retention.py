"""Only chargers that booted (or were registered) leave records, and records do not pile up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from csms.clock import SystemClock
from csms.config import Config, SiteSpec
from csms.service import Loadstar
from tests.conftest import make_config
from tests.raw_client import RawClient

BOOT16 = {"chargePointVendor": "Acme", "chargePointModel": "X1"}


def status16(connector: int) -> dict[str, object]:
    return {"connectorId": connector, "errorCode": "NoError", "status": "Available"}


async def test_connections_that_never_boot_leave_no_charge_point_rows(
        server: Loadstar, url: Callable[[str], str]) -> None:
    async def visit(i: int) -> list[object]:
        c = await RawClient.connect(url(f"DRIFTER-{i}"), "ocpp1.6")
        try:
            await c.ok("Heartbeat", {})
            return await c.call("StatusNotification", status16(1))
        finally:
            await c.close()

    replies = await asyncio.gather(*(visit(i) for i in range(50)))
    assert all(r[0] == 4 and r[2] == "SecurityError" for r in replies)
    assert await server.store.list_charge_points() == []


async def test_a_charger_known_from_a_boot_is_heard_after_it_reconnects_without_one(
        server: Loadstar, url: Callable[[str], str]) -> None:
    c = await RawClient.connect(url("CP-1"), "ocpp1.6")
    await c.ok("BootNotification", BOOT16)
    await c.close()
    c = await RawClient.connect(url("CP-1"), "ocpp1.6")
    try:
        await c.ok("StatusNotification", status16(1))
    finally:
        await c.close()
    [record] = await server.store.list_charge_points()
    assert [conn.connector_id for conn in record.connectors] == [1]


class ShiftedClock(SystemClock):
    """The wall clock, moved forward by `offset` when a test says time has passed."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return super().now() + self.offset


@pytest.fixture
def config(tmp_path: Path) -> Config:
    cfg = make_config(tmp_path, configure_after_boot=False)
    cfg.load.forget_offline_after_s = 3600
    return cfg


@pytest.fixture
async def shifted(config: Config) -> AsyncIterator[tuple[Loadstar, ShiftedClock]]:
    clock = ShiftedClock()
    service = Loadstar(config, clock=clock)
    await service.start()
    try:
        yield service, clock
    finally:
        await service.stop()


async def test_a_charger_offline_longer_than_the_retention_leaves_the_plans(
        shifted: tuple[Loadstar, ShiftedClock]) -> None:
    service, clock = shifted
    assert service.planner is not None
    events = service.bus.subscribe()

    async def visit(cp_id: str) -> None:
        c = await RawClient.connect(
            f"ws://127.0.0.1:{service.ocpp_port}/ocpp/{cp_id}", "ocpp1.6")
        try:
            await c.ok("BootNotification", BOOT16)
            await c.ok("StatusNotification", status16(1))
        finally:
            await c.close()
        while getattr(await events.get(), "online", True) is not False:
            pass  # until its disconnect is folded in

    await visit("GONE")
    site = service.planner.directory.placement("GONE").site_id
    clock.offset = timedelta(seconds=1800)
    assert service.planner.chargers_in_plan(site) == ["GONE"]
    clock.offset = timedelta(seconds=3601)
    await visit("HERE")
    assert service.planner.chargers_in_plan(site) == ["HERE"]


async def test_plans_and_finished_commands_older_than_their_retention_are_pruned(
        server: Loadstar) -> None:
    store, cfg = server.store, server.config.store
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=cfg.plan_retention_days + 1), now - timedelta(hours=1)
    for ts in (old, recent):
        await store.record_plan("default", ts, "test", 10.0, None, "default", "optimal", 0.0,
                                {}, {})
    done = await store.record_command("CP", "Reset", {}, now - timedelta(
        days=cfg.command_retention_days + 1))
    await store.finish_command(done, "accepted", {"status": "Accepted"}, now)
    waiting = await store.record_command("CP", "Reset", {}, now - timedelta(
        days=cfg.command_retention_days + 1))
    kept = await store.record_command("CP", "Reset", {}, recent)
    await server.prune()
    assert [p["ts"] for p in await store.list_plans()] == [recent.isoformat()]
    assert sorted(c.id for c in await store.list_commands()) == [waiting, kept]


async def test_a_charger_moves_to_a_site_whose_patterns_change_at_run_time(
        server: Loadstar, url: Callable[[str], str]) -> None:
    planner = server.planner
    assert planner is not None
    c = await RawClient.connect(url("X-1"), "ocpp1.6")
    try:
        await c.ok("BootNotification", BOOT16)
        await c.ok("StatusNotification", status16(1))
    finally:
        await c.close()
    default = server.config.load.default_site
    assert planner.chargers_in_plan(default) == ["X-1"]
    await planner.update_site(SiteSpec(id="car-park", max_power_kw=50.0, chargers=["X-*"]))
    assert planner.directory.placement("X-1").site_id == "car-park"
    assert planner.chargers_in_plan("car-park") == ["X-1"]
    assert planner.chargers_in_plan(default) == []
