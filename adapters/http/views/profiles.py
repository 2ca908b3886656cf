"""`/v2/profiles/` time series (seed 002 §3.7.12 #57, #60, #61, #62): optimizations,
capacities and metered power and energy, resampled by time-weighted average to a resolution
chosen from the window (or forced). `data` is one object: {start, stop, unit, resolution,
data: [{time, value}]}."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, Request

from adapters.http import envelope
from adapters.http.auth import require_scope
from adapters.http.envelope import ObjectEnvelope, success_object
from adapters.http.routing import ApiRouter
from adapters.http.views.meter_values import meter_query
from adapters.http.views.optimizations import selection
from adapters.http.views.session_common import (
    answered,
    bad,
    ids_of,
    network_site,
    optimizations_of,
    sessions_of,
    utc,
)
from csms.clock import document_time as iso
from csms.store import ApiKeyRecord
from csms.timeseries import MAX_POINTS, RESOLUTIONS, Point, choose_resolution, point_count

router = ApiRouter(tags=["profiles"])
Read = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
FAILS = envelope.responses(400, 401, 403, 404, 500)
Resolution = Literal["1m", "15m", "5h", "2d", "4w"]
WEEK = timedelta(weeks=1)
DEFAULT_WINDOW = timedelta(days=1)


def frame(request: Request, start: datetime | None, end: datetime | None,
          resolution: str | None, *, under_a_week: bool = False
          ) -> tuple[datetime, datetime, str]:
    """The window (default: the last day; one bound given, a day from it) and resolution."""
    start, end = utc(start), utc(end)
    if start is None and end is None:
        end = sessions_of(request).now()
    if start is None:
        assert end is not None
        start = end - DEFAULT_WINDOW
    if end is None:
        end = start + DEFAULT_WINDOW
    if end <= start:
        raise bad("end", "end must be after start")
    if under_a_week and end - start >= WEEK:
        raise bad("end", "(end - start) must be less than one week")
    chosen = resolution or choose_resolution(start, end)
    if point_count(start, end, RESOLUTIONS[chosen]) > MAX_POINTS:
        raise bad("resolution", f"{chosen} gives more than {MAX_POINTS} points over this"
                  " window")
    return start, end, chosen


def series(start: datetime, end: datetime, resolution: str, unit: str,
           points: list[Point], *, keep_gaps: bool = False) -> ObjectEnvelope[dict[str, Any]]:
    """The envelope around one series; buckets without data are left out unless kept."""
    data = [{"time": iso(t), "value": None if v is None else round(v, 6)}
            for t, v in points if keep_gaps or v is not None]
    return success_object({"start": iso(start), "stop": iso(end), "unit": unit,
                           "resolution": resolution, "data": data}, len(data))


@router.get("/v2/profiles/optimizations/", response_model=ObjectEnvelope[dict[str, Any]],
            responses=FAILS)
async def optimization_profile(
    request: Request, _: Read, network: uuid.UUID | None = None,
    connector: uuid.UUID | None = None, chargepoint: uuid.UUID | None = None,
    optimization: uuid.UUID | None = None, charging_session: uuid.UUID | None = None,
    vehicle: uuid.UUID | None = None, start: datetime | None = None,
    end: datetime | None = None, resolution: Resolution | None = None,
) -> ObjectEnvelope[dict[str, Any]]:
    """kW granted over time to exactly one selection (0 where nothing was granted)."""
    given = [name for name, v in (("network", network), ("connector", connector),
                                  ("chargepoint", chargepoint), ("optimization", optimization),
                                  ("charging_session", charging_session), ("vehicle", vehicle))
             if v is not None]
    if len(given) != 1:
        raise bad("network", "exactly one of network, connector, chargepoint, optimization,"
                  " charging_session or vehicle is required")
    begin, stop, res = frame(request, start, end, resolution, under_a_week=True)
    step = RESOLUTIONS[res]
    opts = optimizations_of(request)
    if optimization is not None:
        with answered():
            opt = await opts.find(optimization)
        return series(begin, stop, res, "kW", opts.optimization_series(opt, begin, stop, step),
                      keep_gaps=True)
    sites, keys, tx = await selection(request, connector, chargepoint, network,
                                      charging_session, vehicle)
    if not sites:
        return series(begin, stop, res, "kW", [], keep_gaps=True)
    points = await opts.planned_series(next(iter(sites)), keys, begin, stop, step, tx)
    return series(begin, stop, res, "kW", points, keep_gaps=True)


@router.get("/v2/profiles/capacities/", response_model=ObjectEnvelope[dict[str, Any]],
            responses=FAILS)
async def capacity_profile(request: Request, _: Read, network: uuid.UUID,
                           start: datetime | None = None, end: datetime | None = None,
                           resolution: Resolution | None = None
                           ) -> ObjectEnvelope[dict[str, Any]]:
    """The network's limit in kW over time as the planner resolves it (external, DR event,
    capacity, scheduled, default); its maxCapacity where nothing else applies."""
    site = await network_site(ids_of(request), network)
    begin, stop, res = frame(request, start, end, resolution)
    points = optimizations_of(request).capacity_series(site, begin, stop, RESOLUTIONS[res])
    return series(begin, stop, res, "kW", points)


async def _meter(request: Request, kind: str, connector: uuid.UUID | None,
                 vehicle: uuid.UUID | None, network: uuid.UUID | None,
                 chargepoint: uuid.UUID | None, start: datetime | None, end: datetime | None,
                 resolution: str | None) -> ObjectEnvelope[dict[str, Any]]:
    query = await meter_query(request, connector, vehicle, network, chargepoint)
    begin, stop, res = frame(request, start, end, resolution)
    opts = optimizations_of(request)
    if kind == "power":
        points = await opts.meter_power_series(query, begin, stop, RESOLUTIONS[res])
        return series(begin, stop, res, "kW", points)
    points = await opts.meter_energy_series(query, begin, stop, RESOLUTIONS[res])
    return series(begin, stop, res, "kWh", points)


@router.get("/v2/profiles/meter_values/power", response_model=ObjectEnvelope[dict[str, Any]],
            responses=FAILS)
async def meter_power_profile(
    request: Request, _: Read, chargepoint: uuid.UUID | None = None,
    connector: uuid.UUID | None = None, network: uuid.UUID | None = None,
    start: datetime | None = None, end: datetime | None = None,
    resolution: Resolution | None = None,
) -> ObjectEnvelope[dict[str, Any]]:
    """Metered power in kW (Power.Active.Import, else the energy register's slope), summed
    over the selection; buckets without readings are left out."""
    if chargepoint is None and connector is None and network is None:
        raise bad("network", "at least one of chargepoint, connector or network is required")
    return await _meter(request, "power", connector, None, network, chargepoint, start, end,
                        resolution)


@router.get("/v2/profiles/meter_values/energy", response_model=ObjectEnvelope[dict[str, Any]],
            responses=FAILS)
async def meter_energy_profile(
    request: Request, _: Read, vehicle: uuid.UUID | None = None,
    chargepoint: uuid.UUID | None = None, connector: uuid.UUID | None = None,
    network: uuid.UUID | None = None, start: datetime | None = None,
    end: datetime | None = None, resolution: Resolution | None = None,
) -> ObjectEnvelope[dict[str, Any]]:
    """kWh delivered in each bucket (Energy.Active.Import.Register increases); buckets
    without readings are left out."""
    return await _meter(request, "energy", connector, vehicle, network, chargepoint, start,
                        end, resolution)
