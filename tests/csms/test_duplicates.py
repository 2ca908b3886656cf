"""Retried messages are acknowledged but stored once; transaction ids never repeat."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from csms.config import Config
from csms.service import Loadstar
from tests.raw_client import RawClient


@pytest.fixture
async def charger16(url: Callable[[str], str]) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(url("DUP16"), "ocpp1.6")
    await c.ok("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"})
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def charger201(url: Callable[[str], str]) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(url("DUP201"), "ocpp2.0.1")
    await c.ok("BootNotification", {"reason": "PowerUp",
                                    "chargingStation": {"model": "Y2", "vendorName": "Acme"}})
    try:
        yield c
    finally:
        await c.close()


def start16(timestamp: str, connector: int = 1, tag: str = "TAG1") -> dict[str, Any]:
    return {"connectorId": connector, "idTag": tag, "meterStart": 1000, "timestamp": timestamp}


async def sessions_of(server: Loadstar, cp_id: str) -> list[Any]:
    return [s for s in await server.store.list_sessions() if s.cp_id == cp_id]


async def test_a_retried_1_6_start_transaction_gets_the_same_id_and_one_session(
        server: Loadstar, charger16: RawClient) -> None:
    first = await charger16.ok("StartTransaction", start16("2026-11-23T10:00:00Z"))
    retry = await charger16.ok("StartTransaction", start16("2026-11-23T10:00:00Z"))
    assert retry["transactionId"] == first["transactionId"]
    assert retry["idTagInfo"]["status"] == "Accepted"
    [session] = await sessions_of(server, "DUP16")
    assert session.ocpp_tx_id == str(first["transactionId"])


async def test_a_1_6_start_with_a_new_timestamp_is_a_new_transaction_with_a_larger_id(
        server: Loadstar, charger16: RawClient) -> None:
    first = await charger16.ok("StartTransaction", start16("2026-11-23T10:00:00Z"))
    second = await charger16.ok("StartTransaction", start16("2026-11-23T12:00:00Z"))
    assert second["transactionId"] > first["transactionId"]
    assert len(await sessions_of(server, "DUP16")) == 2


async def test_a_1_6_start_on_another_connector_at_the_same_time_is_a_new_transaction(
        server: Loadstar, charger16: RawClient) -> None:
    one = await charger16.ok("StartTransaction", start16("2026-11-23T10:00:00Z", connector=1))
    two = await charger16.ok("StartTransaction", start16("2026-11-23T10:00:00Z", connector=2))
    assert two["transactionId"] > one["transactionId"]
    assert len(await sessions_of(server, "DUP16")) == 2


def tx_event(event: str, tx: str, seq: int, ts: str, wh: float) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": event, "timestamp": ts, "seqNo": seq,
        "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic",
                          "Ended": "EVCommunicationLost"}[event],
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": ts, "sampledValue": [
            {"value": wh, "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh"}},
        ]}],
    }
    if event == "Started":
        payload["idToken"] = {"idToken": "TOK", "type": "ISO14443"}
    return payload


async def test_a_repeated_2_0_1_transaction_event_is_acknowledged_and_stored_once(
        server: Loadstar, charger201: RawClient) -> None:
    tx = str(uuid.uuid4())
    started = tx_event("Started", tx, 0, "2026-11-23T10:00:00Z", 2000)
    updated = tx_event("Updated", tx, 1, "2026-11-23T10:15:00Z", 4000)
    await charger201.ok("TransactionEvent", started)
    await charger201.ok("TransactionEvent", updated)
    stored = await server.store.count_meter_values("DUP201")
    assert stored == 2

    again = await charger201.call("TransactionEvent", updated)
    assert again[0] == 3, f"a duplicate must still be acknowledged: {again}"
    again = await charger201.call("TransactionEvent", started)
    assert again[0] == 3 and again[2]["idTokenInfo"]["status"] == "Accepted"

    assert await server.store.count_meter_values("DUP201") == stored
    [session] = await sessions_of(server, "DUP201")
    assert session.ocpp_tx_id == tx and session.meter_value_count == stored


async def test_a_2_0_1_event_with_the_next_seq_no_is_still_stored_after_a_duplicate(
        server: Loadstar, charger201: RawClient) -> None:
    tx = str(uuid.uuid4())
    await charger201.ok("TransactionEvent", tx_event("Started", tx, 0, "2026-11-23T10:00:00Z",
                                                     2000))
    await charger201.ok("TransactionEvent", tx_event("Started", tx, 0, "2026-11-23T10:00:00Z",
                                                     2000))
    await charger201.ok("TransactionEvent", tx_event("Updated", tx, 1, "2026-11-23T10:15:00Z",
                                                     4000))
    assert await server.store.count_meter_values("DUP201") == 2


async def run_one_1_6_transaction(service: Loadstar, cp_id: str, timestamp: str) -> int:
    c = await RawClient.connect(f"ws://127.0.0.1:{service.ocpp_port}/ocpp/{cp_id}", "ocpp1.6")
    try:
        await c.ok("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"})
        start = await c.ok("StartTransaction", start16(timestamp))
        await c.ok("StopTransaction", {"transactionId": start["transactionId"],
                                       "meterStop": 2000, "timestamp": timestamp})
        return int(start["transactionId"])
    finally:
        await c.close()


async def test_transaction_ids_are_unique_and_increasing_across_a_restart(
        config: Config) -> None:
    ids: list[int] = []
    for timestamps in (["2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z"],
                       ["2026-11-23T12:00:00Z", "2026-11-23T13:00:00Z"]):
        service = Loadstar(config)  # the same database file every time
        await service.start()
        try:
            for ts in timestamps:
                ids.append(await run_one_1_6_transaction(service, "RESTART", ts))
        finally:
            await service.stop()
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids

    service = Loadstar(config)
    await service.start()
    try:
        # A start retried after the restart is still recognised as the one already stored.
        retried = await run_one_1_6_transaction(service, "RESTART", "2026-11-23T10:00:00Z")
        assert retried == ids[0]
        stored = sorted(int(s.ocpp_tx_id) for s in await service.store.list_sessions())
        assert stored == ids
    finally:
        await service.stop()


async def test_two_201_transactions_with_the_same_start_time_are_both_kept(
        server: Loadstar, url: Callable[[str], str]) -> None:
    c = await RawClient.connect(url("SAME-TIME"), "ocpp2.0.1")
    try:
        await c.ok("BootNotification", {"reason": "PowerUp",
                                        "chargingStation": {"vendorName": "A", "model": "B"}})
        for tx in ("T-1", "T-2"):  # a charger whose clock is unset stamps every event alike
            await c.ok("TransactionEvent", {
                "eventType": "Started", "timestamp": "1970-01-01T00:00:00Z",
                "triggerReason": "CablePluggedIn", "seqNo": 0,
                "transactionInfo": {"transactionId": tx}, "evse": {"id": 1, "connectorId": 1}})
    finally:
        await c.close()
    sessions = await server.store.list_sessions()
    assert sorted(s.ocpp_tx_id for s in sessions if s.cp_id == "SAME-TIME") == ["T-1", "T-2"]
