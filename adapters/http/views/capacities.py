"""Document 002 `/v2/capacities/`: utility limits over time on a network, as limits of kind
`capacity` on its site or group (see `csms.networks`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, Field

from adapters.http.auth import service_of
from adapters.http.envelope import ApiFail, Envelope, success
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

DEFAULT_WINDOW = timedelta(hours=12)
MAX_INTERVALS = 100


class CapacityInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["utilityLimit"] = "utilityLimit"
    maxCapacity: Kw
    start: datetime
    end: datetime


class CapacitiesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    networkId: UUID
    maxCapacityIntervals: Annotated[list[CapacityInterval],
                                    Field(min_length=1, max_length=MAX_INTERVALS)]


class CapacityPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["utilityLimit"] | None = None
    maxCapacity: Kw | None = None
    start: datetime | None = None
    end: datetime | None = None


class CapacityOut(BaseModel):
    id: UUID
    networkId: UUID
    type: Literal["utilityLimit"] = "utilityLimit"
    maxCapacity: float
    start: str
    end: str
    created: str | None
    updated: str | None


def capacity_out(lim: Limit) -> CapacityOut:
    return CapacityOut(id=lim.uuid, networkId=lim.network_uuid,
                       maxCapacity=lim.spec.power_kw or 0.0, start=timestamp(lim.start) or "",
                       end=timestamp(lim.end) or "", created=timestamp(lim.created),
                       updated=timestamp(lim.updated))


_post_name, _patch_name = limit_names("maxCapacityIntervals", "maxCapacity")


router = ApiRouter(tags=["capacities"])


@router.post("/v2/capacities/", response_model=Envelope[CapacityOut], status_code=201,
             responses=ERRORS)
async def create_capacities(body: CapacitiesCreate, request: Request, _: Writer
                            ) -> Envelope[CapacityOut]:
    """Add up to 100 capacity intervals to a network (none if one is refused)."""
    items = [LimitValues(i.maxCapacity, utc(i.start), utc(i.end))
             for i in body.maxCapacityIntervals]
    made = await calling(networks_of(request).add_limits("capacity", body.networkId, items),
                         _post_name)
    return success([capacity_out(m) for m in made])


@router.get("/v2/capacities/", response_model=Envelope[CapacityOut], responses=ERRORS)
async def list_capacities(
    request: Request, _: Reader, network: UUID,
    start: Annotated[datetime | None, Query(description="default: now (UTC)")] = None,
    end: Annotated[datetime | None, Query(description="default: start + 12 h")] = None,
) -> Envelope[CapacityOut]:
    """A network's capacity intervals overlapping [start, end)."""
    now = service_of(request).clock.now()
    since = utc(start) if start is not None else now
    until = utc(end) if end is not None else since + DEFAULT_WINDOW
    if until <= since:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {"end": "must be after start"})
    found = await calling(networks_of(request).list_limits("capacity", network, since, until),
                          lambda k: "network" if k == "network" else k)
    return success([capacity_out(f) for f in found])


@router.get("/v2/capacities/{capacity_uuid}", response_model=Envelope[CapacityOut],
            responses=ERRORS)
async def get_capacity(capacity_uuid: UUID, request: Request, _: Reader
                       ) -> Envelope[CapacityOut]:
    found = await calling(networks_of(request).get_limit("capacity", capacity_uuid),
                          lambda _k: "capacity_uuid")
    return success([capacity_out(found)])


@router.patch("/v2/capacities/{id}", response_model=Envelope[CapacityOut], responses=ERRORS)
async def update_capacity(id: UUID, body: CapacityPatch, request: Request, _: Writer
                          ) -> Envelope[CapacityOut]:
    """Change an interval's value or times; the site re-plans."""
    changed = await calling(networks_of(request).update_limit(
        "capacity", id, body.maxCapacity, None if body.start is None else utc(body.start),
        None if body.end is None else utc(body.end)), _patch_name)
    return success([capacity_out(changed)])


@router.delete("/v2/capacities/{id}", response_model=Envelope[CapacityOut], responses=ERRORS)
async def delete_capacity(id: UUID, request: Request, _: Writer) -> Envelope[CapacityOut]:
    gone = await calling(networks_of(request).delete_limit("capacity", id), _patch_name)
    return success([capacity_out(gone)])
