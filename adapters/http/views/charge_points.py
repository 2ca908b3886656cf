"""Document 002's `/v2/charge_points/`: charge points of the live CSMS (csms.inventory).

Fields OCPP reports (onlineStatus, ocppStatus, vendor, firmwareVersion, protocol) are
checked for type and otherwise ignored on writes: the charger's own word wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import ApiFail, Envelope, Page, paging, success
from adapters.http.quantities import Kw
from adapters.http.routing import ApiRouter
from csms.inventory import (
    CP_SORTS,
    CP_SORTS_DEPRECATED,
    ChargePointInfo,
    Inventory,
    InventoryError,
    parse_sort,
)
from csms.store import ApiKeyRecord
from csms.store.base import ChargePointQuery

# ISO 8601 with its offset, as the document's samples (`...+00:00`).
Iso = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]
Flag = Annotated[bool, Field(strict=True)]
Read = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Write = Annotated[ApiKeyRecord, Depends(require_scope("write"))]
STATION_STATUS = Literal["Available", "Faulted", "Unavailable"]


def inventory_of(request: Request) -> Inventory:
    """The inventory service of the running Loadstar."""
    s = service_of(request)
    return Inventory(s.store, s.planner, s.sites, s.clock)


@contextmanager
def answered() -> Iterator[None]:
    """The inventory's refusals as JSend fail answers (400, 404, 409)."""
    try:
        yield
    except InventoryError as e:
        raise ApiFail(e.status, {e.field: e.message}) from None


def utc(at: datetime | None) -> datetime | None:
    """A query time; naive means UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


class ChargePointPatch(BaseModel):
    """PATCH body: every field optional; null clears maxCapacity and networkId (config
    patterns decide again)."""

    model_config = ConfigDict(extra="ignore")

    maxCapacity: Kw | None = None
    networkId: UUID | None = None
    name: Annotated[str, Field(max_length=40)] | None = None  # deprecated: copied to customName
    customName: Annotated[str, Field(max_length=40)] | None = None
    allowAllIdTags: Flag | None = None
    firmwareVersion: Annotated[str, Field(max_length=50)] | None = None
    latitude: Annotated[float, Field(strict=True, ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(strict=True, ge=-180, le=180)] | None = None
    location: Annotated[str, Field(max_length=128)] | None = None
    modelName: str | None = None
    ocppId: str | None = None
    ocppStatus: STATION_STATUS | None = None
    ocppStatusUpdate: datetime | None = None
    onlineStatus: Literal["OFFLINE", "ONLINE"] | None = None
    onlineStatusUpdate: datetime | None = None
    orientation: Annotated[float, Field(strict=True, ge=0, le=360)] | None = None
    position: dict[str, Any] | None = None
    protocol: Annotated[str, Field(max_length=255)] | None = None
    securityProfile: Annotated[int, Field(strict=True, ge=1, le=3)] | None = None
    source: Literal["CMS", "UI"] | None = None
    vendor: str | None = None
    powerSplit: Flag | None = None
    paymentTerminalID: str | None = None
    password: str | None = None
    meterType: str | None = None
    serialNumber: str | None = None

    def values(self) -> dict[str, Any]:
        """The stored columns this body sets (only the fields it names)."""
        given = self.model_fields_set
        out: dict[str, Any] = {}
        for api, column in (("maxCapacity", "max_capacity"), ("allowAllIdTags",
                            "allow_all_id_tags"), ("latitude", "latitude"),
                            ("longitude", "longitude"), ("location", "location"),
                            ("modelName", "model_name"), ("orientation", "orientation"),
                            ("source", "source"), ("powerSplit", "power_split"),
                            ("paymentTerminalID", "payment_terminal_id"),
                            ("meterType", "meter_type"), ("serialNumber", "serial_number")):
            if api in given:
                out[column] = getattr(self, api)
        if "networkId" in given and self.networkId is None:
            out["parent_id"] = None
        if "position" in given:
            out["position"] = None if self.position is None else json.dumps(self.position)
        # `name` is deprecated and copied into customName; customName wins when both come.
        if "customName" in given:
            out["custom_name"] = self.customName
        elif "name" in given:
            out["custom_name"] = self.name
        return out


class ChargePointCreate(ChargePointPatch):
    """POST body: maxCapacity and networkId required, and a name (`customName` or `name`)."""

    maxCapacity: Kw  # type: ignore[assignment]
    networkId: UUID  # type: ignore[assignment]


class ChargePointOut(BaseModel):
    id: UUID
    created: Iso
    updated: Iso
    maxCapacity: float
    currentChargingLoad: float
    currentLimit: float | None
    name: str | None
    customName: str | None
    networkId: UUID
    ocppId: str | None
    location: str | None
    latitude: float | None
    longitude: float | None
    orientation: float | None
    position: dict[str, Any] | None
    vendor: str | None
    modelName: str | None
    serialNumber: str | None
    meterType: str | None
    firmwareVersion: str | None
    protocol: str | None
    ocppStatus: str | None
    ocppStatusUpdate: Iso | None
    onlineStatus: Literal["ONLINE", "OFFLINE"]
    onlineStatusUpdate: Iso | None
    active: bool
    current: Literal["AC", "DC", "Mix"]
    allowAllIdTags: bool | None
    powerSplit: bool | None
    paymentTerminalID: str | None
    source: str | None
    numberOfConnectors: int
    lastSessionStarted: Iso | None


def out(cp: ChargePointInfo) -> ChargePointOut:
    # An unbound charge point's internal id is its UUID: it has no ocppId yet.
    ocpp_id = None if cp.cp_id == cp.uuid else cp.cp_id
    return ChargePointOut(
        id=UUID(cp.uuid), created=cp.created, updated=cp.updated,
        maxCapacity=cp.max_capacity_kw, currentChargingLoad=cp.load_kw,
        currentLimit=cp.limit_kw, name=cp.custom_name, customName=cp.custom_name,
        networkId=cp.network, ocppId=ocpp_id, location=cp.location, latitude=cp.latitude,
        longitude=cp.longitude, orientation=cp.orientation, position=cp.position,
        vendor=cp.vendor, modelName=cp.model_name, serialNumber=cp.serial_number,
        meterType=cp.meter_type, firmwareVersion=cp.firmware, protocol=cp.protocol,
        ocppStatus=cp.ocpp_status, ocppStatusUpdate=cp.ocpp_status_at,
        onlineStatus="ONLINE" if cp.online else "OFFLINE", onlineStatusUpdate=cp.online_at,
        active=cp.active, current=cp.current,  # type: ignore[arg-type]
        allowAllIdTags=cp.allow_all_id_tags, powerSplit=cp.power_split,
        paymentTerminalID=cp.payment_terminal_id, source=cp.source,
        numberOfConnectors=cp.connectors, lastSessionStarted=cp.last_session)


router = ApiRouter(tags=["charge points"])
ERRORS = envelope.responses(400, 401, 403, 404, 500)


@router.post("/v2/charge_points/", response_model=Envelope[ChargePointOut],
             status_code=HTTPStatus.CREATED, responses=envelope.responses(400, 401, 403, 404,
                                                                          409, 500))
async def create_charge_point(request: Request, body: ChargePointCreate,
                              _: Write) -> Envelope[ChargePointOut]:
    """Add a charge point to a network (with `ocppId`, the charger of that OCPP identity)."""
    if body.customName is None and body.name is None:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {"body.customName": "Field required (or name)"})
    with answered():
        cp = await inventory_of(request).create_charge_point(body.ocppId, body.networkId,
                                                            body.values())
    return success([out(cp)])


@router.get("/v2/charge_points/", response_model=Envelope[ChargePointOut], responses=ERRORS)
async def list_charge_points(
    request: Request, page: Annotated[Page, Depends(paging)], _: Read,
    is_active: Annotated[bool | None, Query(description="with a session open")] = None,
    allow_all_id_tags: bool | None = None,
    current: Literal["AC", "DC", "Mix"] | None = None,
    custom_name: str | None = None,
    name: Annotated[str | None, Query(deprecated=True)] = None,
    network: UUID | None = None,
    online_status: Literal["ONLINE", "OFFLINE"] | None = None,
    powerSplit: bool | None = None,
    vendor: str | None = None,
    search: str | None = None,
    updated: datetime | None = None,
    sort: str | None = None,
    sort_by: Annotated[Literal[CP_SORTS_DEPRECATED] | None,  # type: ignore[valid-type]
                       Query(deprecated=True)] = None,
    order: Annotated[Literal["ascending", "descending"], Query(deprecated=True)] = "descending",
) -> Envelope[ChargePointOut]:
    """List charge points: filters, search, sort (`field:asc|desc`, default `active` desc)."""
    with answered():
        chosen = parse_sort(sort, CP_SORTS) or (
            (sort_by, order == "descending") if sort_by else ("active", True))
        query = ChargePointQuery(
            online=None if online_status is None else online_status == "ONLINE",
            vendor=vendor, custom_name=custom_name if custom_name is not None else name,
            allow_all_id_tags=allow_all_id_tags, power_split=powerSplit, current=current,
            active=is_active, search=search or None, updated_after=utc(updated),
            sort=chosen[0], descending=chosen[1], limit=page.limit, offset=page.offset)
        cps, total = await inventory_of(request).list_charge_points(query, network)
    return success([out(cp) for cp in cps], total)


@router.get("/v2/charge_points/{charge_point_uuid}", response_model=Envelope[ChargePointOut],
            responses=ERRORS)
async def get_charge_point(request: Request, charge_point_uuid: UUID,
                           _: Read) -> Envelope[ChargePointOut]:
    """One charge point."""
    with answered():
        return success([out(await inventory_of(request).get_charge_point(charge_point_uuid))])


@router.patch("/v2/charge_points/{charge_point_uuid}", response_model=Envelope[ChargePointOut],
              responses=envelope.responses(400, 401, 403, 404, 409, 500))
async def update_charge_point(request: Request, charge_point_uuid: UUID, body: ChargePointPatch,
                              _: Write) -> Envelope[ChargePointOut]:
    """Change a charge point; `networkId` moves it, `ocppId` binds it to a charger."""
    given = body.model_fields_set
    with answered():
        cp = await inventory_of(request).update_charge_point(
            charge_point_uuid, body.values(),
            network=body.networkId if "networkId" in given else None,
            bind=(body.ocppId,) if "ocppId" in given else None)
    return success([out(cp)])


@router.delete("/v2/charge_points/{charge_point_uuid}", response_model=Envelope[ChargePointOut],
               responses=ERRORS)
async def delete_charge_point(request: Request, charge_point_uuid: UUID,
                              _: Write) -> Envelope[ChargePointOut]:
    """Forget a charge point's record; returns it as it was."""
    with answered():
        cp = await inventory_of(request).delete_charge_point(charge_point_uuid)
    return success([out(cp)])
