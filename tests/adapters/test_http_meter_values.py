"""`/v2/meter_values/`: posted values are stored like OCPP MeterValues and feed the planner's
measured draw; the list pages stored samples in SQL, fast at 100,000 rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from csms.domain import Metered, Sample
from csms.identity import charge_point_uuid, connector_uuid, network_uuid
from csms.service import Loadstar
from csms.store.base import MeterQuery
from csms.store.sqlite_api_sessions import ApiSessionsMixin
from tests.adapters import test_http_sessions as base
from tests.adapters.test_http_sessions import until_planned

# The session view's site, client and key fixtures.
config, client, headers = base.config, base.client, base.headers

NETWORK = str(network_uuid("site"))
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def power(kw: float, at: datetime = T0, **extra: Any) -> dict[str, Any]:
    return {"timestamp": at.isoformat(), "sampledValue": [
        {"measurand": "Power.Active.Import", "unit": "kW", "value": kw, **extra}]}


async def api_session(client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar,
                      cp_id: str = "EXT-1", **body: Any) -> dict[str, Any]:
    await server.store.register_charge_point(cp_id)
    r = await client.post("/v2/charging_sessions/", headers=headers, json={
        "connectorId": 1, "chargePointId": str(charge_point_uuid(cp_id)), **body})
    assert r.status_code == 201, r.text
    return dict(r.json()["data"][0])


async def test_posted_power_is_the_measured_draw_and_replans(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await api_session(client, headers, server)
    await until_planned(server, lambda r: r.get("EXT-1/1", {}).get("active", False))
    now = datetime.now(UTC)
    r = await client.post("/v2/meter_values/", headers=headers, json={
        "chargePointId": str(charge_point_uuid("EXT-1")), "connectorId": 1,
        "meterValues": [power(7.0, now, phase=None), {"timestamp": now.isoformat(),
                        "sampledValue": [{"measurand": "Energy.Active.Import.Register",
                                          "unit": "Wh", "value": "1234.5"}]}]})
    assert r.status_code == 201, r.text
    echo = r.json()["data"][0]
    assert echo["connectorId"] == str(connector_uuid("EXT-1", 1))
    assert echo["meterValues"][1]["sampledValue"][0]["value"] == "1234.5"
    assert server.planner is not None
    c = server.planner.live.chargers["EXT-1"].connectors[1]
    assert c.measured_w == 7000.0
    assert await server.store.count_meter_values("EXT-1") == 2
    # A re-plan follows, as after an OCPP MeterValues (one is requested; it completes).
    await until_planned(server, lambda r: True, attempts=1)
    stored = (await client.get("/v2/meter_values/", headers=headers, params={
        "connector": str(connector_uuid("EXT-1", 1)),
        "start": (now - timedelta(minutes=1)).isoformat(),
        "end": (now + timedelta(minutes=1)).isoformat()})).json()
    assert stored["total"] == 2
    assert {(m["measurand"], m["value"], m["unit"]) for m in stored["data"]} == {
        ("Power.Active.Import", 7.0, "kW"), ("Energy.Active.Import.Register", 1234.5, "Wh")}
    assert all(m["chargingSessionId"] is not None for m in stored["data"])


async def test_the_echo_gives_times_in_utc_with_their_offset(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await api_session(client, headers, server)
    r = await client.post("/v2/meter_values/", headers=headers, json={
        "chargePointId": str(charge_point_uuid("EXT-1")), "connectorId": 1, "meterValues": [
            {**power(3.0), "timestamp": "2021-07-10T17:40:56"},  # naive: UTC
            {**power(4.0), "timestamp": "2021-07-10T19:40:57+02:00"}]})
    assert r.status_code == 201, r.text
    assert [mv["timestamp"] for mv in r.json()["data"][0]["meterValues"]] == [
        "2021-07-10T17:40:56.000000+00:00", "2021-07-10T17:40:57.000000+00:00"]


async def test_a_vehicle_names_the_connector_of_its_open_session(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    made = await client.post("/v2/vehicles/", headers=headers, json={"name": "Bus 2"})
    vehicle = made.json()["data"][0]["id"]  # a session names only a known vehicle
    await api_session(client, headers, server, vehicleId=vehicle)
    r = await client.post("/v2/meter_values/", headers=headers,
                          json={"vehicleId": vehicle, "meterValues": [power(3.0)]})
    assert r.status_code == 201 and r.json()["data"][0]["connectorNumber"] == 1
    listed = (await client.get("/v2/meter_values/", headers=headers, params={
        "vehicle": vehicle, "start": "2026-03-01T00:00:00", "end": "2026-03-02T00:00:00"}
    )).json()
    assert listed["total"] == 1 and listed["data"][0]["value"] == 3.0
    nobody = await client.post("/v2/meter_values/", headers=headers, json={
        "vehicleId": "5b0c6f1e-6a43-4f0e-9a53-6b7c2d1e0f12", "meterValues": [power(3.0)]})
    assert nobody.status_code == 400 and "body.vehicleId" in nobody.json()["data"]


CP = str(charge_point_uuid("EXT-1"))


@pytest.mark.parametrize(("body", "field"), [
    ({"chargePointId": CP, "connectorId": 1, "meterValues": [power(1.0)] * 101},
     "body.meterValues"),
    ({"chargePointId": CP, "connectorId": 1, "meterValues": [
        {"timestamp": T0.isoformat(), "sampledValue": [{"value": 1}] * 51}]},
     "body.meterValues.0.sampledValue"),
    ({"chargePointId": CP, "connectorId": 1, "meterValues": []}, "body.meterValues"),
    ({"chargePointId": CP, "connectorId": 1, "meterValues": [
        {"timestamp": T0.isoformat(), "sampledValue": [{"value": 1, "measurand": "Mood"}]}]},
     "body.meterValues.0.sampledValue.0.measurand"),
    ({"chargePointId": CP, "connectorId": 1, "meterValues": [power(1.0, unit="A")]},
     "body.meterValues.0.sampledValue.0.unit"),
    ({"chargePointId": CP, "connectorId": 1, "meterValues": [
        {"timestamp": T0.isoformat(), "sampledValue": [{"value": "lots"}]}]},
     "body.meterValues.0.sampledValue.0.value"),
    ({"chargePointId": CP, "connectorId": 1, "meterValues": [
        {"timestamp": "noon", "sampledValue": [{"value": 1}]}]},
     "body.meterValues.0.timestamp"),
    ({"meterValues": [power(1.0)]}, "body.chargePointId"),
    ({"chargePointId": CP, "meterValues": [power(1.0)]}, "body.connectorId"),
    ({"connectorId": 1, "meterValues": [power(1.0)]}, "body.chargePointId"),
])
async def test_a_bad_meter_value_body_is_a_400_naming_the_field(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar,
        body: dict[str, Any], field: str) -> None:
    await server.store.register_charge_point("EXT-1")
    r = await client.post("/v2/meter_values/", headers=headers, json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["data"], r.json()


async def test_unknown_selectors_are_404_and_a_window_is_required(
        client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    r = await client.post("/v2/meter_values/", headers=headers, json={
        "chargePointId": unknown, "connectorId": 1, "meterValues": [power(1.0)]})
    assert r.status_code == 404 and "body.chargePointId" in r.json()["data"]
    window = {"start": "2026-03-01T00:00:00", "end": "2026-03-02T00:00:00"}
    r = await client.get("/v2/meter_values/", headers=headers,
                         params={"chargepoint": unknown, **window})
    assert r.status_code == 404 and "chargepoint" in r.json()["data"]
    r = await client.get("/v2/meter_values/", headers=headers, params=window)
    assert r.status_code == 400 and "connector" in r.json()["data"]
    r = await client.get("/v2/meter_values/", headers=headers, params={"network": NETWORK})
    assert r.status_code == 400 and {"start", "end"} <= set(r.json()["data"])


async def test_hundreds_of_posted_values_page_in_order(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await server.store.register_charge_point("EXT-1")
    await server.store.register_charge_point("EXT-2")
    for batch in range(3):
        values = [power(float(i), T0 + timedelta(seconds=10 * (100 * batch + i)))
                  for i in range(100)]
        for cp in ("EXT-1", "EXT-2"):
            r = await client.post("/v2/meter_values/", headers=headers, json={
                "chargePointId": str(charge_point_uuid(cp)), "connectorId": 1,
                "meterValues": values})
            assert r.status_code == 201
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    seen = []
    for offset in range(0, 300, 70):
        page = (await client.get("/v2/meter_values/", headers=headers, params={
            "chargepoint": str(charge_point_uuid("EXT-1")), "limit": 70, "offset": offset,
            **window})).json()
        assert page["total"] == 300
        seen += page["data"]
    assert [m["timestamp"] for m in seen] == sorted(m["timestamp"] for m in seen)
    assert len(seen) == 300 and {m["chargePointId"] for m in seen} == {
        str(charge_point_uuid("EXT-1"))}
    network = (await client.get("/v2/meter_values/", headers=headers, params={
        "network": NETWORK, "limit": 1, **window})).json()
    assert network["total"] == 600
    half = (await client.get("/v2/meter_values/", headers=headers, params={
        "network": NETWORK, "limit": 1, "start": T0.isoformat(),
        "end": (T0 + timedelta(seconds=1495)).isoformat()})).json()
    assert half["total"] == 2 * 150


async def test_listing_stays_fast_at_100000_rows(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    await server.store.register_charge_point("BIG")
    samples = tuple(Sample(T0 + timedelta(seconds=i), "Power.Active.Import", float(i % 100),
                           "W") for i in range(100_000))
    for n in (1, 2):
        await server.store.add_meter_values(Metered("BIG", n, samples[n - 1::2]))
    for query in (MeterQuery(connectors=(("BIG", 1),), start=T0, end=T0),
                  MeterQuery(cp_ids=("BIG",), start=T0, end=T0),
                  MeterQuery(vehicles=("v",), start=T0, end=T0)):
        where, args = ApiSessionsMixin._meter_where(query)  # noqa: SLF001 - the SQL it runs
        plan = await server.store._all(  # noqa: SLF001 - the query plan is the point here
            f"EXPLAIN QUERY PLAN SELECT count(*) FROM meter_values m{where}", tuple(args))
        assert "SCAN m" not in " ".join(str(r[3]) for r in plan), [tuple(r) for r in plan]
    params = {"connector": str(connector_uuid("BIG", 2)), "start": T0.isoformat(),
              "end": (T0 + timedelta(days=2)).isoformat(), "limit": 1000, "offset": 40_000}
    page = (await client.get("/v2/meter_values/", headers=headers, params=params)).json()
    # Index use is asserted above; speed itself is measured by bench/http_load.py, not timed here.
    assert page["total"] == 50_000 and len(page["data"]) == 1000


async def test_a_charger_that_appears_after_a_listing_is_in_the_next_one(
        client: httpx.AsyncClient, headers: dict[str, str], server: Loadstar) -> None:
    window = {"network": NETWORK, "start": T0.isoformat(),
              "end": (T0 + timedelta(hours=1)).isoformat()}
    for n, cp in enumerate(("EXT-1", "EXT-2"), start=1):
        await server.store.register_charge_point(cp)
        r = await client.post("/v2/meter_values/", headers=headers, json={
            "chargePointId": str(charge_point_uuid(cp)), "connectorId": 1,
            "meterValues": [power(1.0)]})
        assert r.status_code == 201, r.text
        # The lists keep what they derive from the chargers: a new one must not be missed.
        listed = (await client.get("/v2/meter_values/", headers=headers, params=window)).json()
        assert listed["total"] == n
        assert {m["chargePointId"] for m in listed["data"]} == {
            str(charge_point_uuid(c)) for c in ("EXT-1", "EXT-2")[:n]}
