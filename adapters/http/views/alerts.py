"""Seed 002 `/v2/alerts/`: what load management could not keep within limits, and chargers it
cannot limit (csms.alerts); operators acknowledge, resolve and annotate them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import ApiFail, Envelope, Page, paging, success
from adapters.http.routing import ApiRouter
from adapters.http.views.catalog_common import not_found, utc
from csms.alerts import AlertRefused, Alerts, to_api
from csms.identity import network_uuid
from csms.store import ApiKeyRecord
from csms.store.base import AlertQuery

router = ApiRouter(tags=["alerts"])
Reader = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Writer = Annotated[ApiKeyRecord, Depends(require_scope("write"))]
DEFAULT_WINDOW = timedelta(hours=24)
MAX_NOTES = 4000

Name = Literal["METER_VALUE_LIMIT_VIOLATION", "UNEXPECTED_CONNECTOR_AND_PHASE_COMBINATION",
               "CHARGER_DISCONNECTED", "INVALID_ID_TAGS", "OCPP_MESSAGE_OUT_OF_SYNC",
               "CALL_ERROR", "CHARGE_POINT_HIGH_INTERNAL_TEMPERATURE", "SUSPENDED_EVSE",
               "SUSPENDED_EV", "UNAVAILABLE", "FAULTED", "CONNECTOR_LOCK_FAILURE",
               "EV_COMMUNICATION_ERROR", "GROUND_FAILURE", "HIGH_TEMPERATURE",
               "INTERNAL_ERROR", "LOCAL_LIST_CONFLICT", "OVER_CURRENT_FAILURE", "OVER_VOLTAGE",
               "POWER_METER_FAILURE", "POWER_SWITCH_FAILURE", "READER_FAILURE",
               "RESET_FAILURE", "UNDER_VOLTAGE", "WEAK_SIGNAL", "VENDOR_ERROR_CODE",
               "INCORRECT_SETTINGS"]
Category = Literal["Charge Point", "Connector", "Vehicle", "IdTag", "Operations",
                   "Maintenance", "System Error", "Settings Error", "Hardware", "Software"]
Urgency = Literal["Very High", "High", "Medium", "Low", "Very Low"]
Status = Literal["Triggered", "Acknowledged", "Resolved", "Pending"]
Sort = Annotated[str, Field(pattern=r"^(start|end|urgency|name):(desc|asc)$")]


class Alert(BaseModel):
    id: str
    network: str | None
    charger: str | None
    connector: str | None
    name: str
    category: str
    urgency: str
    status: str
    start: str
    end: str | None
    notes: str | None
    description: str
    details: dict[str, Any]
    updated: str


class AlertPatch(BaseModel):
    """Seed 002's body: a new status and/or notes (notes replace the previous ones)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["Triggered", "Acknowledged", "Resolved"] | None = None
    notes: Annotated[str, Field(max_length=MAX_NOTES)] | None = None


def _alerts(request: Request) -> Alerts:
    return service_of(request).alerts


def _places(request: Request, network: uuid.UUID) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(site ids, group ids) a network names: a site covers its groups' and chargers' alerts."""
    for spec in service_of(request).directory().specs.values():
        if network_uuid(spec.id) == network:
            return (spec.id,), ()
        for group in spec.groups:
            if network_uuid(group.id) == network:
                return (), (group.id,)
    raise ApiFail(HTTPStatus.NOT_FOUND, {"network": f"no network {network}"})


def _window(now: datetime, start: datetime | None, end: datetime | None
            ) -> tuple[datetime, datetime]:
    """24 h: before `end`, after `start`, or up to now when neither is given."""
    since, until = utc(start), utc(end)
    if since is None and until is None:
        until = now
    if since is None:
        assert until is not None
        since = until - DEFAULT_WINDOW
    if until is None:
        until = since + DEFAULT_WINDOW
    if until < since:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {"end": "must not be before start"})
    return since, until


@router.get("/v2/alerts/", response_model=Envelope[Alert],
            responses=envelope.responses(400, 401, 403, 404, 500))
async def list_alerts(
    request: Request, page: Annotated[Page, Depends(paging)], _: Reader,
    network: uuid.UUID,
    charger: uuid.UUID | None = None,
    connector: uuid.UUID | None = None,
    name: Annotated[list[Name] | None, Query()] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    urgency: Annotated[list[Urgency] | None, Query()] = None,
    status: Annotated[list[Status] | None, Query()] = None,
    sort: Annotated[list[Sort] | None, Query()] = None,
    start: Annotated[datetime | None, Query(description="default: end - 24 h")] = None,
    end: Annotated[datetime | None, Query(description="default: start + 24 h, else now")] = None,
) -> Envelope[Alert]:
    """A network's alerts overlapping the window (24 h by default), newest first."""
    service = service_of(request)
    sites, groups = _places(request, network)
    since, until = _window(service.clock.now(), start, end)
    cp_id: str | None = None
    connector_id: int | None = None
    if charger is not None:
        cp_id = await service.api_sessions.ids.charge_point(charger)
        if cp_id is None:
            return success([], 0)
    if connector is not None:
        found = await service.api_sessions.ids.connector(connector)
        if found is None or (cp_id is not None and found[0] != cp_id):
            return success([], 0)
        cp_id, connector_id = found
    query = AlertQuery(
        start=since, end=until, site_ids=sites, node_ids=groups, cp_id=cp_id,
        connector_id=connector_id, names=tuple(name or ()),
        # The document: a name filter overrides category and urgency.
        categories=() if name else tuple(category or ()),
        urgencies=() if name else tuple(urgency or ()),
        statuses=tuple(status or ()),
        sort=tuple((s.split(":")[0], s.split(":")[1]) for s in sort or ()),
        limit=page.limit, offset=page.offset)
    found_alerts, total = await _alerts(request).list(query)
    return success([Alert(**to_api(a)) for a in found_alerts], total)


@router.get("/v2/alerts/{alert_id}", response_model=Envelope[Alert],
            responses=envelope.responses(400, 401, 403, 404, 500))
async def get_alert(request: Request, alert_id: uuid.UUID, _: Reader) -> Envelope[Alert]:
    """One alert."""
    alert = await _alerts(request).get(str(alert_id))
    if alert is None:
        raise not_found("alert", alert_id)
    return success([Alert(**to_api(alert))])


@router.patch("/v2/alerts/{alert_id}", response_model=Envelope[Alert],
              responses=envelope.responses(400, 401, 403, 404, 409, 500))
async def update_alert(request: Request, alert_id: uuid.UUID, body: AlertPatch,
                       _: Writer) -> Envelope[Alert]:
    """Acknowledge or resolve an alert, or set its notes; returns it."""
    try:
        alert = await _alerts(request).change(str(alert_id), body.status, body.notes)
    except AlertRefused as e:
        raise ApiFail(HTTPStatus.CONFLICT, {f"body.{e.field}": e.message}) from e
    if alert is None:
        raise not_found("alert", alert_id)
    return success([Alert(**to_api(alert))])
