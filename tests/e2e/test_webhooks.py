"""Webhooks end to end: a real Loadstar plans a site that a simulated charger charges at, and
a real HTTP receiver (uvicorn on a free port) gets every optimization, signed as document 002
says; deliveries survive a restart, a 404 ends the sessions, secrets never reach the logs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from structlog.testing import capture_logs

from adapters.http.server import HttpServer
from csms.api_sessions import NewSession, SessionFields
from csms.config import ChargerSpec, Config, SiteSpec
from csms.identity import charge_point_uuid, connector_uuid, network_uuid, plan_uuid
from csms.service import Loadstar
from csms.store import Store
from csms.webhook_delivery import WebhookDelivery
from simulators.charger import SimCharger
from simulators.clock import SimClock
from simulators.ev import EV
from tests.conftest import make_config

SECRET = "s3cret-Webhook-Key-7f2a"
WAIT_S = 30


class Receiver:
    """A webhook endpoint: answers `status` (a list: one per request, the last repeats)."""

    def __init__(self, port: int = 0, statuses: list[int] | None = None) -> None:
        self.statuses = statuses or [200]
        self.received: asyncio.Queue[tuple[dict[str, str], bytes, int]] = asyncio.Queue()
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            self.received.put_nowait((dict(request.headers), await request.body(), status))
            return Response(status_code=status)

        self.http = HttpServer(app, "127.0.0.1", port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.port}/hook"

    async def next(self) -> tuple[dict[str, str], bytes, int]:
        return await asyncio.wait_for(self.received.get(), WAIT_S)

    async def __aenter__(self) -> Receiver:
        await self.http.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.stop()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = make_config(tmp_path)
    config.load.coalesce_s = 0.1
    config.sites = [SiteSpec(id="site", max_power_kw=50.0, chargers=["*"])]
    config.chargers = [ChargerSpec(match="*", max_power_kw=22, max_current_a=32)]
    return config


@pytest.fixture
async def charger(server: Loadstar) -> AsyncIterator[SimCharger]:
    sim = SimCharger("HOOK-1", f"ws://127.0.0.1:{server.ocpp_port}/ocpp",
                     clock=SimClock(speed=10), meter_interval_s=600)
    await sim.start()
    await sim.wait_for(lambda: sim.booted.is_set(), 10)
    yield sim
    await sim.stop()


def quick(delivery: WebhookDelivery) -> None:
    """Retry within a test's patience (the defaults are 1 s doubling up to 5 min)."""
    delivery.backoff_base_s = 0.05
    delivery.backoff_cap_s = 0.2


async def until(delivery: WebhookDelivery, check: Callable[[], Awaitable[bool]]) -> None:
    """Wait, attempt by attempt, until `check` holds."""
    async def loop() -> None:
        while True:
            seen = delivery.attempts
            if await check():
                return
            await delivery.wait_attempts(seen + 1)
    await asyncio.wait_for(loop(), WAIT_S)


async def plan_of(store: Store, optimization: dict[str, Any]) -> int:
    """The stored plan an optimization comes from (its id names the plan and the connector)."""
    for plan in await store.list_plans("site", limit=1000):
        for key in plan["result"]:
            cp_id, n = key.rsplit("/", 1)
            if str(plan_uuid(plan["id"], f"{cp_id}:{n}")) == optimization["id"]:
                return int(plan["id"])
    raise AssertionError(f"no plan for {optimization['id']}")


def signed(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    """What a receiver does: compare the signature in constant time."""
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-webhook-signature"])


async def test_each_optimization_is_posted_signed(server: Loadstar,
                                                  charger: SimCharger) -> None:
    async with Receiver() as receiver:
        await server.webhooks.configure("site", receiver.url, SECRET)
        assert server.webhooks.url_of("site") == receiver.url
        await charger.plug_in(1, EV(battery_kwh=500, soc=0.1, max_power_kw=22))
        headers, body, _ = await receiver.next()
        assert headers["user-agent"] == "Ampcontrol Delivery Service"
        assert headers["content-type"] == "application/json"
        assert signed(headers, body) and not signed(headers, body, "another secret")
        sent = json.loads(body)
        assert sent["status"] == "success" and sent["total"] == 1
        [optimization] = sent["data"]
        # The same object GET /v2/optimizations/ shows: its id names the plan and connector.
        plan_id = await plan_of(server.store, optimization)
        plan = await server.store.get_plan(plan_id)
        assert plan is not None and plan["site_id"] == "site"
        assert plan["result"]["HOOK-1/1"]["active"] is True
        assert optimization["id"] == str(plan_uuid(plan_id, "HOOK-1:1"))
        assert optimization["connectorId"] == 1
        assert optimization["connector"] == str(connector_uuid("HOOK-1", 1))
        assert optimization["chargepointId"] == str(charge_point_uuid("HOOK-1"))
        assert optimization["networkId"] == str(network_uuid("site"))
        assert optimization["method"] == "load_sharing"
        profile = optimization["csChargingProfiles"]
        assert profile["chargingProfilePurpose"] == "TxProfile"
        assert profile["chargingProfileKind"] == "Absolute"
        schedule = profile["chargingSchedule"]
        assert schedule["chargingRateUnit"] == "W"
        assert schedule["chargingSchedulePeriod"] == [
            {"limit": plan["result"]["HOOK-1/1"]["power_w"], "startPeriod": 0.0}]
        assert optimization["profile"]["unit"] == "kW"
        assert optimization["profile"]["data"][0]["value"] == pytest.approx(
            plan["result"]["HOOK-1/1"]["power_w"] / 1000.0, abs=1e-3)

        # A new limit on the site is a new optimization, posted after the first.
        assert server.planner is not None
        await server.planner.set_external_limit("site", 5.0, None,
                                                datetime.now(UTC) + timedelta(hours=1))
        while True:
            headers, body, _ = await receiver.next()
            later = json.loads(body)["data"][0]
            assert await plan_of(server.store, later) > plan_id
            assert signed(headers, body)
            limit = later["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
            if limit["limit"] <= 5000.0:
                break
        delivered = await server.store.list_outbox("site")
        assert {r.status for r in delivered} <= {"delivered", "skipped", "pending"}
        assert [r for r in delivered if r.plan_id == plan_id][0].status == "delivered"


async def test_failed_deliveries_are_retried_with_backoff(server: Loadstar,
                                                          charger: SimCharger) -> None:
    quick(server.webhook_delivery)
    async with Receiver(statuses=[503, 500, 200]) as receiver:
        await server.webhooks.configure("site", receiver.url, SECRET)
        await charger.plug_in(1, EV(battery_kwh=500, soc=0.1, max_power_kw=22))
        answers = [await receiver.next() for _ in range(3)]
        assert [a[2] for a in answers] == [503, 500, 200]
        # The same plan each time, with the same body and signature.
        assert answers[0][1] == answers[1][1] == answers[2][1]
        plan_id = await plan_of(server.store, json.loads(answers[0][1])["data"][0])

        async def settled() -> bool:
            rows = [r for r in await server.store.list_outbox("site") if r.plan_id == plan_id]
            return rows[0].status == "delivered"

        await until(server.webhook_delivery, settled)
        [row] = [r for r in await server.store.list_outbox("site") if r.plan_id == plan_id]
        assert row.attempts == 3 and row.last_status == 200


async def test_a_restart_between_plan_and_delivery_loses_nothing(config: Config) -> None:
    # The receiver keeps its port throughout (a port given up between the two runs could be
    # taken by another test's receiver); it refuses with 503 until the restart.
    async with Receiver(statuses=[503]) as receiver:
        first = Loadstar(config)
        await first.start()
        quick(first.webhook_delivery)
        sim = SimCharger("HOOK-1", f"ws://127.0.0.1:{first.ocpp_port}/ocpp",
                         clock=SimClock(speed=10), meter_interval_s=600)
        try:
            await first.webhooks.configure("site", receiver.url, SECRET)
            await sim.start()
            await sim.wait_for(lambda: sim.booted.is_set(), 10)
            await sim.plug_in(1, EV(battery_kwh=500, soc=0.1, max_power_kw=22))

            async def failed_once() -> bool:
                rows = await first.store.list_outbox("site")
                return any(r.status == "pending" and r.attempts >= 1 for r in rows)

            await until(first.webhook_delivery, failed_once)
            await sim.stop()
            pending = [r for r in await first.store.list_outbox("site") if r.status == "pending"]
        finally:
            await first.stop()
        assert pending and pending[-1].attempts >= 1
        while not receiver.received.empty():  # the refused attempts
            receiver.received.get_nowait()
        receiver.statuses = [200]
        second = Loadstar(config)
        # The plan waited in the store; it goes out once Loadstar is back.
        await second.start()
        try:
            await asyncio.wait_for(delivered_after_restart(second, receiver, pending), WAIT_S)
        finally:
            await dump_if_slow(second.stop())


async def dump_if_slow(stopping: Awaitable[None]) -> None:
    """Await a stop; if it takes longer than a test's patience, print every task's stack
    (a hang here once hid behind pytest-timeout's thread dump) and fail."""
    task = asyncio.ensure_future(stopping)
    done, _ = await asyncio.wait([task], timeout=WAIT_S)
    if not done:
        for t in asyncio.all_tasks():
            t.print_stack()
        raise AssertionError("Loadstar.stop() did not return")
    task.result()


async def delivered_after_restart(second: Loadstar, receiver: Receiver,
                                  pending: list[Any]) -> None:
    """The oldest waiting plan arrives, signed, once the restarted Loadstar runs."""
    while True:
        headers, body, status = await receiver.next()
        if status == 200:
            break
    assert signed(headers, body)
    optimization = json.loads(body)["data"][0]
    # The site's oldest waiting plan first: a site's plans arrive in order.
    assert await plan_of(second.store, optimization) == pending[-1].plan_id
    assert optimization["chargepointId"] == str(charge_point_uuid("HOOK-1"))


async def test_a_404_ends_the_sessions_of_that_optimization(server: Loadstar,
                                                            charger: SimCharger) -> None:
    gone: asyncio.Queue[tuple[str, list[tuple[str, int]]]] = asyncio.Queue()

    async def end_sessions(site_id: str, connectors: list[tuple[str, int]]) -> None:
        gone.put_nowait((site_id, connectors))

    server.webhooks.on_webhook_gone = end_sessions
    async with Receiver(statuses=[404]) as receiver:
        await server.webhooks.configure("site", receiver.url, SECRET)
        await charger.plug_in(1, EV(battery_kwh=500, soc=0.1, max_power_kw=22))
        _, body, status = await receiver.next()
        assert status == 404
        assert await asyncio.wait_for(gone.get(), WAIT_S) == ("site", [("HOOK-1", 1)])
        plan_id = await plan_of(server.store, json.loads(body)["data"][0])

        async def recorded() -> bool:
            rows = [r for r in await server.store.list_outbox("site") if r.plan_id == plan_id]
            return rows[0].status == "gone"

        await until(server.webhook_delivery, recorded)
        [row] = [r for r in await server.store.list_outbox("site") if r.plan_id == plan_id]
        assert row.gone == [["HOOK-1", 1]] and row.attempts == 1 and row.last_status == 404


async def test_a_404_closes_the_api_session_it_was_about(server: Loadstar) -> None:
    # A charger another CSMS runs: its session lives only in the API, its plans only go out by
    # webhook; the receiver's 404 says that session is over.
    await server.store.register_charge_point("EXT-1")
    async with Receiver(statuses=[404]) as receiver:
        await server.webhooks.configure("site", receiver.url, SECRET)
        record, _ = await server.api_sessions.start(
            NewSession("EXT-1", 1, SessionFields(energy_to_charge_kwh=20.0)))
        assert record.stopped_at is None
        _, _, status = await receiver.next()
        assert status == 404

        async def closed() -> bool:
            return await server.store.open_session_on("EXT-1", 1) is None

        await until(server.webhook_delivery, closed)
        ended = await server.store.get_api_session(record.id)
        assert ended is not None and ended.stopped_at is not None


async def test_secrets_are_sealed_and_never_logged(server: Loadstar, charger: SimCharger,
                                                   config: Config) -> None:
    with capture_logs() as logs:
        async with Receiver(statuses=[500, 200]) as receiver:
            quick(server.webhook_delivery)
            await server.webhooks.configure("site", receiver.url, SECRET)
            await charger.plug_in(1, EV(battery_kwh=500, soc=0.1, max_power_kw=22))
            await receiver.next()
            headers, body, _ = await receiver.next()
            assert signed(headers, body)
    assert logs and SECRET not in repr(logs)
    assert not any(headers["x-webhook-signature"] in repr(entry) for entry in logs)
    # Stored encrypted; the key beside the database is the owner's alone.
    await server.store.flush()
    db = Path(config.store.path)
    for path in db.parent.iterdir():
        if path.name.startswith(db.name) and not path.name.endswith(".secret-key"):
            assert SECRET.encode() not in path.read_bytes(), path
    key = Path(config.store.path + ".secret-key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    [stored] = await server.store.list_webhooks()
    assert SECRET not in stored.sealed_secret
    assert server.webhooks.box.open(stored.sealed_secret) == SECRET


async def test_webhook_settings_are_checked_and_cleared(server: Loadstar) -> None:
    from csms.webhooks import WebhookError

    bad: list[tuple[Any, Any, str]] = [
        ("ftp://example.com/x", SECRET, "webhook"), ("not a url", SECRET, "webhook"),
        ("http://", SECRET, "webhook"), ("https://example.com/x", "", "webhookSecret")]
    for url, secret, field in bad:
        with pytest.raises(WebhookError) as caught:
            await server.webhooks.configure("site", url, secret)
        assert caught.value.field == field
    await server.webhooks.configure("site", "https://example.com/x", SECRET)
    assert server.webhooks.url_of("site") == "https://example.com/x"
    assert await server.webhooks.clear("site")
    assert server.webhooks.url_of("site") is None
    assert not await server.webhooks.clear("site")
    assert await server.store.list_webhooks() == []
