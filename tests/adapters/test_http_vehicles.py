"""`/v2/vehicles/` (seed 002) against a real Loadstar: vehicles persist, their needs are what
`Vehicles.needs_of` answers, and lists are filtered and paged in SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import Config
from csms.service import Loadstar
from csms.vehicles import VehicleNeeds
from tests.adapters.catalog_helpers import key

MISSING = "00000000-0000-4000-8000-000000000000"
GUIDE = {"name": "Bus 2", "VIN": "4Y1SL65848Z411439", "batteryCapacity": 100,
         "maxChargingPower": 11.5, "targetStateOfCharge": 100}


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
    r = await client.post("/v2/vehicles/", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["data"][0]


async def test_the_guides_steps_9_and_10(client: httpx.AsyncClient, server: Loadstar,
                                         writer: dict[str, str]) -> None:
    bus = await create(client, writer, **GUIDE)
    assert bus | {"id": None, "created": None, "updated": None} == {
        "id": None, "created": None, "updated": None, "name": "Bus 2",
        "VIN": "4Y1SL65848Z411439", "customerVehicleId": None, "stateOfCharge": 0.0,
        "targetStateOfCharge": 100.0, "maxChargingPower": 11.5, "batteryCapacity": 100.0,
        "location": None, "departureTime": None, "active": False, "group": None,
        "insideDepot": None, "make": None, "model": None, "year": None, "licensePlate": None}
    assert server.vehicles.needs_of(bus["id"]) == VehicleNeeds(100.0, None, 11.5)
    r = await client.patch(f"/v2/vehicles/{bus['id']}", headers=writer, json={
        "departureTime": "2020-08-13T06:00:00+00:00", "stateOfCharge": 15.5,
        "targetStateOfCharge": 90.0})
    assert r.status_code == 200
    updated = r.json()["data"][0]
    assert updated["departureTime"] == "2020-08-13T06:00:00.000000+00:00"
    assert updated["stateOfCharge"] == 15.5 and updated["name"] == "Bus 2"
    assert updated["created"] == bus["created"]
    assert server.vehicles.needs_of(bus["id"]) == VehicleNeeds(
        74.5, datetime(2020, 8, 13, 6, tzinfo=UTC), 11.5)
    assert (await client.get(f"/v2/vehicles/{bus['id']}", headers=writer)
            ).json()["data"] == [updated]
    gone = await client.delete(f"/v2/vehicles/{bus['id']}", headers=writer)
    assert gone.status_code == 200 and gone.json()["data"] == [updated]
    assert server.vehicles.needs_of(bus["id"]) is None
    r = await client.get(f"/v2/vehicles/{bus['id']}", headers=writer)
    assert r.status_code == 404 and r.json()["data"] == {"id": f"no vehicle {bus['id']}"}


async def test_needs_without_a_battery_say_no_energy(client: httpx.AsyncClient,
                                                     server: Loadstar,
                                                     writer: dict[str, str]) -> None:
    van = await create(client, writer, name="Van", stateOfCharge=95, targetStateOfCharge=80,
                       departureTime="2026-03-01T07:00:00")
    assert server.vehicles.needs_of(van["id"]) == VehicleNeeds(
        None, datetime(2026, 3, 1, 7, tzinfo=UTC), None)
    full = await create(client, writer, name="Full", batteryCapacity=60, stateOfCharge=95,
                        targetStateOfCharge=80)
    assert server.vehicles.needs_of(full["id"]).energy_to_charge_kwh == 0.0  # type: ignore[union-attr]


async def test_vehicles_survive_a_restart(config: Config) -> None:
    first = Loadstar(config)
    await first.start()
    try:
        transport = httpx.ASGITransport(app=create_app(first))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            bus = await create(client, await key(first, "write"), **GUIDE)
    finally:
        await first.stop()
    second = Loadstar(config)
    await second.start()
    try:
        assert second.vehicles.needs_of(bus["id"]) == VehicleNeeds(100.0, None, 11.5)
    finally:
        await second.stop()


@pytest.mark.parametrize("body, fields", [
    ({}, {"body.name"}),
    ({"name": ""}, {"body.name"}),
    ({"name": 7}, {"body.name"}),
    ({"name": "A", "batteryCapacity": 0}, {"body.batteryCapacity"}),
    ({"name": "A", "batteryCapacity": "big"}, {"body.batteryCapacity"}),
    ({"name": "A", "maxChargingPower": -1}, {"body.maxChargingPower"}),
    ({"name": "A", "stateOfCharge": 101}, {"body.stateOfCharge"}),
    ({"name": "A", "targetStateOfCharge": -5}, {"body.targetStateOfCharge"}),
    ({"name": "A", "departureTime": "tomorrow"}, {"body.departureTime"}),
    ({"name": "A", "insideDepot": "depot-1"}, {"body.insideDepot"}),
    ({"name": "A", "year": "2022"}, {"body.year"}),
    ({"name": "A", "active": "yes"}, {"body.active"}),
    ({"name": "A", "vin": "lowercase is not the field"}, {"body.vin"}),
])
async def test_bad_bodies_are_a_400_naming_each_field(
        client: httpx.AsyncClient, writer: dict[str, str], body: dict[str, Any],
        fields: set[str]) -> None:
    r = await client.post("/v2/vehicles/", headers=writer, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "fail" and set(r.json()["data"]) == fields


async def test_bad_patches_paths_and_queries(client: httpx.AsyncClient,
                                             writer: dict[str, str]) -> None:
    car = await create(client, writer, name="Car")
    r = await client.patch(f"/v2/vehicles/{car['id']}", headers=writer,
                           json={"name": None, "stateOfCharge": None})
    assert r.status_code == 400
    assert set(r.json()["data"]) == {"body.name", "body.stateOfCharge"}
    r = await client.patch(f"/v2/vehicles/{car['id']}", headers=writer, json=["name"])
    assert r.status_code == 400 and r.json()["status"] == "fail"
    r = await client.get("/v2/vehicles/1234", headers=writer)
    assert r.status_code == 400 and list(r.json()["data"]) == ["id"]
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {}} if method == "patch" else {}
        r = await getattr(client, method)(f"/v2/vehicles/{MISSING}", headers=writer, **kwargs)
        assert r.status_code == 404
    for query, field in (("sort=colour:asc", "sort"), ("updated=yesterday", "updated"),
                         ("offset=-1", "offset")):
        r = await client.get(f"/v2/vehicles/?{query}", headers=writer)
        assert r.status_code == 400 and list(r.json()["data"]) == [field], query


async def test_scopes(client: httpx.AsyncClient, server: Loadstar,
                      writer: dict[str, str]) -> None:
    car = await create(client, writer, name="Car")
    reader = await key(server, "read")
    assert (await client.get("/v2/vehicles/", headers=reader)).status_code == 200
    assert (await client.get(f"/v2/vehicles/{car['id']}", headers=reader)).status_code == 200
    for method, path in (("post", "/v2/vehicles/"), ("patch", f"/v2/vehicles/{car['id']}"),
                         ("delete", f"/v2/vehicles/{car['id']}")):
        kwargs = {"json": {"name": "X"}} if method != "delete" else {}
        assert (await getattr(client, method)(path, headers=reader, **kwargs)
                ).status_code == 403
        assert (await getattr(client, method)(path, **kwargs)).status_code == 401


async def test_lists_are_filtered_sorted_and_paged(client: httpx.AsyncClient,
                                                   server: Loadstar,
                                                   writer: dict[str, str]) -> None:
    made = [await create(client, writer, name=f"Bus {n}", group="Morning" if n % 2 else "Late",
                         make="Chevy" if n == 3 else "Ford", year=2020 + n,
                         batteryCapacity=50.0 + 10 * (n % 3), licensePlate=f"PL{n}")
            for n in range(6)]
    # An id tag names a vehicle: the search finds the vehicle by the tag's value.
    r = await client.post("/v2/id_tags/", headers=writer, json={
        "value": "CARD-77", "group": "RFID", "vehicleId": made[5]["id"]})
    assert r.status_code == 201

    async def names(query: str) -> tuple[list[str], int]:
        r = await client.get(f"/v2/vehicles/?{query}", headers=writer)
        assert r.status_code == 200, r.text
        return [v["name"] for v in r.json()["data"]], r.json()["total"]

    assert await names("") == ([v["name"] for v in made], 6)
    assert await names("limit=2&offset=1") == (["Bus 1", "Bus 2"], 6)
    assert await names("group=Morning") == (["Bus 1", "Bus 3", "Bus 5"], 3)
    assert await names("search=chevy") == (["Bus 3"], 1)
    assert await names("search=2024") == (["Bus 4"], 1)
    assert await names("search=card-77") == (["Bus 5"], 1)
    assert await names("sort=year:desc&limit=2") == (["Bus 5", "Bus 4"], 6)
    assert await names("sort=batteryCapacity:asc&limit=2") == (["Bus 0", "Bus 3"], 6)
    changed = await client.patch(f"/v2/vehicles/{made[2]['id']}", headers=writer,
                                 json={"location": "Depot"})
    since = made[-1]["updated"]
    assert await names(f"updated={since.replace('+00:00', '')}") == (["Bus 2"], 1)
    assert changed.json()["data"][0]["updated"] > since
    # Deleting a vehicle leaves its tags, naming none.
    await client.delete(f"/v2/vehicles/{made[5]['id']}", headers=writer)
    tag = (await client.get("/v2/id_tags/?value=CARD-77", headers=writer)).json()["data"][0]
    assert tag["vehicleId"] is None
