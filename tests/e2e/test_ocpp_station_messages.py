"""Station-initiated security, certificate, log, firmware, reservation and report messages of
both versions: answered as OCPP asks (never NotSupported), stored, and refused when malformed."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from csms.ocpp.framing import validate
from csms.ocpp.station_reports import assembled
from csms.service import Loadstar
from tests.raw_client import RawClient

V16, V201 = "ocpp1.6", "ocpp2.0.1"
BOOT = {
    V16: {"chargePointVendor": "V", "chargePointModel": "M"},
    V201: {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
}


async def booted(url: Any, cp_id: str, subprotocol: str) -> RawClient:
    """A raw charger of `subprotocol`, booted Accepted."""
    c = await RawClient.connect(url(cp_id), subprotocol)
    answer = await c.ok("BootNotification", BOOT[subprotocol])
    assert answer["status"] == "Accepted"
    return c


async def answered(c: RawClient, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send `action`; it must get a CALLRESULT that the response schema accepts."""
    reply = await c.call(action, payload)
    assert reply[0] == 3, reply
    version = "1.6" if c.ws.subprotocol == V16 else "2.0.1"
    validate(version, action, reply[2], response=True)
    return reply[2]


async def events(server: Loadstar, cp_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with server.store.db.execute(
            "SELECT kind, payload FROM charger_events WHERE cp_id=? ORDER BY id",
            (cp_id,)) as cur:
        return [(r[0], json.loads(r[1])) for r in await cur.fetchall()]


@pytest.mark.parametrize("subprotocol", [V16, V201])
async def test_a04_security_event_notification_is_stored(
        server: Loadstar, url: Any, subprotocol: str) -> None:
    cp_id = f"SEC{subprotocol[-3:]}"
    c = await booted(url, cp_id, subprotocol)
    event = {"type": "InvalidCentralSystemCertificate", "timestamp": "2026-11-23T10:00:00Z",
             "techInfo": "chain incomplete"}
    assert await answered(c, "SecurityEventNotification", event) == {}
    await c.close()
    assert await events(server, cp_id) == [("SecurityEventNotification", event)]


@pytest.mark.parametrize("subprotocol", [V16, V201])
async def test_n01_log_status_notification_is_stored(
        server: Loadstar, url: Any, subprotocol: str) -> None:
    cp_id = f"LOG{subprotocol[-3:]}"
    c = await booted(url, cp_id, subprotocol)
    assert await answered(c, "LogStatusNotification", {"status": "Uploading",
                                                       "requestId": 7}) == {}
    assert await answered(c, "LogStatusNotification", {"status": "Uploaded",
                                                       "requestId": 7}) == {}
    await c.close()
    assert [(k, p["status"]) for k, p in await events(server, cp_id)] == [
        ("LogStatusNotification", "Uploading"), ("LogStatusNotification", "Uploaded")]


async def test_l01_signed_firmware_status_notification_16_is_stored(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "SFW16", V16)
    payload = {"status": "InvalidSignature", "requestId": 3}
    assert await answered(c, "SignedFirmwareStatusNotification", payload) == {}
    await c.close()
    assert await events(server, "SFW16") == [("SignedFirmwareStatusNotification", payload)]


async def test_m01_get_15118_ev_certificate_fails_without_a_contract_endpoint(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "EVCERT", V201)
    request = {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
               "exiRequest": "gAEBAgME"}
    answer = await answered(c, "Get15118EVCertificate", request)
    assert answer["status"] == "Failed" and answer["exiResponse"] == ""
    await c.close()
    assert await events(server, "EVCERT") == [("Get15118EVCertificate", request)]


async def test_m06_get_certificate_status_fails_when_the_ocsp_responder_is_unreachable(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "OCSP201", V201)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    request = {"ocspRequestData": {"hashAlgorithm": "SHA256", "issuerNameHash": "aa" * 32,
                                   "issuerKeyHash": "bb" * 32, "serialNumber": "01",
                                   "responderURL": f"http://127.0.0.1:{port}/"}}
    answer = await answered(c, "GetCertificateStatus", request)
    assert answer["status"] == "Failed" and "ocspResult" not in answer
    await c.close()
    assert await events(server, "OCSP201") == [("GetCertificateStatus", request)]


async def test_l03_publish_firmware_status_notification_is_stored(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "PUB201", V201)
    payload = {"status": "Published", "location": ["http://lc.local/fw.bin"], "requestId": 4}
    assert await answered(c, "PublishFirmwareStatusNotification", payload) == {}
    await c.close()
    assert await events(server, "PUB201") == [("PublishFirmwareStatusNotification", payload)]


async def test_h04_reservation_status_update_is_stored(server: Loadstar, url: Any) -> None:
    c = await booted(url, "RSV201", V201)
    payload = {"reservationId": 12, "reservationUpdateStatus": "Expired"}
    assert await answered(c, "ReservationStatusUpdate", payload) == {}
    await c.close()
    assert await events(server, "RSV201") == [("ReservationStatusUpdate", payload)]


async def test_n09_notify_customer_information_parts_are_assembled_per_request_id(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "CUST201", V201)

    def part(request_id: int, seq: int, data: str, tbc: bool) -> dict[str, Any]:
        return {"data": data, "tbc": tbc, "seqNo": seq, "requestId": request_id,
                "generatedAt": "2026-11-23T10:00:00Z"}

    assert await answered(c, "NotifyCustomerInformation", part(5, 0, "name=Ann;", True)) == {}
    assert await answered(c, "NotifyCustomerInformation", part(6, 0, "other", False)) == {}
    # The last part overtakes the middle one; the first is sent again before and after the end.
    await answered(c, "NotifyCustomerInformation", part(5, 2, "card=42", False))
    await answered(c, "NotifyCustomerInformation", part(5, 0, "name=Ann;", True))
    [open_five] = await server.store.station_reports("CUST201", "NotifyCustomerInformation", 5)
    assert not open_five.complete
    await answered(c, "NotifyCustomerInformation", part(5, 1, "mail=a@b;", True))
    await answered(c, "NotifyCustomerInformation", part(5, 0, "name=Ann;", True))
    await c.close()
    [five] = await server.store.station_reports("CUST201", "NotifyCustomerInformation", 5)
    assert five.complete and [p["seqNo"] for p in five.parts] == [0, 1, 2]
    assert assembled(five.kind, five.parts) == "name=Ann;mail=a@b;card=42"
    [six] = await server.store.station_reports("CUST201", "NotifyCustomerInformation", 6)
    assert six.complete and assembled(six.kind, six.parts) == "other"


async def test_n09_a_report_is_complete_only_after_its_last_part(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "CUSTTBC", V201)
    await answered(c, "NotifyCustomerInformation", {
        "data": "x", "tbc": True, "seqNo": 0, "requestId": 1,
        "generatedAt": "2026-11-23T10:00:00Z"})
    await c.close()
    [report] = await server.store.station_reports("CUSTTBC", "NotifyCustomerInformation")
    assert not report.complete


async def test_o04_notify_display_messages_parts_are_assembled_per_request_id(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "DISP201", V201)

    def message(i: int) -> dict[str, Any]:
        return {"id": i, "priority": "NormalCycle",
                "message": {"format": "UTF8", "content": f"msg {i}"}}

    await answered(c, "NotifyDisplayMessages",
                   {"requestId": 9, "tbc": True, "messageInfo": [message(1), message(2)]})
    await answered(c, "NotifyDisplayMessages", {"requestId": 9, "messageInfo": [message(3)]})
    # A new report under the same requestId, after the first one ended, is a report of its own.
    await answered(c, "NotifyDisplayMessages", {"requestId": 9, "messageInfo": [message(4)]})
    await c.close()
    first, second = await server.store.station_reports("DISP201", "NotifyDisplayMessages", 9)
    assert first.complete and [m["id"] for m in assembled(first.kind, first.parts)] == [1, 2, 3]
    assert second.complete and [m["id"] for m in assembled(second.kind, second.parts)] == [4]


async def test_n02_n03_notify_monitoring_report_parts_are_assembled_per_request_id(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "MON201", V201)

    def monitored(i: int) -> dict[str, Any]:
        return {"component": {"name": "EVSE"}, "variable": {"name": f"V{i}"},
                "variableMonitoring": [{"id": i, "transaction": False, "value": 1.0,
                                        "type": "Delta", "severity": 5}]}

    generated = "2026-11-23T10:00:00Z"
    # The second part overtakes the first: the report is complete only once both came.
    await answered(c, "NotifyMonitoringReport", {"requestId": 3, "seqNo": 1, "tbc": False,
                                                 "generatedAt": generated,
                                                 "monitor": [monitored(3)]})
    [partial] = await server.store.station_reports("MON201", "NotifyMonitoringReport", 3)
    assert not partial.complete
    await answered(c, "NotifyMonitoringReport", {"requestId": 3, "seqNo": 0, "tbc": True,
                                                 "generatedAt": generated,
                                                 "monitor": [monitored(1), monitored(2)]})
    await c.close()
    [report] = await server.store.station_reports("MON201", "NotifyMonitoringReport", 3)
    items = assembled(report.kind, report.parts)
    assert report.complete and [m["variable"]["name"] for m in items] == ["V1", "V2", "V3"]


async def test_k09_report_charging_profiles_parts_are_assembled_per_request_id(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "RCP201", V201)

    def profile(i: int) -> dict[str, Any]:
        return {"id": i, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute", "chargingSchedule": [{
                    "id": i, "chargingRateUnit": "A", "startSchedule": "2026-11-23T10:00:00Z",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}]}

    await answered(c, "ReportChargingProfiles", {"requestId": 4, "tbc": True, "evseId": 1,
                                                 "chargingLimitSource": "CSO",
                                                 "chargingProfile": [profile(1)]})
    await answered(c, "ReportChargingProfiles", {"requestId": 4, "evseId": 2,
                                                 "chargingLimitSource": "EMS",
                                                 "chargingProfile": [profile(2)]})
    await c.close()
    [report] = await server.store.station_reports("RCP201", "ReportChargingProfiles", 4)
    items = assembled(report.kind, report.parts)
    assert report.complete
    assert [(i["evseId"], i["chargingLimitSource"], i["chargingProfile"]["id"])
            for i in items] == [(1, "CSO", 1), (2, "EMS", 2)]


async def test_b07_notify_report_parts_make_one_report_and_feed_the_device_model(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "REP201", V201)

    def variable(name: str) -> dict[str, Any]:
        return {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": name},
                "variableAttribute": [{"value": "true"}]}

    generated = "2026-11-23T10:00:00Z"
    await answered(c, "NotifyReport", {"requestId": 7, "seqNo": 0, "tbc": True,
                                       "generatedAt": generated,
                                       "reportData": [variable("Enabled")]})
    await answered(c, "NotifyReport", {"requestId": 7, "seqNo": 1, "generatedAt": generated,
                                       "reportData": [variable("Available")]})
    await c.close()
    [report] = await server.store.station_reports("REP201", "NotifyReport", 7)
    assert report.complete
    assert [d["variable"]["name"] for d in assembled(report.kind, report.parts)] == [
        "Enabled", "Available"]


@pytest.mark.parametrize(("subprotocol", "action", "payload", "code"), [
    (V16, "SecurityEventNotification", {"type": "X"}, "OccurenceConstraintViolation"),
    (V16, "SecurityEventNotification", {"type": "X", "timestamp": "yesterday"},
     "FormationViolation"),
    (V16, "SignCertificate", {"csr": 5}, "TypeConstraintViolation"),
    (V16, "LogStatusNotification", {"status": "Lost"}, "PropertyConstraintViolation"),
    (V16, "SignedFirmwareStatusNotification", {"requestId": 1},
     "OccurenceConstraintViolation"),
    (V201, "SignCertificate", {"csr": "x" * 5501}, "PropertyConstraintViolation"),
    (V201, "Get15118EVCertificate", {"action": "Install", "exiRequest": ""},
     "OccurrenceConstraintViolation"),
    (V201, "GetCertificateStatus", {"ocspRequestData": {}}, "OccurrenceConstraintViolation"),
    (V201, "NotifyCustomerInformation", {"data": "x", "seqNo": 0, "requestId": 1,
                                         "generatedAt": "not a time"}, "FormatViolation"),
    (V201, "NotifyDisplayMessages", {"tbc": False}, "OccurrenceConstraintViolation"),
    (V201, "PublishFirmwareStatusNotification", {"status": "Nope"},
     "PropertyConstraintViolation"),
    (V201, "ReservationStatusUpdate", {"reservationId": "12",
                                       "reservationUpdateStatus": "Expired"},
     "TypeConstraintViolation"),
    (V201, "SecurityEventNotification", {"type": "X", "timestamp": "2026-13-45T99:00:00Z"},
     "FormatViolation"),
])
async def test_malformed_station_messages_get_the_right_callerror_and_the_link_stays(
        server: Loadstar, url: Any, subprotocol: str, action: str, payload: dict[str, Any],
        code: str) -> None:
    cp_id = "BAD" + subprotocol[-3:]
    c = await booted(url, cp_id, subprotocol)
    reply = await c.call(action, payload)
    assert reply[0] == 4 and reply[2] == code, reply
    await c.ok("Heartbeat", {})
    await c.close()
    assert await events(server, cp_id) == []
    assert await server.store.station_reports(cp_id, action) == []


async def test_the_other_201_notifications_are_answered_and_kept(
        server: Loadstar, url: Any) -> None:
    """Coverage of the 2.0.1 notifications that were already recorded before issue 12."""
    c = await booted(url, "REST201", V201)
    messages = [
        ("FirmwareStatusNotification", {"status": "Downloading", "requestId": 1}),
        ("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1}),
        ("NotifyEVChargingSchedule", {"timeBase": "2026-11-23T10:00:00Z", "evseId": 1,
                                      "chargingSchedule": {
                                          "id": 1, "chargingRateUnit": "A",
                                          "chargingSchedulePeriod": [
                                              {"startPeriod": 0, "limit": 16}]}}),
        ("NotifyEvent", {"generatedAt": "2026-11-23T10:00:00Z", "seqNo": 0, "eventData": [{
            "eventId": 1, "timestamp": "2026-11-23T10:00:00Z", "trigger": "Alerting",
            "actualValue": "true", "eventNotificationType": "HardWiredNotification",
            "component": {"name": "EVSE"}, "variable": {"name": "Problem"}}]}),
        ("DataTransfer", {"vendorId": "com.acme"}),
    ]
    for action, payload in messages:
        await answered(c, action, payload)
    await c.close()
    assert await events(server, "REST201") == messages


def test_every_station_initiated_action_of_both_versions_has_a_handler() -> None:
    """No action a station may send is answered NotSupported (issue 12 point 1)."""
    from csms.ocpp import v16, v201
    from csms.ocpp.framing import _schema_files
    from csms.relay import CSMS_ACTIONS

    for version, adapter in (("1.6", v16), ("2.0.1", v201)):
        sent_by_stations = {a for (v, a, response) in _schema_files()
                            if v == version and not response
                            and (a not in CSMS_ACTIONS[version] or a == "DataTransfer")}
        assert sent_by_stations - set(adapter.HANDLERS) == set(), version


@pytest.mark.parametrize(("subprotocol", "action", "payload", "code"), [
    (V16, "SignCertificate", {}, "OccurenceConstraintViolation"),
    (V16, "SecurityEventNotification", {"type": 1, "timestamp": "2026-11-23T10:00:00Z"},
     "TypeConstraintViolation"),
    (V201, "NotifyDisplayMessages", {"requestId": "9"}, "TypeConstraintViolation"),
])
async def test_a_charger_on_relaxed_validation_still_gets_callerrors_for_what_we_read(
        tmp_path: Any, subprotocol: str, action: str, payload: dict[str, Any],
        code: str) -> None:
    from tests.conftest import make_config

    service = Loadstar(make_config(tmp_path, relaxed_validation=["LAX"]))
    await service.start()
    try:
        c = await booted(lambda cp: f"ws://127.0.0.1:{service.ocpp_port}/ocpp/{cp}", "LAX",
                         subprotocol)
        reply = await c.call(action, payload)
        assert reply[0] == 4 and reply[2] == code, reply
        await c.ok("Heartbeat", {})
        await c.close()
    finally:
        await service.stop()


@pytest.mark.parametrize("subprotocol", [V16, V201])
async def test_an_oversize_frame_is_answered_with_its_escaped_message_id(
        tmp_path: Any, subprotocol: str) -> None:
    """Found by the frame fuzzer once these handlers changed what it draws: an id spelled with
    a JSON escape ("\\u001f") was answered as "-1" when the frame was too big to parse."""
    from tests.conftest import make_config

    service = Loadstar(make_config(tmp_path, max_frame_bytes=1000))
    await service.start()
    try:
        c = await RawClient.connect(f"ws://127.0.0.1:{service.ocpp_port}/ocpp/BIG",
                                    subprotocol)
        big = '[2, "\\u001fa", "Heartbeat", {"x": "' + "x" * 2000 + '"}]'
        reply = await c.send_raw(big)  # the next answer, whatever id it carries
        assert reply[0] == 4 and reply[1] == "\x1fa", reply
        await c.close()
    finally:
        await service.stop()
