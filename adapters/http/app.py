"""`create_app(service)`: the FastAPI app of a running Loadstar, with its system routes.

Seed views are routers included here; they reach the core only through `service`.
"""

from __future__ import annotations

from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import Envelope, success
from adapters.http.routing import ApiRouter
from adapters.http.views import (
    alerts,
    capacities,
    charge_points,
    charging_sessions,
    configurations,
    connectors,
    dr_events,
    id_tags,
    meter_values,
    networks,
    ocpp_messages,
    optimizations,
    profiles,
    registrations,
    vehicles,
)
from csms.service import Loadstar
from csms.store import ApiKeyRecord


def _version() -> str:
    try:
        return version("loadstar")
    except PackageNotFoundError:
        return "unknown"


class StoreState(BaseModel):
    ok: bool
    last_error: str | None


class Health(BaseModel):
    """Liveness for load balancers and operators (public, not in the envelope)."""

    ok: bool
    store: StoreState
    chargers_online: int


class Status(BaseModel):
    version: str
    chargers_online: int
    store_ok: bool


def _health(service: Loadstar) -> Health:
    store = service.store.health
    return Health(ok=store.ok, store=StoreState(ok=store.ok, last_error=store.last_error),
                  chargers_online=len(service.registry.all()))


system = ApiRouter(tags=["system"])


@system.get("/healthz", response_model=Health,
            responses={503: {"model": Health, "description": "the store cannot write"}})
async def healthz(request: Request) -> JSONResponse:
    """Whether Loadstar can serve: 200 if the store writes, else 503; chargers online."""
    health = _health(service_of(request))
    code = HTTPStatus.OK if health.ok else HTTPStatus.SERVICE_UNAVAILABLE
    return JSONResponse(health.model_dump(), code)


@system.get("/v2/status", response_model=Envelope[Status],
            responses=envelope.responses(400, 401, 403, 500))
async def status(request: Request,
                 _: Annotated[ApiKeyRecord, Depends(require_scope("read"))]) -> Envelope[Status]:
    """Loadstar's version, chargers online and store state (a Loadstar extension; key: read)."""
    health = _health(service_of(request))
    return success([Status(version=_version(), chargers_online=health.chargers_online,
                           store_ok=health.ok)])


def create_app(service: Loadstar) -> FastAPI:
    """The HTTP app serving `service`; failures answer in the envelope."""
    app = FastAPI(title="Loadstar", version=_version(), redirect_slashes=False,
                  description="Loadstar's HTTP API: the seed views over the live CSMS.")
    app.state.service = service
    envelope.install(app)
    app.include_router(system)
    for view in (networks, capacities, dr_events, charge_points, connectors, id_tags, vehicles,
                 configurations, charging_sessions, meter_values, optimizations, profiles,
                 ocpp_messages, alerts, registrations):
        app.include_router(view.router)
    return app
