"""Document 002's `/v2/connectors/`: connectors of the live CSMS and their ratings, which the
allocator uses (csms.inventory).

ocppStatus and currentChargingLoad come from the charger: on writes they are checked for type
and otherwise ignored.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.http import envelope
from adapters.http.envelope import Envelope, Page, paging, success
from adapters.http.quantities import Kw
from adapters.http.routing import ApiRouter
from adapters.http.views.charge_points import Iso, Read, Write, answered, inventory_of
from csms.inventory import CONNECTOR_SORTS, ConnectorInfo, parse_sort
from csms.store.base import ConnectorQuery

CurrentType = Literal["DC", "AC_phase3_LN", "AC_phase3_LL", "AC_phase1"]
OcppStatus = Literal["Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV",
                     "Finishing", "Reserved", "Faulted", "Unavailable"]
OcpiStatus = Literal["AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER",
                     "PLANNED", "REMOVED", "RESERVED", "UNKNOWN"]
PlugType = Literal["CCS1", "CCS2", "CHAdeMO", "GB/T", "Type 1", "Type 2", "Tesla"]
Priority = Annotated[int, Field(strict=True, ge=0, le=5)]
ConnectorNumber = Annotated[int, Field(strict=True, gt=0, le=2147483647)]
Volts = Annotated[float, Field(strict=True, ge=120)]


class ConnectorPatch(BaseModel):
    """PATCH body: every field optional (null clears a rating: the config decides again)."""

    model_config = ConfigDict(extra="ignore")

    chargePointId: UUID | None = None
    connectorId: ConnectorNumber | None = None
    currentType: CurrentType | None = None
    voltage: Volts | None = None
    maxCapacity: Kw | None = None
    name: str | None = None
    plugType: PlugType | None = None
    plugPowerLevel: Literal["Level 1", "Level 2", "DCFC"] | None = None
    ocppStatus: OcppStatus | None = None
    ocppStatusUpdate: Any = None
    ocpiStatus: OcpiStatus | None = None
    priority: Priority | None = None
    currentChargingLoad: Annotated[float, Field(strict=True)] | None = None
    maxAmperage: Annotated[float, Field(strict=True, gt=0)] | None = None
    powerFactor: Annotated[float, Field(strict=True, gt=0, le=1)] | None = None
    phases: Annotated[list[Annotated[int, Field(strict=True, ge=1, le=3)]],
                      Field(min_length=1, max_length=3)] | None = None

    @field_validator("phases")
    @classmethod
    def _distinct(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("phases repeat")
        return value

    def values(self) -> dict[str, Any]:
        """The stored columns this body sets (only the fields it names)."""
        given = self.model_fields_set
        return {column: getattr(self, api) for api, column in (
            ("currentType", "current_type"), ("voltage", "voltage"),
            ("maxCapacity", "max_capacity"), ("name", "name"), ("plugType", "plug_type"),
            ("plugPowerLevel", "plug_power_level"), ("ocpiStatus", "ocpi_status"),
            ("priority", "priority"), ("maxAmperage", "max_amperage"),
            ("powerFactor", "power_factor"), ("phases", "phases")) if api in given}


class ConnectorCreate(ConnectorPatch):
    """POST body: chargePointId, connectorId, currentType, voltage, maxCapacity required."""

    chargePointId: UUID  # type: ignore[assignment]
    connectorId: ConnectorNumber  # type: ignore[assignment]
    currentType: CurrentType  # type: ignore[assignment]
    voltage: Volts  # type: ignore[assignment]
    maxCapacity: Kw  # type: ignore[assignment]


class ConnectorOut(BaseModel):
    id: UUID
    created: Iso
    updated: Iso
    chargePointId: UUID
    connectorId: int
    name: str | None
    currentType: str
    voltage: float
    powerFactor: float
    maxCapacity: float
    maxAmperage: float | None
    priority: int
    phases: list[int]
    plugType: str | None
    plugPowerLevel: str | None
    ocpiStatus: str | None
    ocppStatus: str | None
    ocppStatusUpdate: Iso | None
    currentChargingLoad: float | None
    active: bool
    currentLimit: float | None


def out(c: ConnectorInfo) -> ConnectorOut:
    return ConnectorOut(
        id=UUID(c.uuid), created=c.created, updated=c.updated,
        chargePointId=UUID(c.charge_point), connectorId=c.connector_id, name=c.name,
        currentType=c.current_type, voltage=c.voltage, powerFactor=c.power_factor,
        maxCapacity=c.max_capacity_kw, maxAmperage=c.max_amperage, priority=c.priority,
        phases=list(c.phases), plugType=c.plug_type, plugPowerLevel=c.plug_power_level,
        ocpiStatus=c.ocpi_status, ocppStatus=c.ocpp_status, ocppStatusUpdate=c.ocpp_status_at,
        currentChargingLoad=c.load_kw, active=c.active, currentLimit=c.limit_kw)


router = ApiRouter(tags=["connectors"])
ERRORS = envelope.responses(400, 401, 403, 404, 500)


@router.post("/v2/connectors/", response_model=Envelope[ConnectorOut],
             status_code=HTTPStatus.CREATED,
             responses=envelope.responses(400, 401, 403, 404, 409, 500))
async def create_connector(request: Request, body: ConnectorCreate,
                           _: Write) -> Envelope[ConnectorOut]:
    """Add a connector to a charge point (or describe one its charger reported)."""
    with answered():
        c = await inventory_of(request).create_connector(body.chargePointId, body.connectorId,
                                                         body.values())
    return success([out(c)])


@router.get("/v2/connectors/", response_model=Envelope[ConnectorOut], responses=ERRORS)
async def list_connectors(
    request: Request, page: Annotated[Page, Depends(paging)], _: Read,
    network: UUID | None = None,
    chargepoint: Annotated[list[UUID], Query()] = [],  # noqa: B006 (FastAPI copies it)
    connectorId: Annotated[list[int], Query()] = [],  # noqa: B006
    vehicle: UUID | None = None,
    ocppStatus: Annotated[list[OcppStatus], Query()] = [],  # noqa: B006
    priority: Annotated[list[Annotated[int, Field(ge=0, le=5)]], Query()] = [],  # noqa: B006
    currentType: Literal["AC", "DC"] | None = None,
    plugType: Annotated[list[PlugType], Query()] = [],  # noqa: B006
    search: str | None = None,
    sort: str | None = None,
) -> Envelope[ConnectorOut]:
    """List connectors: filters (repeat a key for several values), search, sort."""
    if vehicle is not None:
        # No session in Loadstar is linked to a vehicle yet: no connector serves one.
        return success([], 0)
    with answered():
        key, descending = parse_sort(sort, CONNECTOR_SORTS) or ("active", True)
        query = ConnectorQuery(
            cp_uuids=tuple(str(u) for u in chargepoint), connector_ids=tuple(connectorId),
            ocpp_status=tuple(ocppStatus), priorities=tuple(priority), current=currentType,
            plug_types=tuple(plugType), search=search or None, sort=key,
            descending=descending, limit=page.limit, offset=page.offset)
        found, total = await inventory_of(request).list_connectors(query, network)
    return success([out(c) for c in found], total)


@router.get("/v2/connectors/{id}", response_model=Envelope[ConnectorOut], responses=ERRORS)
async def get_connector(request: Request, id: UUID, _: Read) -> Envelope[ConnectorOut]:
    """One connector."""
    with answered():
        return success([out(await inventory_of(request).get_connector(id))])


@router.patch("/v2/connectors/{id}", response_model=Envelope[ConnectorOut], responses=ERRORS)
async def update_connector(request: Request, id: UUID, body: ConnectorPatch,
                           _: Write) -> Envelope[ConnectorOut]:
    """Change a connector's ratings; the allocator uses them from the next plan."""
    with answered():
        c = await inventory_of(request).update_connector(
            id, body.values(), charge_point=body.chargePointId, connector_id=body.connectorId)
    return success([out(c)])


@router.delete("/v2/connectors/{id}", response_model=Envelope[ConnectorOut], responses=ERRORS)
async def delete_connector(request: Request, id: UUID, _: Write) -> Envelope[ConnectorOut]:
    """Forget a connector's record; returns it as it was."""
    with answered():
        c = await inventory_of(request).delete_connector(id)
    return success([out(c)])
