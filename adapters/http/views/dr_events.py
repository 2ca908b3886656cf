"""Document 002 `/v2/dr_events/`: demand-response curtailments of a network. A "Load Amount"
event is a limit of kind `dr_event` that takes `value` kW off whatever limit is in force over
[start, end); "V2G" (discharging vehicles) is refused: Loadstar does not discharge."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.http.envelope import ApiFail, Envelope, Page, paging, success
from adapters.http.quantities import Kw
from adapters.http.routing import ApiRouter
from adapters.http.views.networks import (
    ERRORS,
    Reader,
    Writer,
    calling,
    limit_names,
    networks_of,
    timestamp,
    utc,
)
from csms.networks import Limit, LimitValues

MAX_EVENTS = 100
DrType = Literal["Load Amount", "V2G"]
V2G_REFUSED = "V2G is not supported: Loadstar does not discharge vehicles"


def _load_amount(value: str | None) -> str | None:
    if value == "V2G":
        raise ValueError(V2G_REFUSED)
    return value


class DrEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: DrType
    value: Kw
    start: datetime
    end: datetime

    _only_load_amount = field_validator("type")(_load_amount)


class DrEventsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    networkId: UUID
    drEvents: Annotated[list[DrEventIn], Field(min_length=1, max_length=MAX_EVENTS)]


class DrEventPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: DrType | None = None
    value: Kw | None = None
    start: datetime | None = None
    end: datetime | None = None

    _only_load_amount = field_validator("type")(_load_amount)


class DrEventOut(BaseModel):
    id: UUID
    networkId: UUID
    type: DrType = "Load Amount"
    value: float
    start: str
    end: str
    created: str | None
    updated: str | None


def dr_event_out(lim: Limit) -> DrEventOut:
    return DrEventOut(id=lim.uuid, networkId=lim.network_uuid,
                      value=lim.spec.reduction_kw or 0.0, start=timestamp(lim.start) or "",
                      end=timestamp(lim.end) or "", created=timestamp(lim.created),
                      updated=timestamp(lim.updated))


_post_name, _patch_name = limit_names("drEvents", "value")


router = ApiRouter(tags=["dr_events"])


@router.post("/v2/dr_events/", response_model=Envelope[DrEventOut], status_code=201,
             responses=ERRORS)
async def create_dr_events(body: DrEventsCreate, request: Request, _: Writer
                           ) -> Envelope[DrEventOut]:
    """Add up to 100 Load Amount events to a network (none if one is refused)."""
    items = [LimitValues(e.value, utc(e.start), utc(e.end)) for e in body.drEvents]
    made = await calling(networks_of(request).add_limits("dr_event", body.networkId, items),
                         _post_name)
    return success([dr_event_out(m) for m in made])


@router.get("/v2/dr_events/", response_model=Envelope[DrEventOut], responses=ERRORS)
async def list_dr_events(
    request: Request, _: Reader, network: UUID, page: Annotated[Page, Depends(paging)],
    start: Annotated[datetime | None, Query(description="events ending after this")] = None,
    end: Annotated[datetime | None, Query(description="events starting before this")] = None,
) -> Envelope[DrEventOut]:
    """A network's DR events (those overlapping [start, end) when given), by start, paged."""
    since = None if start is None else utc(start)
    until = None if end is None else utc(end)
    if since is not None and until is not None and until <= since:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {"end": "must be after start"})
    found = await calling(networks_of(request).list_limits("dr_event", network, since, until),
                          lambda k: k)
    return success([dr_event_out(f) for f in found[page.offset:page.offset + page.limit]],
                   len(found))


@router.get("/v2/dr_events/{id}", response_model=Envelope[DrEventOut], responses=ERRORS)
async def get_dr_event(id: UUID, request: Request, _: Reader) -> Envelope[DrEventOut]:
    found = await calling(networks_of(request).get_limit("dr_event", id), _patch_name)
    return success([dr_event_out(found)])


@router.patch("/v2/dr_events/{id}", response_model=Envelope[DrEventOut], responses=ERRORS)
async def update_dr_event(id: UUID, body: DrEventPatch, request: Request, _: Writer
                          ) -> Envelope[DrEventOut]:
    """Change an event's reduction or times; the site re-plans."""
    changed = await calling(networks_of(request).update_limit(
        "dr_event", id, body.value, None if body.start is None else utc(body.start),
        None if body.end is None else utc(body.end)), _patch_name)
    return success([dr_event_out(changed)])


@router.delete("/v2/dr_events/{id}", response_model=Envelope[DrEventOut], responses=ERRORS)
async def delete_dr_event(id: UUID, request: Request, _: Writer) -> Envelope[DrEventOut]:
    gone = await calling(networks_of(request).delete_limit("dr_event", id), _patch_name)
    return success([dr_event_out(gone)])
