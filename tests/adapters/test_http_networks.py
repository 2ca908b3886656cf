"""`/v2/networks/` against a real Loadstar: networks are the planner's live sites, sub-networks
its groups; every write re-plans and is stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import Config, SiteSpec
from csms.identity import network_uuid
from csms.service import Loadstar
from tests.conftest import make_config

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        yield client


async def key(server: Loadstar, *scopes: str) -> dict[str, str]:
    new = await server.api_keys.create(scopes, NOW)
    return {"Authorization": f"Bearer {new.key}"}


@pytest.fixture
async def writer(server: Loadstar) -> dict[str, str]:
    return await key(server, "write")


async def create(client: httpx.AsyncClient, headers: dict[str, str],
                 **body: Any) -> dict[str, Any]:
    r = await client.post("/v2/networks/", json={"name": "depot", "maxCapacity": 30, **body},
                          headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["total"] == 1
    item: dict[str, Any] = r.json()["data"][0]
    return item


async def test_post_with_only_the_required_fields_answers_as_the_document_shows(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    made = await create(client, writer, name="my first network", maxCapacity=30)
    assert made["name"] == "my first network"
    assert made["maxCapacity"] == 30.0
    assert made["objective"] == "load_sharing"
    assert made["timeZone"] == "UTC"
    assert made["maxCapacityBuffer"] == 0.02
    assert made["connectorMinimumLoad"] == 1.0
    assert made["currentChargingLoad"] is None and made["currentLimit"] is None
    assert made["webhook"] is None and "webhookSecret" not in made
    assert made["parentNetworkId"] is None
    assert made["created"].endswith("+00:00") and "." in made["created"]
    # The network is a live site named by its UUID.
    assert server.planner is not None
    spec = server.planner.directory.specs[made["id"]]
    assert spec.max_power_kw == 30.0 and spec.buffer == 0.02
    assert network_uuid(spec.id) == UUID(made["id"])


async def test_fields_map_onto_the_site_and_the_rest_are_stored_and_echoed(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    made = await create(client, writer, objective="fleet", timeZone="America/Chicago",
                        maxCapacityBuffer=0.05, connectorMinimumLoad=4.2,
                        connectorPowerStep=0.5, reservedPower=3.0, location="New York",
                        zipCode=90001, baseloadAvgYearlyConsumption="2,000",
                        optimizeWithMeterValue=False, connectorReservedPowerSplit=False,
                        currency="USD")
    assert server.planner is not None
    spec = server.planner.directory.specs[made["id"]]
    assert (spec.objective, spec.timezone, spec.buffer, spec.min_power_kw, spec.power_step_kw,
            spec.fallback_power_kw) == ("fleet", "America/Chicago", 0.05, 4.2, 0.5, 3.0)
    r = await client.get(f"/v2/networks/{made['id']}", headers=writer)
    got = r.json()["data"][0]
    assert got["location"] == "New York" and got["zipCode"] == "90001"
    assert got["baseloadAvgYearlyConsumption"] == "2,000"
    assert got["optimizeWithMeterValue"] is False
    assert got["connectorReservedPowerSplit"] is False
    assert got["currency"] == "USD" and got["reservedPower"] == 3.0
    assert got["eventLogging"] is True  # the document's default when never set


async def test_patch_changes_the_live_site_and_keeps_what_it_does_not_name(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    made = await create(client, writer, location="Depot A")
    assert server.planner is not None
    planned = asyncio.create_task(server.planner.wait_planned(made["id"]))
    await asyncio.sleep(0)  # the waiter is in place before the change
    r = await client.patch(f"/v2/networks/{made['id']}", json={"maxCapacity": 12.5},
                           headers=writer)
    assert r.status_code == 200, r.text
    got = r.json()["data"][0]
    assert got["maxCapacity"] == 12.5 and got["location"] == "Depot A"
    assert got["name"] == "depot"
    assert server.planner.directory.specs[made["id"]].max_power_kw == 12.5
    assert got["updated"] >= made["updated"] and got["created"] == made["created"]
    # The change asked the site's loop for a plan (it ran, with no chargers to plan).
    await asyncio.wait_for(planned, 10)


async def test_load_sharing_network_group_is_echoed_and_planned_as_load_sharing(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    made = await create(client, writer, objective="load_sharing_network_group")
    assert made["objective"] == "load_sharing_network_group"
    assert server.planner is not None
    assert server.planner.directory.specs[made["id"]].objective == "load_sharing"


async def test_sub_networks_are_groups_of_the_parent_site(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    top = await create(client, writer, name="site", maxCapacity=100,
                       objective="load_sharing_network_group")
    hall = await create(client, writer, name="hall", maxCapacity=40, parentNetworkId=top["id"])
    bay = await create(client, writer, name="bay", maxCapacity=20, parentNetworkId=hall["id"])
    assert server.planner is not None
    spec = server.planner.directory.specs[top["id"]]
    groups = {g.id: g for g in spec.groups}
    assert groups[hall["id"]].parent is None and groups[hall["id"]].max_power_kw == 40
    assert groups[bay["id"]].parent == hall["id"]
    assert bay["parentNetworkId"] == hall["id"] and hall["parentNetworkId"] == top["id"]
    # A sub-network shows its site's settings, and cannot set different ones.
    assert bay["timeZone"] == "UTC" and bay["objective"] == "load_sharing_network_group"
    r = await client.patch(f"/v2/networks/{bay['id']}", json={"timeZone": "Europe/Paris"},
                           headers=writer)
    assert r.status_code == 400
    assert "body.timeZone" in r.json()["data"]
    r = await client.patch(f"/v2/networks/{bay['id']}", json={"maxCapacity": 15},
                           headers=writer)
    assert r.status_code == 200
    assert server.planner.directory.group_spec(top["id"], bay["id"]).max_power_kw == 15
    # A circuit cannot hang below itself.
    r = await client.patch(f"/v2/networks/{hall['id']}", json={"parentNetworkId": bay["id"]},
                           headers=writer)
    assert r.status_code == 400 and "body.parentNetworkId" in r.json()["data"]
    # Deleting the hall takes the bay with it.
    r = await client.delete(f"/v2/networks/{hall['id']}", headers=writer)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == hall["id"]
    assert server.planner.directory.specs[top["id"]].groups == []
    r = await client.get(f"/v2/networks/{bay['id']}", headers=writer)
    assert r.status_code == 404


async def test_list_pages_and_filters_by_update_time(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    made = [await create(client, writer, name=f"n{i}") for i in range(3)]
    r = await client.get("/v2/networks/", params={"limit": 2}, headers=writer)
    body = r.json()
    # The default site shows as a network too.
    assert body["total"] == 4 and len(body["data"]) == 2
    ids = {n["id"] for n in body["data"]}
    r = await client.get("/v2/networks/", params={"limit": 2, "offset": 2}, headers=writer)
    ids |= {n["id"] for n in r.json()["data"]}
    assert ids == {m["id"] for m in made} | {str(network_uuid("default"))}
    r = await client.get("/v2/networks/", params={"updated": made[1]["updated"]},
                         headers=writer)
    assert [n["id"] for n in r.json()["data"]] == [made[2]["id"]]
    r = await client.get("/v2/networks", params={"vehicle": str(uuid4())}, headers=writer)
    assert r.status_code == 200 and r.json()["total"] == 4


async def test_delete_answers_the_deleted_network_and_forgets_it(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    made = await create(client, writer)
    r = await client.delete(f"/v2/networks/{made['id']}", headers=writer)
    assert r.status_code == 200 and r.json()["data"][0]["name"] == "depot"
    assert server.planner is not None and made["id"] not in server.planner.directory.specs
    assert made["id"] not in [s["id"] for s in await server.store.list_sites()]
    assert (await client.get(f"/v2/networks/{made['id']}", headers=writer)).status_code == 404


async def test_the_default_network_and_a_network_with_chargers_are_not_deleted(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    r = await client.delete(f"/v2/networks/{network_uuid('default')}", headers=writer)
    assert r.status_code == 409
    made = await create(client, writer)
    assert server.planner is not None
    spec = server.planner.directory.specs[made["id"]]
    await server.planner.update_site(spec.model_copy(update={"chargers": ["CP-1"]}))
    server.planner.live.charger("CP-1").connector(1)
    r = await client.delete(f"/v2/networks/{made['id']}", headers=writer)
    assert r.status_code == 409
    assert "CP-1" in r.json()["data"]["network_uuid"]


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[tuple[Loadstar, httpx.AsyncClient]]:
    """A Loadstar of its own (started, stopped here) and a client of its HTTP app."""
    server = Loadstar(config)
    await server.start()
    try:
        transport = httpx.ASGITransport(app=create_app(server))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            yield server, client
    finally:
        await server.stop()


async def test_networks_survive_a_restart(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running(config) as (server, client):
        writer = await key(server, "write")
        top = await create(client, writer, name="kept", maxCapacity=42, location="Lyon")
        sub = await create(client, writer, name="sub", maxCapacity=10, parentNetworkId=top["id"])
    async with running(config) as (server, client):
        reader = await key(server, "read")
        got = (await client.get(f"/v2/networks/{top['id']}", headers=reader)).json()["data"][0]
        assert (got["name"], got["maxCapacity"], got["location"]) == ("kept", 42.0, "Lyon")
        assert got["created"] == top["created"]
        got = (await client.get(f"/v2/networks/{sub['id']}", headers=reader)).json()["data"][0]
        assert (got["name"], got["parentNetworkId"], got["maxCapacity"]) == (
            "sub", top["id"], 10.0)


async def test_a_network_of_config_toml_changed_here_keeps_the_change_over_the_file(
        tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.sites = [SiteSpec(id="yard", max_power_kw=80, timezone="Europe/Paris")]
    yard = network_uuid("yard")
    async with running(config) as (server, client):
        headers = await key(server, "write")
        got = (await client.get(f"/v2/networks/{yard}", headers=headers)).json()["data"][0]
        assert (got["name"], got["maxCapacity"]) == ("yard", 80.0)
        r = await client.patch(f"/v2/networks/{yard}", json={"maxCapacity": 10},
                               headers=headers)
        assert r.status_code == 200 and r.json()["data"][0]["maxCapacity"] == 10.0
        assert server.planner is not None
        assert server.planner.directory.specs["yard"].max_power_kw == 10.0
        r = await client.post("/v2/networks/", json={"name": "hall", "maxCapacity": 5,
                                                     "parentNetworkId": str(yard)},
                              headers=headers)
        assert r.status_code == 201
        hall = r.json()["data"][0]["id"]
        # The file makes the site again at every start: it cannot be deleted here.
        r = await client.delete(f"/v2/networks/{yard}", headers=headers)
        assert r.status_code == 409 and "config.toml" in r.json()["data"]["network_uuid"]
    # After a restart the file's site comes back with the API's changes over it; what the
    # API did not touch (the time zone) still comes from the file.
    async with running(config) as (server, client):
        headers = await key(server, "read")
        got = (await client.get(f"/v2/networks/{yard}", headers=headers)).json()["data"][0]
        assert (got["maxCapacity"], got["timeZone"]) == (10.0, "Europe/Paris")
        sub = (await client.get(f"/v2/networks/{hall}", headers=headers)).json()["data"][0]
        assert (sub["parentNetworkId"], sub["maxCapacity"]) == (str(yard), 5.0)
        assert server.planner is not None
        assert server.planner.directory.specs["yard"].max_power_kw == 10.0


async def test_current_charging_load_is_the_measured_draw_of_the_networks_chargers(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    top = await create(client, writer, name="site", maxCapacity=100)
    hall = await create(client, writer, name="hall", maxCapacity=50, parentNetworkId=top["id"])
    assert server.planner is not None
    spec = server.planner.directory.specs[top["id"]]
    groups = [g.model_copy(update={"chargers": ["H-*"]}) for g in spec.groups]
    await server.planner.update_site(spec.model_copy(update={"chargers": ["S-*"],
                                                             "groups": groups}))
    # As the planner folds in meter values: 7 kW in the hall, 4.5 kW straight on the site.
    server.planner.live.charger("H-1").connector(1).measured_w = 7000.0
    server.planner.live.charger("S-1").connector(1).measured_w = 4500.0
    server.planner.live.charger("S-1").connector(2)  # idle: no reading
    got = (await client.get(f"/v2/networks/{hall['id']}", headers=writer)).json()["data"][0]
    assert got["currentChargingLoad"] == 7.0
    got = (await client.get(f"/v2/networks/{top['id']}", headers=writer)).json()["data"][0]
    assert got["currentChargingLoad"] == 11.5


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"maxCapacity": 30}, "body.name"),
    ({"name": "x"}, "body.maxCapacity"),
    ({"name": "x", "maxCapacity": "thirty"}, "body.maxCapacity"),
    ({"name": "x", "maxCapacity": 0}, "body.maxCapacity"),
    ({"name": "x", "maxCapacity": -5}, "body.maxCapacity"),
    ({"name": 7, "maxCapacity": 30}, "body.name"),
    ({"name": "x", "maxCapacity": 30, "maxCapacityBuffer": 1.5}, "body.maxCapacityBuffer"),
    ({"name": "x", "maxCapacity": 30, "timeZone": "Mars/Olympus"}, "body.timeZone"),
    ({"name": "x", "maxCapacity": 30, "objective": "cheapest"}, "body.objective"),
    ({"name": "x", "maxCapacity": 30, "objective": "vehicle_to_grid"}, "body.objective"),
    ({"name": "x", "maxCapacity": 30, "parentNetworkId": "not-a-uuid"}, "body.parentNetworkId"),
    ({"name": "x", "maxCapacity": 30, "defaultTax": 2}, "body.defaultTax"),
    ({"name": "x", "maxCapacity": 30, "solarActive": "yes"}, "body.solarActive"),
    ({"name": "x", "maxCapacity": 30, "maxCapacty": 3}, "body.maxCapacty"),
])
async def test_bad_bodies_are_400_naming_the_field(
        client: httpx.AsyncClient, writer: dict[str, str], body: dict[str, Any],
        field: str) -> None:
    r = await client.post("/v2/networks/", json=body, headers=writer)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "fail"
    assert field in r.json()["data"], r.json()


async def test_vehicle_to_grid_is_refused_as_not_supported(
        client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    r = await client.post("/v2/networks/", json={"name": "x", "maxCapacity": 30,
                                                 "objective": "vehicle_to_grid"}, headers=writer)
    assert "not supported" in r.json()["data"]["body.objective"]


async def test_a_webhook_needs_its_secret_and_the_secret_is_never_shown(
        client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    r = await client.post("/v2/networks/", json={"name": "x", "maxCapacity": 30,
                                                 "webhook": "https://example.com/hook"},
                          headers=writer)
    assert r.status_code == 400 and r.json()["status"] == "fail"
    made = await create(client, writer, webhook="https://example.com/hook",
                        webhookSecret="PWpJ68GBtN")
    r = await client.patch(f"/v2/networks/{made['id']}",
                           json={"webhook": "https://example.com/other"}, headers=writer)
    assert r.status_code == 400
    everything = (await client.get("/v2/networks/", headers=writer)).text
    assert "PWpJ68GBtN" not in everything


async def test_a_networks_webhook_is_kept_sealed_rotated_and_cleared(
        client: httpx.AsyncClient, writer: dict[str, str], server: Loadstar) -> None:
    made = await create(client, writer, webhook="https://example.com/hook",
                        webhookSecret="PWpJ68GBtN")
    site_id = made["id"]  # a network made through the API: its site id is its UUID
    assert made["webhook"] == "https://example.com/hook"
    assert server.webhooks.url_of(site_id) == "https://example.com/hook"
    [hook] = [h for h in await server.store.list_webhooks() if h.site_id == site_id]
    assert "PWpJ68GBtN" not in hook.sealed_secret  # stored encrypted, not as given
    # A new secret alone keeps the URL; the URL alone (no secret) is refused above.
    r = await client.patch(f"/v2/networks/{site_id}", json={"webhookSecret": "n3w-s3cret"},
                           headers=writer)
    assert r.status_code == 200 and r.json()["data"][0]["webhook"] == "https://example.com/hook"
    sub = await create(client, writer, parentNetworkId=site_id)
    r = await client.patch(f"/v2/networks/{sub['id']}", headers=writer, json={
        "webhook": "https://example.com/sub", "webhookSecret": "x"})
    assert r.status_code == 400 and "body.webhook" in r.json()["data"]
    r = await client.patch(f"/v2/networks/{site_id}", json={"webhook": None}, headers=writer)
    assert r.status_code == 200 and r.json()["data"][0]["webhook"] is None
    assert server.webhooks.url_of(site_id) is None


async def test_unknown_and_malformed_network_uuids(
        client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    r = await client.get(f"/v2/networks/{uuid4()}", headers=writer)
    assert r.status_code == 404 and r.json()["status"] == "fail"
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, "/v2/networks/nope", headers=writer,
                                 json={} if method == "PATCH" else None)
        assert r.status_code == 400 and "network_uuid" in r.json()["data"]
    r = await client.patch(f"/v2/networks/{uuid4()}", json={"name": "y"}, headers=writer)
    assert r.status_code == 404
    r = await client.post("/v2/networks/", json={"name": "x", "maxCapacity": 3,
                                                 "parentNetworkId": str(uuid4())},
                          headers=writer)
    assert r.status_code == 404 and "body.parentNetworkId" in r.json()["data"]


async def test_patch_may_not_null_the_required_fields(
        client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    made = await create(client, writer)
    r = await client.patch(f"/v2/networks/{made['id']}", json={"maxCapacity": None},
                           headers=writer)
    assert r.status_code == 400 and "body.maxCapacity" in r.json()["data"]


async def test_reading_needs_read_and_writing_needs_write(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    made = await create(client, writer)
    reader = await key(server, "read")
    assert (await client.get("/v2/networks/", headers=reader)).status_code == 200
    assert (await client.get(f"/v2/networks/{made['id']}", headers=reader)).status_code == 200
    assert (await client.get("/v2/networks/")).status_code == 401
    r = await client.post("/v2/networks/", json={"name": "x", "maxCapacity": 3}, headers=reader)
    assert r.status_code == 403
    r = await client.patch(f"/v2/networks/{made['id']}", json={"name": "y"}, headers=reader)
    assert r.status_code == 403
    r = await client.delete(f"/v2/networks/{made['id']}", headers=reader)
    assert r.status_code == 403
