"""Typed 2.0.1 helpers whose answer may come as a report in parts: display messages (O01,
O02/O03, O05), monitoring (N02-N06) and customer information (N09/N10). The parts are
assembled per requestId in the store by csms.ocpp.station_reports; the helpers wait on them
with `await_report`, as `StationQueries.charging_profiles` does."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from csms.clock import Clock
from csms.commands import CommandResult
from csms.helper_versions import V201, version_for
from csms.ocpp.station_reports import assembled
from csms.station_queries import await_report
from csms.store import Store
from csms.typed_calls import Channel, Payload

DISPLAY_REPORT = "NotifyDisplayMessages"
MONITORING_REPORT = "NotifyMonitoringReport"
CUSTOMER_REPORT = "NotifyCustomerInformation"


@dataclass(frozen=True, slots=True)
class Report:
    """The answer to a request whose data comes in parts, and the data assembled."""

    request_id: int
    status: str  # the station's status, or how the command ended (failed, timeout)
    complete: bool  # every part came (or none was to come)
    items: Any = field(default_factory=list)  # a list of items; customer data as one text


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _without_none(payload: Payload) -> Payload:
    return {k: v for k, v in payload.items() if v is not None}


class DisplayMonitoring:
    """Display messages, variable monitoring and customer information on a Channel."""

    def __init__(self, store: Store, channel: Channel, clock: Clock) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock
        # Millisecond-based, so a CLI process and the server seldom pick the same one.
        self._request_ids = itertools.count(int(clock.now().timestamp() * 1000) % 2**30 + 7)

    async def _send(self, cp_id: str, action: str, payload: Payload) -> CommandResult:
        await version_for(self.channel, cp_id, action, V201)
        return await self.channel.send(cp_id, action, payload)

    async def _report(self, cp_id: str, action: str, kind: str, payload: Payload,
                      empty: tuple[str, ...], timeout_s: float) -> Report:
        """Send `action` with a fresh requestId; when Accepted, wait for the `kind` parts.
        A status in `empty` means the station has nothing to report: complete, no items."""
        await version_for(self.channel, cp_id, action, V201)
        request_id = next(self._request_ids)
        result = await self.channel.send(cp_id, action, {"requestId": request_id, **payload})
        nothing = assembled(kind, [])
        if result.response is None:
            return Report(request_id, result.status, False, nothing)
        status = str(result.response.get("status"))
        if status != "Accepted":
            return Report(request_id, status, status in empty, nothing)
        complete, parts = await await_report(self.store, cp_id, kind, request_id, timeout_s)
        return Report(request_id, status, complete, assembled(kind, parts))

    async def set_display_message(self, cp_id: str, message_id: int, content: str, *,
                                  priority: str = "NormalCycle", message_format: str = "UTF8",
                                  language: str | None = None, state: str | None = None,
                                  start: datetime | None = None, end: datetime | None = None,
                                  transaction_id: str | None = None) -> CommandResult:
        """SetDisplayMessage (O01): show `content` as message `message_id`."""
        message: Payload = _without_none({
            "id": message_id, "priority": priority, "state": state,
            "startDateTime": _iso(start), "endDateTime": _iso(end),
            "transactionId": transaction_id,
            "message": _without_none({"format": message_format, "content": content,
                                      "language": language})})
        return await self._send(cp_id, "SetDisplayMessage", {"message": message})

    async def display_messages(self, cp_id: str, *, ids: list[int] | None = None,
                               priority: str | None = None, state: str | None = None,
                               timeout_s: float = 30.0) -> Report:
        """GetDisplayMessages (O02/O03), then the NotifyDisplayMessages parts assembled;
        Unknown (no message matches) is a complete, empty report."""
        criteria = _without_none({"id": ids or None, "priority": priority, "state": state})
        return await self._report(cp_id, "GetDisplayMessages", DISPLAY_REPORT, criteria,
                                  ("Unknown",), timeout_s)

    async def clear_display_message(self, cp_id: str, message_id: int) -> CommandResult:
        """ClearDisplayMessage (O05)."""
        return await self._send(cp_id, "ClearDisplayMessage", {"id": message_id})

    async def set_variable_monitoring(self, cp_id: str,
                                      monitors: list[Payload]) -> CommandResult:
        """SetVariableMonitoring (N04): each monitor a SetMonitoringData (value, type,
        severity, component, variable, and id to replace one)."""
        return await self._send(cp_id, "SetVariableMonitoring",
                                {"setMonitoringData": monitors})

    async def set_monitoring_level(self, cp_id: str, severity: int) -> CommandResult:
        """SetMonitoringLevel (N05): report only events of `severity` or more severe."""
        return await self._send(cp_id, "SetMonitoringLevel", {"severity": severity})

    async def set_monitoring_base(self, cp_id: str, base: str) -> CommandResult:
        """SetMonitoringBase (N03): All, FactoryDefault or HardWiredOnly."""
        return await self._send(cp_id, "SetMonitoringBase", {"monitoringBase": base})

    async def clear_variable_monitoring(self, cp_id: str, ids: list[int]) -> CommandResult:
        """ClearVariableMonitoring (N06) of the monitors `ids`."""
        return await self._send(cp_id, "ClearVariableMonitoring", {"id": ids})

    async def monitoring_report(self, cp_id: str, *, criteria: list[str] | None = None,
                                component_variables: list[Payload] | None = None,
                                timeout_s: float = 30.0) -> Report:
        """GetMonitoringReport (N02), then the NotifyMonitoringReport parts assembled;
        EmptyResultSet is a complete, empty report."""
        payload = _without_none({"monitoringCriteria": criteria or None,
                                 "componentVariable": component_variables or None})
        return await self._report(cp_id, "GetMonitoringReport", MONITORING_REPORT, payload,
                                  ("EmptyResultSet",), timeout_s)

    async def customer_information(self, cp_id: str, *, report: bool, clear: bool,
                                   id_token: Payload | None = None,
                                   customer_identifier: str | None = None,
                                   customer_certificate: Payload | None = None,
                                   timeout_s: float = 30.0) -> Report:
        """CustomerInformation (N09 report, N10 clear) of one customer; with `report` the
        NotifyCustomerInformation parts assembled as one text. Without it nothing is
        awaited: the answer's status is the outcome."""
        if not report and not clear:
            raise ValueError("CustomerInformation asks to report, to clear, or both")
        if id_token is None and customer_identifier is None and customer_certificate is None:
            raise ValueError("CustomerInformation names the customer by idToken, "
                             "customerIdentifier or customerCertificate")
        payload = _without_none({"report": report, "clear": clear, "idToken": id_token,
                                 "customerIdentifier": customer_identifier,
                                 "customerCertificate": customer_certificate})
        if report:
            return await self._report(cp_id, "CustomerInformation", CUSTOMER_REPORT, payload,
                                      (), timeout_s)
        # Only a report is followed by data: the answer to a clear alone is its outcome.
        await version_for(self.channel, cp_id, "CustomerInformation", V201)
        request_id = next(self._request_ids)
        result = await self.channel.send(cp_id, "CustomerInformation",
                                         {"requestId": request_id, **payload})
        if result.response is None:
            return Report(request_id, result.status, False, "")
        status = str(result.response.get("status"))
        return Report(request_id, status, status == "Accepted", "")
