"""The HTTP side steering live chargers: a network's maxCapacity, a capacity interval and a
Load Amount DR event, set through `/v2/...`, change what simulated cars draw; and they outlive
a restart of the server.

The server runs in-process on a `SimClock` shared with the chargers (a "second" is simulated);
HTTP requests go through httpx's ASGI transport into the real app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from adapters.http.app import create_app
from csms.clock import parse_iso
from csms.config import ChargerSpec, Config
from simulators.charger import SimCharger
from tests.conftest import make_config
from tests.e2e.test_charger_memory import restart
from tests.e2e.test_load_management import Site, big_ev, running_site

SPEED = 30.0
COALESCE_S = 0.5
VALIDITY_S = 30.0  # TxProfiles last this long; a drop is planned this far ahead of its start
METER_S = 10
BUFFER = 0.02
EPS_W = 1.0
WALL_TIMEOUT_S = 60.0
KEY_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def config_of(tmp_path: Path) -> Config:
    """No site in config.toml: the network is made through the API."""
    config = make_config(tmp_path)
    config.ocpp.meter_sample_interval_s = METER_S
    config.load.coalesce_s = COALESCE_S
    config.load.profile_validity_s = VALIDITY_S
    config.load.min_update_interval_s = 5.0
    # Two cars share the network evenly (no room kept for unproven chargers): the numbers
    # below follow from the limit alone.
    config.load.guard_unproven = False
    config.chargers = [ChargerSpec(match="*", max_power_kw=22, max_current_a=32)]
    return config


class Api:
    """An HTTP client of the site's server with a key that may write (follows restarts)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.headers: dict[str, str] = {}
        self._server: Any = None
        self._client: httpx.AsyncClient | None = None

    async def client(self) -> httpx.AsyncClient:
        if self._server is not self.site.server:
            if self._client is not None:
                await self._client.aclose()
            self._server = self.site.server
            transport = httpx.ASGITransport(app=create_app(self.site.server))
            self._client = httpx.AsyncClient(transport=transport, base_url="http://loadstar")
            new = await self.site.server.api_keys.create(("write",), KEY_TIME)
            self.headers = {"Authorization": f"Bearer {new.key}"}
        assert self._client is not None
        return self._client

    async def send(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        client = await self.client()
        r = await client.request(method, path, headers=self.headers, **kwargs)
        assert r.status_code in (200, 201), r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


@contextlib.asynccontextmanager
async def depot(tmp_path: Path, max_kw: float = 40.0
                ) -> AsyncIterator[tuple[Site, Api, str, list[SimCharger]]]:
    """A network made through the API with two charging cars in it."""
    async with running_site(config_of(tmp_path), speed=SPEED) as site:
        api = Api(site)
        try:
            network = (await api.send("POST", "/v2/networks/",
                                      json={"name": "depot", "maxCapacity": max_kw}))[0]["id"]
            planner = site.server.planner
            assert planner is not None
            # Chargers join a network through the charge points view (another part); here
            # the core is told directly.
            spec = planner.directory.specs[network]
            await planner.update_site(spec.model_copy(update={"chargers": ["EV-*"]}))
            cars = [await site.add(f"EV-{i}", p)
                    for i, p in enumerate(("ocpp1.6", "ocpp2.0.1"))]
            for c in cars:
                await c.plug_in(1, big_ev())
            usable_w = max_kw * (1 - BUFFER) * 1000
            await until_all(cars, lambda: sum(c.current_draw_w(1) for c in cars)
                            >= usable_w - 1000)
            yield site, api, network, cars
        finally:
            await api.close()


async def plans(site: Site, network: str) -> list[dict[str, Any]]:
    """The network's plans, oldest first."""
    found = await site.server.store.list_plans(network, limit=10_000)
    return sorted(found, key=lambda p: p["id"])


async def first_plan(site: Site, network: str, *, limit_kw: float | None = None,
                     after_id: int = 0, since: datetime | None = None,
                     trigger: str = "") -> dict[str, Any]:
    """Await plans of the network until one (with id > `after_id`, started at or after
    `since`, asked for by `trigger` among others) is made for `limit_kw` (any limit when
    None); return the first such."""
    planner = site.server.planner
    assert planner is not None

    def fits(p: dict[str, Any]) -> bool:
        if p["id"] <= after_id or trigger not in p["trigger"]:
            return False
        if since is not None and parse_iso(p["ts"]) < since:
            return False
        return limit_kw is None or (p["limit_kw"] is not None
                                    and abs(p["limit_kw"] - limit_kw) < 1e-6)

    async def wait() -> dict[str, Any]:
        while True:
            waiter = asyncio.create_task(planner.wait_planned(network))
            await asyncio.sleep(0)  # in place before looking, so no plan slips between
            found = [p for p in await plans(site, network) if fits(p)]
            if found:
                waiter.cancel()
                return found[0]
            await waiter

    return await asyncio.wait_for(wait(), WALL_TIMEOUT_S)


async def until_all(cars: list[SimCharger], predicate: Callable[[], bool]) -> None:
    """Await `predicate()` over several chargers: re-checked whenever any of them changes."""
    waits = [asyncio.ensure_future(c.wait_for(predicate)) for c in cars]
    try:
        await asyncio.wait_for(asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED),
                               WALL_TIMEOUT_S)
    finally:
        for w in waits:
            w.cancel()
    assert predicate()


async def limited_to(cars: list[SimCharger], total_kw: float, at: datetime | None = None
                     ) -> None:
    """Await the cars' profiles: together they may draw at most `total_kw` less the buffer
    (at `at`, default now)."""
    await until_all(cars, lambda: sum(c.composite_limit_w(1, at) for c in cars)
                    <= total_kw * (1 - BUFFER) * 1000 + EPS_W)


async def test_lowering_max_capacity_lowers_what_the_cars_draw_within_one_window(
        tmp_path: Path) -> None:
    async with depot(tmp_path, max_kw=40.0) as (site, api, network, cars):
        assert site.total_w() > 38_000  # both cars share the 40 kW
        patched_at = site.clock.now()
        got = await api.send("PATCH", f"/v2/networks/{network}", json={"maxCapacity": 20})
        assert got[0]["maxCapacity"] == 20.0
        # The change's own re-plan uses it. (A re-plan another change asked for just before
        # may still start with the old spec while this one is being stored.)
        plan = await first_plan(site, network, since=patched_at, trigger="config_change",
                                limit_kw=20.0)
        assert plan["limit_kw"] == 20.0
        await limited_to(cars, 20.0)
        # The cars follow their new limits at their next control step.
        await until_all(cars, lambda: site.total_w() <= 20_000 * (1 - BUFFER) + EPS_W)
        # The network reports what its chargers draw and the limit in force.
        now = (await api.send("GET", f"/v2/networks/{network}"))[0]
        assert now["currentLimit"] == 20.0


async def test_a_capacity_interval_and_a_dr_event_lower_the_draw_from_their_start(
        tmp_path: Path) -> None:
    async with depot(tmp_path, max_kw=20.0) as (site, api, network, cars):
        now = site.clock.now()
        cap_start, cap_end = now + timedelta(seconds=90), now + timedelta(seconds=150)
        dr_start, dr_end = now + timedelta(seconds=200), now + timedelta(seconds=260)
        await api.send("POST", "/v2/capacities/", json={"networkId": network,
                       "maxCapacityIntervals": [{"type": "utilityLimit", "maxCapacity": 12,
                                                 "start": cap_start.isoformat(),
                                                 "end": cap_end.isoformat()}]})
        await api.send("POST", "/v2/dr_events/", json={"networkId": network, "drEvents": [
            {"type": "Load Amount", "value": 5, "start": dr_start.isoformat(),
             "end": dr_end.isoformat()}]})
        for since, start, limit_kw in ((now, cap_start, 12.0), (cap_end, dr_start, 15.0)):
            # The planner wakes for the boundary: the drop is planned a profile's validity
            # ahead of its start (never earlier: no plan before can see it), and the profiles
            # the cars hold put it in force at its start.
            plan = await first_plan(site, network, limit_kw=limit_kw)
            planned = parse_iso(plan["ts"])
            assert start - timedelta(seconds=VALIDITY_S + COALESCE_S + 1) <= planned <= start
            assert all(p["limit_kw"] == 20.0 for p in await plans(site, network)
                       if since <= parse_iso(p["ts"])
                       < start - timedelta(seconds=VALIDITY_S + COALESCE_S))
            await limited_to(cars, limit_kw, at=start)


async def test_max_capacity_capacities_and_dr_events_outlive_a_restart(tmp_path: Path) -> None:
    async with depot(tmp_path, max_kw=40.0) as (site, api, network, cars):
        now = site.clock.now()
        window = {"start": (now - timedelta(minutes=1)).isoformat(),
                  "end": (now + timedelta(hours=2)).isoformat()}
        await api.send("PATCH", f"/v2/networks/{network}", json={"maxCapacity": 30})
        capacity = (await api.send("POST", "/v2/capacities/", json={
            "networkId": network, "maxCapacityIntervals": [{"maxCapacity": 20, **window}]}))[0]
        event = (await api.send("POST", "/v2/dr_events/", json={
            "networkId": network, "drEvents": [{"type": "Load Amount", "value": 4,
                                                **window}]}))[0]
        await limited_to(cars, 16.0)
        last = (await plans(site, network))[-1]["id"]
        await restart(site)
        got = (await api.send("GET", f"/v2/networks/{network}"))[0]
        assert (got["name"], got["maxCapacity"]) == ("depot", 30.0)
        assert await api.send("GET", "/v2/capacities/", params={"network": network}) == [
            capacity]
        assert await api.send("GET", "/v2/dr_events/", params={"network": network}) == [event]
        # The new server plans with all three: 30 kW, a 20 kW interval, 4 kW off.
        plan = await first_plan(site, network, after_id=last)
        assert plan["limit_kw"] == 16.0
        await limited_to(cars, 16.0)
        await until_all(cars, lambda: site.total_w() <= 16_000 * (1 - BUFFER) + EPS_W)
