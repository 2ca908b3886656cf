"""Bad input never breaks a charger's connection, in OCPP 1.6 and 2.0.1 alike.

Each case sends one bad frame on a fresh connection, checks the server's reply (the CALLERROR
with the offending message id and the error code as that version spells it, or no reply at
all), and then checks that a Heartbeat on the SAME connection still gets its CALLRESULT.

"No reply" is checked without waiting: the server answers frames in order, so if the bad
frame had been answered, that answer would arrive before the Heartbeat's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from csms.config import Config
from csms.service import Loadstar
from tests.conftest import make_config
from tests.raw_client import RawClient

MAX_FRAME_BYTES = 4096
VERSIONS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    # A small OCPP frame limit, far below the websocket's own (at least 1 MiB).
    return make_config(tmp_path, max_frame_bytes=MAX_FRAME_BYTES)


@pytest.fixture(params=list(VERSIONS), ids=lambda v: f"ocpp{v}")
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(url: Callable[[str], str], version: str) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(url(f"BAD-{version}"), VERSIONS[version])
    try:
        yield c
    finally:
        await c.close()


def frame(*parts: Any) -> str:
    return json.dumps(list(parts))


async def assert_heartbeat_still_answered(client: RawClient) -> None:
    uid = uuid.uuid4().hex
    reply = await client.send_raw(frame(2, uid, "Heartbeat", {}))
    assert reply[0] == 3 and reply[1] == uid, f"expected the Heartbeat's CALLRESULT: {reply}"
    assert reply[2]["currentTime"].endswith("Z")


@dataclass(frozen=True)
class Bad:
    """A bad frame, the message id its CALLERROR must carry, and its code per version."""

    text: str
    reply_id: str
    code_16: str
    code_201: str

    def code(self, version: str) -> str:
        return self.code_16 if version == "1.6" else self.code_201


ID = "bad-frame-0001"
LONG_ID = "x" * 37  # OCPP-J message ids are at most 36 characters

ANSWERED_WITH_CALLERROR: dict[str, Bad] = {
    "not JSON": Bad('[2, "oops", "Heartbeat", {', "-1",
                    "FormationViolation", "RpcFrameworkError"),
    "JSON that is not an array": Bad('{"messageTypeId": 2}', "-1",
                                     "FormationViolation", "RpcFrameworkError"),
    "an empty array": Bad("[]", "-1", "FormationViolation", "RpcFrameworkError"),
    "a bare number": Bad("2", "-1", "FormationViolation", "RpcFrameworkError"),
    "a MessageTypeId that is a string": Bad(frame("2", ID, "Heartbeat", {}), ID,
                                            "FormationViolation", "RpcFrameworkError"),
    "a CALL without payload": Bad(frame(2, ID, "Heartbeat"), ID,
                                  "FormationViolation", "RpcFrameworkError"),
    "a CALL with an extra element": Bad(frame(2, ID, "Heartbeat", {}, {}), ID,
                                        "FormationViolation", "RpcFrameworkError"),
    "a CALL whose action is not a string": Bad(frame(2, ID, 42, {}), ID,
                                               "FormationViolation", "RpcFrameworkError"),
    "a CALL whose payload is not an object": Bad(frame(2, ID, "Heartbeat", []), ID,
                                                 "FormationViolation", "FormatViolation"),
    "a CALL whose payload is a string": Bad(frame(2, ID, "Heartbeat", "{}"), ID,
                                            "FormationViolation", "FormatViolation"),
    "a message id that is too long": Bad(frame(2, LONG_ID, "Heartbeat", {}), "-1",
                                         "FormationViolation", "RpcFrameworkError"),
    "a message id that is not a string": Bad(frame(2, 12345, "Heartbeat", {}), "-1",
                                             "FormationViolation", "RpcFrameworkError"),
    "an empty message id": Bad(frame(2, "", "Heartbeat", {}), "-1",
                               "FormationViolation", "RpcFrameworkError"),
    "an unknown MessageTypeId": Bad(frame(7, ID, "Heartbeat", {}), ID,
                                    "ProtocolError", "MessageTypeNotSupported"),
    "an unknown action": Bad(frame(2, ID, "MakeCoffee", {}), ID,
                             "NotImplemented", "NotImplemented"),
    "a known action the CSMS does not handle (Reset)": Bad(
        frame(2, ID, "Reset", {"type": "Hard"}), ID, "NotSupported", "NotSupported"),
    "a known action the CSMS does not handle (SetChargingProfile)": Bad(
        frame(2, ID, "SetChargingProfile", {}), ID, "NotSupported", "NotSupported"),
    "an oversized frame": Bad(frame(2, ID, "Heartbeat", {"pad": "x" * (2 * MAX_FRAME_BYTES)}),
                              ID, "FormationViolation", "FormatViolation"),
}


@pytest.mark.parametrize("case", list(ANSWERED_WITH_CALLERROR))
async def test_a_bad_frame_gets_a_callerror_and_the_connection_keeps_working(
        client: RawClient, version: str, case: str) -> None:
    bad = ANSWERED_WITH_CALLERROR[case]
    reply = await client.send_raw(bad.text)
    assert reply[0] == 4, f"expected a CALLERROR, got {reply}"
    assert reply[1] == bad.reply_id
    assert reply[2] == bad.code(version)
    assert isinstance(reply[3], str) and len(reply[3]) <= 255
    assert isinstance(reply[4], dict)
    await assert_heartbeat_still_answered(client)


# Schema violations: one well-formed CALL per version whose payload breaks one rule.
SCHEMA_VIOLATIONS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "1.6": {
        "missing required field": ("StatusNotification",
                                   {"connectorId": 1, "errorCode": "NoError"}),
        "wrong type": ("StatusNotification",
                       {"connectorId": "one", "errorCode": "NoError", "status": "Available"}),
        "bad enum value": ("StatusNotification",
                           {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}),
        "extra property": ("Heartbeat", {"surprise": True}),
    },
    "2.0.1": {
        "missing required field": ("StatusNotification",
                                   {"timestamp": "2026-11-23T10:00:00Z", "evseId": 1,
                                    "connectorId": 1}),
        "wrong type": ("StatusNotification",
                       {"timestamp": "2026-11-23T10:00:00Z", "connectorStatus": "Available",
                        "evseId": "one", "connectorId": 1}),
        "bad enum value": ("StatusNotification",
                           {"timestamp": "2026-11-23T10:00:00Z", "connectorStatus": "Dancing",
                            "evseId": 1, "connectorId": 1}),
        "extra property": ("Heartbeat", {"surprise": True}),
    },
}

SCHEMA_CODES = {
    "missing required field": {"1.6": "OccurenceConstraintViolation",
                               "2.0.1": "OccurrenceConstraintViolation"},
    "wrong type": {"1.6": "TypeConstraintViolation", "2.0.1": "TypeConstraintViolation"},
    "bad enum value": {"1.6": "PropertyConstraintViolation",
                       "2.0.1": "PropertyConstraintViolation"},
    "extra property": {"1.6": "FormationViolation", "2.0.1": "FormatViolation"},
}


@pytest.mark.parametrize("violation", list(SCHEMA_CODES))
async def test_a_payload_that_breaks_the_schema_gets_the_versions_error_code(
        client: RawClient, version: str, violation: str) -> None:
    action, payload = SCHEMA_VIOLATIONS[version][violation]
    reply = await client.call(action, payload)
    assert reply[0] == 4, f"expected a CALLERROR, got {reply}"
    assert reply[2] == SCHEMA_CODES[violation][version], reply
    await assert_heartbeat_still_answered(client)


IGNORED: dict[str, str] = {
    "a CALLRESULT for an unknown message id": frame(3, "nobody-asked", {"status": "Accepted"}),
    "a CALLERROR for an unknown message id": frame(4, "nobody-asked", "GenericError", "no", {}),
    "a malformed CALLRESULT": frame(3, "nobody-asked"),
    "a malformed CALLERROR": frame(4, "nobody-asked"),
    "a CALLRESULT without a message id": frame(3),
    "a CALLERROR whose message id is not a string": frame(4, 12, "GenericError", "", {}),
    "an oversized CALLRESULT": frame(3, "nobody-asked", {"pad": "x" * (2 * MAX_FRAME_BYTES)}),
}


@pytest.mark.parametrize("case", list(IGNORED))
async def test_a_stray_reply_is_ignored_without_an_answer(
        client: RawClient, case: str) -> None:
    # The first reply after the stray frame must be the Heartbeat's own CALLRESULT.
    await client.ws.send(IGNORED[case])
    await assert_heartbeat_still_answered(client)


async def test_a_binary_frame_holding_a_call_is_answered_like_text(client: RawClient) -> None:
    uid = uuid.uuid4().hex
    reply = await client.send_raw(frame(2, uid, "Heartbeat", {}).encode())
    assert reply[0] == 3 and reply[1] == uid
    await assert_heartbeat_still_answered(client)


async def test_a_binary_frame_that_is_not_utf8_gets_a_callerror(
        client: RawClient, version: str) -> None:
    reply = await client.send_raw(b"\xff\xfe[2,")
    assert reply[0] == 4 and reply[1] == "-1"
    assert reply[2] == ("FormationViolation" if version == "1.6" else "RpcFrameworkError")
    await assert_heartbeat_still_answered(client)


async def test_many_bad_frames_in_a_row_leave_the_connection_usable(
        client: RawClient, version: str) -> None:
    for bad in ANSWERED_WITH_CALLERROR.values():
        reply = await client.send_raw(bad.text)
        assert reply[0] == 4 and reply[2] == bad.code(version)
    for text in IGNORED.values():
        await client.ws.send(text)
    await assert_heartbeat_still_answered(client)


NOT_A_DATE = {
    "1.6": ("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                   "status": "Available", "timestamp": "yesterday"}),
    "2.0.1": ("StatusNotification", {"timestamp": "yesterday", "connectorStatus": "Available",
                                     "evseId": 1, "connectorId": 1}),
}


async def test_a_timestamp_that_is_not_a_date_time_gets_a_callerror(
        client: RawClient, version: str, server: Loadstar) -> None:
    await server.store.register_charge_point(f"BAD-{version}")  # so the payload is read
    action, payload = NOT_A_DATE[version]
    reply = await client.call(action, payload)
    assert reply[0] == 4, f"expected a CALLERROR, got {reply}"
    format_code = "FormationViolation" if version == "1.6" else "FormatViolation"
    assert reply[2] in (format_code, "PropertyConstraintViolation")
    await assert_heartbeat_still_answered(client)


async def test_a_failing_event_listener_does_not_fail_the_chargers_message(
        server: Loadstar, client: RawClient, version: str) -> None:
    def broken(event: object) -> None:
        raise TypeError("a planner bug")

    server.bus.listen(broken)
    boot = ({"chargePointVendor": "V", "chargePointModel": "M"} if version == "1.6" else
            {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}})
    uid = uuid.uuid4().hex
    with capture_logs() as logs:
        reply = await client.send_raw(frame(2, uid, "BootNotification", boot))
    assert reply[:2] == [3, uid] and reply[2]["status"] == "Accepted", reply
    assert any(e["event"] == "listener_failed" for e in logs)
    uid = uuid.uuid4().hex
    status = ({"connectorId": 1, "errorCode": "NoError", "status": "Available"}
              if version == "1.6" else
              {"timestamp": "2026-01-01T00:00:00Z", "connectorStatus": "Available",
               "evseId": 1, "connectorId": 1})
    with capture_logs() as logs:
        reply = await client.send_raw(frame(2, uid, "StatusNotification", status))
    # Stored, so answered: the listener's fault is logged, not blamed on the charger.
    assert reply[:2] == [3, uid], reply
    assert any(e["event"] == "listener_failed" for e in logs)
    await assert_heartbeat_still_answered(client)
