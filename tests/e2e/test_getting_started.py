"""Seed 002 "Getting started", its twelve steps run as written against a real `loadstar serve`
child process, through a real HTTP client with a key made by `loadstar keys create`, while a
simulated charger (real OCPP port) charges a simulated car that the optimizations steer.

The child and the charger share a simulated clock (SPEED x wall time) that starts on the
document's own day, so its meter value (step 7) is recent. Every wait awaits the charger's
state or polls the API up to a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from csms.clock import iso
from csms.identity import charge_point_uuid, connector_uuid
from simulators.charger import SimCharger
from simulators.clock import SimClock
from simulators.ev import EV
from tests.e2e.serve_process import ServeProcess
from tests.e2e.test_webhooks import Receiver

SPEED = 10.0
START = datetime(2021, 7, 10, 17, 40, tzinfo=UTC)  # the document's step 5 to 8
DEADLINE_S = 20.0  # wall seconds any one wait may take
OCPP_ID = "CHARGER-1"
SECRET = "some-secret-string"
# A profile in A is rounded down to 0.1 A on three phases (~70 W); the car follows its limit.
FOLLOW_W = 250.0
LOAD_TOML = """
[load]
min_update_interval_s = 5
"""


class Api:
    """The document's `requests` calls with httpx: every answer must be `status`, in the
    success envelope; returns its `data`."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self, method: str, path: str, status: int = 200,
                       **kwargs: Any) -> list[dict[str, Any]]:
        r = await self.client.request(method, path, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        body = r.json()
        assert body["status"] == "success" and isinstance(body["data"], list), body
        # A list counts every match; any other answer is its one object.
        assert (body["total"] >= len(body["data"]) if method == "GET"
                else body["total"] == len(body["data"]) == 1), body
        data: list[dict[str, Any]] = body["data"]
        return data


@asynccontextmanager
async def loadstar(tmp_path: Path, clock: SimClock) -> AsyncIterator[tuple[ServeProcess, Api]]:
    """`loadstar serve` on the shared clock, and a client with an admin key from the CLI."""
    epoch = time.time() - clock.elapsed() / SPEED
    serve = ServeProcess(tmp_path, tmp_path / "loadstar.db", tail_toml=LOAD_TOML, args=(
        "--clock-speed", str(SPEED), "--clock-start", iso(clock.start),
        "--clock-epoch", repr(epoch)))
    made = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "keys", "create", "--scopes", "admin", "--json",
        "--config", str(serve.config), stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(made.communicate(), DEADLINE_S)
    assert made.returncode == 0
    token = json.loads(out)["key"]
    await serve.start()
    headers = {"content-type": "application/json", "authorization": "Bearer " + token}
    try:
        async with httpx.AsyncClient(base_url=serve.http_url, headers=headers,
                                     timeout=DEADLINE_S) as client:
            yield serve, Api(client)
    finally:
        if serve.proc is not None and serve.proc.returncode is None:
            await serve.kill()


async def until(sim: SimCharger, check: Callable[[], Awaitable[Any]]) -> Any:
    """Ask the API until `check()` gives a truthy value, again after each meter value the
    charger sends (the planner re-plans on them); bounded by DEADLINE_S."""
    async def loop() -> Any:
        while not (found := await check()):
            seen = sim.samples_acked
            await sim.wait_for(lambda seen=seen: sim.samples_acked > seen)
        return found
    return await asyncio.wait_for(loop(), DEADLINE_S)


def limit_kw(optimization: dict[str, Any]) -> float:
    """The limit in force now: the first period of its profile (always kW)."""
    return float(optimization["profile"]["data"][0]["value"])


def signed(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """The document's receiver check: hex HMAC-SHA256 of the raw body, compared in constant
    time."""
    expected = hmac.new(secret.encode("UTF-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-webhook-signature"])


async def test_getting_started_steers_a_live_charger(tmp_path: Path) -> None:
    clock = SimClock(speed=SPEED, start=START)
    async with Receiver() as receiver, loadstar(tmp_path, clock) as (serve, api):
        # 1. Test your token: no charge points yet.
        r = await api.client.get("/v2/charge_points/")
        assert (r.status_code, r.json()) == (200, {"status": "success", "data": [], "total": 0})

        # 2. Post a network, with only the required data.
        [network] = await api("POST", "/v2/networks/", 201,
                              json={"name": "my first network", "maxCapacity": 30})
        assert (network["name"], network["maxCapacity"]) == ("my first network", 30.0)
        assert (network["objective"], network["timeZone"], network["webhook"]) == (
            "load_sharing", "UTC", None)
        assert network["currentChargingLoad"] is None and network["currentLimit"] is None
        usable_kw = 30.0 * (1 - network["maxCapacityBuffer"])

        # 3. Post a charge point in it; `ocppId` (documented, optional) names the simulated
        # charger that will connect, so the charge point is that charger.
        [cp] = await api("POST", "/v2/charge_points/", 201, json={
            "maxCapacity": 75, "name": "Charger 1", "networkId": network["id"],
            "ocppId": OCPP_ID})
        assert cp["id"] == str(charge_point_uuid(OCPP_ID))
        assert (cp["maxCapacity"], cp["name"], cp["networkId"]) == (75.0, "Charger 1",
                                                                    network["id"])
        assert (cp["active"], cp["ocppId"], cp["onlineStatus"]) == (False, OCPP_ID, "OFFLINE")

        # 4. Post its connector. The simulated charger is AC on three phases at 230 V (its
        # cars draw per phase), not the document's DC one: the ratings say what it is, and
        # its 75 kW are 108 A a phase (else the default 32 A, 22 kW, would be the limit).
        [connector] = await api("POST", "/v2/connectors/", 201, json={
            "maxCapacity": 75, "chargePointId": cp["id"], "connectorId": 1,
            "currentType": "AC_phase3_LN", "voltage": 230, "maxAmperage": 108})
        assert connector["id"] == str(connector_uuid(OCPP_ID, 1))
        assert (connector["chargePointId"], connector["connectorId"]) == (cp["id"], 1)
        assert (connector["maxCapacity"], connector["currentType"], connector["voltage"]) == (
            75.0, "AC_phase3_LN", 230.0)
        assert connector["active"] is False

        # The charger connects and a car (more than the network can give) plugs in.
        sim = SimCharger(OCPP_ID, f"ws://127.0.0.1:{serve.port}/ocpp", clock=clock,
                         max_power_kw=75.0, meter_interval_s=10)
        await sim.start()
        try:
            await sim.wait_for(lambda: sim.booted.is_set(), DEADLINE_S)
            await sim.plug_in(1, EV(battery_kwh=200, soc=0.2, max_power_kw=50))
            tx = (await sim.wait_for_tx_started(1, DEADLINE_S)).transaction_id

            # 5. Post ("start") a charging session on the connector: the OCPP transaction
            # running there is that session, enriched (200, not created).
            [session] = await api("POST", "/v2/charging_sessions/", json={
                "chargePointId": cp["id"], "connectorId": connector["id"]})
            assert (session["connectorId"], session["chargePointId"]) == (connector["id"],
                                                                          cp["id"])
            assert (session["transactionId"], session["active"], session["source"]) == (
                tx, True, "ocpp")
            assert [session[k] for k in ("vehicleId", "energyToCharge", "maximumChargingTimeDate",
                                         "maxChargingPowerOfVehicle")] == [None] * 4

            # 6. Get optimization results: the network (30 kW less its buffer) is the limit,
            # and the car draws what its charger was given.
            async def in_force() -> dict[str, Any] | None:
                found = await api("GET", "/v2/optimizations/",
                                  params={"network": network["id"]})
                return next((o for o in found if o["connector"] == connector["id"]), None)

            async def within_network() -> dict[str, Any] | None:
                found = await in_force()
                return found if found and usable_kw - 0.1 <= limit_kw(found) <= usable_kw \
                    else None

            optimization = await until(sim, within_network)
            assert optimization["chargingSessionId"] == session["id"]
            assert (optimization["chargepointId"], optimization["networkId"]) == (
                cp["id"], network["id"])
            assert optimization["connectorId"] == 1 and optimization["method"] == "load_sharing"
            profiles = optimization["csChargingProfiles"]
            assert (profiles["chargingProfilePurpose"], profiles["transactionId"]) == (
                "TxProfile", tx)
            # The network is the limiting factor (the car could take 50 kW): the car's
            # first plan may count it at the 50 kW it drew before its profile came, the next
            # ones give it the network.
            await sim.wait_for(lambda: abs(sim.current_draw_w(1) - limit_kw(optimization) * 1000)
                               <= FOLLOW_W, DEADLINE_S)

            # 7. Post meter values (the document's own sample) for the connector.
            reading = {"chargePointId": cp["id"], "connectorId": 1, "meterValues": [{
                "sampledValue": [{"context": "Sample.Periodic", "format": "Raw",
                                  "location": "Outlet",
                                  "measurand": "Energy.Active.Import.Register",
                                  "phase": "L1", "unit": "Wh", "value": 56790}],
                "timestamp": "2021-07-10T17:40:56+00:00"}]}
            [posted] = await api("POST", "/v2/meter_values/", 201, json=reading)
            assert (posted["chargePointId"], posted["connectorNumber"]) == (cp["id"], 1)
            [echoed] = posted["meterValues"]
            assert echoed["timestamp"] == "2021-07-10T17:40:56.000000+00:00"
            assert echoed["sampledValue"] == reading["meterValues"][0]["sampledValue"]
            # Stored as the charger's own readings are, in the session running there.
            [stored] = await api("GET", "/v2/meter_values/", params={
                "connector": connector["id"], "start": "2021-07-10T17:40:56+00:00",
                "end": "2021-07-10T17:40:57+00:00"})
            assert (stored["measurand"], stored["value"], stored["unit"]) == (
                "Energy.Active.Import.Register", 56790, "Wh")
            assert stored["chargingSessionId"] == session["id"]

            # 8. Delete ("stop") the session: Loadstar forgets what the API said of it (the
            # charger's transaction is the charger's to end); then the car leaves.
            [deleted] = await api("DELETE", f"/v2/charging_sessions/{session['id']}")
            assert (deleted["id"], deleted["transactionId"], deleted["active"]) == (
                session["id"], tx, True)
            await sim.unplug(1)
            await sim.wait_for_tx_ended(1, DEADLINE_S)
            [ended] = await api("GET", f"/v2/charging_sessions/{session['id']}")
            assert ended["active"] is False and ended["sessionEnd"] is not None

            # 9. Post a vehicle (the document sends it form-encoded under a JSON content
            # type; as JSON here).
            [vehicle] = await api("POST", "/v2/vehicles/", 201, json={
                "name": "Bus 2", "VIN": "4Y1SL65848Z411439", "batteryCapacity": 100,
                "maxChargingPower": 11.5, "targetStateOfCharge": 100})
            assert {k: vehicle[k] for k in (
                "name", "VIN", "customerVehicleId", "stateOfCharge", "targetStateOfCharge",
                "maxChargingPower", "batteryCapacity", "location", "departureTime", "active")} == {
                "name": "Bus 2", "VIN": "4Y1SL65848Z411439", "customerVehicleId": None,
                "stateOfCharge": 0.0, "targetStateOfCharge": 100.0, "maxChargingPower": 11.5,
                "batteryCapacity": 100.0, "location": None, "departureTime": None,
                "active": False}

            # 10. Update it: state of charge, target and departure (the document's departure,
            # already past on this clock: the car is to charge at once).
            [updated] = await api("PATCH", f"/v2/vehicles/{vehicle['id']}", json={
                "departureTime": "2020-08-13T06:00:00+00:00", "stateOfCharge": 15.5,
                "targetStateOfCharge": 90.0})
            assert updated == {**vehicle, "stateOfCharge": 15.5, "targetStateOfCharge": 90.0,
                               "departureTime": "2020-08-13T06:00:00.000000+00:00",
                               "updated": updated["updated"]}
            assert updated["updated"] > vehicle["updated"]

            # 11. Post a session with vehicle data for the car that plugs in next. The
            # simulated car could take 50 kW: only the vehicle's 11.5 kW can hold it lower.
            await sim.plug_in(1, EV(battery_kwh=100, soc=0.155, max_power_kw=50))
            # Its own transaction (the connector's last one is the first car's until then).
            await sim.wait_for(lambda: len(sim.acknowledged_transactions) == 2, DEADLINE_S)
            tx2 = sim.acknowledged_transactions[1]
            assert tx2 != tx
            [session2] = await api("POST", "/v2/charging_sessions/", json={
                "chargePointId": cp["id"], "connectorId": connector["id"],
                "vehicleId": vehicle["id"]})
            assert (session2["transactionId"], session2["vehicleId"], session2["active"]) == (
                tx2, vehicle["id"], True)
            # It shows what it was told; the plan takes the rest from the vehicle.
            assert session2["energyToCharge"] is None

            async def for_vehicle() -> dict[str, Any] | None:
                found = await api("GET", "/v2/optimizations/",
                                  params={"charging_session": session2["id"]})
                return next((o for o in found if 11.4 <= limit_kw(o) <= 11.5), None)

            optimization2 = await until(sim, for_vehicle)
            assert optimization2["csChargingProfiles"]["transactionId"] == tx2
            await sim.wait_for(lambda: abs(sim.current_draw_w(1) - limit_kw(optimization2) * 1000)
                               <= FOLLOW_W, DEADLINE_S)

            # 12. Set a webhook for the network: the next optimization is posted to it, signed.
            [patched] = await api("PATCH", f"/v2/networks/{network['id']}", json={
                "webhook": receiver.url, "webhookSecret": SECRET})
            assert patched["id"] == network["id"] and patched["webhook"] == receiver.url
            assert "webhookSecret" not in patched
            headers, body, status = await receiver.next()
            assert status == 200 and headers["content-type"] == "application/json"
            assert signed(headers, body, SECRET) and not signed(headers, body, "another secret")
            sent = json.loads(body)
            assert sent["status"] == "success" and sent["total"] == len(sent["data"]) == 1
            [hooked] = sent["data"]
            assert (hooked["chargingSessionId"], hooked["networkId"]) == (session2["id"],
                                                                         network["id"])
            assert limit_kw(hooked) == limit_kw(optimization2)
            # The same optimization GET /v2/optimizations/ shows.
            assert await api("GET", f"/v2/optimizations/{hooked['id']}") == [hooked]
        finally:
            await sim.stop()
        assert await serve.terminate() == 0
