"""Firmware updates (1.6 5.16 UpdateFirmware, security extension SignedUpdateFirmware, 2.0.1
L01 Secure Firmware Update) and publication (L03, L04): one record per request, moved on by
the station's status notifications."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from csms.config import Config
from csms.domain import ConnectionChanged
from csms.service import Loadstar
from csms.transfers import Retries
from tests.e2e.stations import event_kinds, sent, station

AT = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False
    config.ocpp.configure_after_boot = False  # only the calls under test reach the station
    return config


async def test_l01_firmware_status_notifications_follow_the_update_request(
        server: Loadstar, url) -> None:
    c = await station(url, "FW201", "ocpp2.0.1",
                      {"UpdateFirmware": lambda p: {"status": "Accepted"}})
    record = await server.transfers.update_firmware(
        "FW201", "https://fw.example/x2-2.1.bin", AT, retry=Retries(3, 60),
        install_at=AT, signing_certificate=CERT, signature="c2ln")
    [call] = await sent(c, "UpdateFirmware")
    assert call == {"requestId": record.request_id, "retries": 3, "retryInterval": 60,
                    "firmware": {"location": "https://fw.example/x2-2.1.bin",
                                 "retrieveDateTime": "2026-12-01T03:00:00.000Z",
                                 "installDateTime": "2026-12-01T03:00:00.000Z",
                                 "signingCertificate": CERT, "signature": "c2ln"}}
    assert record.answer_status == "Accepted" and record.status == "Accepted" and record.open
    # Another request's notification moves nothing of this one.
    await c.ok("FirmwareStatusNotification", {"status": "Downloading",
                                              "requestId": record.request_id + 1000})
    for status in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"):
        await c.ok("FirmwareStatusNotification", {"status": status,
                                                  "requestId": record.request_id})
    done = await server.store.get_transfer(record.id)
    assert done is not None and done.status == "Installed" and not done.open
    assert [h["status"] for h in done.history] == [
        "requested", "Accepted", "Downloading", "Downloaded", "SignatureVerified",
        "Installing", "Installed"]
    # The notifications are still kept as charger events.
    assert (await event_kinds(server, "FW201")).count("FirmwareStatusNotification") == 6
    await c.close()


async def test_l01_a_rejected_update_is_closed_with_the_station_answer(
        server: Loadstar, url) -> None:
    c = await station(url, "FWREJ", "ocpp2.0.1",
                      {"UpdateFirmware": lambda p: {"status": "InvalidCertificate"}})
    record = await server.transfers.update_firmware("FWREJ", "https://fw.example/a.bin", AT,
                                                    signing_certificate=CERT, signature="c2ln")
    assert record.answer_status == "InvalidCertificate" and not record.open
    assert record.status == "InvalidCertificate"
    await c.close()


async def test_5_16_update_firmware_16_notifications_follow_the_latest_open_update(
        server: Loadstar, url) -> None:
    c = await station(url, "FW16", "ocpp1.6", {"UpdateFirmware": lambda p: {}})
    older = await server.transfers.update_firmware("FW16", "ftp://fw.example/old.bin", AT)
    newer = await server.transfers.update_firmware("FW16", "ftp://fw.example/new.bin", AT,
                                                   retry=Retries(2, 30))
    calls = await sent(c, "UpdateFirmware")
    assert calls[1] == {"location": "ftp://fw.example/new.bin",
                        "retrieveDate": "2026-12-01T03:00:00.000Z", "retries": 2,
                        "retryInterval": 30}
    assert newer.request_id is None and newer.answer_status == "Accepted"
    for status in ("Downloading", "Downloaded", "Installing", "Installed"):
        await c.ok("FirmwareStatusNotification", {"status": status})
    # Idle (what a station says when triggered with nothing under way) names no request.
    await c.ok("FirmwareStatusNotification", {"status": "Idle"})
    moved = await server.store.get_transfer(newer.id)
    assert moved is not None and moved.status == "Installed" and not moved.open
    untouched = await server.store.get_transfer(older.id)
    assert untouched is not None and untouched.status == "Accepted" and untouched.open
    await c.close()


async def test_signed_update_firmware_16_security_extension_follows_its_request_id(
        server: Loadstar, url) -> None:
    c = await station(url, "FWS16", "ocpp1.6",
                      {"SignedUpdateFirmware": lambda p: {"status": "Accepted"}})
    record = await server.transfers.update_firmware("FWS16", "https://fw.example/s.bin", AT,
                                                    signing_certificate=CERT, signature="c2ln")
    [call] = await sent(c, "SignedUpdateFirmware")
    assert call["requestId"] == record.request_id and record.action == "SignedUpdateFirmware"
    assert call["firmware"]["signingCertificate"] == CERT
    await c.ok("SignedFirmwareStatusNotification", {"status": "Downloaded",
                                                    "requestId": record.request_id})
    await c.ok("SignedFirmwareStatusNotification", {"status": "InvalidSignature",
                                                    "requestId": record.request_id})
    done = await server.store.get_transfer(record.id)
    assert done is not None and done.status == "InvalidSignature" and not done.open
    assert "SignedFirmwareStatusNotification" in await event_kinds(server, "FWS16")
    await c.close()


async def test_l03_publish_firmware_status_follows_the_request_and_l04_unpublishes(
        server: Loadstar, url) -> None:
    checksum = "0123456789abcdef0123456789abcdef"
    c = await station(url, "LC201", "ocpp2.0.1", {
        "PublishFirmware": lambda p: {"status": "Accepted"},
        "UnpublishFirmware": lambda p: {"status": "Unpublished"}})
    record = await server.transfers.publish_firmware("LC201", "https://fw.example/p.bin",
                                                     checksum, retry=Retries(1, 10))
    [call] = await sent(c, "PublishFirmware")
    assert call == {"location": "https://fw.example/p.bin", "checksum": checksum,
                    "requestId": record.request_id, "retries": 1, "retryInterval": 10}
    await c.ok("PublishFirmwareStatusNotification", {"status": "Downloading",
                                                     "requestId": record.request_id})
    await c.ok("PublishFirmwareStatusNotification", {
        "status": "Published", "requestId": record.request_id,
        "location": ["http://lc.local/p.bin"]})
    done = await server.store.get_transfer(record.id)
    assert done is not None and done.family == "publish" and done.status == "Published"
    assert not done.open
    unpublished = await server.transfers.unpublish_firmware("LC201", checksum)
    assert unpublished.response == {"status": "Unpublished"}
    assert await sent(c, "UnpublishFirmware") == [{"checksum": checksum}]
    await c.close()


async def test_l01_an_offline_station_gets_a_failed_update_record(server: Loadstar,
                                                                  url) -> None:
    c = await station(url, "FWOFF", "ocpp2.0.1", {})
    gone = asyncio.Event()
    server.bus.listen(lambda e: gone.set() if isinstance(e, ConnectionChanged)
                      and e.cp_id == "FWOFF" and not e.online else None)
    await c.close()
    await asyncio.wait_for(gone.wait(), 10)
    assert server.registry.get("FWOFF") is None
    update = await server.transfers.update_firmware("FWOFF", "https://fw.example/o.bin", AT)
    assert update.answer_status == "failed" and not update.open


async def test_l01_accepted_canceled_closes_the_update_it_replaced(server: Loadstar,
                                                                   url) -> None:
    answers = iter([{"status": "Accepted"}, {"status": "AcceptedCanceled"}])
    c = await station(url, "FWCAN", "ocpp2.0.1", {"UpdateFirmware": lambda p: next(answers)})
    first = await server.transfers.update_firmware("FWCAN", "https://fw.example/1.bin", AT)
    await c.ok("FirmwareStatusNotification", {"status": "Downloading",
                                              "requestId": first.request_id})
    second = await server.transfers.update_firmware("FWCAN", "https://fw.example/2.bin", AT)
    assert second.status == "AcceptedCanceled" and second.open
    replaced = await server.store.get_transfer(first.id)
    assert replaced is not None and replaced.status == "Canceled" and not replaced.open
    await c.close()
