"""Log uploads (1.6 5.8 GetDiagnostics, security extension and 2.0.1 N01 GetLog): one record
per request with the file name the station gave, moved on by its status notifications."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.config import Config
from csms.service import Loadstar
from csms.transfers import Retries
from tests.e2e.stations import event_kinds, sent, station

SINCE = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False
    config.ocpp.configure_after_boot = False
    return config


async def test_5_8_get_diagnostics_keeps_the_file_name_and_follows_the_status(
        server: Loadstar, url) -> None:
    c = await station(url, "DG16", "ocpp1.6",
                      {"GetDiagnostics": lambda p: {"fileName": "diag-DG16.zip"}})
    record = await server.transfers.get_log("DG16", "ftp://logs.example/up", oldest=SINCE,
                                            latest=UNTIL, retry=Retries(2, 120))
    [call] = await sent(c, "GetDiagnostics")
    assert call == {"location": "ftp://logs.example/up", "startTime": "2026-11-30T00:00:00.000Z",
                    "stopTime": "2026-12-01T00:00:00.000Z", "retries": 2,
                    "retryInterval": 120}
    assert record.file_name == "diag-DG16.zip" and record.answer_status == "Accepted"
    await c.ok("DiagnosticsStatusNotification", {"status": "Uploading"})
    await c.ok("DiagnosticsStatusNotification", {"status": "Uploaded"})
    done = await server.store.get_transfer(record.id)
    assert done is not None and done.status == "Uploaded" and not done.open
    assert done.file_name == "diag-DG16.zip"
    assert (await event_kinds(server, "DG16")).count("DiagnosticsStatusNotification") == 2
    await c.close()


async def test_n01_log_status_notifications_follow_the_get_log_request_id(
        server: Loadstar, url) -> None:
    c = await station(url, "LOG201", "ocpp2.0.1", {
        "GetLog": lambda p: {"status": "Accepted", "filename": "security.log"}})
    first = await server.transfers.get_log("LOG201", "https://logs.example/up",
                                           log_type="SecurityLog", oldest=SINCE)
    second = await server.transfers.get_log("LOG201", "https://logs.example/up")
    calls = await sent(c, "GetLog")
    assert calls[0] == {"logType": "SecurityLog", "requestId": first.request_id,
                        "log": {"remoteLocation": "https://logs.example/up",
                                "oldestTimestamp": "2026-11-30T00:00:00.000Z"}}
    assert calls[1]["logType"] == "DiagnosticsLog"
    assert first.file_name == "security.log"
    # The older request's notifications reach it, not the newer one.
    await c.ok("LogStatusNotification", {"status": "Uploading", "requestId": first.request_id})
    await c.ok("LogStatusNotification", {"status": "UploadFailure",
                                         "requestId": first.request_id})
    failed = await server.store.get_transfer(first.id)
    assert failed is not None and failed.status == "UploadFailure" and not failed.open
    waiting = await server.store.get_transfer(second.id)
    assert waiting is not None and waiting.status == "Accepted" and waiting.open
    await c.close()


async def test_get_log_16_security_extension_follows_log_status_notification(
        server: Loadstar, url) -> None:
    c = await station(url, "SEC16", "ocpp1.6",
                      {"GetLog": lambda p: {"status": "Accepted", "filename": "sec.log"}})
    record = await server.transfers.get_log("SEC16", "https://logs.example/up",
                                            log_type="SecurityLog")
    [call] = await sent(c, "GetLog")
    assert call["requestId"] == record.request_id and call["logType"] == "SecurityLog"
    await c.ok("LogStatusNotification", {"status": "Uploaded", "requestId": record.request_id})
    done = await server.store.get_transfer(record.id)
    assert done is not None and done.status == "Uploaded" and done.file_name == "sec.log"
    await c.close()


async def test_n01_a_rejected_get_log_is_closed(server: Loadstar, url) -> None:
    c = await station(url, "LOGREJ", "ocpp2.0.1", {"GetLog": lambda p: {"status": "Rejected"}})
    record = await server.transfers.get_log("LOGREJ", "https://logs.example/up")
    assert record.status == "Rejected" and not record.open
    # A notification without a requestId finds no open request to move.
    await c.ok("LogStatusNotification", {"status": "Uploaded"})
    again = await server.store.get_transfer(record.id)
    assert again is not None and again.status == "Rejected"
    await c.close()


async def test_n01_a_get_log_the_schema_refuses_leaves_no_open_request(server: Loadstar,
                                                                       url) -> None:
    c = await station(url, "LOGBAD", "ocpp2.0.1", {})
    with pytest.raises(ValueError, match="not valid OCPP"):
        await server.transfers.get_log("LOGBAD", "https://logs.example/up", log_type="Nonsense")
    [record] = await server.store.list_transfers("LOGBAD")
    assert record.answer_status == "failed" and not record.open
    assert await sent(c, "GetLog") == []
    await c.close()


async def test_5_8_get_diagnostics_without_a_file_name_closes_the_request(server: Loadstar,
                                                                          url) -> None:
    c = await station(url, "DGNONE", "ocpp1.6", {"GetDiagnostics": lambda p: {}})
    record = await server.transfers.get_log("DGNONE", "ftp://logs.example/up")
    assert record.answer_status == "NoDiagnostics" and not record.open
    assert record.file_name is None
    await c.close()
