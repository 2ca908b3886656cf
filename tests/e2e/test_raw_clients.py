"""Raw OCPP clients (plain websockets, no project code) run whole sessions against the server."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

from csms.domain import ConnectionChanged
from csms.service import Loadstar
from tests.raw_client import RawClient


async def cli_json(db: str, tmp_path: Path, *args: str) -> list[dict]:
    """Run `loadstar ARGS --json` against the database, as an operator would."""
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[store]\npath = "{db}"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", *args, "--json", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


def mv16(ts: str, wh: float, watts: float) -> dict:
    return {"timestamp": ts, "sampledValue": [
        {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": str(watts), "measurand": "Power.Active.Import", "unit": "W"},
        {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
    ]}


async def test_raw_ocpp16_client_runs_a_transaction_and_the_cli_shows_its_energy(
        server: Loadstar, url, tmp_path: Path) -> None:
    c = await RawClient.connect(url("RAW16"), "ocpp1.6")
    assert c.ws.subprotocol == "ocpp1.6"
    boot = await c.ok("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"})
    assert boot["status"] == "Accepted" and boot["interval"] > 0
    assert (await c.ok("Heartbeat", {}))["currentTime"].endswith("Z")
    await c.ok("StatusNotification", {"connectorId": 0, "errorCode": "NoError",
                                      "status": "Available"})
    await c.ok("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                      "status": "Preparing"})
    auth = await c.ok("Authorize", {"idTag": "TAG1"})
    assert auth["idTagInfo"]["status"] == "Accepted"
    start = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000,
                                            "timestamp": "2026-11-23T10:00:00Z"})
    tx = start["transactionId"]
    assert isinstance(tx, int) and start["idTagInfo"]["status"] == "Accepted"
    for i in range(1, 4):
        await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            mv16(f"2026-11-23T10:0{i}:00Z", 1000 + i * 300, 11000)]})
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 13500, "idTag": "TAG1",
                                   "timestamp": "2026-11-23T11:00:00Z", "reason": "EVDisconnected",
                                   "transactionData": [mv16("2026-11-23T11:00:00Z", 13500, 0)]})
    await c.close()

    sessions = await cli_json(server.config.store.path, tmp_path, "sessions")
    [s] = [s for s in sessions if s["cp_id"] == "RAW16"]
    assert s["ocpp_tx_id"] == str(tx) and s["connector_id"] == 1 and s["id_tag"] == "TAG1"
    assert s["energy_kwh"] == 12.5
    assert s["stopped_at"] is not None and s["stop_reason"] == "EVDisconnected"
    assert s["meter_value_count"] == 3 * 3 + 3
    chargers = await cli_json(server.config.store.path, tmp_path, "chargers")
    [cp] = [cp for cp in chargers if cp["cp_id"] == "RAW16"]
    assert cp["protocol"] == "ocpp1.6" and cp["vendor"] == "Acme"
    assert {c["connector_id"]: c["status"] for c in cp["connectors"]} == {
        0: "Available", 1: "Preparing"}


def te(event: str, tx: str, seq: int, ts: str, wh: float, **extra: object) -> dict:
    payload = {
        "eventType": event, "timestamp": ts, "seqNo": seq,
        "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic",
                          "Ended": "EVCommunicationLost"}[event],
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": ts, "sampledValue": [
            {"value": wh, "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh"}},
            {"value": 7.4, "measurand": "Power.Active.Import",
             "unitOfMeasure": {"unit": "W", "multiplier": 3}},
        ]}],
    }
    payload.update(extra)
    return payload


async def test_raw_ocpp201_client_runs_a_transaction_and_the_cli_shows_its_energy(
        server: Loadstar, url, tmp_path: Path) -> None:
    c = await RawClient.connect(url("RAW201"), "ocpp2.0.1")
    assert c.ws.subprotocol == "ocpp2.0.1"
    boot = await c.ok("BootNotification", {
        "reason": "PowerUp", "chargingStation": {"model": "Y2", "vendorName": "Acme"}})
    assert boot["status"] == "Accepted"
    await c.ok("Heartbeat", {})
    await c.ok("StatusNotification", {"timestamp": "2026-11-23T10:00:00Z",
                                      "connectorStatus": "Occupied", "evseId": 1,
                                      "connectorId": 1})
    auth = await c.ok("Authorize", {"idToken": {"idToken": "TOK", "type": "ISO14443"}})
    assert auth["idTokenInfo"]["status"] == "Accepted"
    tx = str(uuid.uuid4())
    token = {"idToken": "TOK", "type": "ISO14443"}
    r = await c.ok("TransactionEvent", te("Started", tx, 0, "2026-11-23T10:00:00Z", 2000,
                                          idToken=token))
    assert r["idTokenInfo"]["status"] == "Accepted"
    await c.ok("TransactionEvent", te("Updated", tx, 1, "2026-11-23T10:30:00Z", 5700))
    await c.ok("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": "2026-11-23T10:31:00Z",
               "sampledValue": [{"value": 230.1, "measurand": "Voltage", "phase": "L1-N"}]}]})
    await c.ok("TransactionEvent", te("Ended", tx, 2, "2026-11-23T11:00:00Z", 9400,
                                      transactionInfo={"transactionId": tx,
                                                       "stoppedReason": "EVDisconnected"}))
    await c.close()

    sessions = await cli_json(server.config.store.path, tmp_path, "sessions")
    [s] = [s for s in sessions if s["cp_id"] == "RAW201"]
    assert s["ocpp_tx_id"] == tx and s["connector_id"] == 1 and s["id_tag"] == "TOK"
    assert s["energy_kwh"] == 7.4
    assert s["stop_reason"] == "EVDisconnected"
    assert s["meter_value_count"] == 6
    active = await cli_json(server.config.store.path, tmp_path, "sessions", "--active")
    assert all(a["cp_id"] != "RAW201" for a in active)
    assert await server.store.count_meter_values("RAW201") == 7


async def test_ocpp16_notifications_are_answered_and_kept(server: Loadstar, url) -> None:
    c = await RawClient.connect(url("NOTE16"), "ocpp1.6")
    await c.ok("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    answer = await c.ok("DataTransfer", {"vendorId": "com.acme", "messageId": "x", "data": "1"})
    assert answer["status"] == "UnknownVendorId"
    await c.ok("FirmwareStatusNotification", {"status": "Downloading"})
    await c.ok("DiagnosticsStatusNotification", {"status": "Uploaded"})
    await c.close()
    async with server.store.db.execute(
            "SELECT kind FROM charger_events WHERE cp_id='NOTE16' ORDER BY id") as cur:
        kinds = [r[0] for r in await cur.fetchall()]
    assert kinds == ["DataTransfer", "FirmwareStatusNotification",
                     "DiagnosticsStatusNotification"]


async def test_ocpp201_reports_and_charging_needs_are_stored(server: Loadstar, url) -> None:
    c = await RawClient.connect(url("NOTE201"), "ocpp2.0.1")
    await c.ok("BootNotification", {"reason": "PowerUp",
                                    "chargingStation": {"model": "M", "vendorName": "V"}})
    await c.ok("NotifyReport", {"requestId": 1, "generatedAt": "2026-11-23T10:00:00Z",
                                "seqNo": 0, "reportData": [{
                                    "component": {"name": "SmartChargingCtrlr"},
                                    "variable": {"name": "RateUnit"},
                                    "variableAttribute": [{"type": "Actual", "value": "A,W"}]}]})
    needs = await c.ok("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "AC_three_phase", "departureTime": "2026-11-23T18:00:00Z",
        "acChargingParameters": {"energyAmount": 30000, "evMinCurrent": 6,
                                 "evMaxCurrent": 16, "evMaxVoltage": 400}}})
    assert needs["status"] in ("Accepted", "Processing")
    await c.ok("NotifyChargingLimit", {"chargingLimit": {"chargingLimitSource": "EMS"},
                                       "evseId": 1})
    await c.ok("ReportChargingProfiles", {"requestId": 2, "chargingLimitSource": "CSO",
                                          "evseId": 1, "chargingProfile": [{
                                              "id": 1, "stackLevel": 0,
                                              "chargingProfilePurpose": "TxDefaultProfile",
                                              "chargingProfileKind": "Relative",
                                              "chargingSchedule": [{
                                                  "id": 1, "chargingRateUnit": "A",
                                                  "chargingSchedulePeriod": [
                                                      {"startPeriod": 0, "limit": 16}]}]}]})
    await c.close()
    variables = await server.store.get_variables("NOTE201")
    assert {"component": "SmartChargingCtrlr", "evse_id": 0, "variable": "RateUnit",
            "attribute": "Actual", "value": "A,W"} in variables
    stored = await server.store.latest_ev_charging_needs("NOTE201", 1)
    assert stored is not None and stored["energy_amount_wh"] == 30000
    assert stored["ev_max_current_a"] == 16 and stored["departure"].startswith("2026-11-23T18")
    async with server.store.db.execute(
            "SELECT kind FROM charger_events WHERE cp_id='NOTE201' ORDER BY id") as cur:
        kinds = [r[0] for r in await cur.fetchall()]
    assert kinds == ["NotifyChargingLimit"]
    # A report in parts: kept as one report per requestId.
    [report] = await server.store.station_reports("NOTE201", "ReportChargingProfiles", 2)
    assert report.complete and len(report.parts) == 1


async def test_frames_sent_just_before_a_close_are_all_handled(server: Loadstar, url) -> None:
    """A charger that sends and leaves at once: our answer to its first frame cannot go out,
    and the frames it sent after that are still handled."""
    c = await RawClient.connect(url("BURST"), "ocpp1.6")
    await c.ok("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"})
    gone = asyncio.Event()
    server.bus.listen(lambda e: gone.set() if isinstance(e, ConnectionChanged)
                      and e.cp_id == "BURST" and not e.online else None)
    # Three statuses and the close in one write: the server reads the close before it answers.
    protocol = c.ws.protocol
    for n in (1, 2, 3):
        protocol.send_text(json.dumps([2, f"s{n}", "StatusNotification", {
            "connectorId": n, "errorCode": "NoError", "status": "Available"}]).encode())
    protocol.send_close(1000)
    c.ws.transport.write(b"".join(protocol.data_to_send()))
    await asyncio.wait_for(gone.wait(), 10)
    record = await server.store.get_charge_point("BURST")
    assert record is not None
    assert sorted(x.connector_id for x in record.connectors) == [1, 2, 3]
