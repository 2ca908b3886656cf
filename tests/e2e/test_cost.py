"""Cost (issue 12 point 6) with raw chargers of both versions: a site's tariff prices each
session; 2.0.1 stations are told the running cost (CostUpdated, and totalCost in Updated
answers: I02) and the final one (totalCost in the Ended answer: I03); a 1.6 session's cost is
kept at StopTransaction; the session view shows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.http.app import create_app
from csms.clock import iso
from csms.config import Config, SiteSpec, TariffSpec
from csms.identity import session_uuid
from csms.service import Loadstar
from tests.conftest import make_config
from tests.raw_client import RawClient, default_answer

BOOT16 = {"chargePointVendor": "Acme", "chargePointModel": "X1"}
BOOT201 = {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "X2"}}
TARIFF = TariffSpec(currency="EUR", energy_price_per_kwh=Decimal("0.30"),
                    time_price_per_hour=Decimal("2.00"), session_fee=Decimal("0.50"))
# A site whose running cost does not move with the clock (no time price): what a CostUpdated
# says is known before it comes.
ENERGY_ONLY = TariffSpec(currency="EUR", energy_price_per_kwh=Decimal("0.30"),
                         session_fee=Decimal("0.50"))


def site_config(tmp_path: Path, tariffs: dict[str, TariffSpec | None],
                interval_s: float = 0.0) -> Config:
    """One site per pattern-prefix: chargers `<site>-*` hang from site `<site>`."""
    config = make_config(tmp_path, cost_update_interval_s=interval_s)
    config.sites = [SiteSpec(id=site, max_power_kw=500, chargers=[f"{site}-*"], tariff=t)
                    for site, t in tariffs.items()]
    return config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return site_config(tmp_path, {"PAID": TARIFF, "FREE": None})


def answer(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A station that takes CostUpdated and whatever else it is sent."""
    if action == "CostUpdated":
        return {}
    return default_answer(action, payload) or {"status": "Accepted"}


def energy(ts: datetime, wh: float) -> list[dict[str, Any]]:
    return [{"timestamp": iso(ts), "sampledValue": [
        {"value": wh, "measurand": "Energy.Active.Import.Register",
         "unitOfMeasure": {"unit": "Wh"}}]}]


def tx_event(event_type: str, seq_no: int, ts: datetime, tx: str,
             wh: float | None = None) -> dict[str, Any]:
    trigger = {"Started": "CablePluggedIn", "Updated": "MeterValuePeriodic",
               "Ended": "EVCommunicationLost"}[event_type]
    info: dict[str, Any] = {"transactionId": tx}
    if event_type == "Ended":
        info["stoppedReason"] = "EVDisconnected"
    p: dict[str, Any] = {"eventType": event_type, "timestamp": iso(ts), "triggerReason": trigger,
                         "seqNo": seq_no, "transactionInfo": info,
                         "evse": {"id": 1, "connectorId": 1}}
    if wh is not None:
        p["meterValue"] = energy(ts, wh)
    return p


async def connect201(url: Any, cp_id: str) -> RawClient:
    c = await RawClient.connect(url(cp_id), "ocpp2.0.1", answer)
    assert (await c.ok("BootNotification", BOOT201))["status"] == "Accepted"
    return c


async def next_call(c: RawClient, action: str) -> list[Any]:
    """The next CALL of `action` the server sends `c` (others pass by)."""
    while True:
        call = await asyncio.wait_for(c.server_calls.get(), 10)
        if call[2] == action:
            return call


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        yield client


async def test_i03_ended_transaction_event_response_carries_total_cost(
        server: Loadstar, url: Any) -> None:
    c = await connect201(url, "PAID-201")
    t0 = datetime.now(UTC) - timedelta(hours=2)
    started = await c.ok("TransactionEvent", tx_event("Started", 0, t0, "T1", 1000))
    assert "totalCost" not in started
    # 10 kWh at 0.30, 1 h at 2.00, and the 0.50 fee.
    ended = await c.ok("TransactionEvent",
                       tx_event("Ended", 1, t0 + timedelta(hours=1), "T1", 11000))
    assert ended["totalCost"] == 5.50
    # The station's retry, and a later second Ended, are told the same (the first stop holds).
    assert (await c.ok("TransactionEvent", tx_event(
        "Ended", 1, t0 + timedelta(hours=1), "T1", 11000)))["totalCost"] == 5.50
    assert (await c.ok("TransactionEvent", tx_event(
        "Ended", 2, t0 + timedelta(hours=2), "T1", 21000)))["totalCost"] == 5.50
    await c.close()
    s = await server.store.get_session("PAID-201", "T1")
    assert s is not None and s.cost is not None
    assert (s.cost.total, s.cost.currency, s.cost.final) == (Decimal("5.50"), "EUR", True)


async def test_i03_a_site_without_a_tariff_tells_no_total_cost(server: Loadstar, url: Any) -> None:
    c = await connect201(url, "FREE-201")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await c.ok("TransactionEvent", tx_event("Started", 0, t0, "T1", 1000))
    ended = await c.ok("TransactionEvent", tx_event("Ended", 1, t0 + timedelta(minutes=30),
                                                    "T1", 5000))
    assert "totalCost" not in ended
    await c.close()
    s = await server.store.get_session("FREE-201", "T1")
    assert s is not None and s.cost is None


async def test_i02_running_cost_is_sent_as_cost_updated(tmp_path: Path, url: Any) -> None:
    service = Loadstar(site_config(tmp_path, {"PAID": ENERGY_ONLY}, interval_s=0.05))
    await service.start()
    try:
        c = await RawClient.connect(
            f"ws://127.0.0.1:{service.ocpp_port}/ocpp/PAID-RUN", "ocpp2.0.1", answer)
        await c.ok("BootNotification", BOOT201)
        t0 = datetime.now(UTC) - timedelta(minutes=30)
        await c.ok("TransactionEvent", tx_event("Started", 0, t0, "RUN1", 1000))
        # I02.FR.01 either way: the running cost in the Updated answer...
        updated = await c.ok("TransactionEvent", tx_event(
            "Updated", 1, t0 + timedelta(minutes=20), "RUN1", 5000))
        assert updated["totalCost"] == 1.70  # 4 kWh at 0.30 and the 0.50 fee
        # ...and as CostUpdated at the configured interval.
        call = await next_call(c, "CostUpdated")
        assert call[3] == {"totalCost": 1.70, "transactionId": "RUN1"}
        # The next one comes once the first is answered and recorded (one call at a time).
        assert (await next_call(c, "CostUpdated"))[3]["totalCost"] == 1.70
        commands = await service.store.list_commands("PAID-RUN")
        assert any(cmd.action == "CostUpdated" and cmd.status == "accepted" for cmd in commands)
        running = await service.store.get_session("PAID-RUN", "RUN1")
        assert running is not None and running.cost is not None
        assert (running.cost.total, running.cost.final) == (Decimal("1.70"), False)
        task = service.costs.task_for("PAID-RUN", "RUN1")
        assert task is not None
        await c.ok("TransactionEvent", tx_event("Ended", 2, t0 + timedelta(minutes=25),
                                                "RUN1", 6000))
        # The Ended ends the updates.
        await asyncio.wait([task], timeout=10)
        assert task.done() and service.costs.task_for("PAID-RUN", "RUN1") is None
        await c.close()
    finally:
        await service.stop()


async def test_i02_cost_updates_stop_cleanly_at_shutdown(tmp_path: Path) -> None:
    service = Loadstar(site_config(tmp_path, {"PAID": ENERGY_ONLY}, interval_s=3600))
    await service.start()
    c = await RawClient.connect(
        f"ws://127.0.0.1:{service.ocpp_port}/ocpp/PAID-DOWN", "ocpp2.0.1", answer)
    await c.ok("BootNotification", BOOT201)
    await c.ok("TransactionEvent", tx_event("Started", 0, datetime.now(UTC), "D1", 0))
    task = service.costs.task_for("PAID-DOWN", "D1")
    assert task is not None and not task.done()
    await service.stop()
    assert task.cancelled()
    await c.close()


async def test_i02_no_cost_updated_for_a_station_that_reports_cost_disabled(
        tmp_path: Path) -> None:
    service = Loadstar(site_config(tmp_path, {"PAID": ENERGY_ONLY}, interval_s=0.01))
    await service.start()
    try:
        c = await RawClient.connect(
            f"ws://127.0.0.1:{service.ocpp_port}/ocpp/PAID-OFF", "ocpp2.0.1", answer)
        await c.ok("BootNotification", BOOT201)
        await c.ok("NotifyReport", {
            "requestId": 1, "generatedAt": iso(datetime.now(UTC)), "seqNo": 0, "tbc": False,
            "reportData": [{"component": {"name": "TariffCostCtrlr"},
                            "variable": {"name": "Enabled", "instance": "Cost"},
                            "variableAttribute": [{"type": "Actual", "value": "false"}]}]})
        await c.ok("TransactionEvent", tx_event("Started", 0, datetime.now(UTC), "OFF1", 0))
        task = service.costs.task_for("PAID-OFF", "OFF1")
        assert task is not None
        # Its first round finds cost switched off at the station and ends, having sent nothing.
        await asyncio.wait_for(task, 10)
        commands = await service.store.list_commands("PAID-OFF")
        assert not any(cmd.action == "CostUpdated" for cmd in commands)
        await c.close()
    finally:
        await service.stop()


async def test_a_1_6_session_gets_its_cost_stored(server: Loadstar, url: Any,
                                                  client: httpx.AsyncClient) -> None:
    c = await RawClient.connect(url("PAID-16"), "ocpp1.6", answer)
    await c.ok("BootNotification", BOOT16)
    t0 = datetime.now(UTC) - timedelta(hours=3)
    start = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "TAG1",
                                            "meterStart": 2000, "timestamp": iso(t0)})
    tx = start["transactionId"]
    await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
        {"timestamp": iso(t0 + timedelta(minutes=30)), "sampledValue": [
            {"value": "7000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]})
    stop = await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 22000,
                                          "timestamp": iso(t0 + timedelta(minutes=90)),
                                          "reason": "EVDisconnected"})
    assert "totalCost" not in stop  # 1.6 has no such field
    await c.close()
    s = await server.store.get_session("PAID-16", str(tx))
    assert s is not None and s.cost is not None
    # 20 kWh at 0.30, 1.5 h at 2.00, and the 0.50 fee.
    assert (s.cost.total, s.cost.currency, s.cost.final) == (Decimal("9.50"), "EUR", True)
    # The session view shows it.
    key = await server.api_keys.create(("read",), datetime.now(UTC))
    got = await client.get(f"/v2/charging_sessions/{session_uuid(s.id)}",
                           headers={"Authorization": f"Bearer {key.key}"})
    assert got.status_code == 200, got.text
    [shown] = got.json()["data"]
    assert (shown["totalCost"], shown["currency"]) == (9.5, "EUR")
    assert shown["energyConsumption"] == 20.0


async def test_the_session_view_shows_no_cost_where_the_site_has_no_tariff(
        server: Loadstar, url: Any, client: httpx.AsyncClient) -> None:
    c = await RawClient.connect(url("FREE-16"), "ocpp1.6", answer)
    await c.ok("BootNotification", BOOT16)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    tx = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "TAG1", "meterStart": 0,
                                          "timestamp": iso(t0)}))["transactionId"]
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 1000,
                                   "timestamp": iso(t0 + timedelta(minutes=5))})
    await c.close()
    s = await server.store.get_session("FREE-16", str(tx))
    assert s is not None
    key = await server.api_keys.create(("read",), datetime.now(UTC))
    got = await client.get(f"/v2/charging_sessions/{session_uuid(s.id)}",
                           headers={"Authorization": f"Bearer {key.key}"})
    [shown] = got.json()["data"]
    assert (shown["totalCost"], shown["currency"]) == (None, None)
