"""Seed 002 `/v2/vehicles/`: vehicles whose battery, charge and departure make a session's
energy need (`csms.vehicles.needs_of`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import ApiFail, Envelope, Page, paging, success
from adapters.http.routing import ApiRouter
from adapters.http.views.catalog_common import not_found, utc
from csms.clock import document_time as api_time
from csms.store import ApiKeyRecord
from csms.store.catalog import VehicleQuery, VehicleRecord
from csms.vehicles import Vehicles

router = ApiRouter(tags=["vehicles"])

Number = Annotated[float, Field(strict=True)]
Percent = Annotated[float, Field(strict=True, ge=0, le=100)]
Positive = Annotated[float, Field(strict=True, gt=0)]
Sort = Literal["batteryCapacity:desc", "batteryCapacity:asc", "group:desc", "group:asc",
               "integrationId:desc", "integrationId:asc", "licensePlate:desc",
               "licensePlate:asc", "make:desc", "make:asc", "maxChargingPower:desc",
               "maxChargingPower:asc", "model:desc", "model:asc", "name:desc", "name:asc",
               "targetSOC:desc", "targetSOC:asc", "VIN:desc", "VIN:asc", "year:desc",
               "year:asc"]
Reader = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Writer = Annotated[ApiKeyRecord, Depends(require_scope("write"))]


class VehiclePatch(BaseModel):
    """Seed 002's vehicle body, every field optional; `active` is settable (a Loadstar
    choice: the document shows it in answers only)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1)] | None = None
    VIN: str | None = None
    customerVehicleId: str | None = None
    departureTime: datetime | None = None
    batteryCapacity: Positive | None = None
    location: str | None = None
    maxChargingPower: Positive | None = None
    stateOfCharge: Percent | None = None
    targetStateOfCharge: Percent | None = None
    group: str | None = None
    insideDepot: uuid.UUID | None = None
    make: str | None = None
    model: str | None = None
    year: Annotated[int, Field(strict=True, ge=1886, le=2200)] | None = None
    licensePlate: str | None = None
    active: Annotated[bool, Field(strict=True)] | None = None


class VehicleIn(VehiclePatch):
    """Create: `name` required; `stateOfCharge` defaults to 0, `targetStateOfCharge` to 100."""

    name: Annotated[str, Field(min_length=1)]


class Vehicle(BaseModel):
    id: str
    created: str | None
    updated: str | None
    name: str
    VIN: str | None
    customerVehicleId: str | None
    stateOfCharge: float
    targetStateOfCharge: float
    maxChargingPower: float | None
    batteryCapacity: float | None
    location: str | None
    departureTime: str | None
    active: bool
    group: str | None
    insideDepot: str | None
    make: str | None
    model: str | None
    year: int | None
    licensePlate: str | None


# API name -> VehicleRecord field.
FIELDS = {"name": "name", "VIN": "vin", "customerVehicleId": "customer_vehicle_id",
          "departureTime": "departure_time", "batteryCapacity": "battery_capacity_kwh",
          "location": "location", "maxChargingPower": "max_charging_power_kw",
          "stateOfCharge": "state_of_charge", "targetStateOfCharge": "target_state_of_charge",
          "group": "group", "insideDepot": "inside_depot", "make": "make", "model": "model",
          "year": "year", "licensePlate": "license_plate", "active": "active"}
# Fields with a value always (null is not a value for them).
NOT_NULL = ("name", "stateOfCharge", "targetStateOfCharge", "active")


def _out(v: VehicleRecord) -> Vehicle:
    return Vehicle(
        id=v.uuid, created=api_time(v.created_at), updated=api_time(v.updated_at), name=v.name,
        VIN=v.vin, customerVehicleId=v.customer_vehicle_id, stateOfCharge=v.state_of_charge,
        targetStateOfCharge=v.target_state_of_charge, maxChargingPower=v.max_charging_power_kw,
        batteryCapacity=v.battery_capacity_kwh, location=v.location,
        departureTime=api_time(v.departure_time), active=v.active, group=v.group,
        insideDepot=v.inside_depot, make=v.make, model=v.model, year=v.year,
        licensePlate=v.license_plate)


def _fields(body: VehiclePatch) -> dict[str, Any]:
    """The fields the client sent, as VehicleRecord names (nulls for those cleared)."""
    given = body.model_dump(include=body.model_fields_set)
    nulls = [f"body.{k}" for k in NOT_NULL if k in given and given[k] is None]
    if nulls:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {k: "may not be null" for k in nulls})
    out = {FIELDS[k]: v for k, v in given.items()}
    if out.get("inside_depot") is not None:
        out["inside_depot"] = str(out["inside_depot"])
    if "departure_time" in out:
        out["departure_time"] = utc(out["departure_time"])
    return out


def _vehicles(request: Request) -> Vehicles:
    return service_of(request).vehicles


@router.post("/v2/vehicles/", response_model=Envelope[Vehicle], status_code=HTTPStatus.CREATED,
             responses=envelope.responses(400, 401, 403, 500))
async def create_vehicle(request: Request, body: VehicleIn, _: Writer) -> Envelope[Vehicle]:
    """Add a vehicle (key: write). It belongs to no network."""
    return success([_out(await _vehicles(request).create(_fields(body)))])


@router.get("/v2/vehicles/", response_model=Envelope[Vehicle],
            responses=envelope.responses(400, 401, 403, 500))
async def list_vehicles(request: Request, page: Annotated[Page, Depends(paging)], _: Reader,
                        group: str | None = None, updated: datetime | None = None,
                        search: str | None = None,
                        sort: Sort | None = None) -> Envelope[Vehicle]:
    """List vehicles: by group, updated after a time, a text search; sorted and paged."""
    query = VehicleQuery(group=group, updated_after=utc(updated), search=search or None,
                         sort=None if sort is None else tuple(sort.split(":")))  # type: ignore[arg-type]
    found, total = await _vehicles(request).list(query, page.limit, page.offset)
    return success([_out(v) for v in found], total)


@router.get("/v2/vehicles/{id}", response_model=Envelope[Vehicle],
            responses=envelope.responses(400, 401, 403, 404, 500))
async def get_vehicle(request: Request, id: uuid.UUID, _: Reader) -> Envelope[Vehicle]:
    """One vehicle."""
    found = await _vehicles(request).get(str(id))
    if found is None:
        raise not_found("vehicle", id)
    return success([_out(found)])


@router.patch("/v2/vehicles/{id}", response_model=Envelope[Vehicle],
              responses=envelope.responses(400, 401, 403, 404, 500))
async def update_vehicle(request: Request, id: uuid.UUID, body: VehiclePatch,
                         _: Writer) -> Envelope[Vehicle]:
    """Change the fields sent; a new departure, charge or target re-plans at once."""
    found = await _vehicles(request).update(str(id), _fields(body))
    if found is None:
        raise not_found("vehicle", id)
    return success([_out(found)])


@router.delete("/v2/vehicles/{id}", response_model=Envelope[Vehicle],
               responses=envelope.responses(400, 401, 403, 404, 500))
async def delete_vehicle(request: Request, id: uuid.UUID, _: Writer) -> Envelope[Vehicle]:
    """Delete a vehicle; its id tags stay, naming no vehicle."""
    found = await _vehicles(request).delete(str(id))
    if found is None:
        raise not_found("vehicle", id)
    return success([_out(found)])
