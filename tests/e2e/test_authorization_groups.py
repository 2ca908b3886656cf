"""An id token's group goes back in every answer that carries its status: 1.6 parentIdTag,
2.0.1 groupIdToken (C01.FR.05: tokens of one group may stop each other's transactions)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from csms.service import Loadstar
from tests.raw_client import RawClient

NOW = "2026-12-01T10:00:00Z"


async def test_c01_authorize_and_transaction_event_answers_carry_the_group_id_token(
        server: Loadstar, url) -> None:
    await server.id_tags.create({"value": "DRIVER-1", "parent_id_tag": "FLEET-7"})
    c = await RawClient.connect(url("GRP201"), "ocpp2.0.1")
    await c.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
        "vendorName": "Acme", "model": "X2"}})
    token = {"idToken": "DRIVER-1", "type": "ISO14443"}
    info = (await c.ok("Authorize", {"idToken": token}))["idTokenInfo"]
    assert info["status"] == "Accepted"
    assert info["groupIdToken"] == {"idToken": "FLEET-7", "type": "Central"}
    started = await c.ok("TransactionEvent", {
        "eventType": "Started", "timestamp": NOW, "triggerReason": "Authorized", "seqNo": 0,
        "transactionInfo": {"transactionId": "G1"}, "evse": {"id": 1, "connectorId": 1},
        "idToken": token})
    assert started["idTokenInfo"]["groupIdToken"]["idToken"] == "FLEET-7"
    plain = (await c.ok("Authorize", {"idToken": {"idToken": "NOGROUP",
                                                   "type": "ISO14443"}}))["idTokenInfo"]
    assert "groupIdToken" not in plain
    await c.close()


async def test_a_1_6_authorize_answer_carries_the_parent_id_tag(server: Loadstar, url) -> None:
    await server.id_tags.create({"value": "DRIVER-2", "parent_id_tag": "FLEET-7"})
    c = await RawClient.connect(url("GRP16"), "ocpp1.6")
    await c.ok("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"})
    info = (await c.ok("Authorize", {"idTag": "DRIVER-2"}))["idTagInfo"]
    assert info == {"status": "Accepted", "parentIdTag": "FLEET-7"}
    await c.close()


async def test_c16_master_pass_group_is_set_on_the_station_and_its_tokens_carry_it(
        tmp_path: Path) -> None:
    from tests.conftest import make_config

    service = Loadstar(make_config(tmp_path, master_pass_group="MASTER"))
    await service.start()
    try:
        await service.id_tags.create({"value": "SUPERVISOR", "parent_id_tag": "MASTER"})
        c = await RawClient.connect(f"ws://127.0.0.1:{service.ocpp_port}/ocpp/MP201",
                                    "ocpp2.0.1")
        await c.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "vendorName": "Acme", "model": "X2"}})
        while True:
            call = await asyncio.wait_for(c.server_calls.get(), 10)
            if call[2] == "SetVariables":
                break
        assert {"component": {"name": "AuthCtrlr"}, "variable": {"name": "MasterPassGroupId"},
                "attributeValue": "MASTER"} in call[3]["setVariableData"]
        info = (await c.ok("Authorize", {"idToken": {"idToken": "SUPERVISOR",
                                                      "type": "ISO14443"}}))["idTokenInfo"]
        assert info["groupIdToken"]["idToken"] == "MASTER"
        await c.close()
    finally:
        await service.stop()


async def booted16(url, cp_id: str) -> RawClient:
    c = await RawClient.connect(url(cp_id), "ocpp1.6")
    await c.ok("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"})
    return c


async def test_a_tag_charging_elsewhere_is_answered_concurrent_tx_until_its_session_ends(
        server: Loadstar, url) -> None:
    await server.id_tags.create({"value": "CARD-1"})
    a, b = await booted16(url, "CONC-A"), await booted16(url, "CONC-B")
    start = await a.ok("StartTransaction", {"connectorId": 1, "idTag": "CARD-1",
                                            "meterStart": 0, "timestamp": NOW})
    assert start["idTagInfo"]["status"] == "Accepted"
    # The same charge point may see it again (its driver stops with it): not concurrent.
    assert (await a.ok("Authorize", {"idTag": "CARD-1"}))["idTagInfo"]["status"] == "Accepted"
    assert (await b.ok("Authorize", {"idTag": "CARD-1"}))["idTagInfo"]["status"] == \
        "ConcurrentTx"
    elsewhere = await b.ok("StartTransaction", {"connectorId": 1, "idTag": "CARD-1",
                                                "meterStart": 0, "timestamp": NOW})
    assert elsewhere["idTagInfo"]["status"] == "ConcurrentTx"
    assert isinstance(elsewhere["transactionId"], int)  # the transaction is recorded all the same
    for c, tx in ((a, start["transactionId"]), (b, elsewhere["transactionId"])):
        await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 10, "timestamp": NOW})
    assert (await b.ok("Authorize", {"idTag": "CARD-1"}))["idTagInfo"]["status"] == "Accepted"
    await a.close()
    await b.close()


async def test_a_2_0_1_token_started_on_a_second_station_is_answered_concurrent_tx(
        server: Loadstar, url) -> None:
    await server.id_tags.create({"value": "CARD-2"})
    token = {"idToken": "CARD-2", "type": "ISO14443"}
    answers = []
    for cp_id in ("CONC201-A", "CONC201-B"):
        c = await RawClient.connect(url(cp_id), "ocpp2.0.1")
        await c.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "vendorName": "Acme", "model": "X2"}})
        answers.append(await c.ok("TransactionEvent", {
            "eventType": "Started", "timestamp": NOW, "triggerReason": "Authorized",
            "seqNo": 0, "transactionInfo": {"transactionId": f"T-{cp_id}"},
            "evse": {"id": 1, "connectorId": 1}, "idToken": token}))
        await c.close()
    assert [a["idTokenInfo"]["status"] for a in answers] == ["Accepted", "ConcurrentTx"]


async def test_concurrent_transactions_may_be_allowed(tmp_path: Path) -> None:
    from tests.conftest import make_config

    service = Loadstar(make_config(tmp_path, allow_concurrent_tx=True))
    await service.start()
    try:
        await service.id_tags.create({"value": "FLEET-CARD"})
        port = service.ocpp_port
        a = await booted16(lambda cp: f"ws://127.0.0.1:{port}/ocpp/{cp}", "ALLOW-A")
        b = await booted16(lambda cp: f"ws://127.0.0.1:{port}/ocpp/{cp}", "ALLOW-B")
        await a.ok("StartTransaction", {"connectorId": 1, "idTag": "FLEET-CARD",
                                        "meterStart": 0, "timestamp": NOW})
        info = (await b.ok("Authorize", {"idTag": "FLEET-CARD"}))["idTagInfo"]
        assert info["status"] == "Accepted"
        await a.close()
        await b.close()
    finally:
        await service.stop()
