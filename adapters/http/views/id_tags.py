"""Seed 002 `/v2/id_tags/`: the id tags chargers authorize with, and their priority."""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import ApiFail, Envelope, Page, paging, success
from adapters.http.routing import ApiRouter
from adapters.http.views.catalog_common import not_found, utc
from csms.clock import document_time as api_time
from csms.id_tags import DEFAULT_PRIORITY, MAX_VALUE_LENGTH, IdTags, IdTagTaken, UnknownVehicle
from csms.store import ApiKeyRecord
from csms.store.catalog import IdTagQuery, IdTagRecord

router = ApiRouter(tags=["id tags"])

Group = Literal["RFID", "credit card reader", "VID or MAC address"]
Status = Literal["Accepted", "Blocked", "Expired", "Invalid"]
Priority = Annotated[int, Field(ge=0, le=5, strict=True)]
Value = Annotated[str, Field(min_length=1, max_length=MAX_VALUE_LENGTH)]
Sort = Literal["customGroup:desc", "customGroup:asc", "group:desc", "group:asc",
               "priority:desc", "priority:asc", "value:desc", "value:asc",
               "vehicleName:desc", "vehicleName:asc"]
Reader = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Writer = Annotated[ApiKeyRecord, Depends(require_scope("write"))]


class IdTagPatch(BaseModel):
    """Seed 002's id tag body, every field optional; `status`, `expiryDate` and `parentIdTag`
    are Loadstar's (what Authorize answers, as OCPP's idTagInfo)."""

    model_config = ConfigDict(extra="forbid")

    value: Value | None = None
    priority: Priority | None = None
    group: Group | None = None
    vehicleId: uuid.UUID | None = None
    listVersion: Annotated[float, Field(strict=True)] | None = None
    customGroup: str | None = None
    status: Status | None = None
    expiryDate: datetime | None = None
    parentIdTag: Value | None = None


class IdTagIn(IdTagPatch):
    """Create: `value` and `group` required; `priority` defaults to 3 (null: none of its own,
    the connector's applies); `status` defaults to Accepted."""

    value: Value
    group: Group
    priority: Priority | None = DEFAULT_PRIORITY


class IdTag(BaseModel):
    id: str
    created: str | None
    updated: str | None
    value: str
    priority: int | None
    group: str | None
    vehicleId: str | None
    listVersion: float | None
    customGroup: str | None
    status: str
    expiryDate: str | None
    parentIdTag: str | None


# API name -> IdTagRecord field.
FIELDS = {"value": "value", "priority": "priority", "group": "group",
          "vehicleId": "vehicle_id", "listVersion": "list_version",
          "customGroup": "custom_group", "status": "status", "expiryDate": "expiry",
          "parentIdTag": "parent_id_tag"}
# Required on create, so never null; the other fields may be cleared with null.
NOT_NULL = ("value", "group", "status")


def _out(tag: IdTagRecord) -> IdTag:
    return IdTag(id=tag.uuid, created=api_time(tag.created_at), updated=api_time(tag.updated_at),
                 value=tag.value, priority=tag.priority, group=tag.group,
                 vehicleId=tag.vehicle_id, listVersion=tag.list_version,
                 customGroup=tag.custom_group, status=tag.status,
                 expiryDate=api_time(tag.expiry), parentIdTag=tag.parent_id_tag)


def _fields(body: IdTagPatch) -> dict[str, Any]:
    """The fields the client sent, as IdTagRecord names and values (nulls for those cleared)."""
    given = body.model_dump(include=body.model_fields_set)
    nulls = [f"body.{k}" for k in NOT_NULL if k in given and given[k] is None]
    if nulls:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {k: "may not be null" for k in nulls})
    out = {FIELDS[k]: v for k, v in given.items()}
    if "vehicle_id" in out and out["vehicle_id"] is not None:
        out["vehicle_id"] = str(out["vehicle_id"])
    if "expiry" in out:
        out["expiry"] = utc(out["expiry"])
    return out


def _tags(request: Request) -> IdTags:
    return service_of(request).id_tags


async def _write(coro: Any) -> IdTagRecord | None:
    """Await a create or update; its refusals become 409 / 400 naming the field."""
    try:
        result: IdTagRecord | None = await coro
        return result
    except IdTagTaken as e:
        raise ApiFail(HTTPStatus.CONFLICT, {"body.value": f"an id tag {e} exists"}) from e
    except UnknownVehicle as e:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {"body.vehicleId": f"no vehicle {e}"}) from e


@router.post("/v2/id_tags/", response_model=Envelope[IdTag], status_code=HTTPStatus.CREATED,
             responses=envelope.responses(400, 401, 403, 409, 500))
async def create_id_tag(request: Request, body: IdTagIn, _: Writer) -> Envelope[IdTag]:
    """Create an id tag (key: write)."""
    fields = _fields(body)
    for name, default in (("priority", DEFAULT_PRIORITY), ("status", "Accepted")):
        fields.setdefault(name, default)
    tag = await _write(_tags(request).create(fields))
    assert tag is not None
    return success([_out(tag)])


@router.get("/v2/id_tags/", response_model=Envelope[IdTag],
            responses=envelope.responses(400, 401, 403, 500))
async def list_id_tags(
    request: Request, page: Annotated[Page, Depends(paging)], _: Reader,
    value: str | None = None,
    customGroup: Annotated[list[str] | None, Query()] = None,
    priority: Annotated[list[Annotated[int, Field(ge=0, le=5)]] | None, Query()] = None,
    group: Annotated[list[Group] | None, Query()] = None,
    vehicleId: Annotated[list[uuid.UUID] | None, Query()] = None,
    search: str | None = None,
    sort: Sort | None = None,
) -> Envelope[IdTag]:
    """List id tags, filtered (repeat a key for any of several values), sorted, paged."""
    query = IdTagQuery(
        value=value, custom_groups=tuple(customGroup or ()), priorities=tuple(priority or ()),
        groups=tuple(group or ()), vehicle_ids=tuple(str(v) for v in vehicleId or ()),
        search=search or None,
        sort=None if sort is None else tuple(sort.split(":")))  # type: ignore[arg-type]
    tags, total = await _tags(request).list(query, page.limit, page.offset)
    return success([_out(t) for t in tags], total)


@router.get("/v2/id_tags/custom_groups", response_model=Envelope[str],
            responses=envelope.responses(401, 403, 500))
async def custom_groups(request: Request, _: Reader) -> Envelope[str]:
    """The distinct custom groups of the tags."""
    return success(await _tags(request).custom_groups())


@router.get("/v2/id_tags/{id}", response_model=Envelope[IdTag],
            responses=envelope.responses(400, 401, 403, 404, 500))
async def get_id_tag(request: Request, id: uuid.UUID, _: Reader) -> Envelope[IdTag]:
    """One id tag."""
    tag = await _tags(request).get(str(id))
    if tag is None:
        raise not_found("id tag", id)
    return success([_out(tag)])


@router.patch("/v2/id_tags/{id}", response_model=Envelope[IdTag],
              responses=envelope.responses(400, 401, 403, 404, 409, 500))
async def update_id_tag(request: Request, id: uuid.UUID, body: IdTagPatch,
                        _: Writer) -> Envelope[IdTag]:
    """Change the fields sent (null clears an optional one)."""
    tag = await _write(_tags(request).update(str(id), _fields(body)))
    if tag is None:
        raise not_found("id tag", id)
    return success([_out(tag)])


@router.delete("/v2/id_tags/{id}", response_model=Envelope[IdTag],
               responses=envelope.responses(400, 401, 403, 404, 500))
async def delete_id_tag(request: Request, id: uuid.UUID, _: Writer) -> Envelope[IdTag]:
    """Delete an id tag; the answer holds it as it was."""
    tag = await _tags(request).delete(str(id))
    if tag is None:
        raise not_found("id tag", id)
    return success([_out(tag)])
