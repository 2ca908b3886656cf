"""Typed helpers for what a CSMS asks a 2.0.1 station about its state: GetTransactionStatus
(E14) and GetChargingProfiles (K09), whose answer comes as ReportChargingProfiles parts that
csms.ocpp.station_reports assembles per requestId in the store."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import structlog

from csms.clock import Clock
from csms.commands import CommandResult
from csms.helper_versions import V201, version_for
from csms.ocpp.station_reports import assembled
from csms.store import Store
from csms.typed_calls import Channel, Payload

log = structlog.get_logger("csms.station_queries")

REPORT = "ReportChargingProfiles"
# The report is written by the server that holds the connection, which may be another
# process than the helper's (the CLI): so the helper reads the shared store at this pace.
REPORT_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class ProfilesReport:
    """The answer to GetChargingProfiles and, when Accepted, the profiles reported."""

    request_id: int
    status: str  # Accepted, NoProfiles, or how the command ended (failed, timeout)
    complete: bool  # every part came (NoProfiles: nothing to wait for)
    profiles: list[dict[str, Any]] = field(default_factory=list)  # evseId, source, profile


class StationQueries:
    """GetTransactionStatus and GetChargingProfiles on a Channel."""

    def __init__(self, store: Store, channel: Channel, clock: Clock) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock
        # Millisecond-based, so a CLI process and the server seldom pick the same one.
        self._request_ids = itertools.count(int(clock.now().timestamp() * 1000) % 2**30)

    async def transaction_status(self, cp_id: str,
                                 transaction_id: str | None = None) -> CommandResult:
        """GetTransactionStatus: whether messages of `transaction_id` (or of any
        transaction, when None) wait in the station's queue, and whether it is ongoing."""
        await version_for(self.channel, cp_id, "GetTransactionStatus", V201)
        payload: Payload = {} if transaction_id is None else {"transactionId": transaction_id}
        return await self.channel.send(cp_id, "GetTransactionStatus", payload)

    async def charging_profiles(self, cp_id: str, *, evse_id: int | None = None,
                                purpose: str | None = None, stack_level: int | None = None,
                                profile_ids: list[int] | None = None,
                                sources: list[str] | None = None,
                                timeout_s: float = 30.0) -> ProfilesReport:
        """GetChargingProfiles, then the ReportChargingProfiles parts it announced,
        assembled; `complete` is False when they did not all come within `timeout_s`."""
        await version_for(self.channel, cp_id, "GetChargingProfiles", V201)
        criterion: Payload = {}
        for key, value in (("chargingProfilePurpose", purpose), ("stackLevel", stack_level),
                           ("chargingProfileId", profile_ids),
                           ("chargingLimitSource", sources)):
            if value is not None:
                criterion[key] = value
        request_id = next(self._request_ids)
        payload: Payload = {"requestId": request_id, "chargingProfile": criterion}
        if evse_id is not None:
            payload["evseId"] = evse_id
        result = await self.channel.send(cp_id, "GetChargingProfiles", payload)
        if result.response is None:
            return ProfilesReport(request_id, result.status, False)
        status = str(result.response.get("status"))
        if status != "Accepted":
            return ProfilesReport(request_id, status, status == "NoProfiles")
        complete, parts = await await_report(self.store, cp_id, REPORT, request_id, timeout_s)
        return ProfilesReport(request_id, status, complete, assembled(REPORT, parts))


async def await_report(store: Store, cp_id: str, kind: str, request_id: int,
                       timeout_s: float) -> tuple[bool, list[dict[str, Any]]]:
    """The parts of the `kind` report of `request_id` once complete, or those come within
    `timeout_s` (complete False): what every helper whose answer comes in parts waits on."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                reports = await store.station_reports(cp_id, kind, request_id)
                if reports and reports[-1].complete:
                    return True, reports[-1].parts
                await asyncio.sleep(REPORT_POLL_S)
    except TimeoutError:
        reports = await store.station_reports(cp_id, kind, request_id)
        parts = reports[-1].parts if reports else []
        log.warning("report_incomplete", cp_id=cp_id, kind=kind, request_id=request_id,
                    parts=len(parts))
        return False, parts
