"""`/v2/charge_points/` (document 002 §3.7.4) against a real Loadstar: records a client makes,
chargers OCPP reports, filters, search, sort and paging in SQL, and validation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import ChargerSpec, Config, GroupSpec, SiteSpec
from csms.domain import Booted, ConnectionChanged, StatusChanged, TransactionStarted
from csms.identity import charge_point_uuid, network_uuid
from csms.service import Loadstar
from simulators.charger import SimCharger
from tests.conftest import make_config

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NORTH, SOUTH, SOUTH_A = (str(network_uuid(n)) for n in ("north", "south", "south-a"))


def sites_config(tmp_path: Path) -> Config:
    config = make_config(tmp_path)
    config.sites = [
        SiteSpec(id="north", max_power_kw=100, chargers=["N-*"]),
        SiteSpec(id="south", max_power_kw=100, chargers=["S-*"],
                 groups=[GroupSpec(id="south-a", max_power_kw=50, chargers=["S-A*"])]),
    ]
    config.chargers = [ChargerSpec(match="D-*", current_type="DC", max_power_kw=50),
                       ChargerSpec(match="*", max_power_kw=22)]
    return config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return sites_config(tmp_path)


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        key = await server.api_keys.create(("write",), NOW)
        client.headers["Authorization"] = f"Bearer {key.key}"
        yield client


async def all_pages(client: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    """Every item of a listing, 100 a page; checks `total` on each page."""
    items: list[dict[str, Any]] = []
    while True:
        body = (await client.get(f"/v2/charge_points/?limit=100&offset={len(items)}&{query}")
                ).json()
        assert body["status"] == "success", body
        items += body["data"]
        if not body["data"] or len(items) >= body["total"]:
            assert len(items) == body["total"]
            return items


async def test_an_empty_list_is_the_documents_sample(client: httpx.AsyncClient) -> None:
    r = await client.get("/v2/charge_points/")
    assert r.status_code == 200
    assert r.json() == {"status": "success", "data": [], "total": 0}


async def test_post_get_patch_delete(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/charge_points/", json={
        "maxCapacity": 75, "name": "Charger 1", "networkId": NORTH})
    assert r.status_code == 201
    [cp] = r.json()["data"]
    assert r.json()["total"] == 1
    assert UUID(cp["id"]).version == 4 and cp["ocppId"] is None
    assert (cp["maxCapacity"], cp["name"], cp["customName"], cp["networkId"]) == (
        75.0, "Charger 1", "Charger 1", NORTH)
    assert (cp["onlineStatus"], cp["active"], cp["currentChargingLoad"]) == (
        "OFFLINE", False, 0.0)
    assert (await client.get(f"/v2/charge_points/{cp['id']}")).json()["data"] == [cp]

    moved = (await client.patch(f"/v2/charge_points/{cp['id']}", json={
        "networkId": SOUTH_A, "customName": "Renamed", "maxCapacity": 11.5,
        "onlineStatus": "ONLINE", "vendor": "Claimed"})).json()["data"][0]
    assert (moved["networkId"], moved["customName"], moved["maxCapacity"]) == (
        SOUTH_A, "Renamed", 11.5)
    # What OCPP reports is not the client's to set.
    assert (moved["onlineStatus"], moved["vendor"]) == ("OFFLINE", None)

    gone = await client.delete(f"/v2/charge_points/{cp['id']}")
    assert gone.status_code == 200 and gone.json()["data"][0]["id"] == cp["id"]
    r = await client.get(f"/v2/charge_points/{cp['id']}")
    assert r.status_code == 404 and r.json() == {"status": "fail",
                                                 "data": {"id": "no such charge point"}}


async def test_an_ocpp_id_names_the_charger_and_is_bound_once(client: httpx.AsyncClient) -> None:
    body = {"maxCapacity": 22, "customName": "Bay 1", "networkId": NORTH, "ocppId": "BAY-1"}
    cp = (await client.post("/v2/charge_points/", json=body)).json()["data"][0]
    assert cp["id"] == str(charge_point_uuid("BAY-1")) and cp["ocppId"] == "BAY-1"
    again = await client.post("/v2/charge_points/", json=body)
    assert again.status_code == 409 and list(again.json()["data"]) == ["ocppId"]

    # Created without one, bound later: the UUID a client holds stays.
    loose = (await client.post("/v2/charge_points/", json={
        "maxCapacity": 22, "name": "Loose", "networkId": NORTH})).json()["data"][0]
    bound = (await client.patch(f"/v2/charge_points/{loose['id']}",
                                json={"ocppId": "BAY-2"})).json()["data"][0]
    assert (bound["id"], bound["ocppId"]) == (loose["id"], "BAY-2")
    taken = await client.patch(f"/v2/charge_points/{loose['id']}", json={"ocppId": "BAY-1"})
    assert taken.status_code == 409 and list(taken.json()["data"]) == ["ocppId"]
    # A UUID derived from an OCPP id cannot follow another one.
    derived = await client.patch(f"/v2/charge_points/{cp['id']}", json={"ocppId": "BAY-9"})
    assert derived.status_code == 409


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "networkId": NORTH}, "body.maxCapacity"),
    ({"maxCapacity": 5, "name": "x"}, "body.networkId"),
    ({"maxCapacity": 5, "networkId": NORTH}, "body.customName"),
    ({"maxCapacity": "5", "name": "x", "networkId": NORTH}, "body.maxCapacity"),
    ({"maxCapacity": -1, "name": "x", "networkId": NORTH}, "body.maxCapacity"),
    ({"maxCapacity": 5, "name": "x", "networkId": "not-a-uuid"}, "body.networkId"),
    ({"maxCapacity": 5, "name": "x" * 41, "networkId": NORTH}, "body.name"),
    ({"maxCapacity": 5, "name": "x", "networkId": NORTH, "latitude": 91}, "body.latitude"),
    ({"maxCapacity": 5, "name": "x", "networkId": NORTH, "orientation": 361},
     "body.orientation"),
    ({"maxCapacity": 5, "name": "x", "networkId": NORTH, "allowAllIdTags": "yes"},
     "body.allowAllIdTags"),
    ({"maxCapacity": 5, "name": "x", "networkId": NORTH, "onlineStatus": "SLEEPING"},
     "body.onlineStatus"),
    ({"maxCapacity": 5, "name": "x", "networkId": NORTH, "ocppId": "has space"}, "ocppId"),
])
async def test_a_bad_post_is_a_400_naming_the_field(client: httpx.AsyncClient,
                                                    body: dict[str, Any], field: str) -> None:
    r = await client.post("/v2/charge_points/", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "fail" and field in r.json()["data"]
    assert (await client.get("/v2/charge_points/")).json()["total"] == 0


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/charge_points/", json={
        "maxCapacity": 5, "name": "x", "networkId": str(uuid4())})
    assert r.status_code == 404 and list(r.json()["data"]) == ["networkId"]
    for method in ("GET", "PATCH", "DELETE"):
        unknown = await client.request(method, f"/v2/charge_points/{uuid4()}",
                                       json={} if method == "PATCH" else None)
        assert unknown.status_code == 404, method
        bad = await client.request(method, "/v2/charge_points/nope",
                                   json={} if method == "PATCH" else None)
        assert bad.status_code == 400 and list(bad.json()["data"]) == ["charge_point_uuid"]
    for query in ("sort=colour:asc", "sort=vendor:up", "network=nope", "online_status=maybe",
                  "sort_by=vendor", "updated=yesterday", "limit=0"):
        r = await client.get(f"/v2/charge_points/?{query}")
        assert r.status_code == 400, query
        assert list(r.json()["data"]) == [query.split("=")[0]]


async def test_a_read_key_cannot_write(client: httpx.AsyncClient, server: Loadstar) -> None:
    read = {"Authorization": f"Bearer {(await server.api_keys.create(('read',), NOW)).key}"}
    r = await client.post("/v2/charge_points/", headers=read, json={
        "maxCapacity": 5, "name": "x", "networkId": NORTH})
    assert r.status_code == 403
    assert (await client.get("/v2/charge_points/", headers=read)).status_code == 200


async def populate(server: Loadstar, n: int = 250) -> None:
    """`n` charge points with varied records, some booted, online, charging, with connectors."""
    store = server.store
    nodes = ["north", "south", "south-a"]
    for i in range(n):
        cp_id = f"CP{i:03d}"
        at = NOW + timedelta(minutes=i)
        uuid = await store.create_inventory_charge_point(
            str(charge_point_uuid(cp_id)), cp_id, {
                "custom_name": f"{'Bay' if i % 2 else 'bay'} {(i * 37) % n:03d}",
                "max_capacity": float((i * 13) % 17), "parent_id": nodes[i % 3],
                "allow_all_id_tags": i % 2, "power_split": int(i % 5 == 0) if i % 4 else None,
            }, at)
        if i % 4 == 0:
            await store.record_boot(Booted(cp_id, "ocpp1.6", ["ABB", "Alfen", "abb"][i % 3],
                                           "M", f"SER-{i}", f"1.{i % 7}"), at)
            await store.set_online(cp_id, i % 8 == 0, "ocpp1.6", at)
        if i % 10 == 0:
            await store.start_transaction(TransactionStarted(cp_id, 1, "TAG", at))
        if i % 6 in (0, 1):
            await store.create_inventory_connector(uuid, 1, {"current_type": "DC"}, at)
        if i % 6 == 0:
            await store.create_inventory_connector(uuid, 2, {}, at)


@pytest.fixture
async def many(client: httpx.AsyncClient, server: Loadstar) -> list[dict[str, Any]]:
    await populate(server)
    return await all_pages(client)


async def test_pages_cover_every_charge_point_once(client: httpx.AsyncClient,
                                                   many: list[dict[str, Any]]) -> None:
    assert len(many) == 250 and len({cp["id"] for cp in many}) == 250
    page = (await client.get("/v2/charge_points?limit=7&offset=245")).json()
    assert page["total"] == 250 and [cp["id"] for cp in page["data"]] == [
        cp["id"] for cp in many[245:]]
    # Default order: active first.
    assert [cp["active"] for cp in many] == sorted((cp["active"] for cp in many), reverse=True)


def _key(field: str) -> Callable[[dict[str, Any]], Any]:
    def key(cp: dict[str, Any]) -> Any:
        value = cp[field]
        if isinstance(value, str):
            value = value.lower()
        if isinstance(value, bool | None) and field in ("allowAllIdTags", "powerSplit"):
            value = bool(value)
        # SQL puts nulls first in ascending order.
        return (value is not None, value)
    return key


SORTS = {"active": "active", "allowAllIdTags": "allowAllIdTags", "current": "current",
         "current_charging_load": "currentChargingLoad", "custom_name": "customName",
         "firmwareVersion": "firmwareVersion", "last_session_started": "lastSessionStarted",
         "max_capacity": "maxCapacity", "name": "name", "numberOfConnectors": "numberOfConnectors",
         "ocppId": "ocppId", "online_status": "onlineStatus", "powerSplit": "powerSplit",
         "vendor": "vendor"}


@pytest.mark.parametrize("sort", sorted(SORTS))
async def test_every_sort_field_orders_all_pages(client: httpx.AsyncClient,
                                                 many: list[dict[str, Any]], sort: str) -> None:
    key = _key(SORTS[sort])
    for order in ("asc", "desc"):
        items = await all_pages(client, f"sort={sort}:{order}")
        assert {cp["id"] for cp in items} == {cp["id"] for cp in many}
        keys = [key(cp) for cp in items]
        assert keys == sorted(keys, reverse=order == "desc"), (sort, order)


async def test_the_deprecated_sort_by_and_order(client: httpx.AsyncClient,
                                                many: list[dict[str, Any]]) -> None:
    items = await all_pages(client, "sort_by=max_capacity&order=ascending")
    assert [cp["maxCapacity"] for cp in items] == sorted(cp["maxCapacity"] for cp in many)
    items = await all_pages(client, "sort_by=max_capacity")  # descending by default
    assert [cp["maxCapacity"] for cp in items] == sorted((cp["maxCapacity"] for cp in many),
                                                         reverse=True)


FILTERS: dict[str, Callable[[dict[str, Any]], bool]] = {
    f"network={NORTH}": lambda cp: cp["networkId"] == NORTH,
    # A site holds the chargers of its sub-networks too.
    f"network={SOUTH}": lambda cp: cp["networkId"] in (SOUTH, SOUTH_A),
    f"network={SOUTH_A}": lambda cp: cp["networkId"] == SOUTH_A,
    "online_status=ONLINE": lambda cp: cp["onlineStatus"] == "ONLINE",
    "online_status=OFFLINE": lambda cp: cp["onlineStatus"] == "OFFLINE",
    "vendor=abb": lambda cp: (cp["vendor"] or "").lower() == "abb",
    "is_active=true": lambda cp: cp["active"],
    "is_active=false": lambda cp: not cp["active"],
    "allow_all_id_tags=true": lambda cp: cp["allowAllIdTags"] is True,
    "powerSplit=true": lambda cp: cp["powerSplit"] is True,
    "powerSplit=false": lambda cp: not cp["powerSplit"],
    "current=DC": lambda cp: cp["current"] == "DC",
    "current=Mix": lambda cp: cp["current"] == "Mix",
    "current=AC": lambda cp: cp["current"] == "AC",
    "custom_name=bay 00": lambda cp: "bay 00" in cp["customName"].lower(),
    "name=Bay 01": lambda cp: "bay 01" in cp["customName"].lower(),
    "search=ser-1": lambda cp: "ser-1" in (cp["serialNumber"] or "").lower(),
    "search=CP12": lambda cp: cp["ocppId"].startswith("CP12"),
    "search=1.3": lambda cp: (cp["firmwareVersion"] or "") == "1.3",
    "search=alfen": lambda cp: cp["vendor"] == "Alfen",
    f"network={NORTH}&online_status=ONLINE": lambda cp: cp["networkId"] == NORTH
    and cp["onlineStatus"] == "ONLINE",
}


@pytest.mark.parametrize("query", list(FILTERS))
async def test_every_filter_selects_what_it_names(client: httpx.AsyncClient,
                                                  many: list[dict[str, Any]], query: str) -> None:
    expected = {cp["id"] for cp in many if FILTERS[query](cp)}
    assert 0 < len(expected) < len(many), query  # a test that cannot tell
    assert {cp["id"] for cp in await all_pages(client, query)} == expected


async def test_search_finds_a_charge_point_by_its_uuid(client: httpx.AsyncClient,
                                                       many: list[dict[str, Any]]) -> None:
    target = many[17]["id"]
    assert [cp["id"] for cp in await all_pages(client, f"search={target}")] == [target]
    assert await all_pages(client, f"network={uuid4()}") == []


async def test_updated_after(client: httpx.AsyncClient, many: list[dict[str, Any]]) -> None:
    since = NOW + timedelta(minutes=199, seconds=30)
    found = await all_pages(client, f"updated={since.replace(tzinfo=None).isoformat()}")
    assert sorted(cp["ocppId"] for cp in found) == [f"CP{i}" for i in range(200, 250)]


async def test_a_live_charger_is_listed_online_with_what_it_reported(
        client: httpx.AsyncClient, server: Loadstar) -> None:
    statuses: set[int] = set()
    reported, offline = asyncio.Event(), asyncio.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, StatusChanged) and event.cp_id == "S-A7":
            statuses.add(event.connector_id)
            if {1, 2} <= statuses:
                reported.set()
        if isinstance(event, ConnectionChanged) and not event.online:
            offline.set()

    server.bus.listen(on_event)
    url = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    charger = SimCharger("S-A7", url, protocol="ocpp1.6", connectors=2, vendor="Acme",
                         firmware="4.2.0")
    await charger.start()
    try:
        await asyncio.wait_for(reported.wait(), 10)
        [cp] = (await client.get("/v2/charge_points/?online_status=ONLINE")).json()["data"]
        assert cp["id"] == str(charge_point_uuid("S-A7")) and cp["ocppId"] == "S-A7"
        # Placed by the config pattern (S-A* hangs from group south-a), with no POST.
        assert (cp["vendor"], cp["firmwareVersion"], cp["networkId"]) == (
            "Acme", "4.2.0", SOUTH_A)
        assert (cp["protocol"], cp["onlineStatus"], cp["ocppStatus"]) == (
            "ocpp1.6", "ONLINE", "Available")
        assert cp["maxCapacity"] == 22.0 and cp["numberOfConnectors"] == 2
    finally:
        await charger.stop()
    await asyncio.wait_for(offline.wait(), 10)
    r = (await client.get(f"/v2/charge_points/{charge_point_uuid('S-A7')}")).json()["data"][0]
    assert r["onlineStatus"] == "OFFLINE"
