"""Frames built to crash a parser or overflow the store get a CALLERROR, never a dead link.

Unlike test_bad_input.py these run at the default frame limit (64 KiB), so a frame gets past
the size check and reaches the parser, the schema and the store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from csms.service import Loadstar
from tests.raw_client import RawClient

VERSIONS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
FORMAT = {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}
BOOT = {
    "1.6": {"chargePointVendor": "Acme", "chargePointModel": "X1"},
    "2.0.1": {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "X1"}},
}
HUGE = 2**63  # one past what SQLite's INTEGER holds
STORE_OVERFLOW = {
    "1.6": ("MeterValues", {"connectorId": HUGE, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}]}),
    "2.0.1": ("StatusNotification", {"timestamp": "2026-01-01T00:00:00Z",
                                     "connectorStatus": "Available", "evseId": HUGE,
                                     "connectorId": 1}),
}
BEYOND_FLOAT_OR_DATE = {
    "1.6": ("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                   "status": "Available",
                                   "timestamp": "9999-12-31T23:59:59-12:00"}),
    # (A value its multiplier makes infinite is dropped, not refused: test_samples_plausible.)
    "2.0.1": ("StatusNotification", {"timestamp": "9999-12-31T23:59:59-12:00",
                                     "connectorStatus": "Available", "evseId": 1,
                                     "connectorId": 1}),
}
START_OVERFLOW = {
    "1.6": ("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": HUGE,
                                 "timestamp": "2026-01-01T00:00:00Z"}),
    "2.0.1": ("TransactionEvent", {"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z",
                                   "triggerReason": "Authorized", "seqNo": HUGE,
                                   "transactionInfo": {"transactionId": "T1"},
                                   "evse": {"id": 1, "connectorId": 1}}),
}
ID = "hostile-0001"


@pytest.fixture(params=list(VERSIONS), ids=lambda v: f"ocpp{v}")
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(url: Callable[[str], str], version: str) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(url(f"HOSTILE-{version.replace('.', '')}"), VERSIONS[version])
    try:
        await c.ok("BootNotification", BOOT[version])
        yield c
    finally:
        await c.close()


async def heartbeat_answered(client: RawClient) -> None:
    uid = uuid.uuid4().hex
    reply = await client.send_raw(json.dumps([2, uid, "Heartbeat", {}]), reply_id=uid)
    assert reply[0] == 3, reply


def call_with(action: str, payload_text: str) -> str:
    """A CALL frame whose payload is given as raw JSON text."""
    return f'[2, "{ID}", "{action}", {payload_text}]'


HOSTILE_TEXT = {
    "a 5,000-digit integer": call_with("Heartbeat", '{"n": %s}' % ("9" * 5000)),
    "JSON nested 30,000 deep": call_with("Heartbeat", '{"n": %s}' % (
        "[" * 30_000 + "]" * 30_000)),
    "JSON nested 100,000 deep": call_with("Heartbeat", '{"n": %s}' % (
        "[" * 100_000 + "]" * 100_000)),
    "JSON nested 40 deep": call_with("DataTransfer", '{"vendorId": "v", "data": %s}' % (
        "[" * 40 + "]" * 40)),
    "NaN": call_with("Heartbeat", '{"n": NaN}'),
    "a lone surrogate": call_with("Authorize", '{"idTag": "\\ud800"}'),
}


@pytest.mark.parametrize("case", list(HOSTILE_TEXT))
async def test_a_frame_beyond_ocpp_j_limits_gets_a_format_violation_and_the_link_lives(
        client: RawClient, version: str, case: str) -> None:
    reply = await client.send_raw(HOSTILE_TEXT[case], reply_id=ID)
    assert reply[0] == 4 and reply[2] == FORMAT[version], reply
    await heartbeat_answered(client)


@pytest.mark.parametrize("calls", [STORE_OVERFLOW, START_OVERFLOW, BEYOND_FLOAT_OR_DATE],
                         ids=["status", "start", "float-or-date"])
async def test_a_schema_valid_value_beyond_what_we_can_hold_is_a_property_violation(
        client: RawClient, server: Loadstar, version: str,
        calls: dict[str, tuple[str, dict]]) -> None:
    action, payload = calls[version]
    reply = await client.call(action, payload)
    assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation", reply
    await heartbeat_answered(client)
    assert server.store.health.ok


@pytest.mark.parametrize("action", [
    "../../v201/schemas/BootNotificationRequest", "../v16/schemas/Reset", "/etc/passwd",
    "BootNotificationRequest", "Reset.json",
])
async def test_an_action_that_names_a_file_is_simply_unknown(
        client: RawClient, action: str) -> None:
    reply = await client.call(action, {})
    assert reply[0] == 4 and reply[2] == "NotImplemented", reply
    await heartbeat_answered(client)


async def test_a_lone_surrogate_in_the_message_id_costs_nobody_their_writes(
        client: RawClient, server: Loadstar, version: str) -> None:
    reply = await client.send_raw('[2, "\\ud800", "Heartbeat", {}]')
    assert reply[0] == 4 and reply[1] == "-1" and reply[2] == FORMAT[version], reply
    await server.store.flush()  # the frame log holds the hostile frame: it must still write
    await heartbeat_answered(client)
    assert server.store.health.ok
    assert any("\\ud800" in f.text for f in await server.store.list_frames(limit=20))
