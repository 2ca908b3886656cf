"""`/v2/charging_sessions/` against a real Loadstar: OCPP transactions of simulated chargers
(real OCPP port) appear, enrichment steers the planner, API sessions are planned, and the list
pages, sorts and filters in SQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from adapters.http.app import create_app
from csms.config import ChargerSpec, Config, SiteSpec
from csms.domain import TransactionEnded, TransactionStarted
from csms.identity import charge_point_uuid, connector_uuid, network_uuid, session_uuid
from csms.service import Loadstar
from simulators.charger import SimCharger
from simulators.ev import EV
from tests.conftest import make_config

SITE_KW = 30.0
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NETWORK = str(network_uuid("site"))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = make_config(tmp_path)
    config.load.coalesce_s = 0.05
    config.sites = [SiteSpec(id="site", max_power_kw=SITE_KW, chargers=["*"])]
    config.chargers = [ChargerSpec(match="*", max_power_kw=22, max_current_a=32)]
    return config


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(server)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        yield client


@pytest.fixture
async def headers(server: Loadstar) -> dict[str, str]:
    new = await server.api_keys.create(("write",), NOW)
    return {"Authorization": f"Bearer {new.key}"}


@pytest.fixture
async def charger(server: Loadstar,
                  url: Callable[[str], str]) -> AsyncIterator[Callable[..., Any]]:
    """Start simulated chargers on the real OCPP port; stopped at the end."""
    started: list[SimCharger] = []

    async def start(cp_id: str, **kwargs: Any) -> SimCharger:
        c = SimCharger(cp_id, url(""), meter_interval_s=3600, **kwargs)
        started.append(c)
        await c.start()
        await asyncio.wait_for(c.booted.wait(), 10)
        return c

    yield start
    for c in started:
        await c.stop()


async def until_planned(server: Loadstar, check: Callable[[dict[str, Any]], bool],
                        attempts: int = 20) -> dict[str, Any]:
    """Await plans of the site until the newest stored one passes `check` (its result)."""
    assert server.planner is not None
    for _ in range(attempts):
        plans = await server.store.list_plans("site", limit=1)
        if plans and check(plans[0]["result"]):
            return plans[0]["result"]
        await asyncio.wait_for(server.planner.wait_planned("site"), 10)
    raise AssertionError(f"no plan passed the check; last: {plans[0]['result'] if plans else None}")


async def ocpp_session(charger: Callable[..., Any], cp_id: str) -> SimCharger:
    sim: SimCharger = await charger(cp_id)
    await sim.plug_in(1, EV(battery_kwh=500.0, soc=0.1, max_power_kw=22.0))
    await asyncio.wait_for(sim.wait_for_tx_started(1), 10)
    return sim


def session_list(client: httpx.AsyncClient, headers: dict[str, str],
                 **params: Any) -> Any:
    return client.get("/v2/charging_sessions/", headers=headers,
                      params={"network": NETWORK, **params})


async def test_an_ocpp_transaction_is_a_charging_session(
        client: httpx.AsyncClient, headers: dict[str, str], charger: Callable[..., Any]) -> None:
    sim = await ocpp_session(charger, "CP1")
    tx = sim.acknowledged_transactions[0]
    body = (await session_list(client, headers)).json()
    assert body["status"] == "success" and body["total"] == 1
    s = body["data"][0]
    assert s["chargePointId"] == str(charge_point_uuid("CP1"))
    assert s["connectorId"] == str(connector_uuid("CP1", 1))
    assert s["networkId"] == NETWORK
    assert s["transactionId"] == tx and s["active"] is True and s["source"] == "ocpp"
    assert s["chargingRateUnit"] == "W" and s["priority"] == 3 and s["sessionEnd"] is None
    one = (await client.get(f"/v2/charging_sessions/{s['id']}", headers=headers)).json()
    # The car charges on: a reading between the two reads moves what it measures.
    measured = {"meterStop", "energyConsumption", "updated", "totalCost"}
    assert one["total"] == 1
    assert {k: v for k, v in one["data"][0].items() if k not in measured} == \
        {k: v for k, v in s.items() if k not in measured}
    by_tx = (await client.get("/v2/charging_sessions/", headers=headers,
                              params={"transaction_id": tx})).json()
    assert [x["id"] for x in by_tx["data"]] == [s["id"]]


async def test_enrichment_changes_what_the_planner_plans(
        client: httpx.AsyncClient, headers: dict[str, str], charger: Callable[..., Any],
        server: Loadstar) -> None:
    await ocpp_session(charger, "CP1")
    await ocpp_session(charger, "CP2")
    # Two equal cars share 30 kW (less the 2 % buffer) equally.
    # A plan made before CP2's session was known has no CP2/1: wait for the next one.
    await until_planned(server, lambda r: "CP2/1" in r and r["CP1/1"]["active"]
                        and r["CP2/1"]["active"]
                        and r["CP1/1"]["power_w"] == r["CP2/1"]["power_w"])
    departure = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    r = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": 1, "chargePointId": str(charge_point_uuid("CP1")), "priority": 1,
        "energyToCharge": 40.0, "maximumChargingTimeDate": departure.isoformat(),
        "maxChargingPowerOfVehicle": 20.0, "chargingRateUnit": "kW"})
    assert r.status_code == 200, r.text  # enriched, not created
    s = r.json()["data"][0]
    assert s["priority"] == 1 and s["energyToCharge"] == 40.0 and s["source"] == "ocpp"
    assert s["maximumChargingTimeDate"].startswith(departure.isoformat()[:19])
    assert s["chargingRateUnit"] == "kW" and s["maxChargingPowerOfVehicle"] == 20.0
    # The planner's Demand takes it: priority 1 outweighs 3, within the vehicle's 20 kW.
    assert server.planner is not None
    c = server.planner.live.chargers["CP1"].connectors[1]
    assert c.api is not None and c.api.priority == 1 and c.api.departure == departure
    result = await until_planned(
        server, lambda r: r["CP1/1"]["power_w"] > r["CP2/1"]["power_w"] + 1000)
    assert result["CP1/1"]["power_w"] <= 20000.0
    assert result["CP1/1"]["power_w"] + result["CP2/1"]["power_w"] <= SITE_KW * 1000
    # DELETE on an OCPP session forgets the enrichment; the transaction runs on.
    gone = await client.delete(f"/v2/charging_sessions/{s['id']}", headers=headers)
    assert gone.status_code == 200
    after = gone.json()["data"][0]
    assert after["active"] is True and after["priority"] == 3 and after["energyToCharge"] is None
    assert c.api is None
    await until_planned(server, lambda r: r["CP1/1"]["power_w"] == r["CP2/1"]["power_w"])


async def test_a_session_naming_a_vehicle_is_planned_with_the_vehicles_needs(
        client: httpx.AsyncClient, headers: dict[str, str], charger: Callable[..., Any],
        server: Loadstar) -> None:
    await ocpp_session(charger, "CP1")
    # Alone on the 30 kW site, the car takes its charger's 22 kW.
    await until_planned(server, lambda r: r["CP1/1"]["active"]
                        and r["CP1/1"]["power_w"] > 20000)
    departure = (datetime.now(UTC) + timedelta(hours=8)).replace(microsecond=0)
    made = await client.post("/v2/vehicles/", headers=headers, json={
        "name": "Bus 2", "batteryCapacity": 100, "maxChargingPower": 5.0,
        "stateOfCharge": 20, "targetStateOfCharge": 80,
        "departureTime": departure.isoformat()})
    assert made.status_code == 201, made.text
    vehicle = made.json()["data"][0]["id"]
    r = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": 1, "chargePointId": str(charge_point_uuid("CP1")), "vehicleId": vehicle})
    assert r.status_code == 200, r.text
    s = r.json()["data"][0]
    # The session shows what it was given; the planner takes the rest from the vehicle.
    assert s["vehicleId"] == vehicle and s["energyToCharge"] is None
    assert server.planner is not None
    c = server.planner.live.chargers["CP1"].connectors[1]
    assert c.api is not None
    assert (c.api.energy_to_charge_kwh, c.api.departure, c.api.vehicle_max_kw) == (
        60.0, departure, 5.0)
    await until_planned(server, lambda r: 4000 < r["CP1/1"]["power_w"] <= 5000)
    # A change of the vehicle's need re-plans the session that names it.
    patched = await client.patch(f"/v2/vehicles/{vehicle}", headers=headers,
                                 json={"maxChargingPower": 8.0, "stateOfCharge": 50})
    assert patched.status_code == 200, patched.text
    assert (c.api.energy_to_charge_kwh, c.api.vehicle_max_kw) == (30.0, 8.0)
    await until_planned(server, lambda r: 7000 < r["CP1/1"]["power_w"] <= 8000)
    # What the session says itself beats the vehicle, field by field.
    own = await client.patch(f"/v2/charging_sessions/{s['id']}", headers=headers,
                             json={"energyToCharge": 12.5})
    assert own.status_code == 200, own.text
    assert (c.api.energy_to_charge_kwh, c.api.vehicle_max_kw) == (12.5, 8.0)
    # Without its vehicle the session has no needs of the vehicle's.
    assert (await client.delete(f"/v2/vehicles/{vehicle}", headers=headers)).status_code == 200
    assert (c.api.energy_to_charge_kwh, c.api.departure, c.api.vehicle_max_kw) == (
        12.5, None, None)
    await until_planned(server, lambda r: r["CP1/1"]["power_w"] > 20000)


async def test_an_unknown_vehicle_is_a_404_naming_body_vehicle_id(
        client: httpx.AsyncClient, headers: dict[str, str], charger: Callable[..., Any],
        server: Loadstar) -> None:
    await ocpp_session(charger, "CP1")
    unknown = "00000000-0000-4000-8000-000000000001"
    r = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": 1, "chargePointId": str(charge_point_uuid("CP1")), "vehicleId": unknown})
    assert r.status_code == 404 and r.json()["status"] == "fail"
    assert "body.vehicleId" in r.json()["data"]
    s = (await session_list(client, headers)).json()["data"][0]
    assert s["vehicleId"] is None  # nothing was stored
    r = await client.patch(f"/v2/charging_sessions/{s['id']}", headers=headers,
                           json={"vehicleId": unknown})
    assert r.status_code == 404 and "body.vehicleId" in r.json()["data"]


async def test_an_api_session_on_a_charger_of_another_csms_is_planned(
        client: httpx.AsyncClient, headers: dict[str, str], charger: Callable[..., Any],
        server: Loadstar) -> None:
    await ocpp_session(charger, "CP1")
    await server.store.register_charge_point("EXT-1")  # known, never connected to us
    r = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": str(connector_uuid("EXT-1", 2)), "transactionId": 4711,
        "energyToCharge": 10, "meterStart": 1.5, "idTag": "TAG-9"})
    assert r.status_code == 201, r.text
    s = r.json()["data"][0]
    assert s["source"] == "api" and s["active"] and s["transactionId"] == 4711
    assert s["connectorNumber"] == 2 and s["meterStart"] == 1.5 and s["idTag"] == "TAG-9"
    result = await until_planned(server, lambda r: r.get("EXT-1/2", {}).get("active", False)
                                 and r["EXT-1/2"]["power_w"] > 0)
    granted = result["EXT-1/2"]["power_w"] + result["CP1/1"]["power_w"]
    assert granted <= SITE_KW * 1000 and result["EXT-1/2"]["transaction_id"] == "4711"
    # Its optimization, within the network's capacity, in the session's unit (W by default).
    opts = (await client.get("/v2/optimizations/", headers=headers,
                             params={"charging_session": s["id"]})).json()
    assert opts["total"] >= 1
    opt = opts["data"][0]
    cs = opt["csChargingProfiles"]
    assert cs["transactionId"] == 4711 and cs["chargingProfilePurpose"] == "TxProfile"
    assert cs["chargingSchedule"]["chargingRateUnit"] == "W"
    assert 0 < cs["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] <= SITE_KW * 1000
    assert opt["chargingSessionId"] == s["id"] and opt["connectorId"] == 2
    # A second POST on the same connector is a conflict; PATCH closes it.
    again = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": str(connector_uuid("EXT-1", 2))})
    assert again.status_code == 409 and again.json()["status"] == "fail"
    both = await client.patch(f"/v2/charging_sessions/{s['id']}", headers=headers,
                              json={"meterStop": 9.0, "priority": 2})
    assert both.status_code == 400 and "body.priority" in both.json()["data"]
    closed = await client.patch(f"/v2/charging_sessions/{s['id']}", headers=headers,
                                json={"meterStop": 9.0})
    assert closed.status_code == 200
    done = closed.json()["data"][0]
    assert done["active"] is False and done["energyConsumption"] == 7.5
    await until_planned(server, lambda r: not r.get("EXT-1/2", {}).get("active", False))


async def test_an_api_session_ends_with_delete_naming_its_transaction(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await server.store.register_charge_point("EXT-2")
    r = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": 1, "chargePointId": str(charge_point_uuid("EXT-2")),
        "transactionId": 77})
    sid = r.json()["data"][0]["id"]
    wrong = await client.delete(f"/v2/charging_sessions/{sid}/78", headers=headers)
    assert wrong.status_code == 404 and "transaction_id" in wrong.json()["data"]
    ok = await client.delete(f"/v2/charging_sessions/{sid}/77", headers=headers)
    assert ok.status_code == 200 and ok.json()["data"][0]["active"] is False


async def test_a_charger_connected_to_us_gets_no_api_session(
        client: httpx.AsyncClient, headers: dict[str, str], charger: Callable[..., Any]) -> None:
    await charger("CP9")
    r = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": 1, "chargePointId": str(charge_point_uuid("CP9"))})
    assert r.status_code == 409 and "connectorId" in r.json()["data"]


async def test_an_ocpp_session_is_not_closed_through_the_api(
        client: httpx.AsyncClient, headers: dict[str, str], charger: Callable[..., Any]) -> None:
    sim = await ocpp_session(charger, "CP1")
    s = (await session_list(client, headers)).json()["data"][0]
    r = await client.patch(f"/v2/charging_sessions/{s['id']}", headers=headers,
                           json={"ocppTransactionStop": datetime.now(UTC).isoformat()})
    assert r.status_code == 409 and "ocppTransactionStop" in r.json()["data"]
    assert sim.status(1) == "Charging"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "body.connectorId"),
    ({"connectorId": 1}, "body.chargePointId"),
    ({"connectorId": "not-a-uuid"}, "body.connectorId"),
    ({"connectorId": 1, "chargePointId": "nope"}, "body.chargePointId"),
    ({"connectorId": 0, "chargePointId": str(charge_point_uuid("X"))}, "body.connectorId"),
    ({"connectorId": 1, "chargePointId": str(charge_point_uuid("X")), "priority": 6},
     "body.priority"),
    ({"connectorId": 1, "chargePointId": str(charge_point_uuid("X")),
      "chargingRateUnit": "mW"}, "body.chargingRateUnit"),
    ({"connectorId": 1, "chargePointId": str(charge_point_uuid("X")),
      "energyToCharge": -1}, "body.energyToCharge"),
])
async def test_a_bad_session_body_is_a_400_naming_the_field(
        client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any],
        field: str) -> None:
    r = await client.post("/v2/charging_sessions/", headers=headers, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "fail" and field in r.json()["data"]


async def test_unknown_sessions_and_charge_points_are_404(
        client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for method in ("get", "delete"):
        r = await getattr(client, method)(f"/v2/charging_sessions/{unknown}", headers=headers)
        assert r.status_code == 404 and r.json()["status"] == "fail"
    r = await client.patch(f"/v2/charging_sessions/{unknown}", headers=headers,
                           json={"priority": 1})
    assert r.status_code == 404
    r = await client.post("/v2/charging_sessions/", headers=headers,
                          json={"connectorId": 1, "chargePointId": unknown})
    assert r.status_code == 404 and "body.chargePointId" in r.json()["data"]
    r = await client.get("/v2/charging_sessions/", headers=headers, params={"network": unknown})
    assert r.status_code == 404 and "network" in r.json()["data"]
    r = await client.get("/v2/charging_sessions/not-a-uuid", headers=headers)
    assert r.status_code == 400 and "charging_session_uuid" in r.json()["data"]


async def test_the_list_needs_a_selector_and_valid_filters(
        client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.get("/v2/charging_sessions/", headers=headers)
    assert r.status_code == 400 and "network" in r.json()["data"]
    for params, field in (({"sort": "color:asc"}, "sort"), ({"status": "Sleeping"}, "status"),
                          ({"energyConsumption": ">=7"}, "energyConsumption"),
                          ({"priority": 9}, "priority"), ({"start": "yesterday"}, "start")):
        r = await session_list(client, headers, **params)
        assert r.status_code == 400 and any(k.startswith(field) for k in r.json()["data"]), \
            r.text
    r = await client.patch(f"/v2/charging_sessions/{session_uuid(1)}", headers=headers,
                           json={})
    assert r.status_code == 400 and "body" in r.json()["data"]


async def fill(server: Loadstar, n: int) -> None:
    """`n` OCPP sessions on CP-0..CP-4, every third one ended with (i % 50) kWh."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        started = base + timedelta(minutes=i)
        _, _ = await server.store.start_transaction(TransactionStarted(
            f"CP-{i % 5}", 1 + i % 2, f"TAG{i % 7}", started, meter_start_wh=0.0))
        if i % 3 == 0:
            await server.store.end_transaction(TransactionEnded(
                f"CP-{i % 5}", str(i + 1), started + timedelta(seconds=60 * (i % 11)),
                meter_stop_wh=1000.0 * (i % 50)))
    for cp in range(5):
        await server.store.register_charge_point(f"CP-{cp}")


async def test_a_long_list_pages_sorts_and_filters_in_sql(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await fill(server, 300)
    active = (await session_list(client, headers, limit=1000)).json()
    assert active["total"] == 200 and all(s["active"] for s in active["data"])
    window = {"start": "2025-12-01T00:00:00", "end": "2026-02-01T00:00:00"}
    everything = (await session_list(client, headers, **window, limit=1000)).json()
    assert everything["total"] == 300
    pages = []
    for offset in range(0, 300, 120):
        page = (await session_list(client, headers, **window, limit=120, offset=offset,
                                   sort="sessionStart:asc")).json()
        assert page["total"] == 300
        pages += page["data"]
    starts = [p["sessionStart"] for p in pages]
    assert starts == sorted(starts) and len({p["id"] for p in pages}) == 300
    by_energy = (await session_list(client, headers, **window, sort="energyConsumption:desc",
                                    limit=3)).json()["data"]
    assert [s["energyConsumption"] for s in by_energy] == [49.0, 49.0, 48.0]
    big = (await session_list(client, headers, **window, energyConsumption=">=40",
                              limit=1000)).json()
    assert big["total"] == sum(1 for i in range(0, 300, 3) if i % 50 >= 40)
    assert all(s["energyConsumption"] >= 40 for s in big["data"])
    cp2 = (await session_list(client, headers, **window, limit=1000,
                              chargepoint=str(charge_point_uuid("CP-2")), idTag="TAG3")).json()
    expected = [i for i in range(300) if i % 5 == 2 and i % 7 == 3]
    assert cp2["total"] == len(expected)
    assert {s["idTag"] for s in cp2["data"]} == {"TAG3"}
    closed = (await session_list(client, headers, isActive="false", limit=1)).json()
    assert closed["total"] == 100
    short = (await session_list(client, headers, **window, chargingDuration="<300",
                                isActive="false", limit=1000)).json()
    assert short["total"] == sum(1 for i in range(0, 300, 3) if 60 * (i % 11) < 300)
    found = (await session_list(client, headers, search=str(session_uuid(8)))).json()
    assert [s["id"] for s in found["data"]] == [str(session_uuid(8))]
