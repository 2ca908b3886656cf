"""Typed helpers for file transfers: firmware updates and publications (1.6 5.16, security
extension SignedUpdateFirmware, 2.0.1 L01-L04) and log uploads (1.6 5.8 GetDiagnostics, GetLog
of the security extension and 2.0.1 N01).

Each request is a record whose status the station's notifications then move on
(csms.ocpp.transfer_status); the CALL goes out on a Channel (the server's Commands, or the
CLI's way through the HTTP relay), so it is recorded and schema-checked like any command.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog

from csms.clock import Clock, iso
from csms.commands import CommandResult
from csms.helper_versions import V16, V201, version_for
from csms.store import Store
from csms.store.transfers import FIRMWARE, LOG, PUBLISH, TransferRecord
from csms.typed_calls import Channel, Payload

log = structlog.get_logger("csms.transfers")


@dataclass(frozen=True, slots=True)
class Retries:
    """How often and how far apart a station retries a download or upload (both optional)."""

    retries: int | None = None
    interval_s: int | None = None

    def fields(self) -> Payload:
        out: Payload = {}
        if self.retries is not None:
            out["retries"] = self.retries
        if self.interval_s is not None:
            out["retryInterval"] = self.interval_s
        return out


# Ours: a 1.6 GetDiagnostics answered without a fileName (no diagnostics are available, so
# nothing will be uploaded and no notification follows).
NO_DIAGNOSTICS = "NoDiagnostics"


def answer_status(action: str, result: CommandResult) -> str:
    """The station's `status`, Accepted for an answer without one (1.6 UpdateFirmware,
    GetDiagnostics with a fileName), else how the command ended (failed, timeout)."""
    if result.response is None:
        return result.status
    if action == "GetDiagnostics" and not result.response.get("fileName"):
        return NO_DIAGNOSTICS
    status = result.response.get("status")
    return status if isinstance(status, str) else "Accepted"


class Transfers:
    """Firmware updates, firmware publications and log uploads, one record per request."""

    def __init__(self, store: Store, channel: Channel, clock: Clock) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock

    async def _request(self, cp_id: str, family: str, action: str, payload: Payload,
                       with_request_id: bool) -> TransferRecord:
        """Record the request, send it with its requestId, record the answer."""
        record = await self.store.add_transfer(cp_id, family, action, payload, with_request_id,
                                               self.clock.now())
        if record.request_id is not None:
            payload = {**payload, "requestId": record.request_id}
        try:
            result = await self.channel.send(cp_id, action, payload)
        except BaseException:
            # Refused before it went out (a payload the schema rejects, a server that would
            # not relay it) or given up: the record must not stay open for notifications.
            await asyncio.shield(self.store.answer_transfer(record.id, payload, "failed", None,
                                                            self.clock.now()))
            raise
        response = result.response or {}
        file_name = response.get("fileName") or response.get("filename")
        record = await self.store.answer_transfer(record.id, payload, answer_status(action, result),
                                                  file_name, self.clock.now())
        log.info("transfer_requested", cp_id=cp_id, action=action, transfer=record.id,
                 request_id=record.request_id, answer=record.answer_status)
        return record

    async def update_firmware(self, cp_id: str, location: str, retrieve_at: datetime, *,
                              retry: Retries = Retries(), install_at: datetime | None = None,
                              signing_certificate: str | None = None,
                              signature: str | None = None) -> TransferRecord:
        """UpdateFirmware; a 1.6 station given a certificate and signature gets the security
        extension's SignedUpdateFirmware instead (both are then required)."""
        version = await version_for(self.channel, cp_id, "UpdateFirmware")
        signed = signing_certificate is not None or signature is not None
        if version == V16 and not signed:
            payload: Payload = {"location": location, "retrieveDate": iso(retrieve_at),
                                **retry.fields()}
            return await self._request(cp_id, FIRMWARE, "UpdateFirmware", payload, False)
        firmware: Payload = {"location": location, "retrieveDateTime": iso(retrieve_at)}
        if install_at is not None:
            firmware["installDateTime"] = iso(install_at)
        if signing_certificate is not None:
            firmware["signingCertificate"] = signing_certificate
        if signature is not None:
            firmware["signature"] = signature
        action = "SignedUpdateFirmware" if version == V16 else "UpdateFirmware"
        return await self._request(cp_id, FIRMWARE, action,
                                   {"firmware": firmware, **retry.fields()}, True)

    async def publish_firmware(self, cp_id: str, location: str, checksum: str, *,
                               retry: Retries = Retries()) -> TransferRecord:
        """PublishFirmware (2.0.1 L03): a Local Controller serves the file to its stations."""
        await version_for(self.channel, cp_id, "PublishFirmware", V201)
        return await self._request(cp_id, PUBLISH, "PublishFirmware",
                                   {"location": location, "checksum": checksum,
                                    **retry.fields()}, True)

    async def unpublish_firmware(self, cp_id: str, checksum: str) -> CommandResult:
        """UnpublishFirmware (2.0.1 L04); the answer says Unpublished, NoFirmware or
        DownloadOngoing."""
        await version_for(self.channel, cp_id, "UnpublishFirmware", V201)
        return await self.channel.send(cp_id, "UnpublishFirmware", {"checksum": checksum})

    async def get_log(self, cp_id: str, location: str, *, log_type: str = "DiagnosticsLog",
                      oldest: datetime | None = None, latest: datetime | None = None,
                      retry: Retries = Retries(), get_log_on_16: bool = False
                      ) -> TransferRecord:
        """GetLog (2.0.1, 1.6 security extension) or, for a 1.6 station asked for its
        diagnostics without `get_log_on_16`, GetDiagnostics."""
        version = await version_for(self.channel, cp_id, "GetLog")
        if version == V16 and log_type == "DiagnosticsLog" and not get_log_on_16:
            payload: Payload = {"location": location, **retry.fields()}
            if oldest is not None:
                payload["startTime"] = iso(oldest)
            if latest is not None:
                payload["stopTime"] = iso(latest)
            return await self._request(cp_id, LOG, "GetDiagnostics", payload, False)
        params: Payload = {"remoteLocation": location}
        if oldest is not None:
            params["oldestTimestamp"] = iso(oldest)
        if latest is not None:
            params["latestTimestamp"] = iso(latest)
        return await self._request(cp_id, LOG, "GetLog",
                                   {"logType": log_type, "log": params, **retry.fields()},
                                   True)
