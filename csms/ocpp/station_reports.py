"""Station-initiated security, certificate, log and report messages of both OCPP versions.

The connection has already checked each payload against its schema (the `ocpp` package ships
the 1.6 Security White Paper schemas too); what a schema cannot say (a date-time that does not
read) is checked here. Each handler stores what the station reported before it answers. The
certificate messages are answered in `certificate_messages`.
"""

from __future__ import annotations

from typing import Any

import structlog

from csms.clock import parse_iso
from csms.ocpp.context import Handler, HandlerContext, Payload
from csms.ocpp.errors import OcppError

log = structlog.get_logger("csms.ocpp.station_reports")


def required(p: Payload, field: str, kind: type) -> Any:
    """`p[field]`, checked by hand: a charger on `relaxed_validation` skips the schema, and
    these handlers read the field (OCPP's codes for a missing or mistyped field)."""
    if field not in p:
        raise OcppError("OccurrenceConstraintViolation", f"{field} is required")
    value = p[field]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise OcppError("TypeConstraintViolation", f"{field} must be a {kind.__name__}")
    return value


def record(kind: str, answer: Payload | None = None) -> Handler:
    """A handler that stores the message as a charger event and answers `answer`."""

    async def handle(ctx: HandlerContext, p: Payload) -> Payload:
        await ctx.central.charger_event(ctx.cp_id, kind, p)
        log.info("station_report", cp_id=ctx.cp_id, kind=kind,
                 status=p.get("status") or p.get("reservationUpdateStatus"))
        return dict(answer or {})

    handle.__name__ = f"record_{kind}"
    return handle


async def security_event(ctx: HandlerContext, p: Payload) -> Payload:
    """SecurityEventNotification (2.0.1 A04, 1.6 security extension): keep it; answer {}."""
    parse_iso(required(p, "timestamp", str))
    kind = required(p, "type", str)
    await ctx.central.charger_event(ctx.cp_id, "SecurityEventNotification", p)
    log.warning("security_event", cp_id=ctx.cp_id, type=kind, tech_info=p.get("techInfo"))
    return {}


# Where each kind of report keeps its items, in the order its parts are numbered.
ITEMS = {"NotifyDisplayMessages": "messageInfo", "NotifyMonitoringReport": "monitor",
         "NotifyReport": "reportData"}


def assembled(kind: str, parts: list[dict[str, Any]]) -> Any:
    """What a report's parts say together: the customer data as one text; the charging
    profiles as one list of (evseId, chargingLimitSource, chargingProfile); the other
    reports' items as one list."""
    if kind == "NotifyCustomerInformation":
        return "".join(p.get("data", "") for p in parts)
    if kind == "ReportChargingProfiles":
        return [{"evseId": p["evseId"], "chargingLimitSource": p["chargingLimitSource"],
                 "chargingProfile": profile}
                for p in parts for profile in p.get("chargingProfile") or []]
    return [item for p in parts for item in p.get(ITEMS[kind]) or []]


async def add_report_part(ctx: HandlerContext, kind: str, p: Payload) -> None:
    """Add a part to the report of its requestId in the store (N09, O03/O04, N02/N03, K09,
    B07/B08): parts may overtake one another, and a repeated part is kept once."""
    if "generatedAt" in p:
        parse_iso(required(p, "generatedAt", str))
    request_id = required(p, "requestId", int)
    central = ctx.central
    report = await central.store.add_report_part(ctx.cp_id, kind, request_id, p, central.now())
    log.info("report_part", cp_id=ctx.cp_id, kind=kind, request_id=request_id,
             parts=len(report.parts), complete=report.complete)


def report_part(kind: str) -> Handler:
    """A report that comes in parts per requestId: keep the part; answer {}."""

    async def handle(ctx: HandlerContext, p: Payload) -> Payload:
        await add_report_part(ctx, kind, p)
        return {}

    handle.__name__ = f"report_part_{kind}"
    return handle
