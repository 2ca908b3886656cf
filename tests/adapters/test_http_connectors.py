"""`/v2/connectors/` (document 002 §3.7.9) against a real Loadstar: records, filters, sort,
paging in SQL, validation, and ratings the allocator follows on a live simulated charger."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import Config
from csms.domain import StatusChanged, TransactionStarted
from csms.identity import charge_point_uuid, connector_uuid
from csms.service import Loadstar
from simulators.charger import SimCharger
from simulators.clock import SimClock
from simulators.ev import EV
from tests.adapters.test_http_charge_points import NORTH, SOUTH, SOUTH_A, sites_config

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = sites_config(tmp_path)
    config.load.coalesce_s = 0.05
    return config


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        key = await server.api_keys.create(("write",), NOW)
        client.headers["Authorization"] = f"Bearer {key.key}"
        yield client


async def new_charge_point(client: httpx.AsyncClient, network: str = NORTH,
                           **extra: Any) -> dict[str, Any]:
    r = await client.post("/v2/charge_points/", json={
        "maxCapacity": 75, "name": "Charger 1", "networkId": network, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json()["data"][0])


def connector_body(cp: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"maxCapacity": 75, "chargePointId": cp["id"], "connectorId": 1,
            "currentType": "DC", "voltage": 230, **extra}


async def all_pages(client: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        body = (await client.get(f"/v2/connectors/?limit=100&offset={len(items)}&{query}")
                ).json()
        assert body["status"] == "success", body
        items += body["data"]
        if not body["data"] or len(items) >= body["total"]:
            assert len(items) == body["total"]
            return items


async def test_the_guides_connector(client: httpx.AsyncClient) -> None:
    cp = await new_charge_point(client)
    r = await client.post("/v2/connectors/", json=connector_body(cp))
    assert r.status_code == 201
    [c] = r.json()["data"]
    assert c["id"] == str(connector_uuid(cp["id"], 1))  # its charger's internal id, number 1
    assert {k: c[k] for k in ("maxCapacity", "chargePointId", "connectorId", "currentType",
                              "voltage", "powerFactor", "priority", "name", "active")} == {
        "maxCapacity": 75.0, "chargePointId": cp["id"], "connectorId": 1, "currentType": "DC",
        "voltage": 230.0, "powerFactor": 1.0, "priority": 3, "name": None, "active": False}
    assert (await client.get(f"/v2/connectors/{c['id']}")).json()["data"] == [c]
    assert (await client.get(f"/v2/charge_points/{cp['id']}")).json()["data"][0][
        "numberOfConnectors"] == 1
    dup = await client.post("/v2/connectors/", json=connector_body(cp))
    assert dup.status_code == 409 and list(dup.json()["data"]) == ["connectorId"]

    patched = (await client.patch(f"/v2/connectors/{c['id']}", json={
        "currentType": "AC_phase1", "priority": 0, "name": "Left", "powerFactor": 0.9,
        "ocppStatus": "Charging"})).json()["data"][0]
    assert (patched["currentType"], patched["priority"], patched["name"], patched["phases"],
            patched["powerFactor"], patched["ocppStatus"]) == (
        "AC_phase1", 0, "Left", [1], 0.9, None)
    moved = await client.patch(f"/v2/connectors/{c['id']}", json={"connectorId": 2})
    assert moved.status_code == 400 and list(moved.json()["data"]) == ["connectorId"]

    assert (await client.delete(f"/v2/connectors/{c['id']}")).json()["data"][0]["id"] == c["id"]
    assert (await client.get(f"/v2/connectors/{c['id']}")).status_code == 404


REQUIRED = ("chargePointId", "connectorId", "currentType", "voltage", "maxCapacity")


@pytest.mark.parametrize("change, field", [
    *[({name: ...}, f"body.{name}") for name in REQUIRED],
    ({"voltage": 119}, "body.voltage"),
    ({"voltage": "230"}, "body.voltage"),
    ({"maxCapacity": -0.1}, "body.maxCapacity"),
    ({"connectorId": 0}, "body.connectorId"),
    ({"connectorId": 1.5}, "body.connectorId"),
    ({"currentType": "AC"}, "body.currentType"),
    ({"priority": 6}, "body.priority"),
    ({"powerFactor": 1.2}, "body.powerFactor"),
    ({"plugType": "Schuko"}, "body.plugType"),
    ({"phases": [1, 1]}, "body.phases"),
    ({"chargePointId": "nope"}, "body.chargePointId"),
])
async def test_a_bad_post_is_a_400_naming_the_field(client: httpx.AsyncClient,
                                                    change: dict[str, Any], field: str) -> None:
    cp = await new_charge_point(client)
    body = {k: v for k, v in {**connector_body(cp), **change}.items() if v is not ...}
    r = await client.post("/v2/connectors/", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "fail" and field in r.json()["data"]


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/connectors/", json=connector_body({"id": str(uuid4())}))
    assert r.status_code == 404 and list(r.json()["data"]) == ["chargePointId"]
    for method in ("GET", "PATCH", "DELETE"):
        body = {} if method == "PATCH" else None
        assert (await client.request(method, f"/v2/connectors/{uuid4()}", json=body)
                ).status_code == 404
        bad = await client.request(method, "/v2/connectors/12", json=body)
        assert bad.status_code == 400 and list(bad.json()["data"]) == ["id"]
    for query in ("sort=colour", "chargepoint=nope", "connectorId=x", "priority=9",
                  "ocppStatus=Sleeping", "currentType=Mix", "plugType=Schuko"):
        r = await client.get(f"/v2/connectors/?{query}")
        # A repeated key names the bad value's position: `chargepoint.0`.
        [field] = r.json()["data"]
        assert r.status_code == 400 and field.split(".")[0] == query.split("=")[0], query


CURRENTS = ["DC", "AC_phase3_LN", "AC_phase3_LL", "AC_phase1"]
PLUGS = ["CCS1", "CCS2", "CHAdeMO", "Type 2"]
STATUSES = ["Available", "Charging", "Faulted"]


async def populate(server: Loadstar, chargers: int = 130) -> None:
    """Two connectors on each of `chargers` charge points, with varied ratings and states."""
    store = server.store
    nodes = ["north", "south", "south-a"]
    for i in range(chargers):
        cp_id = f"CP{i:03d}"
        at = NOW + timedelta(minutes=i)
        uuid = await store.create_inventory_charge_point(
            str(charge_point_uuid(cp_id)), cp_id,
            {"custom_name": f"Charger {i:03d}", "parent_id": nodes[i % 3]}, at)
        for n in (1, 2):
            j = 2 * i + n
            await store.create_inventory_connector(uuid, n, {
                "name": f"{'Left' if n == 1 else 'right'} {j % 50:02d}",
                "current_type": CURRENTS[j % 4], "voltage": 120.0 + (j * 7) % 300,
                "power_factor": 0.8 + (j % 5) / 25, "max_capacity": float((j * 11) % 23),
                "priority": j % 6 if j % 7 else None, "plug_type": PLUGS[j % 4] if j % 3 else None,
            }, at)
            if j % 5:
                await store.record_status(StatusChanged(cp_id, n, STATUSES[j % 3], at))
        if i % 9 == 0:
            await store.start_transaction(TransactionStarted(cp_id, 1, "TAG", at))


@pytest.fixture
async def many(client: httpx.AsyncClient, server: Loadstar) -> list[dict[str, Any]]:
    await populate(server)
    return await all_pages(client)


async def test_pages_cover_every_connector_once(client: httpx.AsyncClient,
                                                many: list[dict[str, Any]]) -> None:
    assert len(many) == 260 and len({c["id"] for c in many}) == 260
    assert [c["active"] for c in many] == sorted((c["active"] for c in many), reverse=True)
    page = (await client.get("/v2/connectors/?limit=10&offset=255")).json()
    assert page["total"] == 260 and [c["id"] for c in page["data"]] == [
        c["id"] for c in many[255:]]


def _key(field: str, names: dict[str, str]) -> Callable[[dict[str, Any]], Any]:
    def key(c: dict[str, Any]) -> Any:
        value = names[c["chargePointId"]] if field == "chargerName" else c[field]
        if isinstance(value, str):
            value = value.lower()
        return (value is not None, value)
    return key


@pytest.mark.parametrize("sort", ["chargerName", "connectorId", "currentType", "maxCapacity",
                                  "name", "ocppStatus", "plugType", "powerFactor", "priority",
                                  "voltage", "active"])
async def test_every_sort_field_orders_all_pages(client: httpx.AsyncClient,
                                                 many: list[dict[str, Any]], sort: str) -> None:
    names = {cp["id"]: cp["customName"] for cp in (
        await client.get("/v2/charge_points/?limit=1000")).json()["data"]}
    key = _key(sort, names)
    for order in ("asc", "desc"):
        items = await all_pages(client, f"sort={sort}:{order}")
        assert {c["id"] for c in items} == {c["id"] for c in many}
        keys = [key(c) for c in items]
        assert keys == sorted(keys, reverse=order == "desc"), (sort, order)


async def test_every_filter_selects_what_it_names(client: httpx.AsyncClient,
                                                  many: list[dict[str, Any]]) -> None:
    charge_points = (await client.get("/v2/charge_points/?limit=1000")).json()["data"]
    name = {cp["id"]: cp["customName"] for cp in charge_points}
    network = {cp["id"]: cp["networkId"] for cp in charge_points}
    cps = sorted(name)
    filters: dict[str, Callable[[dict[str, Any]], bool]] = {
        f"chargepoint={cps[3]}": lambda c: c["chargePointId"] == cps[3],
        f"chargepoint={cps[3]}&chargepoint={cps[40]}":
            lambda c: c["chargePointId"] in (cps[3], cps[40]),
        "connectorId=2": lambda c: c["connectorId"] == 2,
        "ocppStatus=Charging": lambda c: c["ocppStatus"] == "Charging",
        "ocppStatus=Charging&ocppStatus=Faulted":
            lambda c: c["ocppStatus"] in ("Charging", "Faulted"),
        "priority=0": lambda c: c["priority"] == 0,
        "priority=4&priority=5": lambda c: c["priority"] in (4, 5),
        "priority=3": lambda c: c["priority"] == 3,  # the default counts as 3
        "currentType=DC": lambda c: c["currentType"] == "DC",
        "currentType=AC": lambda c: c["currentType"] != "DC",
        "plugType=CHAdeMO&plugType=CCS2": lambda c: c["plugType"] in ("CHAdeMO", "CCS2"),
        "search=left 1": lambda c: "left 1" in (c["name"] or "").lower(),
        "search=Charger 12": lambda c: "charger 12" in name[c["chargePointId"]].lower(),
        f"search={many[5]['id']}": lambda c: c["id"] == many[5]["id"],
        f"search={cps[7]}": lambda c: c["chargePointId"] == cps[7],
        f"network={SOUTH_A}": lambda c: network[c["chargePointId"]] == SOUTH_A,
        # A site holds its sub-networks' connectors too.
        f"network={SOUTH}&connectorId=1": lambda c: c["connectorId"] == 1
        and network[c["chargePointId"]] in (SOUTH, SOUTH_A),
        f"network={NORTH}": lambda c: network[c["chargePointId"]] == NORTH,
    }
    for query, wanted in filters.items():
        expected = {c["id"] for c in many if wanted(c)}
        assert 0 < len(expected) < len(many), query
        assert {c["id"] for c in await all_pages(client, query)} == expected, query
    assert await all_pages(client, f"vehicle={uuid4()}") == []


async def plan_of(server: Loadstar, site: str, key: str,
                  done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first completed plan of `site` whose entry for connector `key` satisfies `done`."""
    assert server.planner is not None
    for _ in range(50):
        await server.planner.wait_planned(site)
        [plan] = await server.store.list_plans(site, limit=1)
        entry = plan["result"].get(key)
        if entry is not None and done(entry):
            return dict(entry)
    raise AssertionError(f"no plan of {site} gave {key} what was expected")


async def test_a_lower_max_capacity_lowers_what_the_allocator_gives(
        client: httpx.AsyncClient, server: Loadstar) -> None:
    clock = SimClock(speed=30)
    url = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    charger = SimCharger("N-1", url, protocol="ocpp1.6", clock=clock, max_power_kw=22.0)
    await charger.start()
    try:
        await charger.wait_for(lambda: charger.booted.is_set(), 10)
        await charger.plug_in(1, EV(battery_kwh=500, soc=0.1, max_power_kw=22))
        before = await plan_of(server, "north", "N-1/1",
                               lambda e: e["active"] and e["power_w"] > 15_000)
        uuid = connector_uuid("N-1", 1)
        r = await client.patch(f"/v2/connectors/{uuid}", json={"maxCapacity": 7})
        assert r.status_code == 200 and r.json()["data"][0]["maxCapacity"] == 7.0
        after = await plan_of(server, "north", "N-1/1",
                              lambda e: e["active"] and e["power_w"] <= 7_000)
        assert 0 < after["power_w"] < before["power_w"]
        # Moving the charger to another site re-plans it there.
        await client.patch(f"/v2/charge_points/{charge_point_uuid('N-1')}",
                           json={"networkId": SOUTH})
        await plan_of(server, "south", "N-1/1", lambda e: e["power_w"] <= 7_000)
    finally:
        await charger.stop()


async def test_ratings_survive_a_restart(config: Config) -> None:
    first = Loadstar(config)
    await first.start()
    try:
        uuid = await first.store.create_inventory_charge_point(
            str(charge_point_uuid("N-9")), "N-9", {"parent_id": "south-a"}, NOW)
        await first.store.create_inventory_connector(uuid, 1, {"max_capacity": 3.5}, NOW)
    finally:
        await first.stop()
    again = Loadstar(config)
    await again.start()
    try:
        assert again.planner is not None
        d = again.planner.directory
        assert d.placement("N-9").parent_id == "south-a"
        assert d.connector("N-9", 1).max_power_kw == 3.5
        assert d.connector("N-8", 1).max_power_kw == 22.0  # the pattern's, untouched
    finally:
        await again.stop()
