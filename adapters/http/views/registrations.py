"""Charger registration (Accepted, Pending, Rejected): an operator action the seed documents
have no field for, addressed like `/v2/ocpp_messages/{charger_ocpp_id}` by the OCPP identity
(a charger may be registered before it ever connects). Envelope and errors as document 002's.

`PUT /v2/charge_point_registrations/{charger_ocpp_id}` with `{"status": "Accepted"}` sets it
(`csms.registrar`); a connected charger whose last boot was answered otherwise is asked to
boot again. `GET` shows it with the answer of the charger's last boot.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import ApiFail, Envelope, success
from adapters.http.routing import ApiRouter
from csms.identity import charge_point_uuid
from csms.registrar import Registration
from csms.server import id_problem
from csms.store import ApiKeyRecord

Read = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
Write = Annotated[ApiKeyRecord, Depends(require_scope("write"))]
Status = Literal["Accepted", "Pending", "Rejected"]

router = ApiRouter(tags=["charge point registrations"])
PATH = "/v2/charge_point_registrations/{charger_ocpp_id}"


class RegistrationIn(BaseModel):
    """PUT body: the state the charger is registered in."""

    model_config = ConfigDict(extra="forbid")

    status: Status


class RegistrationOut(BaseModel):
    ocppId: str
    chargePointId: UUID
    status: Status | None  # the operator's; null: the config decides at its next boot
    bootStatus: Status | None  # what its last BootNotification was answered
    onlineStatus: Literal["ONLINE", "OFFLINE"]
    bootNotificationRequested: bool  # this change asked the connected charger to boot again


def out(r: Registration) -> RegistrationOut:
    return RegistrationOut(
        ocppId=r.cp_id, chargePointId=charge_point_uuid(r.cp_id),
        status=r.status,  # type: ignore[arg-type]
        bootStatus=r.boot_status,  # type: ignore[arg-type]
        onlineStatus="ONLINE" if r.online else "OFFLINE",
        bootNotificationRequested=r.boot_requested)


def checked(charger_ocpp_id: str) -> str:
    problem = id_problem(charger_ocpp_id)
    if problem is not None:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {"charger_ocpp_id": problem})
    return charger_ocpp_id


@router.get(PATH, response_model=Envelope[RegistrationOut],
            responses=envelope.responses(400, 401, 403, 404, 500))
async def get_registration(request: Request, charger_ocpp_id: str,
                           _: Read) -> Envelope[RegistrationOut]:
    """A charger's registration and the answer of its last boot."""
    found = await service_of(request).registrar.get(checked(charger_ocpp_id))
    if found is None:
        raise ApiFail(HTTPStatus.NOT_FOUND, {"charger_ocpp_id": "no such charge point"})
    return success([out(found)])


@router.put(PATH, response_model=Envelope[RegistrationOut],
            responses=envelope.responses(400, 401, 403, 500))
async def set_registration(request: Request, charger_ocpp_id: str, body: RegistrationIn,
                           _: Write) -> Envelope[RegistrationOut]:
    """Register a charger Accepted, Pending or Rejected (a record is made if there is none)."""
    found = await service_of(request).registrar.set(checked(charger_ocpp_id), body.status)
    return success([out(found)])
