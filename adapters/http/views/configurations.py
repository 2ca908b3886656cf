"""Seed 002 `/v2/configurations/`: configuration objects at four levels (customer, network,
charge point, user), whose delivery options choose the presets profiles go out with; and the
OCPP settings of the customer and of each charge point."""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import ApiFail, Envelope, success
from adapters.http.routing import ApiRouter
from adapters.http.views.catalog_common import not_found
from csms.clock import document_time as api_time
from csms.delivery import CUSTOMER_UUID, AlreadyExists, BadConfiguration, Delivery
from csms.store import ApiKeyRecord

router = ApiRouter(tags=["configurations"])

Reader = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Writer = Annotated[ApiKeyRecord, Depends(require_scope("write"))]
# The OCPP settings hold the secret chargers connect with: changing them takes an admin key.
Admin = Annotated[ApiKeyRecord, Depends(require_scope("admin"))]
Level = Annotated[uuid.UUID | None, Query()]
Document = Annotated[dict[str, Any], Body(description="any JSON object (seed 002)")]
Feature = Literal["off", "cms", "proxy"]


def _delivery(request: Request) -> Delivery:
    return service_of(request).delivery


def _level(delivery: Delivery, customer: uuid.UUID | None, network: uuid.UUID | None,
           chargepoint: uuid.UUID | None, user: uuid.UUID | None) -> tuple[str, str]:
    """The one level the query names (none: the caller's customer); 404 for an unknown one."""
    given = {name: str(value) for name, value in (
        ("customer", customer), ("network", network), ("chargepoint", chargepoint),
        ("user", user)) if value is not None}
    if len(given) > 1:
        raise ApiFail(HTTPStatus.BAD_REQUEST,
                      {name: "give one of customer, network, chargepoint, user"
                       for name in given})
    level, target = next(iter(given.items()), ("customer", CUSTOMER_UUID))
    if not delivery.target_known(level, target):
        raise ApiFail(HTTPStatus.NOT_FOUND, {level: f"no {level} {target}"})
    return level, target


def _shown(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "created": api_time(doc["created"]), "updated": api_time(doc["updated"])}


async def _write(coro: Any) -> dict[str, Any]:
    """Await a create or change; its refusals become 400 / 409."""
    try:
        result: dict[str, Any] = await coro
    except BadConfiguration as e:
        raise ApiFail(HTTPStatus.BAD_REQUEST, e.problems) from e
    except AlreadyExists as e:
        raise ApiFail(HTTPStatus.CONFLICT,
                      {"request": "it exists already; change it with PATCH"}) from e
    return _shown(result)


@router.post("/v2/configurations/", response_model=Envelope[dict[str, Any]],
             status_code=HTTPStatus.CREATED,
             responses=envelope.responses(400, 401, 403, 404, 409, 500))
async def create_configuration(request: Request, body: Document, _: Writer,
                               customer: Level = None, network: Level = None,
                               chargepoint: Level = None,
                               user: Level = None) -> Envelope[dict[str, Any]]:
    """Create the configuration of one level (key: write)."""
    delivery = _delivery(request)
    level, target = _level(delivery, customer, network, chargepoint, user)
    return success([await _write(delivery.create(level, target, body))])


@router.get("/v2/configurations/", response_model=Envelope[dict[str, Any]],
            responses=envelope.responses(400, 401, 403, 404, 500))
async def get_configuration(request: Request, _: Reader, customer: Level = None,
                            network: Level = None, chargepoint: Level = None,
                            user: Level = None) -> Envelope[dict[str, Any]]:
    """The configuration of one level, defaults included; presets only at the customer's."""
    delivery = _delivery(request)
    level, target = _level(delivery, customer, network, chargepoint, user)
    return success([_shown(delivery.show(level, target))])


@router.patch("/v2/configurations/", response_model=Envelope[dict[str, Any]],
              responses=envelope.responses(400, 401, 403, 404, 500))
async def update_configuration(request: Request, body: Document, _: Writer,
                               customer: Level = None, network: Level = None,
                               chargepoint: Level = None,
                               user: Level = None) -> Envelope[dict[str, Any]]:
    """Merge the body into the configuration (JSON merge patch: null removes a key)."""
    delivery = _delivery(request)
    level, target = _level(delivery, customer, network, chargepoint, user)
    return success([await _write(delivery.update(level, target, body))])


@router.delete("/v2/configurations/", response_model=Envelope[dict[str, Any]],
               responses=envelope.responses(400, 401, 403, 404, 500))
async def delete_configuration(request: Request, configuration_uuid: uuid.UUID,
                               _: Writer) -> Envelope[dict[str, Any]]:
    """Delete a stored configuration: its level reverts to the defaults."""
    shown = await _delivery(request).delete(str(configuration_uuid))
    if shown is None:
        raise ApiFail(HTTPStatus.NOT_FOUND,
                      {"configuration_uuid": f"no configuration {configuration_uuid}"})
    return success([_shown(shown)])


# -- OCPP settings ---------------------------------------------------------------------------


class ChargePointOcppSettings(BaseModel):
    """A charge point's OCPP settings: its own secret and feature."""

    model_config = ConfigDict(extra="forbid")

    secret: Annotated[str, Field(min_length=1)] | None = None
    feature: Feature | None = None


class OcppSettingsPatch(ChargePointOcppSettings):
    """The customer's OCPP settings, every field optional."""

    targetCmsUrl: str | None = None
    defaultNetworkId: uuid.UUID | None = None


class OcppSettingsIn(OcppSettingsPatch):
    """Create: `secret` required."""

    secret: Annotated[str, Field(min_length=1)]


FIELDS = {"secret": "secret", "feature": "feature", "targetCmsUrl": "target_cms_url",
          "defaultNetworkId": "default_network_id"}


def _settings_fields(body: ChargePointOcppSettings) -> dict[str, Any]:
    given = body.model_dump(include=body.model_fields_set)
    if "feature" in given and given["feature"] is None:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {"body.feature": "may not be null"})
    out = {FIELDS[k]: v for k, v in given.items()}
    if out.get("default_network_id") is not None:
        out["default_network_id"] = str(out["default_network_id"])
    return out


async def _settings(delivery: Delivery, scope: str, body: ChargePointOcppSettings, *,
                    create: bool) -> Envelope[dict[str, Any]]:
    shown = await _write(delivery.save_ocpp_settings(scope, _settings_fields(body),
                                                     create=create))
    return success([shown])


def _charge_point(delivery: Delivery, id: uuid.UUID) -> str:
    if delivery.charge_point_id(str(id)) is None:
        raise not_found("charge point", id)
    return str(id)


@router.get("/v2/configurations/ocpp_settings", response_model=Envelope[dict[str, Any]],
            responses=envelope.responses(401, 403, 500))
async def get_ocpp_settings(request: Request, _: Reader) -> Envelope[dict[str, Any]]:
    """The customer's OCPP settings; the secret shows only as registered or not."""
    return success([_shown(await _delivery(request).ocpp_settings("customer"))])


@router.post("/v2/configurations/ocpp_settings", response_model=Envelope[dict[str, Any]],
             status_code=HTTPStatus.CREATED,
             responses=envelope.responses(400, 401, 403, 409, 500))
async def create_ocpp_settings(request: Request, body: OcppSettingsIn,
                               _: Admin) -> Envelope[dict[str, Any]]:
    """Create the customer's OCPP settings (key: admin; the secret is stored hashed)."""
    return await _settings(_delivery(request), "customer", body, create=True)


@router.patch("/v2/configurations/ocpp_settings", response_model=Envelope[dict[str, Any]],
              responses=envelope.responses(400, 401, 403, 500))
async def update_ocpp_settings(request: Request, body: OcppSettingsPatch,
                               _: Admin) -> Envelope[dict[str, Any]]:
    """Change the customer's OCPP settings (key: admin)."""
    return await _settings(_delivery(request), "customer", body, create=False)


@router.get("/v2/configurations/ocpp_settings/charge_points/{id}",
            response_model=Envelope[dict[str, Any]],
            responses=envelope.responses(400, 401, 403, 404, 500))
async def get_charge_point_ocpp_settings(request: Request, id: uuid.UUID,
                                         _: Reader) -> Envelope[dict[str, Any]]:
    """A charge point's OCPP settings."""
    delivery = _delivery(request)
    return success([_shown(await delivery.ocpp_settings(_charge_point(delivery, id)))])


@router.post("/v2/configurations/ocpp_settings/charge_points/{id}",
             response_model=Envelope[dict[str, Any]], status_code=HTTPStatus.CREATED,
             responses=envelope.responses(400, 401, 403, 404, 409, 500))
async def create_charge_point_ocpp_settings(request: Request, id: uuid.UUID,
                                            body: ChargePointOcppSettings,
                                            _: Admin) -> Envelope[dict[str, Any]]:
    """Create a charge point's OCPP settings (key: admin)."""
    delivery = _delivery(request)
    return await _settings(delivery, _charge_point(delivery, id), body, create=True)


@router.patch("/v2/configurations/ocpp_settings/charge_points/{id}",
              response_model=Envelope[dict[str, Any]],
              responses=envelope.responses(400, 401, 403, 404, 500))
async def update_charge_point_ocpp_settings(request: Request, id: uuid.UUID,
                                            body: ChargePointOcppSettings,
                                            _: Admin) -> Envelope[dict[str, Any]]:
    """Change a charge point's OCPP settings (key: admin)."""
    delivery = _delivery(request)
    return await _settings(delivery, _charge_point(delivery, id), body, create=False)
