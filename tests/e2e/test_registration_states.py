"""Registration states (OCPP 1.6 section 4.2, 2.0.1 B01-B03) against a real server: a charger
answered Pending or Rejected, or registered so by an operator, gets CALLERROR SecurityError
for anything but BootNotification and leaves no transaction; an operator accepts it through
the REST view or `loadstar charger accept`, the server asks it to boot again, and its next
boot is Accepted."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import Config
from csms.identity import charge_point_uuid
from csms.service import Loadstar
from tests.conftest import make_config
from tests.e2e.serve_process import ServeProcess
from tests.raw_client import RawClient, default_answer

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BOOT16 = {"chargePointVendor": "Acme", "chargePointModel": "X1"}
BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "Y2", "vendorName": "Acme"}}
TS = "2026-11-23T10:00:00Z"

# Every station-initiated message a not-Accepted station might try, per version.
V16_MESSAGES: list[tuple[str, dict[str, Any]]] = [
    ("Heartbeat", {}),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}),
    ("Authorize", {"idTag": "TAG1"}),
    ("StartTransaction", {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000,
                          "timestamp": TS}),
    ("MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": TS, "sampledValue": [
        {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"}]}]}),
    ("StopTransaction", {"transactionId": 1, "meterStop": 2000, "timestamp": TS}),
    ("DataTransfer", {"vendorId": "Acme"}),
]
V201_MESSAGES: list[tuple[str, dict[str, Any]]] = [
    ("Heartbeat", {}),
    ("StatusNotification", {"timestamp": TS, "connectorStatus": "Occupied", "evseId": 1,
                            "connectorId": 1}),
    ("Authorize", {"idToken": {"idToken": "TOK", "type": "ISO14443"}}),
    ("TransactionEvent", {"eventType": "Started", "timestamp": TS, "seqNo": 0,
                          "triggerReason": "Authorized",
                          "transactionInfo": {"transactionId": "TX-1"},
                          "evse": {"id": 1, "connectorId": 1},
                          "idToken": {"idToken": "TOK", "type": "ISO14443"}}),
    ("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": TS, "sampledValue": [
        {"value": 11000.0, "measurand": "Power.Active.Import"}]}]}),
    ("NotifyEvent", {"generatedAt": TS, "seqNo": 0, "eventData": [{
        "eventId": 1, "timestamp": TS, "trigger": "Alerting", "actualValue": "1",
        "component": {"name": "EVSE"}, "variable": {"name": "Problem"},
        "eventNotificationType": "HardWiredNotification"}]}),
]


def answer(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A charger that does what it is triggered to (and sends it when the test says) and
    takes the profiles load management sends an Accepted one."""
    if action in ("TriggerMessage", "SetChargingProfile", "ClearChargingProfile",
                  "GetBaseReport"):
        return {"status": "Accepted"}
    if action == "GetCompositeSchedule":
        return {"status": "Rejected"}
    return default_answer(action, payload)


async def connect(url: str, subprotocol: str) -> RawClient:
    return await RawClient.connect(url, subprotocol, answer)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    # Unknown chargers wait for an operator: Pending, the registration workflow of B02.
    return make_config(tmp_path, allow_unknown_chargers=False,
                       unknown_charger_status="Pending", configure_after_boot=False)


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        key = await server.api_keys.create(("write",), NOW)
        client.headers["Authorization"] = f"Bearer {key.key}"
        yield client


async def all_refused(c: RawClient, messages: list[tuple[str, dict[str, Any]]]) -> None:
    for action, payload in messages:
        reply = await c.call(action, payload)
        assert reply[0] == 4 and reply[2] == "SecurityError", (action, reply)


async def next_call(c: RawClient, action: str,
                    payload: dict[str, Any] | None = None) -> list[Any]:
    """The next CALL `action` (with `payload`, if given) the server sends `c`; others, such
    as what load management asks of an Accepted charger, are passed over."""
    async def find() -> list[Any]:
        while True:
            call = await c.server_calls.get()
            if call[2] == action and payload in (None, call[3]):
                return call
    return await asyncio.wait_for(find(), 10)


async def asked_to_boot(c: RawClient) -> None:
    """The server sends `c` TriggerMessage BootNotification."""
    await next_call(c, "TriggerMessage", {"requestedMessage": "BootNotification"})


def nothing_of(server: Loadstar, cp_id: str) -> None:
    """The planner's live state holds no connector or session of `cp_id`."""
    cp = server.planner.live.chargers.get(cp_id) if server.planner is not None else None
    assert cp is None or not cp.connectors


async def test_b02_fr_09_pending_station_gets_security_error(
        server: Loadstar, url: Callable[[str], str]) -> None:
    c = await connect(url("PEND201"), "ocpp2.0.1")
    try:
        boot = await c.ok("BootNotification", BOOT201)
        # B02: Pending, and the interval says when to boot again (not the heartbeat's).
        assert boot["status"] == "Pending"
        assert boot["interval"] == server.config.ocpp.boot_retry_interval_s
        await all_refused(c, V201_MESSAGES)
    finally:
        await c.close()
    assert await server.store.list_sessions() == []
    assert await server.store.count_meter_values("PEND201") == 0
    nothing_of(server, "PEND201")
    # Kept, so that an operator can see what asks to be registered.
    found = await server.registrar.get("PEND201")
    assert found is not None and (found.status, found.boot_status) == (None, "Pending")


async def test_b02_fr_02_the_csms_may_configure_a_pending_station_over_the_relay(
        server: Loadstar, url: Callable[[str], str], client: httpx.AsyncClient) -> None:
    c = await connect(url("CONF201"), "ocpp2.0.1")
    try:
        assert (await c.ok("BootNotification", BOOT201))["status"] == "Pending"
        frame = [2, "get-1", "GetVariables", {"getVariableData": [
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}}]}]
        r = await client.post("/v2/ocpp_messages/CONF201", json=json.dumps(frame))
        # Sent and answered at once, not queued for when it is Accepted.
        assert r.status_code == 200, r.text
        assert r.json()["data"][0]["response"][2]["getVariableResult"][0]["attributeStatus"] \
            == "Accepted"
        assert (await next_call(c, "GetVariables"))[3] == frame[3]
    finally:
        await c.close()


async def test_a_pending_station_may_send_what_the_csms_asked_it_for_and_nothing_else(
        server: Loadstar, url: Callable[[str], str], client: httpx.AsyncClient) -> None:
    """1.6 section 4.2 and B02.FR.02: asked for a report (or triggered), a Pending station's
    NotifyReport (or Heartbeat) is answered; statuses and transactions stay refused."""
    c = await connect(url("ASK201"), "ocpp2.0.1")
    try:
        assert (await c.ok("BootNotification", BOOT201))["status"] == "Pending"
        await all_refused(c, [("NotifyReport", {"requestId": 7, "generatedAt": TS,
                                                "seqNo": 0})])
        for frame in ([2, "r-1", "GetBaseReport", {"requestId": 7,
                                                   "reportBase": "FullInventory"}],
                      [2, "t-1", "TriggerMessage", {"requestedMessage": "Heartbeat"}],
                      [2, "t-2", "TriggerMessage", {"requestedMessage": "StatusNotification"}]):
            r = await client.post("/v2/ocpp_messages/ASK201", json=json.dumps(frame))
            assert r.status_code == 200, r.text
        await c.ok("NotifyReport", {"requestId": 7, "generatedAt": TS, "seqNo": 0,
                                    "reportData": [{"component": {"name": "EVSE",
                                                                  "evse": {"id": 1}},
                                                    "variable": {"name": "Available"},
                                                    "variableAttribute": [{"value": "true"}]}]})
        await c.ok("Heartbeat", {})
        await all_refused(c, V201_MESSAGES[1:])
    finally:
        await c.close()
    assert await server.store.list_sessions() == []
    nothing_of(server, "ASK201")


async def test_b03_fr_07_rejected_station_gets_security_error(
        server: Loadstar, url: Callable[[str], str], client: httpx.AsyncClient) -> None:
    r = await client.put("/v2/charge_point_registrations/REJ201", json={"status": "Rejected"})
    assert r.status_code == 200, r.text
    [reg] = r.json()["data"]
    assert (reg["status"], reg["bootStatus"], reg["onlineStatus"]) == ("Rejected", None,
                                                                       "OFFLINE")
    assert reg["chargePointId"] == str(charge_point_uuid("REJ201"))
    c = await connect(url("REJ201"), "ocpp2.0.1")
    try:
        boot = await c.ok("BootNotification", BOOT201)
        assert boot["status"] == "Rejected"
        assert boot["interval"] == server.config.ocpp.boot_retry_interval_s
        await all_refused(c, V201_MESSAGES)
    finally:
        await c.close()
    assert await server.store.list_sessions() == []
    nothing_of(server, "REJ201")


async def test_ocpp16_start_transaction_from_a_pending_charger_gets_no_transaction(
        server: Loadstar, url: Callable[[str], str]) -> None:
    c = await connect(url("PEND16"), "ocpp1.6")
    try:
        assert (await c.ok("BootNotification", BOOT16))["status"] == "Pending"
        # 1.6 has the SecurityError code too; a StartTransaction gets no transactionId.
        await all_refused(c, V16_MESSAGES)
    finally:
        await c.close()
    assert await server.store.list_sessions() == []
    assert await server.store.count_meter_values("PEND16") == 0
    nothing_of(server, "PEND16")


async def test_a_rejected_reboot_takes_back_what_an_accepted_boot_allowed(
        server: Loadstar, url: Callable[[str], str], client: httpx.AsyncClient) -> None:
    """The reported defect: a charger once Accepted kept talking after a Rejected boot, on
    the same connection and after reconnecting without a boot."""
    await server.registrar.set("TURN16", "Accepted")
    c = await connect(url("TURN16"), "ocpp1.6")
    try:
        assert (await c.ok("BootNotification", BOOT16))["status"] == "Accepted"
        await c.ok("Heartbeat", {})
        r = await client.put("/v2/charge_point_registrations/TURN16",
                             json={"status": "Rejected"})
        # Its last boot was Accepted: it is asked to boot again, to learn it is not.
        assert r.json()["data"][0]["bootNotificationRequested"] is True
        await asked_to_boot(c)
        # Refused at once, before it boots again.
        await all_refused(c, V16_MESSAGES[:1])
        assert (await c.ok("BootNotification", BOOT16))["status"] == "Rejected"
        await all_refused(c, V16_MESSAGES)
    finally:
        await c.close()
    c = await connect(url("TURN16"), "ocpp1.6")
    try:
        await all_refused(c, V16_MESSAGES)
    finally:
        await c.close()
    assert await server.store.list_sessions() == []


async def test_operator_accept_triggers_a_boot_that_is_accepted_then_messages_are_answered(
        server: Loadstar, url: Callable[[str], str], client: httpx.AsyncClient) -> None:
    c = await connect(url("NEW201"), "ocpp2.0.1")
    try:
        assert (await c.ok("BootNotification", BOOT201))["status"] == "Pending"
        r = await client.get("/v2/charge_point_registrations/NEW201")
        assert r.status_code == 200
        assert {k: r.json()["data"][0][k] for k in ("status", "bootStatus", "onlineStatus")} \
            == {"status": None, "bootStatus": "Pending", "onlineStatus": "ONLINE"}
        r = await client.put("/v2/charge_point_registrations/NEW201",
                             json={"status": "Accepted"})
        assert r.status_code == 200, r.text
        [reg] = r.json()["data"]
        assert (reg["status"], reg["bootStatus"], reg["bootNotificationRequested"]) == (
            "Accepted", "Pending", True)
        # B02: TriggerMessage BootNotification; until the boot, the station is still Pending.
        await asked_to_boot(c)
        await all_refused(c, V201_MESSAGES[:1])
        boot = await c.ok("BootNotification", {**BOOT201, "reason": "Triggered"})
        assert boot["status"] == "Accepted"
        assert boot["interval"] == server.config.ocpp.heartbeat_interval_s
        await c.ok("Heartbeat", {})
        await c.ok("StatusNotification", V201_MESSAGES[1][1])
        started = await c.ok("TransactionEvent", V201_MESSAGES[3][1])
        assert started["idTokenInfo"]["status"] == "Accepted"
    finally:
        await c.close()
    sessions = await server.store.list_sessions()
    assert [(s.cp_id, s.ocpp_tx_id) for s in sessions] == [("NEW201", "TX-1")], sessions
    await server.registrar.drain()
    [asked] = [c for c in await server.store.list_commands("NEW201")
               if c.payload == {"requestedMessage": "BootNotification"}]
    assert (asked.action, asked.status) == ("TriggerMessage", "accepted")
    found = await server.registrar.get("NEW201")
    assert found is not None and (found.status, found.boot_status) == ("Accepted", "Accepted")


async def test_a_never_booted_unknown_charger_may_only_heartbeat_and_boot(
        server: Loadstar, url: Callable[[str], str]) -> None:
    """Told nothing yet, it is not Rejected: its Heartbeat is answered (nothing stored), the
    rest refused until its boot is Accepted."""
    c = await connect(url("QUIET16"), "ocpp1.6")
    try:
        await c.ok("Heartbeat", {})
        await all_refused(c, V16_MESSAGES[1:])
    finally:
        await c.close()
    assert await server.store.list_charge_points() == []


async def test_registration_view_refuses_bad_input(client: httpx.AsyncClient) -> None:
    r = await client.put("/v2/charge_point_registrations/CP-1", json={"status": "Maybe"})
    assert r.status_code == 400 and r.json()["status"] == "fail"
    r = await client.put("/v2/charge_point_registrations/bad..id", json={"status": "Accepted"})
    assert r.status_code == 400 and "charger_ocpp_id" in r.json()["data"]
    r = await client.get("/v2/charge_point_registrations/NOBODY")
    assert r.status_code == 404 and r.json()["status"] == "fail"
    r = await client.put("/v2/charge_point_registrations/CP-1", json={"status": "Accepted"},
                         headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_loadstar_charger_accept_against_a_running_server(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, tmp_path / "loadstar.db",
                          'allow_unknown_chargers = false\nunknown_charger_status = "Pending"')
    code, out, _ = await cli(server.config, "keys", "create", "--scopes", "write", "--json")
    assert code == 0
    key = json.loads(out)["key"]
    await server.start()
    try:
        c = await connect(server.url("CLI16"), "ocpp1.6")
        try:
            assert (await c.ok("BootNotification", BOOT16))["status"] == "Pending"
            code, out, err = await cli(server.config, "charger", "accept", "CLI16", "--url",
                                       server.http_url, "--api-key", key, "--json")
            assert code == 0, err
            assert json.loads(out)["bootNotificationRequested"] is True
            await asked_to_boot(c)
            assert (await c.ok("BootNotification", BOOT16))["status"] == "Accepted"
            start = await c.ok("StartTransaction", V16_MESSAGES[3][1])
            assert isinstance(start["transactionId"], int)
            code, out, err = await cli(server.config, "charger", "reject", "CLI16", "--url",
                                       server.http_url, "--api-key", key)
            assert code == 0 and "Rejected" in out, err
            await asked_to_boot(c)
            assert (await c.ok("BootNotification", BOOT16))["status"] == "Rejected"
            await all_refused(c, V16_MESSAGES[:1])
        finally:
            await c.close()
        # Without a key it says what is missing, and changes nothing.
        code, _, err = await cli(server.config, "charger", "accept", "CLI16", "--url",
                                 server.http_url)
        assert code == 2 and "API key" in err
        assert await server.terminate() == 0
    finally:
        if server.proc is not None and server.proc.returncode is None:
            await server.kill()
