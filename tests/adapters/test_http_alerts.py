"""`/v2/alerts/` against a real Loadstar: the planner's overload reports (its `on_overload`
listener) and uncontrollable-charger verdicts become alerts an operator lists, reads and
acknowledges; they are kept across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import ChargerSpec, Config, GroupSpec, SiteSpec
from csms.identity import charge_point_uuid, network_uuid
from csms.service import Loadstar
from tests.conftest import make_config

KEY_TIME = datetime(2026, 1, 1, tzinfo=UTC)
OVER = {"limit_w": 30_000.0, "counted_w": 44_000.0, "over_w": 14_000.0}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = make_config(tmp_path)
    config.sites = [SiteSpec(id="site", max_power_kw=30.0, chargers=["*"],
                             groups=[GroupSpec(id="hall", max_power_kw=20.0, chargers=["H*"])]),
                    SiteSpec(id="other", max_power_kw=30.0, chargers=["O*"])]
    config.chargers = [ChargerSpec(match="*", max_power_kw=22, max_current_a=32)]
    return config


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        yield client


async def key(server: Loadstar, *scopes: str) -> dict[str, str]:
    new = await server.api_keys.create(scopes, KEY_TIME)
    return {"Authorization": f"Bearer {new.key}"}


@pytest.fixture
async def reader(server: Loadstar) -> dict[str, str]:
    return await key(server, "read")


@pytest.fixture
async def writer(server: Loadstar) -> dict[str, str]:
    return await key(server, "write")


async def overload(server: Loadstar, site_id: str, overloads: dict[str, dict[str, float]]
                   ) -> None:
    """As the planner tells after a plan; wait until the alerts are stored."""
    server.alerts.on_overload(site_id, overloads)
    await server.alerts.settled()


async def alerts_of(client: httpx.AsyncClient, headers: dict[str, str], network: str = "site",
                    **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/v2/alerts/", headers=headers,
                         params={"network": str(network_uuid(network)), **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success" and body["total"] >= len(body["data"])
    found: list[dict[str, Any]] = body["data"]
    return found


async def test_an_overload_is_one_alert_per_node_updated_while_it_lasts_then_resolved(
        server: Loadstar, client: httpx.AsyncClient, reader: dict[str, str]) -> None:
    await overload(server, "site", {"site": OVER})
    await overload(server, "site", {"site": {**OVER, "counted_w": 47_000.0, "over_w": 17_000.0}})
    [alert] = await alerts_of(client, reader)
    assert alert["name"] == "METER_VALUE_LIMIT_VIOLATION"
    assert (alert["category"], alert["urgency"], alert["status"]) == (
        "Operations", "Very High", "Triggered")
    assert alert["network"] == str(network_uuid("site")) and alert["end"] is None
    assert alert["details"]["overW"] == 17_000.0 and alert["details"]["limitW"] == 30_000.0
    assert alert["charger"] is None and "30.0 kW" in alert["description"]
    await overload(server, "site", {"site": {**OVER, "counted_w": 35_000.0, "over_w": 5_000.0}})
    [alert] = await alerts_of(client, reader)
    assert alert["details"]["overW"] == 5_000.0 and alert["details"]["peakOverW"] == 17_000.0
    await overload(server, "site", {})
    [alert] = await alerts_of(client, reader)
    assert alert["status"] == "Resolved" and alert["end"] is not None
    # Over again later: a new alert, the old one stays resolved.
    await overload(server, "site", {"site": OVER})
    alerts = await alerts_of(client, reader)
    assert [a["status"] for a in alerts] == ["Triggered", "Resolved"]  # newest first


async def test_a_group_overload_is_its_own_alert_and_clears_alone(
        server: Loadstar, client: httpx.AsyncClient, reader: dict[str, str]) -> None:
    hall = {"limit_w": 20_000.0, "counted_w": 22_000.0, "over_w": 2_000.0}
    await overload(server, "site", {"site": OVER, "hall": hall})
    assert len(await alerts_of(client, reader)) == 2
    [group] = await alerts_of(client, reader, network="hall")
    assert group["network"] == str(network_uuid("hall")) and group["details"]["nodeId"] == "hall"
    await overload(server, "site", {"site": OVER})
    [group] = await alerts_of(client, reader, network="hall")
    assert group["status"] == "Resolved"
    [site] = await alerts_of(client, reader, status="Triggered")
    assert site["details"]["nodeId"] == "site"
    assert await alerts_of(client, reader, network="other") == []


async def test_a_charger_learned_uncontrollable_raises_one_alert_per_firmware(
        server: Loadstar, client: httpx.AsyncClient, reader: dict[str, str]) -> None:
    server.alerts.on_uncontrollable("OLD1", "1.0", "SetChargingProfile answered NotImplemented")
    server.alerts.on_uncontrollable("OLD1", "1.0", "SetChargingProfile answered NotImplemented")
    await server.alerts.settled()
    [alert] = await alerts_of(client, reader)
    assert (alert["name"], alert["category"], alert["urgency"]) == (
        "INCORRECT_SETTINGS", "Settings Error", "High")
    assert alert["charger"] == str(charge_point_uuid("OLD1"))
    assert alert["details"]["firmware"] == "1.0" and "NotImplemented" in alert["description"]
    server.alerts.on_uncontrollable("OLD1", "2.0", "SetChargingProfile answered NotSupported")
    await server.alerts.settled()
    assert len(await alerts_of(client, reader)) == 2


async def test_filters_sort_paging_and_the_24_hour_window(
        server: Loadstar, client: httpx.AsyncClient, reader: dict[str, str]) -> None:
    await server.store.register_charge_point("OLD1", None)
    await overload(server, "site", {"site": OVER})
    server.alerts.on_uncontrollable("OLD1", "1.0", "SetChargingProfile answered NotImplemented")
    await server.alerts.settled()
    names = {"name": ["INCORRECT_SETTINGS"], "category": "Operations"}  # name overrides
    assert [a["name"] for a in await alerts_of(client, reader, **names)] == [
        "INCORRECT_SETTINGS"]
    assert [a["urgency"] for a in await alerts_of(client, reader, urgency="Very High")] == [
        "Very High"]
    assert len(await alerts_of(client, reader, category=["Operations", "Settings Error"])) == 2
    by_urgency = await alerts_of(client, reader, sort="urgency:asc")
    assert [a["urgency"] for a in by_urgency] == ["High", "Very High"]
    charger = await alerts_of(client, reader, charger=str(charge_point_uuid("OLD1")))
    assert [a["name"] for a in charger] == ["INCORRECT_SETTINGS"]
    assert await alerts_of(client, reader, charger=str(uuid4())) == []
    r = await client.get("/v2/alerts/", headers=reader, params={
        "network": str(network_uuid("site")), "limit": 1, "offset": 1})
    assert r.json()["total"] == 2 and len(r.json()["data"]) == 1
    long_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    assert await alerts_of(client, reader, start=long_ago) == []  # [start, start + 24 h)
    assert len(await alerts_of(client, reader, end=datetime.now(UTC).isoformat())) == 2


async def test_operators_acknowledge_annotate_and_resolve(
        server: Loadstar, client: httpx.AsyncClient, reader: dict[str, str],
        writer: dict[str, str]) -> None:
    await overload(server, "site", {"site": OVER})
    [alert] = await alerts_of(client, reader)
    path = f"/v2/alerts/{alert['id']}"
    r = await client.patch(path, json={"status": "Acknowledged", "notes": "breaker checked"},
                           headers=writer)
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["status"] == "Acknowledged"
    assert r.json()["data"][0]["notes"] == "breaker checked"
    # Acknowledged is still open: updated by plans, resolved by the plan that clears it.
    await overload(server, "site", {"site": {**OVER, "over_w": 9_000.0}})
    r = await client.get(path, headers=reader)
    assert r.json()["data"][0]["details"]["overW"] == 9_000.0
    assert r.json()["data"][0]["status"] == "Acknowledged"
    r = await client.patch(path, json={"status": "Resolved"}, headers=writer)
    assert r.json()["data"][0]["status"] == "Resolved" and r.json()["data"][0]["end"]
    r = await client.patch(path, json={"status": "Triggered"}, headers=writer)
    assert r.status_code == 409 and r.json()["data"] == {
        "body.status": "a resolved alert cannot change status"}
    # Resolved by hand while still over: the next plan over raises a new one.
    await overload(server, "site", {"site": OVER})
    assert [a["status"] for a in await alerts_of(client, reader)] == ["Triggered", "Resolved"]


async def test_bad_requests_get_the_envelope(
        server: Loadstar, client: httpx.AsyncClient, reader: dict[str, str],
        writer: dict[str, str]) -> None:
    await overload(server, "site", {"site": OVER})
    [alert] = await alerts_of(client, reader)
    path = f"/v2/alerts/{alert['id']}"
    cases = [
        ("GET", "/v2/alerts/", None, None, reader, 400, "network"),
        ("GET", "/v2/alerts/", {"network": str(uuid4())}, None, reader, 404, "network"),
        ("GET", "/v2/alerts/", {"network": str(network_uuid("site")), "sort": "id:asc"}, None,
         reader, 400, "sort.0"),
        ("GET", "/v2/alerts/", {"network": str(network_uuid("site")), "status": "Open"}, None,
         reader, 400, "status.0"),
        ("GET", "/v2/alerts/", {"network": str(network_uuid("site")),
                                "start": "2026-01-02T00:00:00", "end": "2026-01-01T00:00:00"},
         None, reader, 400, "end"),
        ("GET", f"/v2/alerts/{uuid4()}", None, None, reader, 404, "id"),
        ("GET", "/v2/alerts/not-a-uuid", None, None, reader, 400, "alert_id"),
        ("PATCH", path, None, {"status": "Pending"}, writer, 400, "body.status"),
        ("PATCH", path, None, {"colour": "red"}, writer, 400, "body.colour"),
        ("PATCH", path, None, {"status": "Acknowledged"}, reader, 403, "authorization"),
        ("PATCH", f"/v2/alerts/{uuid4()}", None, {"notes": "x"}, writer, 404, "id"),
        ("GET", path, None, None, {}, 401, "authorization"),
    ]
    for method, url, params, body, headers, code, field in cases:
        r = await client.request(method, url, params=params, json=body, headers=headers)
        assert r.status_code == code, (url, params, body, r.text)
        assert r.json()["status"] == "fail" and field in r.json()["data"], (url, r.text)


async def test_an_open_alert_stays_open_across_a_restart(config: Config) -> None:
    first = Loadstar(config)
    await first.start()
    try:
        await overload(first, "site", {"site": OVER})
    finally:
        await first.stop()
    second = Loadstar(config)
    await second.start()
    try:
        [alert] = await second.store.open_alerts()
        assert alert.status == "Triggered" and alert.details["overW"] == 14_000.0
        # Still over after the restart: the same alert, not a second one.
        await overload(second, "site", {"site": OVER})
        await overload(second, "site", {})
        assert await second.store.open_alerts() == []
        done = await second.store.get_alert(alert.uuid)
        assert done is not None and done.status == "Resolved"
    finally:
        await second.stop()
