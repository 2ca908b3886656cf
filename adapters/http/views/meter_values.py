"""`/v2/meter_values/` (seed 002 §3.7.7): meter values sent through the API are stored like
OCPP MeterValues and feed the planner's measured draw; the list pages stored samples."""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters.http import envelope
from adapters.http.auth import require_scope
from adapters.http.envelope import Envelope, Page, paging, rendered_page, success
from adapters.http.routing import ApiRouter
from adapters.http.views.session_common import (
    answered,
    bad,
    charge_point_id,
    connector_of,
    ids_of,
    network_site,
    sessions_of,
    utc,
    window,
)
from csms.api_sessions import ApiProblem
from csms.clock import document_time as iso
from csms.domain import Sample
from csms.identity import charge_point_uuid, connector_uuid, session_uuid
from csms.store import ApiKeyRecord
from csms.store.base import MeterQuery, MeterValueRecord

router = ApiRouter(tags=["meter values"])
Read = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Write = Annotated[ApiKeyRecord, Depends(require_scope("write"))]
FAILS = envelope.responses(400, 401, 403, 404, 500)

# The document's accepted measurands and their units (None: no unit); the first is the
# default when a sample names none.
MEASURANDS: dict[str, tuple[str | None, ...]] = {
    "Power.Active.Import": ("W", "kW"), "Power.Active.Export": ("W", "kW"),
    "Power.Offered": ("W", "kW"), "Power.Reactive.Export": ("varh", "kvarh"),
    "Power.Reactive.Import": ("varh", "kvarh"), "Power.Factor": (None,),
    "Energy.Active.Import.Register": ("Wh", "kWh"),
    "Energy.Active.Export.Register": ("Wh", "kWh"),
    "Energy.Reactive.Export.Register": ("Wh", "kWh"),
    "Energy.Active.Export.Interval": ("Wh", "kWh"),
    "Energy.Active.Import.Interval": ("Wh", "kWh"),
    "Energy.Reactive.Export.Interval": ("varh", "kvarh"),
    "Energy.Reactive.Import.Interval": ("varh", "kvarh"),
    "Current.Export": ("A",), "Current.Import": ("A",), "Current.Offered": ("A",),
    "Frequency": (None,), "RPM": (None,), "SoC": ("Percent",),
    "Temperature": ("K", "Celsius", "Fahrenheit"), "Voltage": ("V",),
}
Phase = Literal["L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1"]


class SampledValue(BaseModel):
    value: float | str
    context: str | None = Field(None, max_length=50)
    format: str | None = Field(None, max_length=20)
    location: str | None = Field(None, max_length=20)
    measurand: str = "Energy.Active.Import.Register"  # OCPP's default
    phase: Phase | None = None
    unit: str | None = None


class MeterValue(BaseModel):
    timestamp: datetime
    sampledValue: list[SampledValue] = Field(min_length=1, max_length=50)


class MeterValuesIn(BaseModel):
    chargePointId: uuid.UUID | None = None
    connectorId: int | str | None = None
    vehicleId: uuid.UUID | None = None
    transactionId: int | None = Field(None, ge=0)
    meterValues: list[MeterValue] = Field(min_length=1, max_length=100)


def samples_of(body: MeterValuesIn) -> tuple[Sample, ...]:
    """The body's samples; 400 naming each one with a measurand, unit or value we refuse."""
    problems: dict[str, str] = {}
    out: list[Sample] = []
    for i, mv in enumerate(body.meterValues):
        at = utc(mv.timestamp)
        assert at is not None
        for j, sv in enumerate(mv.sampledValue):
            here = f"body.meterValues.{i}.sampledValue.{j}"
            units = MEASURANDS.get(sv.measurand)
            if units is None:
                problems[f"{here}.measurand"] = "not an accepted measurand"
                continue
            unit = sv.unit if sv.unit is not None else units[0]
            if unit not in units:
                problems[f"{here}.unit"] = (f"{sv.measurand} takes "
                                            f"{' or '.join(str(u) for u in units)}")
                continue
            try:
                value = float(sv.value)
            except ValueError:
                problems[f"{here}.value"] = "not a number"
                continue
            if value != value or value in (float("inf"), float("-inf")):
                problems[f"{here}.value"] = "not a finite number"
                continue
            out.append(Sample(at, sv.measurand, value, unit, sv.phase, sv.context,
                              sv.location))
    if problems:
        raise ApiProblem(HTTPStatus.BAD_REQUEST, problems)
    return tuple(out)


@router.post("/v2/meter_values/", response_model=Envelope[dict[str, Any]],
             responses=FAILS, status_code=HTTPStatus.CREATED)
async def post_meter_values(request: Request, _: Write, body: MeterValuesIn) -> JSONResponse:
    """Store meter values of a connector (chargePointId + connectorId, or the vehicle of an
    open session) and fold them into the planner like OCPP MeterValues."""
    sessions = sessions_of(request)
    with answered():
        samples = samples_of(body)
        if body.connectorId is not None or body.chargePointId is not None:
            cp_id, n = await _connector(request, body)
        elif body.vehicleId is not None:
            cp_id, n = await sessions.connector_of_vehicle(str(body.vehicleId))
        else:
            raise bad("body.chargePointId", "chargePointId and connectorId, or vehicleId,"
                      " are required")
        await sessions.add_meter_values(
            cp_id, n, samples, None if body.transactionId is None else str(body.transactionId))
    echo = body.model_dump(mode="json")
    # Times as every answer gives them (UTC, offset, microseconds); a naive one was taken as
    # UTC, so it must not come back without its offset.
    for mv, shown in zip(body.meterValues, echo["meterValues"], strict=True):
        shown["timestamp"] = iso(utc(mv.timestamp))
    echo.update(chargePointId=str(charge_point_uuid(cp_id)),
                connectorId=str(connector_uuid(cp_id, n)), connectorNumber=n)
    return JSONResponse(success([echo]).model_dump(mode="json"), HTTPStatus.CREATED)


async def _connector(request: Request, body: MeterValuesIn) -> tuple[str, int]:
    ids = ids_of(request)
    value = body.connectorId
    if isinstance(value, str) and not value.isdigit():
        try:
            named = uuid.UUID(value)
        except ValueError:
            raise bad("body.connectorId", "a connector UUID or number") from None
        return await connector_of(ids, named, "body.connectorId")
    if value is None:
        raise bad("body.connectorId", "required with chargePointId")
    number = int(value)
    if number < 1:
        raise bad("body.connectorId", "a connector number is 1 or more")
    if body.chargePointId is None:
        raise bad("body.chargePointId", "required with a connector number")
    return await charge_point_id(ids, body.chargePointId, "body.chargePointId"), number


class StoredMeterValue(BaseModel):
    """One stored sample (a page counts samples)."""

    chargePointId: uuid.UUID
    connectorId: uuid.UUID
    connectorNumber: int
    chargingSessionId: uuid.UUID | None
    timestamp: str
    measurand: str
    phase: str | None
    unit: str | None
    value: float
    context: str | None
    location: str | None


async def meter_query(request: Request, connector: uuid.UUID | None,
                      vehicle: uuid.UUID | None, network: uuid.UUID | None,
                      chargepoint: uuid.UUID | None) -> MeterQuery:
    """The selectors as store ids (any of them matches); 400 when none is given."""
    if connector is None and vehicle is None and network is None and chargepoint is None:
        raise bad("connector", "one of connector, vehicle, network or chargepoint is required")
    ids = ids_of(request)
    cp_ids: list[str] = []
    if network is not None:
        cp_ids += await ids.chargers_on(await network_site(ids, network))
    if chargepoint is not None:
        cp_ids.append(await charge_point_id(ids, chargepoint))
    return MeterQuery(
        connectors=None if connector is None else (await connector_of(ids, connector),),
        cp_ids=None if network is None and chargepoint is None else tuple(cp_ids),
        vehicles=None if vehicle is None else (str(vehicle),))


@router.get("/v2/meter_values/", response_model=Envelope[StoredMeterValue], responses=FAILS)
async def list_meter_values(
    request: Request, _: Read, page: Annotated[Page, Depends(paging)],
    start: datetime, end: datetime,
    connector: uuid.UUID | None = None, vehicle: uuid.UUID | None = None,
    network: uuid.UUID | None = None, chargepoint: uuid.UUID | None = None,
) -> Envelope[StoredMeterValue]:
    """Stored samples of a connector, vehicle, network or charge point in [start, end],
    oldest first."""
    start_utc, end_utc = window(start, end)
    query = await meter_query(request, connector, vehicle, network, chargepoint)
    query = MeterQuery(query.connectors, query.cp_ids, query.vehicles, start_utc, end_utc)
    rows, total = await sessions_of(request).meter_page(query, page.limit, page.offset)
    return await rendered_page(lambda: [_stored(r) for r in rows], total)


def _stored(r: MeterValueRecord) -> dict[str, Any]:
    """One sample as StoredMeterValue shapes it."""
    return {"chargePointId": str(charge_point_uuid(r.cp_id)),
            "connectorId": str(connector_uuid(r.cp_id, r.connector_id)),
            "connectorNumber": r.connector_id,
            "chargingSessionId": None if r.session_id is None
            else str(session_uuid(r.session_id)),
            "timestamp": iso(r.timestamp) or "", "measurand": r.measurand, "phase": r.phase,
            "unit": r.unit, "value": r.value, "context": r.context, "location": r.location}
