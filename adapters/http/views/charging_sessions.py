"""`/v2/charging_sessions/` (seed 002 §3.7.5): OCPP transactions and API sessions, enriched
and steered through the API. The rules live in csms.api_sessions; this view translates."""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters.http import envelope
from adapters.http.auth import require_scope
from adapters.http.envelope import Envelope, Page, paging, success
from adapters.http.quantities import MAX_KW
from adapters.http.routing import ApiRouter
from adapters.http.views.session_common import (
    answered,
    bad,
    charge_point_id,
    connector_of,
    ids_of,
    network_site,
    optimizations_of,
    sessions_of,
    utc,
    window,
)
from csms.api_optimizations import profile_object
from csms.api_sessions import ApiSessions, NewSession, SessionFields
from csms.clock import document_time as iso
from csms.identity import charge_point_uuid, connector_uuid, network_uuid, session_uuid
from csms.store import ApiKeyRecord
from csms.store.base import ApiSessionRecord, SessionQuery

router = ApiRouter(tags=["charging sessions"])
Read = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Write = Annotated[ApiKeyRecord, Depends(require_scope("write"))]
FAILS = envelope.responses(400, 401, 403, 404, 409, 500)

Unit = Literal["W", "kW", "A"]
Priority = Annotated[int, Field(ge=0, le=5)]
Status = Literal["Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV",
                 "Finishing", "Reserved", "Faulted", "Unavailable"]
SORT_FIELDS = ("chargerName", "connectorId", "connectorName", "chargingDuration",
               "energyConsumption", "idTag", "isActive", "priority", "sessionEnd",
               "sessionStart", "vehicleName")
SORT_PATTERN = rf"^({'|'.join(SORT_FIELDS)}):(asc|desc)$"
DURATIONS = {"<300": (None, 300.0), ">=300": (300.0, None), ">=1800": (1800.0, None),
             ">=3600": (3600.0, None), ">=10800": (10800.0, None), ">=21600": (21600.0, None)}
ENERGIES = {"<20": (None, 20.0), ">=20": (20.0, None), ">=40": (40.0, None),
            ">=100": (100.0, None), ">=200": (200.0, None)}
PATCH_FIELDS = ("priority", "meterStop", "ocppTransactionStop", "paymentInfo", "energyToCharge",
                "vehicleId", "startSoC", "remoteStopOnCompletion")


class ChargingSession(BaseModel):
    """A session as the document shows it, plus what Loadstar knows beside it."""

    id: uuid.UUID
    created: str
    updated: str
    connectorId: uuid.UUID
    connectorNumber: int
    chargePointId: uuid.UUID
    networkId: uuid.UUID
    chargingRateUnit: Unit
    vehicleId: str | None
    transactionId: int | str | None
    idTag: str | None
    energyToCharge: float | None
    maximumChargingTimeDate: str | None
    maxChargingPowerOfVehicle: float | None
    priority: int
    active: bool
    status: str | None
    sessionStart: str
    sessionEnd: str | None
    meterStart: float | None
    meterStop: float | None
    energyConsumption: float
    paymentInfo: str | None
    remoteStopOnCompletion: bool | None
    startSoC: float | None
    source: Literal["ocpp", "api"]
    stopReason: str | None
    # Not in seed 002's session (its CDRs have total_cost): what the session costs under its
    # network's tariff (config.toml `[sites.tariff]`), including taxes, in `currency` (ISO
    # 4217, as the network's own field); a running total until the session ends. None: its
    # network has no tariff.
    totalCost: float | None = None
    currency: str | None = None


def _tx(value: str | None) -> int | str | None:
    if value is None or value.startswith("api-"):
        return None  # an API session opened without a transaction id
    return int(value) if value.isdigit() else value


def _kwh(wh: float | None) -> float | None:
    return None if wh is None else round(wh / 1000.0, 6)


def shown(sessions: ApiSessions, r: ApiSessionRecord) -> ChargingSession:
    """The document's session object for a stored session."""
    kwh = _kwh
    return ChargingSession(
        id=session_uuid(r.id), created=iso(r.started_at) or "",
        updated=iso(max(t for t in (r.started_at, r.stopped_at, r.updated_at) if t)) or "",
        connectorId=connector_uuid(r.cp_id, r.connector_id), connectorNumber=r.connector_id,
        chargePointId=charge_point_uuid(r.cp_id), networkId=network_uuid(sessions.site_of(r.cp_id)),
        chargingRateUnit=r.charging_rate_unit,  # type: ignore[arg-type]
        vehicleId=r.vehicle_id, transactionId=_tx(r.ocpp_tx_id), idTag=r.id_tag,
        energyToCharge=r.energy_to_charge_kwh, maximumChargingTimeDate=iso(r.departure),
        maxChargingPowerOfVehicle=r.max_power_kw, priority=sessions.effective_priority(r),
        active=r.stopped_at is None, status=r.status, sessionStart=iso(r.started_at) or "",
        sessionEnd=iso(r.stopped_at), meterStart=kwh(r.meter_start_wh),
        meterStop=kwh(r.meter_stop_wh), energyConsumption=r.energy_kwh,
        paymentInfo=r.payment_info, remoteStopOnCompletion=r.remote_stop,
        startSoC=r.start_soc, source=r.source,  # type: ignore[arg-type]
        stopReason=r.stop_reason,
        totalCost=None if r.cost is None else float(r.cost.total),
        currency=None if r.cost is None else r.cost.currency)


# -- list -------------------------------------------------------------------------------------


@router.get("/v2/charging_sessions/", response_model=Envelope[ChargingSession], responses=FAILS)
async def list_sessions(
    request: Request, _: Read, page: Annotated[Page, Depends(paging)],
    network: uuid.UUID | None = None,
    chargepoint: Annotated[list[uuid.UUID] | None, Query()] = None,
    connector: Annotated[list[uuid.UUID] | None, Query()] = None,
    vehicle: Annotated[list[uuid.UUID] | None, Query()] = None,
    status: Annotated[list[Status] | None, Query()] = None,
    idTag: Annotated[list[str] | None, Query()] = None,  # noqa: N803 - the document's name
    transaction_id: Annotated[int | None, Query(ge=0)] = None,
    isActive: bool | None = None,  # noqa: N803
    active: Annotated[bool | None, Query(deprecated=True)] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    start: datetime | None = None, end: datetime | None = None,
    updated: datetime | None = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    sort: Annotated[list[Annotated[str, Query(pattern=SORT_PATTERN)]] | None, Query()] = None,
    chargingDuration: Literal["<300", ">=300", ">=1800", ">=3600", ">=10800",  # noqa: N803
                              ">=21600"] | None = None,
    energyConsumption: Literal["<20", ">=20", ">=40", ">=100", ">=200"] | None = None,  # noqa: N803
) -> Envelope[ChargingSession]:
    """List sessions; one of network, vehicle or transaction_id is required; active sessions
    only unless both start and end are given (or isActive says otherwise)."""
    if network is None and not vehicle and transaction_id is None:
        raise bad("network", "one of network, vehicle or transaction_id is required")
    start, end = window(start, end)
    sessions, ids = sessions_of(request), ids_of(request)
    cp_ids: set[str] | None = None
    if network is not None:
        cp_ids = set(await ids.chargers_on(await network_site(ids, network)))
    if chargepoint:
        named = {await charge_point_id(ids, v) for v in chargepoint}
        cp_ids = named if cp_ids is None else cp_ids & named
    connectors = None if not connector else tuple(
        [await connector_of(ids, v) for v in connector])
    if isActive is None and active:
        isActive = True  # noqa: N806 - the deprecated spelling of the same filter
    if isActive is None and (start is None or end is None):
        isActive = True  # noqa: N806 - the document: active only unless start and end
    search_ids: tuple[int, ...] = ()
    if search:
        try:
            row = await ids.session(uuid.UUID(search))
            search_ids = () if row is None else (row,)
        except ValueError:
            pass
    query = SessionQuery(
        now=sessions.now(), cp_ids=None if cp_ids is None else tuple(sorted(cp_ids)),
        connectors=connectors, vehicles=None if not vehicle else tuple(str(v) for v in vehicle),
        statuses=None if not status else tuple(status),
        id_tags=None if not idTag else tuple(idTag),
        transaction_id=None if transaction_id is None else str(transaction_id),
        active=isActive, priorities=None if not priority else tuple(priority),
        ended_after=start, started_before=end, updated_since=utc(updated), search=search,
        search_ids=search_ids,
        duration_s=DURATIONS[chargingDuration] if chargingDuration else (None, None),
        energy_kwh=ENERGIES[energyConsumption] if energyConsumption else (None, None),
        sort=tuple((f, d == "desc") for f, d in (s.split(":") for s in sort))
        if sort else (("isActive", True),))
    records, total = await sessions.page(query, page.limit, page.offset)
    return success([shown(sessions, r) for r in records], total)


# -- profiles of a network's active sessions (before /{uuid}: "profiles" is no UUID) ---------


class SessionProfile(BaseModel):
    chargingSessionId: uuid.UUID
    connectorId: uuid.UUID
    chargePointId: uuid.UUID
    transactionId: int | str | None
    optimizationId: uuid.UUID | None
    profile: dict[str, Any] | None


@router.get("/v2/charging_sessions/profiles/", response_model=Envelope[SessionProfile],
            responses=FAILS)
async def session_profiles(request: Request, _: Read, network: uuid.UUID,
                           start: datetime | None = None,
                           end: datetime | None = None) -> Envelope[SessionProfile]:
    """The optimization profile in force for each active session of a network."""

    start, end = window(start, end)
    sessions, ids = sessions_of(request), ids_of(request)
    site = await network_site(ids, network)
    query = SessionQuery(now=sessions.now(), cp_ids=tuple(await ids.chargers_on(site)),
                         active=True if start is None or end is None else None,
                         ended_after=start, started_before=end)
    records, total = await sessions.page(query, 1000, 0)
    opts, _ = await optimizations_of(request).page((site,), None, True, None, None, 1000, 0)
    by_key = {(o.cp_id, o.connector_id, o.transaction_id): o for o in opts}
    out = []
    for r in records:
        opt = by_key.get((r.cp_id, r.connector_id, r.ocpp_tx_id))
        out.append(SessionProfile(
            chargingSessionId=session_uuid(r.id),
            connectorId=connector_uuid(r.cp_id, r.connector_id),
            chargePointId=charge_point_uuid(r.cp_id), transactionId=_tx(r.ocpp_tx_id),
            optimizationId=None if opt is None else opt.id,
            profile=None if opt is None else profile_object(opt)))
    return success(out, total)


# -- create / enrich --------------------------------------------------------------------------


class SessionCreate(BaseModel):
    connectorId: int | str = Field(description="connector UUID, or its number with chargePointId")
    chargePointId: uuid.UUID | None = None
    chargingRateUnit: Unit | None = None
    idTag: str | None = Field(None, max_length=255)
    energyToCharge: float | None = Field(None, ge=0, le=MAX_KW, allow_inf_nan=False)
    maxChargingPowerOfVehicle: float | None = Field(None, gt=0, le=MAX_KW, allow_inf_nan=False)
    maximumChargingTimeDate: datetime | None = None
    meterStart: float | None = Field(None, ge=0, allow_inf_nan=False)
    ocppTransactionStart: datetime | None = None
    paymentInfo: str | None = Field(None, max_length=1000)
    priority: Priority | None = None
    remoteStopOnCompletion: bool | None = None
    transactionId: int | None = Field(None, ge=0, le=2**63 - 1)
    vehicleId: uuid.UUID | None = None


async def _connector_of_body(request: Request, body: SessionCreate) -> tuple[str, int]:
    """The connector a body names: a UUID, or a number on `chargePointId`."""
    ids = ids_of(request)
    value = body.connectorId
    number: int | None = value if isinstance(value, int) else None
    if isinstance(value, str):
        if value.isdigit():
            number = int(value)
        else:
            try:
                named = uuid.UUID(value)
            except ValueError:
                raise bad("body.connectorId", "a connector UUID or number") from None
            found = await connector_of(ids, named, "body.connectorId")
            if body.chargePointId is not None and \
                    charge_point_uuid(found[0]) != body.chargePointId:
                raise bad("body.chargePointId", "the connector is on another charge point")
            return found
    if number is None or number < 1:
        raise bad("body.connectorId", "a connector number is 1 or more")
    if body.chargePointId is None:
        raise bad("body.chargePointId", "required with a connector number")
    return await charge_point_id(ids, body.chargePointId, "body.chargePointId"), number


@router.post("/v2/charging_sessions/", response_model=Envelope[ChargingSession],
             responses=FAILS, status_code=HTTPStatus.CREATED)
async def create_session(request: Request, _: Write, body: SessionCreate) -> JSONResponse:
    """Enrich the transaction running on the connector (200), or open an API session on a
    connector with none, for a charger another CSMS runs (201). Never starts a charger."""
    cp_id, n = await _connector_of_body(request, body)
    sessions = sessions_of(request)
    fields = SessionFields(
        charging_rate_unit=body.chargingRateUnit, energy_to_charge_kwh=body.energyToCharge,
        departure=utc(body.maximumChargingTimeDate), priority=body.priority,
        vehicle_id=None if body.vehicleId is None else str(body.vehicleId),
        max_power_kw=body.maxChargingPowerOfVehicle, payment_info=body.paymentInfo,
        remote_stop=body.remoteStopOnCompletion)
    with answered():
        record, created = await sessions.start(NewSession(
            cp_id, n, fields, id_tag=body.idTag, meter_start_kwh=body.meterStart,
            started_at=utc(body.ocppTransactionStart), transaction_id=body.transactionId))
    answer = success([shown(sessions, record)])
    return JSONResponse(answer.model_dump(mode="json"),
                        HTTPStatus.CREATED if created else HTTPStatus.OK)


# -- one session ------------------------------------------------------------------------------


@router.get("/v2/charging_sessions/{charging_session_uuid}",
            response_model=Envelope[ChargingSession], responses=FAILS)
async def get_session(request: Request, _: Read,
                      charging_session_uuid: uuid.UUID) -> Envelope[ChargingSession]:
    sessions = sessions_of(request)
    with answered():
        record = await sessions.get(charging_session_uuid)
    return success([shown(sessions, record)])


class SessionPatch(BaseModel):
    energyToCharge: float | None = Field(None, ge=0, le=MAX_KW, allow_inf_nan=False)
    meterStop: float | None = Field(None, ge=0)
    ocppTransactionStop: datetime | None = None
    paymentInfo: str | None = Field(None, max_length=1000)
    priority: Priority | None = None
    remoteStopOnCompletion: bool | None = None
    vehicleId: uuid.UUID | None = None
    startSoC: float | None = Field(None, ge=0, lt=100)


@router.patch("/v2/charging_sessions/{charging_session_uuid}",
              response_model=Envelope[ChargingSession], responses=FAILS)
async def patch_session(request: Request, _: Write, charging_session_uuid: uuid.UUID,
                        body: SessionPatch) -> Envelope[ChargingSession]:
    """Update a session; meterStop or ocppTransactionStop close an API session."""
    given = {k for k in PATCH_FIELDS if getattr(body, k) is not None}
    if not given:
        raise bad("body", f"at least one of {', '.join(PATCH_FIELDS)} is required")
    closes = body.meterStop is not None or body.ocppTransactionStop is not None
    if closes and body.priority is not None:
        raise bad("body.priority", "cannot be set in the request that closes the session")
    sessions = sessions_of(request)
    fields = SessionFields(
        energy_to_charge_kwh=body.energyToCharge, priority=body.priority,
        vehicle_id=None if body.vehicleId is None else str(body.vehicleId),
        payment_info=body.paymentInfo, remote_stop=body.remoteStopOnCompletion,
        start_soc=body.startSoC)
    with answered():
        record = await sessions.get(charging_session_uuid)
        updated = await sessions.update(record, fields, body.meterStop,
                                        utc(body.ocppTransactionStop))
    return success([shown(sessions, updated)])


@router.delete("/v2/charging_sessions/{charging_session_uuid}",
               response_model=Envelope[ChargingSession], responses=FAILS)
async def delete_session(request: Request, _: Write,
                         charging_session_uuid: uuid.UUID) -> Envelope[ChargingSession]:
    """End an API session; for an OCPP session, forget what the API said (the charger's
    transaction runs on)."""
    sessions = sessions_of(request)
    with answered():
        record = await sessions.get(charging_session_uuid)
        updated = await sessions.delete(record)
    return success([shown(sessions, updated)])


@router.delete("/v2/charging_sessions/{charging_session_uuid}/{transaction_id}",
               response_model=Envelope[ChargingSession], responses=FAILS)
async def delete_session_tx(request: Request, _: Write, charging_session_uuid: uuid.UUID,
                            transaction_id: Annotated[int, Path(ge=0)]
                            ) -> Envelope[ChargingSession]:
    """As DELETE /{uuid}, naming the session's transaction too (404 if it is not its)."""
    sessions = sessions_of(request)
    with answered():
        record = await sessions.get(charging_session_uuid)
        updated = await sessions.delete(record, str(transaction_id))
    return success([shown(sessions, updated)])
