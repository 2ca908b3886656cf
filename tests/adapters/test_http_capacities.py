"""`/v2/capacities/` and `/v2/dr_events/` against a real Loadstar: both are limits over time on
the network's live site (kinds `capacity` and `dr_event`), and the planner resolves them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from adapters.http.app import create_app
from csms.clock import parse_iso
from csms.service import Loadstar
from loadmgmt.limits import resolve

KEY_TIME = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        yield client


async def key(server: Loadstar, *scopes: str) -> dict[str, str]:
    new = await server.api_keys.create(scopes, KEY_TIME)
    return {"Authorization": f"Bearer {new.key}"}


@pytest.fixture
async def writer(server: Loadstar) -> dict[str, str]:
    return await key(server, "write")


@pytest.fixture
async def network(client: httpx.AsyncClient, writer: dict[str, str]) -> str:
    r = await client.post("/v2/networks/", json={"name": "depot", "maxCapacity": 100},
                          headers=writer)
    assert r.status_code == 201
    made: str = r.json()["data"][0]["id"]
    return made


def at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def limit_now(server: Loadstar, site_id: str, when: datetime) -> float | None:
    """The site's kW limit at `when`, as the planner resolves it from the live spec."""
    assert server.planner is not None
    limits = server.planner._snapshots._node_limits(
        site_id, site_id, server.planner.directory.specs[site_id].limits, 100.0, None)
    return resolve(limits, when).value.power_kw


async def add_capacity(client: httpx.AsyncClient, writer: dict[str, str], network: str,
                       **item: Any) -> dict[str, Any]:
    body = {"networkId": network, "maxCapacityIntervals": [
        {"type": "utilityLimit", "maxCapacity": 40, "start": at(1), "end": at(2), **item}]}
    r = await client.post("/v2/capacities/", json=body, headers=writer)
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()["data"][0]
    return made


# -- capacities --------------------------------------------------------------------------------

async def test_a_capacity_interval_limits_the_site_over_its_window(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str],
        network: str) -> None:
    made = await add_capacity(client, writer, network)
    assert made["networkId"] == network and made["type"] == "utilityLimit"
    assert made["maxCapacity"] == 40.0 and made["created"] is not None
    start, end = parse_iso(made["start"]), parse_iso(made["end"])
    assert limit_now(server, network, start - timedelta(minutes=1)) == 100.0
    assert limit_now(server, network, start) == 40.0
    assert limit_now(server, network, end) == 100.0


async def test_list_defaults_to_the_next_twelve_hours(
        client: httpx.AsyncClient, writer: dict[str, str], network: str) -> None:
    soon = await add_capacity(client, writer, network, start=at(1), end=at(2))
    await add_capacity(client, writer, network, start=at(13), end=at(14))
    r = await client.get("/v2/capacities/", params={"network": network}, headers=writer)
    assert r.status_code == 200
    assert [c["id"] for c in r.json()["data"]] == [soon["id"]] and r.json()["total"] == 1
    r = await client.get("/v2/capacities/", params={"network": network, "start": at(0),
                                                    "end": at(24)}, headers=writer)
    assert r.json()["total"] == 2
    # A naive time is UTC.
    naive = (datetime.now(UTC) + timedelta(hours=12, minutes=30)).replace(tzinfo=None)
    r = await client.get("/v2/capacities", params={"network": network,
                                                   "start": naive.isoformat()}, headers=writer)
    assert r.json()["total"] == 1


async def test_get_patch_and_delete_one_capacity(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str],
        network: str) -> None:
    made = await add_capacity(client, writer, network)
    r = await client.get(f"/v2/capacities/{made['id']}", headers=writer)
    assert r.json()["data"][0] == made
    r = await client.patch(f"/v2/capacities/{made['id']}", json={"maxCapacity": 22},
                           headers=writer)
    assert r.status_code == 200 and r.json()["data"][0]["maxCapacity"] == 22.0
    assert r.json()["data"][0]["start"] == made["start"]
    assert limit_now(server, network, parse_iso(made["start"])) == 22.0
    r = await client.delete(f"/v2/capacities/{made['id']}", headers=writer)
    assert r.status_code == 200 and r.json()["data"][0]["maxCapacity"] == 22.0
    assert limit_now(server, network, parse_iso(made["start"])) == 100.0
    assert (await client.get(f"/v2/capacities/{made['id']}", headers=writer)).status_code == 404


async def test_a_capacity_above_the_network_max_is_refused(
        client: httpx.AsyncClient, writer: dict[str, str], network: str) -> None:
    body = {"networkId": network, "maxCapacityIntervals": [
        {"maxCapacity": 40, "start": at(1), "end": at(2)},
        {"maxCapacity": 140, "start": at(1), "end": at(2)}]}
    r = await client.post("/v2/capacities/", json=body, headers=writer)
    assert r.status_code == 400
    assert "body.maxCapacityIntervals.1.maxCapacity" in r.json()["data"]
    # All or none: the valid first interval was not added either.
    r = await client.get("/v2/capacities/", params={"network": network}, headers=writer)
    assert r.json()["total"] == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"networkId": None}, "body.networkId"),
    ({"networkId": "123"}, "body.networkId"),
    ({"maxCapacityIntervals": None}, "body.maxCapacityIntervals"),
    ({"maxCapacityIntervals": []}, "body.maxCapacityIntervals"),
    ({"maxCapacityIntervals": [{"maxCapacity": 1, "start": "2030-01-01T00:00:00",
                                "end": "2030-01-01T01:00:00"}] * 101},
     "body.maxCapacityIntervals"),
    ({"maxCapacityIntervals": [{"start": "2030-01-01T00:00:00", "end": "2030-01-01T01:00:00"}]},
     "body.maxCapacityIntervals.0.maxCapacity"),
    ({"maxCapacityIntervals": [{"maxCapacity": "lots", "start": "2030-01-01T00:00:00",
                                "end": "2030-01-01T01:00:00"}]},
     "body.maxCapacityIntervals.0.maxCapacity"),
    ({"maxCapacityIntervals": [{"maxCapacity": -1, "start": "2030-01-01T00:00:00",
                                "end": "2030-01-01T01:00:00"}]},
     "body.maxCapacityIntervals.0.maxCapacity"),
    ({"maxCapacityIntervals": [{"maxCapacity": 1, "start": "yesterday",
                                "end": "2030-01-01T01:00:00"}]},
     "body.maxCapacityIntervals.0.start"),
    ({"maxCapacityIntervals": [{"maxCapacity": 1, "start": "2030-01-01T02:00:00",
                                "end": "2030-01-01T01:00:00"}]},
     "body.maxCapacityIntervals.0.end"),
    ({"maxCapacityIntervals": [{"type": "solar", "maxCapacity": 1,
                                "start": "2030-01-01T00:00:00", "end": "2030-01-01T01:00:00"}]},
     "body.maxCapacityIntervals.0.type"),
])
async def test_bad_capacity_bodies_are_400_naming_the_field(
        client: httpx.AsyncClient, writer: dict[str, str], network: str,
        change: dict[str, Any], field: str) -> None:
    body = {"networkId": network, "maxCapacityIntervals": [
        {"maxCapacity": 1, "start": "2030-01-01T00:00:00", "end": "2030-01-01T01:00:00"}]}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    r = await client.post("/v2/capacities/", json=body, headers=writer)
    assert r.status_code == 400, r.text
    assert field in r.json()["data"], r.json()


async def test_capacity_lookups_refuse_unknown_and_malformed_ids(
        client: httpx.AsyncClient, writer: dict[str, str], network: str) -> None:
    r = await client.get("/v2/capacities/", headers=writer)
    assert r.status_code == 400 and "network" in r.json()["data"]
    r = await client.get("/v2/capacities/", params={"network": "x"}, headers=writer)
    assert r.status_code == 400 and "network" in r.json()["data"]
    r = await client.get("/v2/capacities/", params={"network": str(uuid4())}, headers=writer)
    assert r.status_code == 404
    r = await client.get("/v2/capacities/", params={"network": network, "start": at(2),
                                                    "end": at(1)}, headers=writer)
    assert r.status_code == 400 and "end" in r.json()["data"]
    body = {"networkId": str(uuid4()), "maxCapacityIntervals": [
        {"maxCapacity": 1, "start": at(1), "end": at(2)}]}
    r = await client.post("/v2/capacities/", json=body, headers=writer)
    assert r.status_code == 404 and "body.networkId" in r.json()["data"]
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, f"/v2/capacities/{uuid4()}", headers=writer,
                                 json={} if method == "PATCH" else None)
        assert r.status_code == 404, method
        r = await client.request(method, "/v2/capacities/bad", headers=writer,
                                 json={} if method == "PATCH" else None)
        assert r.status_code == 400, method
    made = await add_capacity(client, writer, network)
    r = await client.patch(f"/v2/capacities/{made['id']}", json={"end": made["start"]},
                           headers=writer)
    assert r.status_code == 400 and "body.end" in r.json()["data"]
    r = await client.patch(f"/v2/capacities/{made['id']}", json={"maxCapacity": 101},
                           headers=writer)
    assert r.status_code == 400 and "body.maxCapacity" in r.json()["data"]


async def test_capacities_need_read_to_see_and_write_to_change(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str],
        network: str) -> None:
    made = await add_capacity(client, writer, network)
    reader = await key(server, "read")
    assert (await client.get(f"/v2/capacities/{made['id']}", headers=reader)).status_code == 200
    r = await client.get("/v2/capacities/", params={"network": network}, headers=reader)
    assert r.status_code == 200
    assert (await client.get(f"/v2/capacities/{made['id']}")).status_code == 401
    body = {"networkId": network, "maxCapacityIntervals": [
        {"maxCapacity": 1, "start": at(1), "end": at(2)}]}
    assert (await client.post("/v2/capacities/", json=body, headers=reader)).status_code == 403
    r = await client.patch(f"/v2/capacities/{made['id']}", json={"maxCapacity": 3},
                           headers=reader)
    assert r.status_code == 403
    r = await client.delete(f"/v2/capacities/{made['id']}", headers=reader)
    assert r.status_code == 403


async def test_a_capacity_on_a_sub_network_limits_its_group(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str],
        network: str) -> None:
    r = await client.post("/v2/networks/", json={"name": "hall", "maxCapacity": 50,
                                                 "parentNetworkId": network}, headers=writer)
    hall = r.json()["data"][0]["id"]
    await add_capacity(client, writer, hall, maxCapacity=20)
    assert server.planner is not None
    group = server.planner.directory.group_spec(network, hall)
    assert group is not None and [(x.kind, x.power_kw) for x in group.limits] == [
        ("capacity", 20.0)]
    r = await client.post("/v2/capacities/", json={"networkId": hall, "maxCapacityIntervals": [
        {"maxCapacity": 60, "start": at(1), "end": at(2)}]}, headers=writer)
    assert r.status_code == 400  # above the sub-network's own maxCapacity
    # Deleting the sub-network takes its capacities along.
    await client.delete(f"/v2/networks/{hall}", headers=writer)
    r = await client.get("/v2/capacities/", params={"network": network}, headers=writer)
    assert r.json()["total"] == 0


# -- DR events ---------------------------------------------------------------------------------

async def add_dr(client: httpx.AsyncClient, writer: dict[str, str], network: str,
                 **item: Any) -> dict[str, Any]:
    body = {"networkId": network, "drEvents": [
        {"type": "Load Amount", "value": 25, "start": at(1), "end": at(2), **item}]}
    r = await client.post("/v2/dr_events/", json=body, headers=writer)
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()["data"][0]
    return made


async def test_a_load_amount_event_reduces_whatever_limit_is_in_force(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str],
        network: str) -> None:
    made = await add_dr(client, writer, network, value=25)
    assert (made["type"], made["value"], made["networkId"]) == ("Load Amount", 25.0, network)
    start = parse_iso(made["start"])
    assert limit_now(server, network, start) == 75.0  # 100 kW network, 25 kW off
    # Under a 40 kW capacity interval the same event leaves 15 kW.
    await add_capacity(client, writer, network, maxCapacity=40, start=made["start"],
                       end=made["end"])
    assert limit_now(server, network, start) == 15.0
    assert limit_now(server, network, parse_iso(made["end"])) == 100.0


async def test_dr_events_list_get_patch_delete(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str],
        network: str) -> None:
    first = await add_dr(client, writer, network, start=at(1), end=at(2))
    second = await add_dr(client, writer, network, start=at(30), end=at(31))
    r = await client.get("/v2/dr_events/", params={"network": network}, headers=writer)
    assert [e["id"] for e in r.json()["data"]] == [first["id"], second["id"]]
    r = await client.get("/v2/dr_events/", params={"network": network, "limit": 1,
                                                   "offset": 1}, headers=writer)
    assert r.json()["total"] == 2 and [e["id"] for e in r.json()["data"]] == [second["id"]]
    r = await client.get("/v2/dr_events/", params={"network": network, "end": at(12)},
                         headers=writer)
    assert [e["id"] for e in r.json()["data"]] == [first["id"]]
    assert (await client.get(f"/v2/dr_events/{first['id']}",
                             headers=writer)).json()["data"] == [first]
    r = await client.patch(f"/v2/dr_events/{first['id']}", json={"value": 60}, headers=writer)
    assert r.json()["data"][0]["value"] == 60.0
    assert limit_now(server, network, parse_iso(first["start"])) == 40.0
    r = await client.delete(f"/v2/dr_events/{first['id']}", headers=writer)
    assert r.status_code == 200
    assert limit_now(server, network, parse_iso(first["start"])) == 100.0
    assert (await client.get(f"/v2/dr_events/{first['id']}", headers=writer)).status_code == 404


@pytest.mark.parametrize(("event", "field"), [
    ({"type": "V2G"}, "body.drEvents.0.type"),
    ({"type": "Curtail"}, "body.drEvents.0.type"),
    ({"type": None}, "body.drEvents.0.type"),
    ({"value": None}, "body.drEvents.0.value"),
    ({"value": "a lot"}, "body.drEvents.0.value"),
    ({"value": -3}, "body.drEvents.0.value"),
    ({"start": None}, "body.drEvents.0.start"),
    ({"end": "soon"}, "body.drEvents.0.end"),
    ({"end": "2030-01-01T00:00:00+00:00"}, "body.drEvents.0.end"),
])
async def test_bad_dr_event_bodies_are_400_naming_the_field(
        client: httpx.AsyncClient, writer: dict[str, str], network: str,
        event: dict[str, Any], field: str) -> None:
    item = {"type": "Load Amount", "value": 5, "start": "2030-01-01T00:00:00+00:00",
            "end": "2030-01-01T01:00:00+00:00"}
    item.update(event)
    item = {k: v for k, v in item.items() if v is not None}
    r = await client.post("/v2/dr_events/", json={"networkId": network, "drEvents": [item]},
                          headers=writer)
    assert r.status_code == 400, r.text
    assert field in r.json()["data"], r.json()


async def test_v2g_is_refused_as_not_supported_on_patch_too(
        client: httpx.AsyncClient, writer: dict[str, str], network: str) -> None:
    made = await add_dr(client, writer, network)
    r = await client.patch(f"/v2/dr_events/{made['id']}", json={"type": "V2G"}, headers=writer)
    assert r.status_code == 400 and "not supported" in r.json()["data"]["body.type"]


async def test_dr_event_lookups_refuse_unknown_and_malformed_ids_and_need_scopes(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str],
        network: str) -> None:
    r = await client.post("/v2/dr_events/", json={"drEvents": []}, headers=writer)
    assert r.status_code == 400 and {"body.networkId", "body.drEvents"} <= set(r.json()["data"])
    r = await client.get("/v2/dr_events/", params={"network": str(uuid4())}, headers=writer)
    assert r.status_code == 404
    r = await client.get("/v2/dr_events/", headers=writer)
    assert r.status_code == 400 and "network" in r.json()["data"]
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, f"/v2/dr_events/{uuid4()}", headers=writer,
                                 json={} if method == "PATCH" else None)
        assert r.status_code == 404, method
        r = await client.request(method, "/v2/dr_events/12", headers=writer,
                                 json={} if method == "PATCH" else None)
        assert r.status_code == 400 and "id" in r.json()["data"], method
    made = await add_dr(client, writer, network)
    reader = await key(server, "read")
    assert (await client.get(f"/v2/dr_events/{made['id']}", headers=reader)).status_code == 200
    r = await client.patch(f"/v2/dr_events/{made['id']}", json={"value": 1}, headers=reader)
    assert r.status_code == 403
    assert (await client.delete(f"/v2/dr_events/{made['id']}",
                                headers=reader)).status_code == 403
    r = await client.post("/v2/dr_events/", json={"networkId": network, "drEvents": [
        {"type": "Load Amount", "value": 1, "start": at(1), "end": at(2)}]}, headers=reader)
    assert r.status_code == 403
