"""Document 002 §3.7.17: the OCPP message log, and messages sent to chargers through the API.

`GET /v2/ocpp_messages/` lists every frame in and out (the frame log, paged in SQL).
`POST /v2/ocpp_messages/{charger_ocpp_id}` (a CALL frame, as a JSON string or array) and
`POST /v2/ocpp_messages/` with `sendToCharger: true` send it to the charger and answer with its
CALLRESULT or CALLERROR; a charger that is away gets it when it is back (202, queued).
`GET /v2/ocpp_messages/{id}` shows what became of a message given here (a Loadstar addition).
The OCPP knowledge (actions, versions, schemas) is `csms.relay`'s.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool

from adapters.http import envelope
from adapters.http.auth import require_scope, service_of
from adapters.http.envelope import ApiFail, Envelope, Page, paging, success
from adapters.http.routing import ApiRouter
from csms.clock import document_time as _time
from csms.identity import charge_point_uuid, ocpp_message_uuid
from csms.relay import SOURCES, ChargerOffline, RelayError, UnknownCharger
from csms.service import Loadstar
from csms.store import ApiKeyRecord
from csms.store.base import FrameQuery, LoggedFrame, RelayRecord

router = ApiRouter(tags=["OCPP messages"])

Source = Literal["Charger", "AmpCMS", "AmpCMS_created", "AmpCMS_queued", "External", "UI",
                 "API"]
Protocol = Literal["ocpp1.6", "ocpp2.0.1"]
MessageType = Literal["Call", "CallResult", "CallError"]
Sort = Literal["chargepoint:desc", "chargepoint:asc", "timestamp:desc", "timestamp:asc",
               "source:desc", "source:asc", "operationType:desc", "operationType:asc"]

MESSAGE_TYPES: dict[str, int] = {"Call": 2, "CallResult": 3, "CallError": 4}
TYPE_NAMES = {v: k for k, v in MESSAGE_TYPES.items()}
# The frame log knows a frame's direction: in from the charger, out from us (the CMS), or
# undelivered (an answer of ours the closed socket refused: still the CMS's message).
DIRECTIONS_OF_SOURCE = {"Charger": ("in",), "AmpCMS": ("out", "undelivered")}
SOURCE_OF_DIRECTION = {d: k for k, ds in DIRECTIONS_OF_SOURCE.items() for d in ds}
assert set(SOURCES) == set(Source.__args__)  # type: ignore[attr-defined]


class OcppMessage(BaseModel):
    """One frame of the log."""

    id: uuid.UUID
    timestamp: str
    chargePointId: uuid.UUID
    ocppId: str
    protocol: str | None
    source: str
    messageType: MessageType | None
    operationType: str | None
    uniqueId: str | None
    body: Any = Field(description="the frame (a JSON array); its text when it is not JSON")


class RelayedMessage(BaseModel):
    """A message given for a charger here: the CALL (`body`) and the charger's answer."""

    id: uuid.UUID
    created: str
    updated: str
    chargePointId: uuid.UUID
    ocppId: str
    protocol: str
    source: str
    url: str | None
    sendToCharger: bool
    messageType: Literal["Call"] = "Call"
    operationType: str
    uniqueId: str
    body: list[Any]
    status: Literal["logged", "queued", "sending", "answered", "failed", "timeout"]
    response: list[Any] | None = Field(
        description="the charger's CALLRESULT or CALLERROR frame, under the CALL's MessageId")
    responseType: Literal["CallResult", "CallError"] | None


class SendMessage(BaseModel):
    """The body of `POST /v2/ocpp_messages/`."""

    chargePointId: uuid.UUID
    body: list[Any] = Field(description="the CALL frame, or a list holding that one frame")
    url: str | None = None
    source: Source = "API"
    sendToCharger: StrictBool = False
    operationType: str | None = None
    protocol: Protocol | None = None




def _utc(dt: datetime | None) -> datetime | None:
    """A query time; naive means UTC (document 002's examples carry no offset)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _frame_body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # logged as received: a frame that was not JSON


def _message(frame: LoggedFrame) -> OcppMessage:
    return OcppMessage(
        id=ocpp_message_uuid(frame.id), timestamp=_time(frame.timestamp),
        chargePointId=charge_point_uuid(frame.cp_id), ocppId=frame.cp_id,
        protocol=frame.protocol, source=SOURCE_OF_DIRECTION.get(frame.direction, "AmpCMS"),
        messageType=TYPE_NAMES.get(frame.message_type or 0), operationType=frame.action,
        uniqueId=frame.unique_id, body=_frame_body(frame.text))


def _relayed(record: RelayRecord) -> RelayedMessage:
    reply = record.reply
    return RelayedMessage(
        id=uuid.UUID(record.uuid), created=_time(record.created_at),
        updated=_time(record.updated_at), chargePointId=charge_point_uuid(record.cp_id),
        ocppId=record.cp_id, protocol=record.protocol, source=record.source, url=record.url,
        sendToCharger=record.send, operationType=record.action, uniqueId=record.unique_id,
        body=[2, record.unique_id, record.action, record.payload],
        status=record.status,  # type: ignore[arg-type]
        response=reply, responseType=None if not reply else TYPE_NAMES.get(reply[0]))  # type: ignore[arg-type]


async def _cp_ids_by_uuid(service: Loadstar) -> dict[uuid.UUID, str]:
    """Charge point UUID -> OCPP id, over every charger with a record or a connection."""
    ids = set(await service.store.stored_charge_point_ids())
    ids.update(conn.cp_id for conn in service.registry.all())
    return {charge_point_uuid(cp_id): cp_id for cp_id in ids}


@router.get("/v2/ocpp_messages/", response_model=Envelope[OcppMessage],
            responses=envelope.responses(400, 401, 403, 500))
async def list_messages(
    request: Request,
    page: Annotated[Page, Depends(paging)],
    _: Annotated[ApiKeyRecord, Depends(require_scope("read"))],
    chargepoint: Annotated[list[uuid.UUID] | None, Query(
        description="charge point UUIDs (repeat the key)")] = None,
    source: Annotated[list[Source] | None, Query(description="repeat the key")] = None,
    messageType: Annotated[MessageType | None, Query()] = None,  # noqa: N803
    operationType: Annotated[list[str] | None, Query(  # noqa: N803
        description="actions (repeat the key); a reply counts as its call's action")] = None,
    protocol: Annotated[Protocol | None, Query()] = None,
    start: Annotated[datetime | None, Query(description="ISO 8601; naive is UTC")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601; naive is UTC")] = None,
    search: Annotated[str | None, Query(max_length=100, description=(
        "part of the charger's OCPP id (Loadstar's customName) or of the action"))] = None,
    sort: Annotated[Sort, Query()] = "timestamp:desc",
) -> Envelope[OcppMessage]:
    """List the OCPP frames exchanged with chargers, newest first unless sorted otherwise."""
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and end < start:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {"end": "must not be before start"})
    service = service_of(request)
    cp_ids: tuple[str, ...] | None = None
    if chargepoint:
        known = await _cp_ids_by_uuid(service)
        cp_ids = tuple(known[u] for u in dict.fromkeys(chargepoint) if u in known)
    directions = None if not source else tuple(
        d for s in dict.fromkeys(source) for d in DIRECTIONS_OF_SOURCE.get(s, ()))
    field, order = sort.split(":")
    query = FrameQuery(
        cp_ids=cp_ids, directions=directions,
        message_type=None if messageType is None else MESSAGE_TYPES[messageType],
        actions=None if not operationType else tuple(dict.fromkeys(operationType)),
        protocol=protocol, start=start, end=end, search=search or None, sort=field,
        descending=order == "desc")
    frames, total = await service.store.page_frames(query, page.limit, page.offset)
    return success([_message(f) for f in frames], total)


@router.get("/v2/ocpp_messages/{message_id}", response_model=Envelope[RelayedMessage],
            responses=envelope.responses(400, 401, 403, 404, 500))
async def get_message(
    request: Request, message_id: uuid.UUID,
    _: Annotated[ApiKeyRecord, Depends(require_scope("read"))],
) -> Envelope[RelayedMessage]:
    """A message given through this API, with its state and the charger's answer."""
    record = await service_of(request).relay.get(str(message_id))
    if record is None:
        raise ApiFail(HTTPStatus.NOT_FOUND, {"message_id": f"no message {message_id}"})
    return success([_relayed(record)])


SEND_RESPONSES = envelope.responses(400, 401, 403, 404, 409, 500, 502, 504)
SEND_RESPONSES[202] = {"model": Envelope[RelayedMessage],
                       "description": "the charger is away: queued until it is back"}


async def _send(request: Request, response: Response, cp_id: str, frame: Any, *,
                source: str = "API", url: str | None = None, protocol: str | None = None,
                operation_type: str | None = None, send: bool = True, queue: bool = True,
                id_field: str = "chargePointId") -> Envelope[RelayedMessage] | JSONResponse:
    """Store, and send or queue, one message; answer with its record once the charger has."""
    relay = service_of(request).relay
    try:
        record, sending = await relay.submit(
            cp_id, frame, source=source, url=url, protocol=protocol,
            operation_type=operation_type, send=send, queue=queue)
    except RelayError as exc:
        raise ApiFail(HTTPStatus.BAD_REQUEST, {exc.field: exc.message}) from None
    except UnknownCharger:
        raise ApiFail(HTTPStatus.NOT_FOUND, {id_field: f"no charge point {cp_id!r}"}) from None
    except ChargerOffline:
        raise ApiFail(HTTPStatus.CONFLICT, {id_field: (
            f"charge point {cp_id!r} is not connected and queue=false was asked")}) from None
    if sending is None:
        response.status_code = HTTPStatus.ACCEPTED if record.status == "queued" \
            else HTTPStatus.CREATED
        return success([_relayed(record)])
    try:
        # Shielded: a client that stops waiting does not stop the call (nor its record).
        record = await asyncio.wait_for(asyncio.shield(sending), relay.wait_s)
    except TimeoutError:
        return envelope.error(HTTPStatus.GATEWAY_TIMEOUT, (
            f"the charger has not answered within {relay.wait_s:g} s; GET "
            f"/v2/ocpp_messages/{record.uuid} shows the message's state"))
    if record.status == "timeout":
        return envelope.error(HTTPStatus.GATEWAY_TIMEOUT, (
            f"the charger did not answer message {record.uuid} in time"))
    if record.status == "failed":
        return envelope.error(HTTPStatus.BAD_GATEWAY, (
            f"the charger's connection was lost before its answer to message {record.uuid}; "
            "it may or may not have acted on it, and it is not sent again"))
    response.status_code = HTTPStatus.ACCEPTED if record.status == "queued" else HTTPStatus.OK
    return success([_relayed(record)])


def _one_frame(body: list[Any]) -> Any:
    """The frame in `body`: the frame itself, or a list holding only it."""
    if body and all(isinstance(item, list) for item in body):
        if len(body) != 1:
            raise ApiFail(HTTPStatus.BAD_REQUEST, {"body": "one frame per message"})
        return body[0]
    return body


@router.post("/v2/ocpp_messages/{charger_ocpp_id}", response_model=Envelope[RelayedMessage],
             responses=SEND_RESPONSES)
async def send_to_charger(
    request: Request, response: Response, charger_ocpp_id: str,
    body: Annotated[Any, Body(description=(
        'the CALL frame as a JSON string, e.g. "[2,\\"id\\",\\"Reset\\",{\\"type\\":\\"Soft\\"}]"'
        " (a JSON array is taken too)"))],
    _: Annotated[ApiKeyRecord, Depends(require_scope("write"))],
    queue: Annotated[bool, Query(description=(
        "queue the message while the charger is away (else 409)"))] = True,
) -> Envelope[RelayedMessage] | JSONResponse:
    """Send a CALL to the charger `charger_ocpp_id`; answers with its CALLRESULT/CALLERROR."""
    frame: Any = body
    if not isinstance(body, str | list):
        raise ApiFail(HTTPStatus.BAD_REQUEST,
                      {"body": "the CALL frame, as a JSON string (or a JSON array)"})
    if isinstance(body, str):
        try:
            frame = json.loads(body)
        except ValueError as exc:
            raise ApiFail(HTTPStatus.BAD_REQUEST, {"body": f"not a JSON frame: {exc}"}) from None
    return await _send(request, response, charger_ocpp_id, frame, queue=queue,
                       id_field="charger_ocpp_id")


@router.post("/v2/ocpp_messages/", response_model=Envelope[RelayedMessage],
             responses=SEND_RESPONSES)
async def send_message(
    request: Request, response: Response, message: SendMessage,
    _: Annotated[ApiKeyRecord, Depends(require_scope("write"))],
    queue: Annotated[bool, Query(description=(
        "queue the message while the charger is away (else 409)"))] = True,
) -> Envelope[RelayedMessage] | JSONResponse:
    """Send a CALL to a charger (`sendToCharger: true`), or only record it (false: 201)."""
    cp_id = (await _cp_ids_by_uuid(service_of(request))).get(message.chargePointId)
    if cp_id is None:
        raise ApiFail(HTTPStatus.NOT_FOUND,
                      {"chargePointId": f"no charge point {message.chargePointId}"})
    return await _send(request, response, cp_id, _one_frame(message.body),
                       source=message.source, url=message.url, protocol=message.protocol,
                       operation_type=message.operationType, send=message.sendToCharger,
                       queue=queue)
