"""Document 002 §3.7.17 over a real Loadstar: the OCPP message log and relaying messages to
simulated chargers (1.6 and 2.0.1) on the real OCPP port, online and queued while away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from adapters.http.app import create_app
from csms.config import Config
from csms.identity import charge_point_uuid
from csms.relay import CSMS_ACTIONS
from csms.service import Loadstar
from simulators.charger import SimCharger
from simulators.clock import SimClock
from tests.conftest import make_config
from tests.raw_client import RawClient, default_answer

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False  # only the messages under test reach the chargers
    return config


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(server)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        key = await server.api_keys.create(("write",), NOW)
        client.headers["Authorization"] = f"Bearer {key.key}"
        yield client


async def charger(server: Loadstar, cp_id: str, protocol: str = "ocpp1.6") -> SimCharger:
    sim = SimCharger(cp_id, f"ws://127.0.0.1:{server.ocpp_port}/ocpp", protocol=protocol,
                     clock=SimClock(speed=30), meter_interval_s=600)
    await sim.start()
    await sim.wait_for(lambda: sim.booted.is_set(), 10)
    await sim.wait_idle(10)  # its boot's StatusNotifications are answered
    return sim


def reset_frame(unique_id: str = "reset-1") -> str:
    return json.dumps([2, unique_id, "Reset", {"type": "Soft"}])


async def test_a_reset_is_relayed_to_a_16_charger_and_its_answer_returned(
        server: Loadstar, client: httpx.AsyncClient) -> None:
    sim = await charger(server, "CP16")
    try:
        r = await client.post("/v2/ocpp_messages/CP16", json=reset_frame())
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "success" and body["total"] == 1
        [message] = body["data"]
        assert message["response"] == [3, "reset-1", {"status": "Accepted"}]
        assert message["responseType"] == "CallResult" and message["status"] == "answered"
        assert message["body"] == [2, "reset-1", "Reset", {"type": "Soft"}]
        assert message["ocppId"] == "CP16" and message["protocol"] == "ocpp1.6"
        assert message["chargePointId"] == str(charge_point_uuid("CP16"))
        # It went through the command queue: recorded as a command with its answer.
        [command] = [c for c in await server.store.list_commands("CP16") if c.action == "Reset"]
        assert command.status == "accepted" and command.response == {"status": "Accepted"}
        again = await client.get(f"/v2/ocpp_messages/{message['id']}")
        assert again.status_code == 200 and again.json()["data"][0] == message
    finally:
        await sim.stop()


async def test_get_variables_is_relayed_to_a_201_charger(server: Loadstar,
                                                         client: httpx.AsyncClient) -> None:
    sim = await charger(server, "CP201", "ocpp2.0.1")
    try:
        frame = [2, "gv-1", "GetVariables", {"getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}]
        r = await client.post("/v2/ocpp_messages/", json={
            "chargePointId": str(charge_point_uuid("CP201")), "body": frame,
            "sendToCharger": True, "operationType": "GetVariables", "protocol": "ocpp2.0.1"})
        assert r.status_code == 200, r.text
        [message] = r.json()["data"]
        kind, unique_id, payload = message["response"]
        assert (kind, unique_id) == (3, "gv-1")
        [result] = payload["getVariableResult"]
        assert result["attributeStatus"] == "Accepted" and result["attributeValue"]
        assert message["source"] == "API" and message["sendToCharger"] is True
    finally:
        await sim.stop()


async def test_a_charger_s_callerror_is_the_answer(server: Loadstar,
                                                   client: httpx.AsyncClient) -> None:
    sim = await charger(server, "CPE")
    try:
        frame = json.dumps([2, "diag-1", "GetDiagnostics", {"location": "ftp://x/y"}])
        r = await client.post("/v2/ocpp_messages/CPE", json=frame)
        assert r.status_code == 200, r.text
        [message] = r.json()["data"]
        assert message["responseType"] == "CallError"
        assert message["response"][:3] == [4, "diag-1", "NotSupported"]
    finally:
        await sim.stop()


async def test_messages_that_cannot_be_sent_are_refused_naming_why(
        server: Loadstar, client: httpx.AsyncClient) -> None:
    sim = await charger(server, "CPV")
    try:
        bad = {
            json.dumps([2, "x", "Reset", {"type": "Bogus"}]): "not valid OCPP 1.6",
            json.dumps([2, "x", "Reset", {}]): "not valid OCPP 1.6",
            # Document 002's own sample: a charger sends StatusNotification, a CSMS does not.
            json.dumps([2, "x", "StatusNotification", {"errorCode": "NoError",
                                                       "status": "Available",
                                                       "connectorId": 2}]): "sent by a charger",
            json.dumps([2, "x", "GetVariables", {"getVariableData": []}]): "not an action",
            json.dumps([3, "x", {}]): "only a CALL",
            json.dumps([2, "x", "Reset"]): "4 elements",
            json.dumps([2, "", "Reset", {"type": "Soft"}]): "MessageId",
            "[2, not json": "not a JSON frame",
        }
        for frame, why in bad.items():
            r = await client.post("/v2/ocpp_messages/CPV", json=frame)
            assert r.status_code == 400, (frame, r.text)
            assert r.json()["status"] == "fail" and why in r.json()["data"]["body"], frame
        r = await client.post("/v2/ocpp_messages/CPV", json={"not": "a frame"})
        assert r.status_code == 400 and "body" in r.json()["data"]
        uuid_ = str(charge_point_uuid("CPV"))
        fields = {
            "operationType": {"chargePointId": uuid_, "body": [2, "x", "Reset", {"type": "Soft"}],
                              "sendToCharger": True, "operationType": "Heartbeat"},
            "protocol": {"chargePointId": uuid_, "body": [2, "x", "Reset", {"type": "Soft"}],
                         "sendToCharger": True, "protocol": "ocpp2.0.1"},
            "body.sendToCharger": {"chargePointId": uuid_, "body": [], "sendToCharger": "yes"},
            "body.chargePointId": {"chargePointId": "CPV", "body": []},
            "body.source": {"chargePointId": uuid_, "body": [], "source": "Somebody"},
        }
        for field, message in fields.items():
            r = await client.post("/v2/ocpp_messages/", json=message)
            assert r.status_code == 400 and field in r.json()["data"], (field, r.text)
        # Nothing refused reached the charger.
        assert [c.action for c in await server.store.list_commands("CPV")
                if c.action == "Reset"] == []
    finally:
        await sim.stop()


async def test_unknown_chargers_are_404_and_keys_need_write(server: Loadstar,
                                                            client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/ocpp_messages/NOBODY", json=reset_frame())
    assert r.status_code == 404 and "charger_ocpp_id" in r.json()["data"]
    r = await client.post("/v2/ocpp_messages/", json={
        "chargePointId": str(charge_point_uuid("NOBODY")), "body": [2, "x", "Reset", {}]})
    assert r.status_code == 404 and "chargePointId" in r.json()["data"]
    r = await client.get(f"/v2/ocpp_messages/{charge_point_uuid('NOBODY')}")
    assert r.status_code == 404
    read = (await server.api_keys.create(("read",), NOW)).key
    r = await client.post("/v2/ocpp_messages/NOBODY", json=reset_frame(),
                          headers={"Authorization": f"Bearer {read}"})
    assert r.status_code == 403


async def test_an_offline_charger_gets_its_queued_message_when_it_connects(
        server: Loadstar, client: httpx.AsyncClient) -> None:
    await server.store.register_charge_point("LATE")
    refused = await client.post("/v2/ocpp_messages/LATE?queue=false", json=reset_frame())
    assert refused.status_code == 409 and refused.json()["status"] == "fail"
    frame = json.dumps([2, "cfg-1", "ChangeConfiguration",
                        {"key": "HeartbeatInterval", "value": "77"}])
    r = await client.post("/v2/ocpp_messages/LATE", json=frame)
    assert r.status_code == 202, r.text
    [queued] = r.json()["data"]
    assert queued["status"] == "queued" and queued["response"] is None
    state = await client.get(f"/v2/ocpp_messages/{queued['id']}")
    assert state.json()["data"][0]["status"] == "queued"

    async def answered() -> dict:
        async with server.relay.delivered:
            while True:
                record = await server.relay.get(queued["id"])
                assert record is not None
                if record.status != "queued" and record.status != "sending":
                    return (await client.get(f"/v2/ocpp_messages/{queued['id']}")).json()
                await server.relay.delivered.wait()

    waiting = asyncio.create_task(answered())
    sim = await charger(server, "LATE")
    try:
        done = await asyncio.wait_for(waiting, 20)
        [message] = done["data"]
        assert message["status"] == "answered"
        assert message["response"] == [3, "cfg-1", {"status": "Accepted"}]
        assert sim.proto.config.get_int("HeartbeatInterval") == 77
        # After the boot was answered: our BootNotification answer precedes the CALL.
        await server.store.flush()
        frames = (await client.get("/v2/ocpp_messages/", params={
            "chargepoint": str(charge_point_uuid("LATE")), "sort": "timestamp:asc",
            "limit": 1000})).json()["data"]
        order = [(f["source"], f["messageType"], f["operationType"]) for f in frames]
        boot_answer = order.index(("AmpCMS", "CallResult", "BootNotification"))
        assert order.index(("AmpCMS", "Call", "ChangeConfiguration")) > boot_answer
    finally:
        await sim.stop()


async def test_a_queued_message_survives_a_restart(config: Config) -> None:
    first = Loadstar(config)
    await first.start()
    try:
        await first.store.register_charge_point("LATER")
        record, sending = await first.relay.submit("LATER", [
            2, "r", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "90"}])
        assert sending is None and record.status == "queued"
    finally:
        await first.stop()
    second = Loadstar(config)
    await second.start()
    try:
        async with second.relay.delivered:
            sim = await charger(second, "LATER")
            await asyncio.wait_for(second.relay.delivered.wait(), 20)
        delivered = await second.relay.get(record.uuid)
        assert delivered is not None and delivered.status == "answered"
        assert delivered.reply == [3, "r", {"status": "Accepted"}]
        assert sim.proto.config.get_int("HeartbeatInterval") == 90
        await sim.stop()
    finally:
        await second.stop()


async def test_the_message_log_filters_sorts_and_pages(server: Loadstar,
                                                       client: httpx.AsyncClient) -> None:
    a, b = await charger(server, "LOG-A"), await charger(server, "LOG-B", "ocpp2.0.1")
    try:
        assert (await client.post("/v2/ocpp_messages/LOG-A", json=reset_frame())
                ).status_code == 200
    finally:
        await a.stop()
        await b.stop()
    await server.store.flush()
    everything = (await client.get("/v2/ocpp_messages/", params={"limit": 1000})).json()
    assert everything["total"] == len(everything["data"]) > 4
    times = [m["timestamp"] for m in everything["data"]]
    assert times == sorted(times, reverse=True)  # newest first by default
    a_uuid = str(charge_point_uuid("LOG-A"))
    only_a = (await client.get("/v2/ocpp_messages/", params={"chargepoint": a_uuid})).json()
    assert only_a["total"] > 0 and {m["ocppId"] for m in only_a["data"]} == {"LOG-A"}
    both = (await client.get("/v2/ocpp_messages/", params=[
        ("chargepoint", a_uuid), ("chargepoint", str(charge_point_uuid("LOG-B")))])).json()
    assert both["total"] == everything["total"]
    # The charger's CALLRESULT to our Reset carries no action on the wire; it counts as Reset.
    resets = (await client.get("/v2/ocpp_messages/", params={
        "operationType": "Reset", "sort": "timestamp:asc"})).json()["data"]
    assert [(m["source"], m["messageType"]) for m in resets] == [
        ("AmpCMS", "Call"), ("Charger", "CallResult")]
    assert resets[1]["body"] == [3, resets[0]["uniqueId"], {"status": "Accepted"}]
    boots = (await client.get("/v2/ocpp_messages/", params=[
        ("operationType", "BootNotification"), ("messageType", "Call"),
        ("source", "Charger")])).json()
    assert boots["total"] == 2 and all(m["source"] == "Charger" for m in boots["data"])
    v201 = (await client.get("/v2/ocpp_messages/", params={"protocol": "ocpp2.0.1"})).json()
    assert v201["total"] > 0 and {m["ocppId"] for m in v201["data"]} == {"LOG-B"}
    assert {m["protocol"] for m in v201["data"]} == {"ocpp2.0.1"}
    searched = (await client.get("/v2/ocpp_messages/", params={"search": "log-b"})).json()
    assert searched["total"] == v201["total"]
    by_cp = (await client.get("/v2/ocpp_messages/", params={
        "sort": "chargepoint:asc", "limit": 1000})).json()["data"]
    assert [m["ocppId"] for m in by_cp] == sorted(m["ocppId"] for m in by_cp)
    # Pages cover the whole list once, in order.
    pages = []
    for offset in range(0, everything["total"], 3):
        page = (await client.get("/v2/ocpp_messages/", params={
            "limit": 3, "offset": offset})).json()
        assert page["total"] == everything["total"]
        pages += page["data"]
    assert pages == everything["data"]
    first = datetime.fromisoformat(times[-1])
    window = (await client.get("/v2/ocpp_messages/", params={
        "start": (first + timedelta(microseconds=1)).replace(tzinfo=None).isoformat()})).json()
    assert window["total"] == everything["total"] - times.count(times[-1])
    none = (await client.get("/v2/ocpp_messages/", params={
        "chargepoint": str(charge_point_uuid("NOBODY"))})).json()
    assert none == {"status": "success", "data": [], "total": 0}


async def test_bad_list_parameters_are_400(client: httpx.AsyncClient) -> None:
    for params, field in (({"chargepoint": "CP-1"}, "chargepoint"),
                          ({"sort": "name:asc"}, "sort"),
                          ({"messageType": "Request"}, "messageType"),
                          ({"source": "Nobody"}, "source"),
                          ({"protocol": "ocpp2.1"}, "protocol"),
                          ({"start": "yesterday"}, "start"),
                          ({"start": "2026-01-02T00:00:00", "end": "2026-01-01T00:00:00"},
                           "end"),
                          ({"limit": 0}, "limit")):
        r = await client.get("/v2/ocpp_messages/", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["status"] == "fail"
        assert any(k.startswith(field) for k in r.json()["data"]), (params, r.json())


async def test_the_log_pages_100000_frames_in_sql(server: Loadstar,
                                                     client: httpx.AsyncClient) -> None:
    # Recent frames: housekeeping prunes frames past their retention while the test runs.
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=2)
    actions = ["Heartbeat", "MeterValues", "StatusNotification", "Reset"]
    rows = []
    for i in range(100_000):
        cp = f"CP-{i % 200:03d}"
        kind = 2 if i % 2 == 0 else 3
        rows.append(((base + timedelta(seconds=i)).isoformat(), cp, "in" if kind == 2 else "out",
                     kind, f"u{i}", actions[i % 4], f'[{kind},"u{i}",{{}}]'))
    await server.store.writer.submit(lambda db: db.executemany(
        "INSERT INTO frames (ts, cp_id, direction, message_type, unique_id, action, text)"
        " VALUES (?,?,?,?,?,?,?)", rows))
    await server.store.writer.submit(lambda db: db.executemany(
        "INSERT INTO charge_points (cp_id, protocol) VALUES (?, 'ocpp1.6')",
        [(f"CP-{n:03d}",) for n in range(200)]))
    queries = [
        {},
        {"offset": 50_000},
        {"chargepoint": str(charge_point_uuid("CP-007"))},
        {"operationType": "Reset", "messageType": "Call"},
        {"source": "Charger", "start": (base + timedelta(hours=10)).isoformat(),
         "end": (base + timedelta(hours=12)).isoformat()},
        {"protocol": "ocpp1.6", "sort": "chargepoint:asc"},
        {"sort": "operationType:desc"},
        {"search": "CP-19"},
    ]
    for params in queries:
        # Answered from SQL pages (speed is measured by bench/http_load.py, not timed here).
        r = await client.get("/v2/ocpp_messages/", params=params)
        assert r.status_code == 200, (params, r.text)
        assert len(r.json()["data"]) <= min(100, r.json()["total"]), params
    r = await client.get("/v2/ocpp_messages/", params={
        "chargepoint": str(charge_point_uuid("CP-007")), "limit": 1000})
    assert r.json()["total"] == 500 and len(r.json()["data"]) == 500


def test_every_relayable_action_is_one_its_version_defines() -> None:
    from csms.ocpp.framing import is_known_action
    for version, actions in CSMS_ACTIONS.items():
        assert all(is_known_action(version, a) for a in actions), version


def silent_on_reset(action: str, payload: dict) -> dict | None:
    """A charger that answers what follows its boot, but never a Reset."""
    return None if action == "Reset" else default_answer(action, payload)


async def raw_charger(server: Loadstar, cp_id: str) -> RawClient:
    raw = await RawClient.connect(f"ws://127.0.0.1:{server.ocpp_port}/ocpp/{cp_id}",
                                  "ocpp1.6", silent_on_reset)
    await raw.ok("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    return raw


async def test_a_charger_that_does_not_answer_is_a_504(tmp_path: Path) -> None:
    config = make_config(tmp_path, call_timeout_s=0.3)
    config.load.enabled = False
    server = Loadstar(config)
    await server.start()
    raw = await raw_charger(server, "MUTE")
    try:
        transport = httpx.ASGITransport(app=create_app(server))
        key = await server.api_keys.create(("write",), NOW)
        async with httpx.AsyncClient(transport=transport, base_url="http://loadstar",
                                     headers={"Authorization": f"Bearer {key.key}"}) as client:
            r = await client.post("/v2/ocpp_messages/MUTE", json=reset_frame())
            assert r.status_code == 504
            assert r.json()["status"] == "error" and "did not answer" in r.json()["message"]
            [record] = [c for c in await server.store.list_commands("MUTE")
                        if c.action == "Reset"]
            assert record.status == "timeout"
    finally:
        await raw.close()
        await server.stop()


async def test_a_message_whose_connection_drops_before_the_answer_is_not_sent_again(
        server: Loadstar, client: httpx.AsyncClient) -> None:
    raw = await raw_charger(server, "FLAKY")
    sending = asyncio.create_task(client.post("/v2/ocpp_messages/FLAKY", json=reset_frame()))
    while (await asyncio.wait_for(raw.server_calls.get(), 10))[2] != "Reset":
        pass
    await raw.close()  # the Reset reached it; did it act? Nobody knows: no answer came
    r = await asyncio.wait_for(sending, 20)
    assert r.status_code == 502 and r.json()["status"] == "error", r.text
    [record] = [m for m in await server.store.list_commands("FLAKY") if m.action == "Reset"]
    assert record.status == "failed"
    # Reconnected and booted: the Reset is not sent a second time.
    again = await raw_charger(server, "FLAKY")
    try:
        await again.ok("Heartbeat", {})
        assert await server.store.cp_ids_with_queued_messages() == []
        await server.store.flush()
        sent = [f for f in await server.store.list_frames("FLAKY")
                if f.direction == "out" and f.action == "Reset"]
        assert len(sent) == 1
    finally:
        await again.close()


@pytest.mark.parametrize(("protocol", "frame"), [
    ("ocpp1.6", [2, "etm-1", "ExtendedTriggerMessage", {"requestedMessage": "Heartbeat"}]),
    ("ocpp2.0.1", [2, "gr-1", "GetReport", {"requestId": 5,
                                            "componentCriteria": ["Available"]}]),
])
async def test_actions_without_a_helper_reach_the_charger_through_the_relay(
        server: Loadstar, client: httpx.AsyncClient, protocol: str, frame: list) -> None:
    cp_id = f"RLY{protocol[-3:]}"
    sim = await charger(server, cp_id, protocol)
    try:
        r = await client.post(f"/v2/ocpp_messages/{cp_id}", json=json.dumps(frame))
        assert r.status_code == 200, r.text
        [message] = r.json()["data"]
        # Answered, whatever the charger made of it: a result or its CALLERROR.
        assert message["response"][:2] in ([3, frame[1]], [4, frame[1]])
        [command] = [c for c in await server.store.list_commands(cp_id)
                     if c.action == frame[2]]
        assert command.status in ("accepted", "rejected", "failed")
    finally:
        await sim.stop()
