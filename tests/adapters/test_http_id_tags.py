"""`/v2/id_tags/` (seed 002) against a real Loadstar: the tags decide what chargers on the real
OCPP port are told when authorize_all is off, and a tag's priority reaches the plan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import ChargerSpec, SiteSpec
from csms.service import Loadstar
from simulators.charger import SimCharger
from simulators.ev import EV
from tests.adapters.catalog_helpers import key
from tests.conftest import make_config

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        yield client


@pytest.fixture
async def writer(server: Loadstar) -> dict[str, str]:
    return await key(server, "write")


async def create(client: httpx.AsyncClient, headers: dict[str, str],
                 **body: Any) -> dict[str, Any]:
    r = await client.post("/v2/id_tags/", json={"group": "RFID", **body}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["data"][0]


async def test_create_get_update_delete(client: httpx.AsyncClient,
                                        writer: dict[str, str]) -> None:
    r = await client.post("/v2/id_tags/", headers=writer, json={
        "value": "FHH92JFNMSK93", "priority": 5, "group": "RFID", "listVersion": 4,
        "customGroup": "Depot One Group"})
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "success" and body["total"] == 1
    tag = body["data"][0]
    assert tag | {"id": None, "created": None, "updated": None} == {
        "id": None, "created": None, "updated": None, "value": "FHH92JFNMSK93",
        "priority": 5, "group": "RFID", "vehicleId": None, "listVersion": 4.0,
        "customGroup": "Depot One Group", "status": "Accepted", "expiryDate": None,
        "parentIdTag": None}
    assert tag["created"].endswith("+00:00")
    got = await client.get(f"/v2/id_tags/{tag['id']}", headers=writer)
    assert got.json()["data"] == [tag]
    patched = await client.patch(f"/v2/id_tags/{tag['id']}", headers=writer, json={
        "customGroup": "Depot Two Group", "status": "Blocked",
        "expiryDate": "2030-01-01T00:00:00"})  # no offset: read as UTC
    assert patched.status_code == 200
    changed = patched.json()["data"][0]
    assert changed["customGroup"] == "Depot Two Group" and changed["status"] == "Blocked"
    assert changed["expiryDate"] == "2030-01-01T00:00:00.000000+00:00"
    assert changed["priority"] == 5 and changed["value"] == "FHH92JFNMSK93"  # untouched
    gone = await client.delete(f"/v2/id_tags/{tag['id']}", headers=writer)
    assert gone.status_code == 200 and gone.json()["data"][0]["status"] == "Blocked"
    again = await client.get(f"/v2/id_tags/{tag['id']}", headers=writer)
    assert again.status_code == 404
    assert again.json() == {"status": "fail", "data": {"id": f"no id tag {tag['id']}"}}


async def test_defaults_priority_3_and_null_means_the_connectors(
        client: httpx.AsyncClient, server: Loadstar, writer: dict[str, str]) -> None:
    plain = await create(client, writer, value="PLAIN")
    assert plain["priority"] == 3 and plain["status"] == "Accepted"
    assert server.id_tags.priority_for("PLAIN") == 3
    none = await create(client, writer, value="NONE", priority=None)
    assert none["priority"] is None and server.id_tags.priority_for("NONE") is None
    await client.patch(f"/v2/id_tags/{plain['id']}", headers=writer, json={"priority": 0})
    assert server.id_tags.priority_for("PLAIN") == 0
    renamed = await client.patch(f"/v2/id_tags/{plain['id']}", headers=writer,
                                 json={"value": "RENAMED"})
    assert renamed.json()["data"][0]["priority"] == 0
    assert server.id_tags.priority_for("PLAIN") is None
    assert server.id_tags.priority_for("RENAMED") == 0
    await client.delete(f"/v2/id_tags/{plain['id']}", headers=writer)
    assert server.id_tags.priority_for("RENAMED") is None


@pytest.mark.parametrize("body, fields", [
    ({}, {"body.value", "body.group"}),
    ({"value": "X" * 21, "group": "RFID"}, {"body.value"}),
    ({"value": "", "group": "RFID"}, {"body.value"}),
    ({"value": 12, "group": "RFID"}, {"body.value"}),
    ({"value": "A", "group": "RFID", "priority": 6}, {"body.priority"}),
    ({"value": "A", "group": "RFID", "priority": -1}, {"body.priority"}),
    ({"value": "A", "group": "RFID", "priority": "high"}, {"body.priority"}),
    ({"value": "A", "group": "RFID", "priority": 2.5}, {"body.priority"}),
    ({"value": "A", "group": "badge"}, {"body.group"}),
    ({"value": "A", "group": "RFID", "vehicleId": "not-a-uuid"}, {"body.vehicleId"}),
    ({"value": "A", "group": "RFID", "status": "Maybe"}, {"body.status"}),
    ({"value": "A", "group": "RFID", "expiryDate": "soon"}, {"body.expiryDate"}),
    ({"value": "A", "group": "RFID", "colour": "red"}, {"body.colour"}),
    ({"value": "A", "group": "RFID", "vehicleId": MISSING}, {"body.vehicleId"}),
])
async def test_bad_bodies_are_a_400_naming_each_field(
        client: httpx.AsyncClient, writer: dict[str, str], body: dict[str, Any],
        fields: set[str]) -> None:
    r = await client.post("/v2/id_tags/", headers=writer, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "fail" and set(r.json()["data"]) == fields


async def test_bad_patches_paths_and_queries(client: httpx.AsyncClient,
                                             writer: dict[str, str]) -> None:
    tag = await create(client, writer, value="P1")
    r = await client.patch(f"/v2/id_tags/{tag['id']}", headers=writer,
                           json={"value": None, "group": None})
    assert r.status_code == 400 and set(r.json()["data"]) == {"body.value", "body.group"}
    r = await client.get("/v2/id_tags/not-a-uuid", headers=writer)
    assert r.status_code == 400 and set(r.json()["data"]) == {"id"}
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {}} if method == "patch" else {}
        r = await getattr(client, method)(f"/v2/id_tags/{MISSING}", headers=writer, **kwargs)
        assert r.status_code == 404 and r.json()["data"] == {"id": f"no id tag {MISSING}"}
    # A repeated key's bad value is named with its position.
    for query, field in (("priority=1&priority=9", "priority.1"), ("group=badge", "group.0"),
                         ("sort=colour:asc", "sort"), ("vehicleId=x", "vehicleId.0"),
                         ("limit=0", "limit")):
        r = await client.get(f"/v2/id_tags/?{query}", headers=writer)
        assert r.status_code == 400 and list(r.json()["data"]) == [field], query


async def test_a_value_is_unique(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    first = await create(client, writer, value="SAME")
    r = await client.post("/v2/id_tags/", headers=writer, json={"value": "SAME", "group": "RFID"})
    assert r.status_code == 409 and r.json()["data"] == {"body.value": "an id tag SAME exists"}
    other = await create(client, writer, value="OTHER")
    r = await client.patch(f"/v2/id_tags/{other['id']}", headers=writer, json={"value": "SAME"})
    assert r.status_code == 409
    assert (await client.get(f"/v2/id_tags/{first['id']}", headers=writer)).status_code == 200


async def test_scopes(client: httpx.AsyncClient, server: Loadstar,
                      writer: dict[str, str]) -> None:
    tag = await create(client, writer, value="S1")
    reader = await key(server, "read")
    assert (await client.get("/v2/id_tags/", headers=reader)).status_code == 200
    assert (await client.get(f"/v2/id_tags/{tag['id']}", headers=reader)).status_code == 200
    for method, path in (("post", "/v2/id_tags/"), ("patch", f"/v2/id_tags/{tag['id']}"),
                         ("delete", f"/v2/id_tags/{tag['id']}")):
        kwargs = {"json": {"value": "S2", "group": "RFID"}} if method != "delete" else {}
        r = await getattr(client, method)(path, headers=reader, **kwargs)
        assert r.status_code == 403, (method, path)
        r = await getattr(client, method)(path, **kwargs)
        assert r.status_code == 401, (method, path)
    assert (await client.get("/v2/id_tags/")).status_code == 401


async def test_lists_are_filtered_sorted_and_paged(client: httpx.AsyncClient,
                                                   writer: dict[str, str]) -> None:
    bus = (await client.post("/v2/vehicles/", headers=writer, json={"name": "Bus 2"})
           ).json()["data"][0]
    made = [await create(client, writer, value=f"T{n}", priority=n % 3,
                         group="RFID" if n % 2 else "credit card reader",
                         customGroup=f"G{n % 2}", **({"vehicleId": bus["id"]} if n == 4 else {}))
            for n in range(7)]

    async def values(query: str) -> tuple[list[str], int]:
        r = await client.get(f"/v2/id_tags/?{query}", headers=writer)
        assert r.status_code == 200, r.text
        return [t["value"] for t in r.json()["data"]], r.json()["total"]

    assert await values("") == ([t["value"] for t in made], 7)
    assert await values("limit=2&offset=5") == (["T5", "T6"], 7)
    assert await values("priority=0&priority=2") == (["T0", "T2", "T3", "T5", "T6"], 5)
    assert await values("group=RFID&limit=2") == (["T1", "T3"], 3)
    assert await values("customGroup=G0&priority=1") == (["T4"], 1)
    assert await values("value=T3") == (["T3"], 1)
    assert await values(f"vehicleId={bus['id']}") == (["T4"], 1)
    assert await values("search=bus") == (["T4"], 1)  # the vehicle's name
    assert await values(f"search={made[2]['id'][:13]}") == (["T2"], 1)
    assert await values("sort=value:desc&limit=3") == (["T6", "T5", "T4"], 7)
    assert (await values("sort=priority:desc"))[0][:2] == ["T2", "T5"]
    r = await client.get("/v2/id_tags/custom_groups", headers=writer)
    assert r.json() == {"status": "success", "data": ["G0", "G1"], "total": 2}


# -- the tags on the real OCPP port ------------------------------------------------------------


@pytest.fixture
async def strict_server(tmp_path: Path) -> AsyncIterator[Loadstar]:
    """A Loadstar that accepts only known tags (authorize_all off)."""
    service = Loadstar(make_config(tmp_path, authorize_all=False))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def authorize_payload(protocol: str, tag: str) -> dict[str, Any]:
    if protocol == "ocpp1.6":
        return {"idTag": tag}
    return {"idToken": {"idToken": tag, "type": "ISO14443"}}


def status_of(answer: dict[str, Any]) -> str:
    info = answer.get("idTagInfo") or answer.get("idTokenInfo")
    assert info is not None
    return str(info["status"])


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_a_charger_is_answered_from_the_tags_made_through_the_api(
        strict_server: Loadstar, protocol: str) -> None:
    transport = httpx.ASGITransport(app=create_app(strict_server))
    headers = await key(strict_server, "write")
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        await create(client, headers, value="GOOD")
        await create(client, headers, value="BLOCKED", status="Blocked")
        await create(client, headers, value="OLD", expiryDate="2000-01-01T00:00:00Z")
        url = f"ws://127.0.0.1:{strict_server.ocpp_port}/ocpp"
        async with SimCharger("AUTH", url, protocol=protocol) as charger:
            await charger.wait_for(lambda: charger.online, 10)

            async def authorize(tag: str) -> str:
                return status_of(await charger.call("Authorize",
                                                    authorize_payload(protocol, tag)))

            assert await authorize("GOOD") == "Accepted"
            assert await authorize("NOBODY") == "Invalid"
            assert await authorize("BLOCKED") == "Blocked"
            assert await authorize("OLD") == "Expired"
            # A tag blocked through the API is refused from then on.
            good = (await client.get("/v2/id_tags/?value=GOOD", headers=headers)
                    ).json()["data"][0]
            await client.patch(f"/v2/id_tags/{good['id']}", headers=headers,
                               json={"status": "Blocked"})
            assert await authorize("GOOD") == "Blocked"
            await client.delete(f"/v2/id_tags/{good['id']}", headers=headers)
            assert await authorize("GOOD") == "Invalid"


async def test_start_transaction_is_answered_from_the_tag(strict_server: Loadstar) -> None:
    transport = httpx.ASGITransport(app=create_app(strict_server))
    headers = await key(strict_server, "write")
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        await create(client, headers, value="BLOCKED", status="Blocked")
        url = f"ws://127.0.0.1:{strict_server.ocpp_port}/ocpp"
        async with SimCharger("START", url) as charger:
            await charger.wait_for(lambda: charger.online, 10)
            answer = await charger.call("StartTransaction", {
                "connectorId": 1, "idTag": "BLOCKED", "meterStart": 0,
                "timestamp": "2026-01-01T10:00:00Z"}, transactional=True)
            assert status_of(answer) == "Blocked"


# -- the tag's priority in the plan ------------------------------------------------------------


@pytest.fixture
async def site_server(tmp_path: Path) -> AsyncIterator[Loadstar]:
    """One 30 kW site with 22 kW chargers: two cars cannot both have their maximum."""
    config = make_config(tmp_path)
    config.load.coalesce_s = 0.05
    config.load.min_update_interval_s = 0.0
    config.sites = [SiteSpec(id="site", max_power_kw=30, chargers=["*"])]
    config.chargers = [ChargerSpec(match="*", max_power_kw=22, max_current_a=32)]
    service = Loadstar(config)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def plan_where(server: Loadstar, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first plan of "site" (from now on, or the latest) whose result satisfies `ok`."""
    assert server.planner is not None

    async def wait() -> dict[str, Any]:
        while True:
            latest = await server.store.list_plans("site", limit=1)
            if latest and ok(latest[0]["result"]):
                return latest[0]["result"]
            await server.planner.wait_planned("site")  # type: ignore[union-attr]

    return await asyncio.wait_for(wait(), 20)


async def test_an_opt_out_tag_gets_its_maximum_over_the_connectors_priority(
        site_server: Loadstar) -> None:
    transport = httpx.ASGITransport(app=create_app(site_server))
    headers = await key(site_server, "write")
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        vip = await create(client, headers, value="VIP", priority=0)
        await create(client, headers, value="LOW", priority=5)
        url = f"ws://127.0.0.1:{site_server.ocpp_port}/ocpp"
        async with SimCharger("A", url) as a, SimCharger("B", url) as b:
            await a.wait_for(lambda: a.online, 10)
            await b.wait_for(lambda: b.online, 10)
            car = EV(battery_kwh=500.0, soc=0.1, max_power_kw=22.0)
            await a.plug_in(1, car, id_tag="VIP")
            await b.plug_in(1, EV(battery_kwh=500.0, soc=0.1, max_power_kw=22.0),
                            id_tag="LOW")

            def both(result: dict[str, Any]) -> bool:
                return all(result.get(k, {}).get("active") for k in ("A/1", "B/1"))

            result = await plan_where(site_server, both)
            # Opt-out: the VIP car is planned at its 22 kW; the other gets the rest.
            assert result["A/1"]["power_w"] >= 21000
            assert result["B/1"]["power_w"] <= 30000 - 21000
            # Equal priorities through the API: the next plan shares the site equally.
            await client.patch(f"/v2/id_tags/{vip['id']}", headers=headers,
                               json={"priority": 5})
            result = await plan_where(site_server, lambda r: both(r) and abs(
                r["A/1"]["power_w"] - r["B/1"]["power_w"]) < 1000)
            assert result["A/1"]["power_w"] < 21000


async def test_tags_written_without_the_api_are_listed_with_an_id(
        client: httpx.AsyncClient, server: Loadstar, writer: dict[str, str]) -> None:
    await server.store.put_id_tag("LEGACY", "Blocked")
    r = await client.get("/v2/id_tags/?value=LEGACY", headers=writer)
    tag = r.json()["data"][0]
    assert tag["status"] == "Blocked" and tag["priority"] is None  # no override of its own
    assert (await client.get(f"/v2/id_tags/{tag['id']}", headers=writer)).status_code == 200
