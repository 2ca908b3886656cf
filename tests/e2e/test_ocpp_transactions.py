"""Transactions done right (issue 12, point 5), driven by raw chargers of both versions: a
second end keeps the first stop, 2.0.1 seqNos are followed (a reboot may number from 0 again,
an Ended with some missing asks GetTransactionStatus), and the frame log records an answer
when it went out (or that it could not)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from csms.central import TransactionStatusChecked
from csms.domain import ConnectionChanged
from csms.service import Loadstar
from tests.raw_client import RawClient, default_answer

BOOT16 = {"chargePointVendor": "Acme", "chargePointModel": "X1"}
BOOT201 = {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "X2"}}
EVSE = {"id": 1, "connectorId": 1}


def energy16(ts: str, wh: float) -> dict[str, Any]:
    return {"timestamp": ts, "sampledValue": [
        {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}


def energy201(ts: str, wh: float) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [
        {"value": wh, "measurand": "Energy.Active.Import.Register",
         "unitOfMeasure": {"unit": "Wh"}}]}]


def tx_event(event_type: str, seq_no: int, ts: str, tx: str, wh: float | None = None,
             **info: Any) -> dict[str, Any]:
    trigger = {"Started": "CablePluggedIn", "Updated": "MeterValuePeriodic",
               "Ended": "EVCommunicationLost"}[event_type]
    p: dict[str, Any] = {"eventType": event_type, "timestamp": ts, "triggerReason": trigger,
                         "seqNo": seq_no, "transactionInfo": {"transactionId": tx, **info},
                         "evse": EVSE}
    if wh is not None:
        p["meterValue"] = energy201(ts, wh)
    return p


def answer_status(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A 2.0.1 charger that has no queued messages left for the transaction asked about, and
    accepts what else it is sent (calls go one at a time: none may stay unanswered)."""
    if action == "GetTransactionStatus":
        return {"messagesInQueue": False, "ongoingIndicator": False}
    return default_answer(action, payload) or {"status": "Accepted"}


async def connect201(url, cp_id: str, answerer=default_answer) -> RawClient:
    c = await RawClient.connect(url(cp_id), "ocpp2.0.1", answerer)
    assert (await c.ok("BootNotification", BOOT201))["status"] == "Accepted"
    return c


# -- a second end keeps the first stop ----------------------------------------------------------

async def test_e07_fr_09_second_ended_keeps_the_first_stop(server: Loadstar, url) -> None:
    c = await connect201(url, "TX201A")
    await c.ok("TransactionEvent", tx_event("Started", 0, "2026-11-23T10:00:00Z", "T1", 1000))
    await c.ok("TransactionEvent", tx_event("Ended", 1, "2026-11-23T11:00:00Z", "T1", 5000,
                                            stoppedReason="EVDisconnected"))
    # A second Ended (another seqNo, later, other reason, more energy) is answered normally...
    assert await c.ok("TransactionEvent", tx_event(
        "Ended", 2, "2026-11-23T12:00:00Z", "T1", 9000, stoppedReason="Local")) == {}
    await c.close()
    # ...and changes nothing of the stop.
    s = await server.store.get_session("TX201A", "T1")
    assert s is not None and s.stopped_at is not None
    assert s.stopped_at.isoformat() == "2026-11-23T11:00:00+00:00"
    assert s.stop_reason == "EVDisconnected"
    assert (s.meter_stop_wh, s.energy_kwh) == (5000, 4.0)


async def test_e07_fr_09_second_ended_keeps_the_final_energy_the_first_had(
        server: Loadstar, url) -> None:
    """The first Ended carries no reading: its final energy is the last one before it, and a
    reading in a later Ended does not move it."""
    c = await connect201(url, "TX201B")
    await c.ok("TransactionEvent", tx_event("Started", 0, "2026-11-23T10:00:00Z", "T1", 1000))
    await c.ok("TransactionEvent", tx_event("Updated", 1, "2026-11-23T10:30:00Z", "T1", 3000))
    await c.ok("TransactionEvent", tx_event("Ended", 2, "2026-11-23T11:00:00Z", "T1",
                                            stoppedReason="EVDisconnected"))
    await c.ok("TransactionEvent", tx_event("Ended", 3, "2026-11-23T12:00:00Z", "T1", 9000,
                                            stoppedReason="Local"))
    await c.close()
    s = await server.store.get_session("TX201B", "T1")
    assert s is not None and s.stop_reason == "EVDisconnected"
    assert s.stopped_at is not None and s.stopped_at.isoformat() == "2026-11-23T11:00:00+00:00"
    assert s.energy_kwh == 2.0


async def test_ocpp16_second_stop_transaction_keeps_the_first_stop(server: Loadstar, url) -> None:
    c = await RawClient.connect(url("TX16A"), "ocpp1.6")
    await c.ok("BootNotification", BOOT16)
    start = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000,
                                            "timestamp": "2026-11-23T10:00:00Z"})
    tx = start["transactionId"]
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 5000,
                                   "timestamp": "2026-11-23T11:00:00Z", "reason": "EVDisconnected"})
    second = await c.ok("StopTransaction", {
        "transactionId": tx, "meterStop": 9000, "timestamp": "2026-11-23T12:00:00Z",
        "reason": "Local", "idTag": "TAG1",
        "transactionData": [energy16("2026-11-23T12:00:00Z", 9000)]})
    assert second["idTagInfo"]["status"] == "Accepted"
    await c.close()
    s = await server.store.get_session("TX16A", str(tx))
    assert s is not None and s.stopped_at is not None
    assert s.stopped_at.isoformat() == "2026-11-23T11:00:00+00:00"
    assert s.stop_reason == "EVDisconnected"
    assert (s.meter_stop_wh, s.energy_kwh) == (5000, 4.0)


# -- seqNo ------------------------------------------------------------------------------------

async def test_e_31_ended_with_missing_seq_nos_asks_get_transaction_status(
        server: Loadstar, url) -> None:
    """An offline Ended after seqNos 2 and 3 never came: once the Ended is answered, the CSMS
    asks GetTransactionStatus for that transaction and keeps the answer."""
    checked = server.bus.subscribe()
    c = await connect201(url, "TXSEQ", answer_status)
    await c.ok("TransactionEvent", tx_event("Started", 0, "2026-11-23T10:00:00Z", "T9", 1000))
    await c.ok("TransactionEvent", tx_event("Updated", 1, "2026-11-23T10:15:00Z", "T9", 2000))
    ended = tx_event("Ended", 4, "2026-11-23T11:00:00Z", "T9", 5000, stoppedReason="Local")
    assert await c.ok("TransactionEvent", {**ended, "offline": True}) == {}
    # (Configuration after boot and a meter reading asked after the start come first.)
    while (call := await asyncio.wait_for(c.server_calls.get(), 10))[2] != "GetTransactionStatus":
        pass
    assert call[3] == {"transactionId": "T9"}
    while not isinstance(event := await asyncio.wait_for(checked.get(), 10),
                         TransactionStatusChecked):
        pass
    assert (event.cp_id, event.ocpp_tx_id) == ("TXSEQ", "T9")
    state = await server.store.seq_state("TXSEQ", "T9")
    assert state is not None and state.missing == (2, 3) and state.last_seq_no == 4
    assert state.status_check is not None and state.status_check["messagesInQueue"] is False
    [command] = [x for x in await server.store.list_commands("TXSEQ")
                 if x.action == "GetTransactionStatus"]
    assert command.status == "accepted" and command.response == {
        "messagesInQueue": False, "ongoingIndicator": False}
    # The question went out after the answer to the Ended (frame log, oldest first).
    await server.store.flush()
    out = [(f.message_type, f.unique_id, f.action) for f in
           reversed(await server.store.list_frames("TXSEQ", limit=50)) if f.direction == "out"]
    answered = [i for i, (kind, _, action) in enumerate(out)
                if kind == 3 and action == "TransactionEvent"]
    asked = [i for i, (kind, uid, _) in enumerate(out) if kind == 2 and uid == call[1]]
    assert asked and answered[-1] < asked[0]
    await c.close()


async def test_e_31_unanswered_get_transaction_status_is_asked_again_with_the_resent_ended(
        server: Loadstar, url) -> None:
    """The charger leaves before it answers GetTransactionStatus; that is kept, and when it
    sends the Ended again (it never got our answer), the question is asked again."""
    checked = server.bus.subscribe()

    async def status_checked() -> TransactionStatusChecked:
        while not isinstance(event := await asyncio.wait_for(checked.get(), 10),
                             TransactionStatusChecked):
            pass
        return event

    def silent(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        return None if action == "GetTransactionStatus" else answer_status(action, payload)

    c = await connect201(url, "TXAGAIN", silent)
    await c.ok("TransactionEvent", tx_event("Started", 0, "2026-11-23T10:00:00Z", "T1", 1000))
    ended = tx_event("Ended", 3, "2026-11-23T11:00:00Z", "T1", 5000, stoppedReason="Local")
    await c.ok("TransactionEvent", ended)
    while (await asyncio.wait_for(c.server_calls.get(), 10))[2] != "GetTransactionStatus":
        pass
    await c.close()
    assert "error" in (await status_checked()).answer
    c = await connect201(url, "TXAGAIN", answer_status)
    await c.ok("TransactionEvent", ended)
    assert (await status_checked()).answer == {"messagesInQueue": False,
                                               "ongoingIndicator": False}
    await c.close()
    state = await server.store.seq_state("TXAGAIN", "T1")
    assert state is not None and state.missing == (1, 2)
    assert state.status_check is not None and state.status_check["messagesInQueue"] is False


async def test_e_31_ended_without_missing_seq_nos_asks_nothing(server: Loadstar, url) -> None:
    c = await connect201(url, "TXNOGAP", answer_status)
    for n, (kind, ts) in enumerate([("Started", "10:00"), ("Updated", "10:15"),
                                    ("Ended", "11:00")]):
        await c.ok("TransactionEvent", tx_event(kind, n, f"2026-11-23T{ts}:00Z", "T1", 1000 + n))
    await c.close()
    state = await server.store.seq_state("TXNOGAP", "T1")
    assert state is not None and state.missing == () and state.status_check is None
    assert not [x for x in await server.store.list_commands("TXNOGAP")
                if x.action == "GetTransactionStatus"]


async def test_e_seq_no_restarting_at_0_after_a_reboot_is_accepted(
        server: Loadstar, url) -> None:
    """The station reboots mid-transaction and numbers from 0 again: those events are stored
    (not taken for retransmissions), the transaction ends, and no seqNo counts as missing."""
    c = await connect201(url, "TXBOOT")
    await c.ok("TransactionEvent", tx_event("Started", 0, "2026-11-23T10:00:00Z", "T1", 1000))
    await c.ok("TransactionEvent", tx_event("Updated", 1, "2026-11-23T10:15:00Z", "T1", 2000))
    await c.ok("TransactionEvent", tx_event("Updated", 2, "2026-11-23T10:30:00Z", "T1", 3000))
    await c.close()
    c = await connect201(url, "TXBOOT")
    restarted = tx_event("Updated", 0, "2026-11-23T10:45:00Z", "T1", 4000)
    await c.ok("TransactionEvent", restarted)
    await c.ok("TransactionEvent", restarted)  # a retransmission: kept once
    await c.ok("TransactionEvent", tx_event("Updated", 1, "2026-11-23T10:50:00Z", "T1", 5000))
    await c.ok("TransactionEvent", tx_event("Ended", 2, "2026-11-23T11:00:00Z", "T1", 6000,
                                            stoppedReason="Local"))
    await c.close()
    s = await server.store.get_session("TXBOOT", "T1")
    assert s is not None and s.stop_reason == "Local" and s.energy_kwh == 5.0
    assert s.meter_value_count == 6
    state = await server.store.seq_state("TXBOOT", "T1")
    assert state is not None
    assert (state.epoch, state.last_seq_no, state.missing) == (1, 2, ())


async def test_e_retransmitted_transaction_event_is_stored_once(server: Loadstar, url) -> None:
    c = await connect201(url, "TXDUP")
    started = tx_event("Started", 0, "2026-11-23T10:00:00Z", "T1", 1000)
    await c.ok("TransactionEvent", started)
    await c.ok("TransactionEvent", started)
    await c.close()
    state = await server.store.seq_state("TXDUP", "T1")
    assert state is not None and (state.epoch, state.last_seq_no) == (0, 0)


# -- the frame log ----------------------------------------------------------------------------

async def _answers_logged_after_sent(server: Loadstar, url, cp_id: str, subprotocol: str,
                                     boot: dict[str, Any]) -> None:
    c = await RawClient.connect(url(cp_id), subprotocol)
    await c.ok("BootNotification", boot)
    conn = server.registry.get(cp_id)
    assert conn is not None
    order: list[tuple[str, str]] = []
    send, log_frame = conn.ws.send, server.store.log_frame

    async def sending(text: Any, *args: Any, **kwargs: Any) -> None:
        await send(text, *args, **kwargs)
        order.append(("sent", json.loads(text)[1]))

    def logging(frame: Any) -> None:
        order.append((f"logged {frame.direction}", frame.unique_id))
        log_frame(frame)

    conn.ws.send = sending  # type: ignore[method-assign]
    server.store.log_frame = logging  # type: ignore[method-assign]
    reply = await c.call("Heartbeat", {})
    await c.close()
    uid = reply[1]
    mine = [what for what, u in order if u == uid]
    assert mine == ["logged in", "sent", "logged out"]


async def test_frame_log_records_an_answer_once_sent_ocpp16(server: Loadstar, url) -> None:
    await _answers_logged_after_sent(server, url, "LOG16", "ocpp1.6", BOOT16)


async def test_frame_log_records_an_answer_once_sent_ocpp201(server: Loadstar, url) -> None:
    await _answers_logged_after_sent(server, url, "LOG201", "ocpp2.0.1", BOOT201)


async def _undelivered_answers_are_logged_so(server: Loadstar, url, cp_id: str,
                                             subprotocol: str, boot: dict[str, Any],
                                             status: dict[str, Any]) -> None:
    c = await RawClient.connect(url(cp_id), subprotocol)
    await c.ok("BootNotification", boot)
    gone = asyncio.Event()
    server.bus.listen(lambda e: gone.set() if isinstance(e, ConnectionChanged)
                      and e.cp_id == cp_id and not e.online else None)
    # Three frames and the close in one write: the answer to the first cannot go out.
    protocol = c.ws.protocol
    for n in (1, 2, 3):
        protocol.send_text(json.dumps([2, f"s{n}", "StatusNotification", status]).encode())
    protocol.send_close(1000)
    c.ws.transport.write(b"".join(protocol.data_to_send()))
    await asyncio.wait_for(gone.wait(), 10)
    await server.store.flush()
    frames = await server.store.list_frames(cp_id, limit=50)
    answers = {f"s{n}": [f.direction for f in frames
                         if f.unique_id == f"s{n}" and f.direction != "in"] for n in (1, 2, 3)}
    assert all(len(directions) == 1 for directions in answers.values()), answers
    assert answers["s1"] == ["undelivered"], answers


async def test_frame_log_marks_an_answer_the_closed_socket_refused_ocpp16(
        server: Loadstar, url) -> None:
    await _undelivered_answers_are_logged_so(
        server, url, "GONE16", "ocpp1.6", BOOT16,
        {"connectorId": 1, "errorCode": "NoError", "status": "Available"})


async def test_frame_log_marks_an_answer_the_closed_socket_refused_ocpp201(
        server: Loadstar, url) -> None:
    await _undelivered_answers_are_logged_so(
        server, url, "GONE201", "ocpp2.0.1", BOOT201,
        {"timestamp": "2026-11-23T10:00:00Z", "connectorStatus": "Available", "evseId": 1,
         "connectorId": 1})
