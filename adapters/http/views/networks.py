"""Document 002 `/v2/networks/`: sites and their groups (sub-networks) over the live CSMS.

The view translates Ampcontrol's field names to the site spec (`csms.config.SiteSpec`) and
back; `csms.networks` does the rest. Choices where the document is silent: docs/api-notes.md.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import ApiFail, Envelope, Page, paging, success
from adapters.http.quantities import Kw, PositiveKw
from adapters.http.routing import ApiRouter
from csms.clock import document_time as timestamp
from csms.networks import Conflict, Network, NetworkError, Networks, NotFound, WebhookChange
from csms.networks import networks_of as _networks_of
from csms.store import ApiKeyRecord

T = TypeVar("T")
Reader = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Writer = Annotated[ApiKeyRecord, Depends(require_scope("write"))]
ERRORS = envelope.responses(400, 401, 403, 404, 409, 500)

Objective = Literal["load_sharing", "load_sharing_network_group", "fleet", "vehicle_to_grid",
                    "off"]
# Ampcontrol objective -> SiteSpec objective: Loadstar plans every site's group tree, so the
# sub-network objective is load sharing over that tree. vehicle_to_grid has no mapping.
OBJECTIVES = {"load_sharing": "load_sharing", "load_sharing_network_group": "load_sharing",
              "fleet": "fleet", "off": "off"}
# SiteSpec field -> the body field a client sent (to name it in a 400).
API_NAMES = {"max_power_kw": "maxCapacity", "buffer": "maxCapacityBuffer",
             "timezone": "timeZone", "objective": "objective",
             "min_power_kw": "connectorMinimumLoad", "power_step_kw": "connectorPowerStep",
             "fallback_power_kw": "reservedPower", "floors": "reservedPower",
             "network_uuid": "network_uuid"}
# Stored and echoed: Loadstar has no concept they would change (see docs/api-notes.md).
ECHOED: dict[str, Any] = {
    "location": None, "latitude": None, "longitude": None, "address": None, "country": None,
    "city": None, "state": None, "zipCode": None, "connectorReservedPowerSplit": True,
    "optimizeWithMeterValue": True, "solarActive": False, "closeIdleSessions": True,
    "startSessionsWithMeterValues": True, "eventLogging": True, "enableAnalytics": False,
    "baseloadActive": False, "baseloadPeak": None, "baseloadAvgYearlyConsumption": None,
    "baseloadBuildingType": None, "priceConstraintsActive": False, "defaultEnergyPrice": None,
    "currency": None, "onTimeDeparture": None, "fleetSchedule": None,
    "vehicleGroupPriority": "fair distribution", "geofenceRadius": None, "ocpiLocation": None,
    "defaultTariff": None, "defaultTax": None,
}


def networks_of(request: Request) -> Networks:
    """The networks service of the Loadstar this app serves."""
    return _networks_of(service_of(request))




def utc(at: datetime) -> datetime:
    """A client's time: naive means UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def refused(e: NetworkError, names: Callable[[str], str]) -> ApiFail:
    """The JSend fail for a refusal of the service, its fields named as the client sent them."""
    status = (HTTPStatus.NOT_FOUND if isinstance(e, NotFound) else
              HTTPStatus.CONFLICT if isinstance(e, Conflict) else HTTPStatus.BAD_REQUEST)
    return ApiFail(status, {names(k): v for k, v in e.fields.items()})


async def calling(call: Coroutine[Any, Any, T], names: Callable[[str], str]) -> T:
    """Await a service call; its refusals become 400 / 404 / 409 in the envelope."""
    try:
        return await call
    except NetworkError as e:
        raise refused(e, names) from None


def limit_names(items: str, value: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """How the networks service's field names for API-made limits (`items.3.kw`, `network`,
    `kw`) read in a limit view's POST body and PATCH body: its list is `items`, its kW field
    `value`."""

    def post(key: str) -> str:
        if key == "network":
            return "body.networkId"
        parts = key.split(".")
        if parts[0] == "items":
            parts[0] = items
        return "body." + ".".join(value if p == "kw" else p for p in parts)

    def patch(key: str) -> str:
        return "id" if key == "id" else "body." + (value if key == "kw" else key)

    return post, patch


def _body_name(key: str) -> str:
    head, _, rest = key.partition(".")
    if head.startswith(("groups", "parent")):
        return "body.parentNetworkId"  # the group tree: only the parent can make it wrong
    name = API_NAMES.get(head, head)
    return name if name == "network_uuid" else "body." + ".".join(p for p in (name, rest) if p)


class NetworkWrite(BaseModel):
    """Fields of POST and PATCH; on PATCH every field is optional."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    maxCapacity: PositiveKw | None = None
    parentNetworkId: UUID | None = Field(
        None, description="Loadstar: make this a sub-network (a circuit) of that network")
    objective: Objective | None = None
    timeZone: str | None = None
    maxCapacityBuffer: Annotated[float, Field(strict=True, ge=0, lt=1)] | None = None
    connectorPowerStep: PositiveKw | None = None
    connectorMinimumLoad: Kw | None = None
    reservedPower: Kw | None = None
    webhook: Annotated[str, Field(max_length=2000)] | None = None
    webhookSecret: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    location: str | None = None
    latitude: Annotated[float, Field(strict=True, ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(strict=True, ge=-180, le=180)] | None = None
    address: str | None = None
    country: str | None = None
    city: str | None = None
    state: str | None = None
    zipCode: str | int | None = None  # a string, though the document's sample sends 90001
    connectorReservedPowerSplit: StrictBool | None = None
    optimizeWithMeterValue: StrictBool | None = None
    solarActive: StrictBool | None = None
    closeIdleSessions: StrictBool | None = None
    startSessionsWithMeterValues: StrictBool | None = None
    eventLogging: StrictBool | None = None
    enableAnalytics: StrictBool | None = None
    baseloadActive: StrictBool | None = None
    baseloadPeak: Kw | None = None
    # A number, though the document's sample sends "2,000".
    baseloadAvgYearlyConsumption: Annotated[float, Field(strict=True, ge=0)] | str | None = None
    baseloadBuildingType: Literal["office", "industry"] | None = None
    priceConstraintsActive: StrictBool | None = None
    defaultEnergyPrice: Annotated[float, Field(strict=True)] | None = None
    currency: Literal["USD", "EUR"] | None = None
    onTimeDeparture: StrictBool | None = None
    fleetSchedule: list[Any] | None = None
    vehicleGroupPriority: Literal["fair distribution", "unknown vehicles",
                                  "known vehicles"] | None = None
    geofenceRadius: Annotated[float, Field(strict=True, ge=0)] | None = None
    ocpiLocation: StrictBool | None = None
    defaultTariff: Annotated[float, Field(strict=True, ge=0, lt=1000)] | None = None
    defaultTax: Annotated[float, Field(strict=True, ge=0, le=1)] | None = None

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("objective")
    @classmethod
    def _supported(cls, value: str | None) -> str | None:
        if value == "vehicle_to_grid":
            raise ValueError("vehicle_to_grid is not supported: Loadstar does not discharge "
                             "vehicles")
        return value

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _secret_with_webhook(self) -> NetworkWrite:
        if self.webhook is not None and self.webhookSecret is None:
            raise ValueError("webhookSecret is required with webhook")
        return self

    def given(self, name: str) -> bool:
        return name in self.model_fields_set

    def site_fields(self) -> dict[str, Any]:
        """The SiteSpec fields this body sets."""
        out: dict[str, Any] = {}
        if self.given("objective") and self.objective is not None:
            out["objective"] = OBJECTIVES[self.objective]
        for api, spec in (("timeZone", "timezone"), ("maxCapacityBuffer", "buffer"),
                          ("connectorMinimumLoad", "min_power_kw"),
                          ("connectorPowerStep", "power_step_kw")):
            value = getattr(self, api)
            if self.given(api) and (value is not None or api == "connectorPowerStep"):
                out[spec] = value
        if self.given("reservedPower"):
            # The standing floor of each idle connector (capped at its maximum by the plan).
            out["fallback_power_kw"] = self.reservedPower
            out["floors"] = "fit"
        return out

    def attrs(self) -> dict[str, Any]:
        """What is stored and echoed: the fields Loadstar has no concept for, and the
        objective's own name (load_sharing_network_group is planned as load_sharing)."""
        out = {k: getattr(self, k) for k in ECHOED if self.given(k)}
        if out.get("zipCode") is not None:
            out["zipCode"] = str(out["zipCode"])
        if self.given("objective") and self.objective is not None:
            out["objective"] = self.objective
        return out

    def webhook_change(self) -> WebhookChange | None:
        """The webhook settings this write gives (None: it leaves them as they are)."""
        if not (self.given("webhook") or self.given("webhookSecret")):
            return None
        return WebhookChange(self.webhook, self.webhookSecret, url_given=self.given("webhook"))


class NetworkCreate(NetworkWrite):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    maxCapacity: PositiveKw


class NetworkOut(BaseModel):
    """A network as document 002 shows it, plus `parentNetworkId` (Loadstar's sub-networks).
    `webhookSecret` is never shown."""

    id: UUID
    created: str | None
    updated: str | None
    name: str
    maxCapacity: float | None
    currentChargingLoad: float | None
    currentLimit: float | None
    objective: Objective
    timeZone: str
    webhook: str | None = None
    parentNetworkId: UUID | None
    maxCapacityBuffer: float
    connectorMinimumLoad: float
    connectorPowerStep: float | None
    reservedPower: float | None
    location: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    country: str | None = None
    city: str | None = None
    state: str | None = None
    zipCode: str | None = None
    connectorReservedPowerSplit: bool = True
    optimizeWithMeterValue: bool = True
    solarActive: bool = False
    closeIdleSessions: bool = True
    startSessionsWithMeterValues: bool = True
    eventLogging: bool = True
    enableAnalytics: bool = False
    baseloadActive: bool = False
    baseloadPeak: float | None = None
    baseloadAvgYearlyConsumption: float | str | None = None
    baseloadBuildingType: str | None = None
    priceConstraintsActive: bool = False
    defaultEnergyPrice: float | None = None
    currency: str | None = None
    onTimeDeparture: bool | None = None
    fleetSchedule: list[Any] | None = None
    vehicleGroupPriority: str | None = "fair distribution"
    geofenceRadius: float | None = None
    ocpiLocation: bool | None = None
    defaultTariff: float | None = None
    defaultTax: float | None = None


def network_out(n: Network) -> NetworkOut:
    """The document's view of a site or group."""
    site = n.site
    objective = n.site_attrs.get("objective")
    if objective is None or OBJECTIVES.get(objective) != site.objective:
        objective = site.objective  # changed outside the API (config.toml, CLI)
    reserved = 0.0 if site.floors == "zero" else site.fallback_power_kw
    # A null for a field the document gives a default means that default again.
    echoed = {k: default if n.attrs.get(k) is None else n.attrs[k]
              for k, default in ECHOED.items()}
    return NetworkOut(
        id=n.uuid, created=timestamp(n.created), updated=timestamp(n.updated), name=n.name,
        maxCapacity=n.max_power_kw, currentChargingLoad=n.current_load_kw,
        currentLimit=n.current_limit_kw, objective=objective, timeZone=site.timezone,
        parentNetworkId=n.parent_uuid,
        maxCapacityBuffer=site.buffer, connectorMinimumLoad=site.min_power_kw,
        connectorPowerStep=site.power_step_kw, reservedPower=reserved, webhook=n.webhook,
        **echoed)


router = ApiRouter(tags=["networks"])


@router.post("/v2/networks/", response_model=Envelope[NetworkOut], status_code=201,
             responses=ERRORS)
async def create_network(body: NetworkCreate, request: Request, _: Writer
                         ) -> Envelope[NetworkOut]:
    """Create a network; with `parentNetworkId`, a sub-network (a group of that site)."""
    service = networks_of(request)
    made = await calling(service.create(
        body.name, body.maxCapacity, body.site_fields(), body.attrs(),
        parent=body.parentNetworkId, webhook=body.webhook_change()), _body_name)
    return success([network_out(made)])


@router.get("/v2/networks/", response_model=Envelope[NetworkOut], responses=ERRORS)
async def list_networks(
    request: Request, _: Reader, page: Annotated[Page, Depends(paging)],
    updated: Annotated[datetime | None, Query(description="only those updated after")] = None,
    vehicle: Annotated[UUID | None, Query(description="accepted, not applied: Loadstar keeps "
                                                      "no vehicle per network")] = None,
) -> Envelope[NetworkOut]:
    """Every network (sites first, then sub-networks), paged."""
    found = await networks_of(request).list_networks(None if updated is None else utc(updated))
    return success([network_out(n) for n in found[page.offset:page.offset + page.limit]],
                   len(found))


@router.get("/v2/networks/{network_uuid}", response_model=Envelope[NetworkOut],
            responses=ERRORS)
async def get_network(network_uuid: UUID, request: Request, _: Reader) -> Envelope[NetworkOut]:
    """One network, with its present load and limit."""
    found = await calling(networks_of(request).get(network_uuid), _body_name)
    return success([network_out(found)])


@router.patch("/v2/networks/{network_uuid}", response_model=Envelope[NetworkOut],
              responses=ERRORS)
async def update_network(network_uuid: UUID, body: NetworkWrite, request: Request, _: Writer
                         ) -> Envelope[NetworkOut]:
    """Change a network; the live site re-plans at once."""
    for required in ("name", "maxCapacity"):
        if body.given(required) and getattr(body, required) is None:
            raise ApiFail(HTTPStatus.BAD_REQUEST, {f"body.{required}": "may not be null"})
    changed = await calling(networks_of(request).update(
        network_uuid, body.name, body.maxCapacity, body.site_fields(), body.attrs(),
        parent=body.parentNetworkId, webhook=body.webhook_change()), _body_name)
    return success([network_out(changed)])


@router.delete("/v2/networks/{network_uuid}", response_model=Envelope[NetworkOut],
               responses=ERRORS)
async def delete_network(network_uuid: UUID, request: Request, _: Writer
                         ) -> Envelope[NetworkOut]:
    """Delete a network with its sub-networks, capacities and DR events (409 while it holds
    chargers)."""
    gone = await calling(networks_of(request).delete(network_uuid), _body_name)
    return success([network_out(gone)])
