"""`/v2/optimizations/` and `/v2/profiles/*`: stored plans in the document's shapes, limits
in the session's unit, and time series resampled over a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from csms.identity import charge_point_uuid, connector_uuid, network_uuid
from csms.service import Loadstar
from tests.adapters import test_http_sessions as base
from tests.adapters.test_http_sessions import SITE_KW, until_planned

config, client, headers = base.config, base.client, base.headers
NETWORK = str(network_uuid("site"))
UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def planned_api_session(client: httpx.AsyncClient, headers: dict[str, str],
                              server: Loadstar, cp_id: str, **body: Any) -> dict[str, Any]:
    """An API session on connector 1 of `cp_id`, once a plan grants it power."""
    await server.store.register_charge_point(cp_id)
    r = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": 1, "chargePointId": str(charge_point_uuid(cp_id)), **body})
    assert r.status_code == 201, r.text
    await until_planned(server, lambda res: res.get(f"{cp_id}/1", {}).get("power_w", 0) > 0)
    return dict(r.json()["data"][0])


async def test_an_optimization_in_the_documents_shape(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    s = await planned_api_session(client, headers, server, "EXT-A", transactionId=12,
                                  chargingRateUnit="kW")
    listed = (await client.get("/v2/optimizations/", headers=headers,
                               params={"network": NETWORK})).json()
    assert listed["status"] == "success" and listed["total"] == 1
    opt = listed["data"][0]
    plans = await server.store.list_plans("site", limit=1)
    granted_kw = plans[0]["result"]["EXT-A/1"]["power_w"] / 1000
    assert 0 < granted_kw <= SITE_KW
    assert opt["active"] is True and opt["method"] == "load_sharing"
    assert opt["connector"] == str(connector_uuid("EXT-A", 1)) and opt["connectorId"] == 1
    assert opt["chargepointId"] == str(charge_point_uuid("EXT-A"))
    assert opt["networkId"] == NETWORK and opt["chargingSessionId"] == s["id"]
    cs = opt["csChargingProfiles"]
    assert cs["chargingProfileKind"] == "Absolute"
    assert cs["chargingProfilePurpose"] == "TxProfile" and cs["stackLevel"] == 2
    assert cs["transactionId"] == 12 and isinstance(cs["chargingProfileId"], int)
    schedule = cs["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "kW"
    assert schedule["chargingSchedulePeriod"] == [{"limit": round(granted_kw, 3),
                                                   "startPeriod": 0.0}]
    valid_from = datetime.fromisoformat(cs["validFrom"])
    assert datetime.fromisoformat(cs["validTo"]) - valid_from == timedelta(
        seconds=schedule["duration"])
    assert opt["profile"]["unit"] == "kW"
    assert opt["profile"]["data"] == [{"time": cs["validFrom"], "value": round(granted_kw, 3)}]
    one = (await client.get(f"/v2/optimizations/{opt['id']}", headers=headers)).json()
    assert one["total"] == 1 and one["data"][0] == opt


async def test_a_connector_counted_at_its_draw_has_no_optimization(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await planned_api_session(client, headers, server, "EXT-P", transactionId=7)
    # A plan that counts a car at its draw (say 50 kW on this network, before it follows a
    # limit) sets no limit for it: shown as one, it would exceed the network's.
    await server.store.record_plan(
        "site", datetime.now(UTC), "test", SITE_KW, None, "default", "optimal", 0.0,
        {"connectors": 1, "sessions": 1, "pinned": ["EXT-P/1"], "limits": {}},
        {"EXT-P/1": {"power_w": 50_000.0, "floor_w": 0.0, "active": True, "pinned": True,
                     "transaction_id": "7"}})
    listed = (await client.get("/v2/optimizations/", headers=headers,
                               params={"network": NETWORK})).json()
    assert listed["total"] == 0, listed
    plan = (await server.store.list_plans("site", limit=1))[0]
    assert await server.optimizations.of_plan(plan) == []


async def test_amps_follow_the_connectors_voltage_and_phases(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await planned_api_session(client, headers, server, "EXT-B", chargingRateUnit="A")
    opt = (await client.get("/v2/optimizations/", headers=headers, params={
        "chargepoint": str(charge_point_uuid("EXT-B"))})).json()["data"][0]
    plans = await server.store.list_plans("site", limit=1)
    watts = plans[0]["result"]["EXT-B/1"]["power_w"]
    schedule = opt["csChargingProfiles"]["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "A"
    amps = schedule["chargingSchedulePeriod"][0]["limit"]
    # Three phases line to neutral at 230 V, power factor 1; rounded down to 0.1 A.
    assert watts / (3 * 230) - 0.1 <= amps <= watts / (3 * 230)


async def test_a_window_shows_optimizations_no_longer_in_force(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    s = await planned_api_session(client, headers, server, "EXT-C")
    began = datetime.now(UTC) - timedelta(minutes=1)
    await client.delete(f"/v2/charging_sessions/{s['id']}", headers=headers)
    # Ended: its last optimization is no longer in force (even before any new plan).
    now = (await client.get("/v2/optimizations/", headers=headers,
                            params={"charging_session": s["id"]})).json()
    assert now["total"] == 0
    window = {"start": began.isoformat(), "end": (began + timedelta(hours=1)).isoformat()}
    then = (await client.get("/v2/optimizations/", headers=headers,
                             params={"charging_session": s["id"], **window})).json()
    assert then["total"] >= 1 and all(o["active"] is False for o in then["data"])


async def test_optimization_selectors_are_checked(
        client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.get("/v2/optimizations/", headers=headers)
    assert r.status_code == 400 and "network" in r.json()["data"]
    r = await client.get("/v2/optimizations/", headers=headers, params={"network": UNKNOWN})
    assert r.status_code == 404 and "network" in r.json()["data"]
    r = await client.get(f"/v2/optimizations/{UNKNOWN}", headers=headers)
    assert r.status_code == 404 and r.json()["status"] == "fail"
    r = await client.get("/v2/optimizations/", headers=headers,
                         params={"connector": "x", "limit": 0})
    assert r.status_code == 400 and {"connector", "limit"} <= set(r.json()["data"])


async def test_the_optimization_profile_is_the_granted_power_over_time(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await planned_api_session(client, headers, server, "EXT-D")
    plans = await server.store.list_plans("site", limit=1)
    granted_kw = plans[0]["result"]["EXT-D/1"]["power_w"] / 1000
    planned_at = datetime.fromisoformat(plans[0]["ts"])
    start = planned_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    window = {"start": start.isoformat(), "end": (start + timedelta(minutes=3)).isoformat()}
    for params in ({"network": NETWORK}, {"connector": str(connector_uuid("EXT-D", 1))}):
        body = (await client.get("/v2/profiles/optimizations/", headers=headers,
                                 params={**params, **window})).json()
        assert body["status"] == "success" and isinstance(body["data"], dict)
        assert body["data"]["unit"] == "kW" and body["data"]["resolution"] == "1m"
        assert body["total"] == 3 == len(body["data"]["data"])
        # The plan in force through these minutes (later ones would grant the same).
        assert all(p["value"] == round(granted_kw, 6) for p in body["data"]["data"])
    forced = (await client.get("/v2/profiles/optimizations/", headers=headers, params={
        "network": NETWORK, "resolution": "15m", **window})).json()
    assert forced["data"]["resolution"] == "15m" and forced["total"] == 1


async def test_profile_windows_and_selectors_are_checked(
        client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    week = {"start": "2026-01-01T00:00:00", "end": "2026-01-08T00:00:00"}
    r = await client.get("/v2/profiles/optimizations/", headers=headers,
                         params={"network": NETWORK, **week})
    assert r.status_code == 400 and "end" in r.json()["data"]
    r = await client.get("/v2/profiles/optimizations/", headers=headers,
                         params={"network": NETWORK, "connector": UNKNOWN})
    assert r.status_code == 400 and "network" in r.json()["data"]
    r = await client.get("/v2/profiles/optimizations/", headers=headers,
                         params={"network": NETWORK, "resolution": "3m"})
    assert r.status_code == 400 and "resolution" in r.json()["data"]
    r = await client.get("/v2/profiles/capacities/", headers=headers, params={
        "network": NETWORK, "resolution": "1m", "start": "2020-01-01T00:00:00",
        "end": "2026-01-01T00:00:00"})
    assert r.status_code == 400 and "resolution" in r.json()["data"]
    r = await client.get("/v2/profiles/capacities/", headers=headers)
    assert r.status_code == 400 and "network" in r.json()["data"]
    r = await client.get("/v2/profiles/meter_values/power", headers=headers)
    assert r.status_code == 400


async def test_the_capacity_profile_follows_the_resolved_limit(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    assert server.planner is not None
    start = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    await server.planner.set_external_limit("site", 10.0, None, end=start + timedelta(minutes=30),
                                            start=start + timedelta(minutes=15))
    body = (await client.get("/v2/profiles/capacities/", headers=headers, params={
        "network": NETWORK, "start": start.isoformat(), "resolution": "15m",
        "end": (start + timedelta(hours=1)).isoformat()})).json()
    assert [p["value"] for p in body["data"]["data"]] == [SITE_KW, 10.0, SITE_KW, SITE_KW]


async def test_metered_power_and_energy_profiles(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await server.store.register_charge_point("EXT-E")
    t0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    values = []
    for minute in range(4):
        at = (t0 + timedelta(minutes=minute)).isoformat()
        values.append({"timestamp": at, "sampledValue": [
            {"measurand": "Power.Active.Import", "unit": "W", "value": 6000 + 2000 * minute},
            {"measurand": "Energy.Active.Import.Register", "unit": "kWh",
             "value": 10 + 0.5 * minute}]})
    r = await client.post("/v2/meter_values/", headers=headers, json={
        "chargePointId": str(charge_point_uuid("EXT-E")), "connectorId": 1,
        "meterValues": values})
    assert r.status_code == 201
    window = {"start": t0.isoformat(), "end": (t0 + timedelta(minutes=4)).isoformat(),
              "chargepoint": str(charge_point_uuid("EXT-E"))}
    power = (await client.get("/v2/profiles/meter_values/power", headers=headers,
                              params=window)).json()
    assert [p["value"] for p in power["data"]["data"]] == [6.0, 8.0, 10.0, 12.0]
    halves = (await client.get("/v2/profiles/meter_values/power", headers=headers,
                               params={**window, "resolution": "15m"})).json()
    assert [p["value"] for p in halves["data"]["data"]] == [9.0]  # the time-weighted mean
    energy = (await client.get("/v2/profiles/meter_values/energy", headers=headers,
                               params=window)).json()
    assert energy["data"]["unit"] == "kWh"
    assert [p["value"] for p in energy["data"]["data"]] == [0.0, 0.5, 0.5, 0.5]
