"""The conventions of the seed documents' envelope: success lists, JSend failures, paging.

Document 002 (Ampcontrol): `{"status": "success", "data": [...], "total": N}`; its only
failure sample is JSend (`{"status": "fail", "data": {...}}`), so 4xx answers are JSend `fail`
naming the offending fields and 5xx answers are JSend `error` with a message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Annotated, Any, Generic, Literal, NamedTuple, TypeVar

import structlog
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("adapters.http")

T = TypeVar("T")
MAX_LIMIT = 1000
MAX_OFFSET = 2147483647


class Envelope(BaseModel, Generic[T]):
    """A successful answer: `data` is always a list, `total` counts matches before paging."""

    status: Literal["success"] = "success"
    data: list[T]
    total: int


class ObjectEnvelope(BaseModel, Generic[T]):
    """The document's one exception: `/v2/profiles/*` answer with `data` an object (a time
    series); `total` counts its points."""

    status: Literal["success"] = "success"
    data: T
    total: int


class Fail(BaseModel):
    """JSend fail (4xx): what the client must change, by field."""

    status: Literal["fail"] = "fail"
    data: dict[str, str]


class Error(BaseModel):
    """JSend error (5xx): the server could not answer."""

    status: Literal["error"] = "error"
    message: str


def success(items: Sequence[T], total: int | None = None) -> Envelope[T]:
    """The envelope around `items`; `total` defaults to their number (one page, unpaged)."""
    return Envelope[T](data=list(items), total=len(items) if total is None else total)


async def rendered_page(render: Callable[[], list[dict[str, Any]]], total: int) -> Response:
    """The success envelope of a page whose items `render` builds as JSON-ready dicts, built
    and encoded in a worker thread: a page of a thousand rows is tens of milliseconds of
    Python that the chargers' event loop must not wait for (the view's response_model still
    documents it)."""
    def encoded() -> bytes:
        return json.dumps({"status": "success", "data": render(), "total": total},
                          ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode()

    return Response(await asyncio.to_thread(encoded), media_type="application/json")


def success_object(data: T, total: int) -> ObjectEnvelope[T]:
    """The envelope around one object (the profile views)."""
    return ObjectEnvelope[T](data=data, total=total)


def fail(status_code: int, data: dict[str, str],
         headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(Fail(data=data).model_dump(), status_code, headers=headers)


def error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse(Error(message=message).model_dump(), status_code)


class ApiFail(Exception):
    """Raised by a route or dependency: answered as JSend fail with `status_code`."""

    def __init__(self, status_code: int, data: dict[str, str],
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, data)
        self.status_code, self.data, self.headers = status_code, data, headers


class Page(NamedTuple):
    limit: int
    offset: int


def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
) -> Page:
    """The `limit` (1..1000, default 100) and `offset` (>= 0) query parameters."""
    return Page(limit, offset)


def _field(loc: Sequence[int | str]) -> str:
    """The name a client knows for an error location: `limit`, `body`, `body.maxCapacity`."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "cookie") and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "request"


def _validation_fail(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    data: dict[str, str] = {}
    for err in exc.errors():
        data.setdefault(_field(err.get("loc", ())), str(err.get("msg", "invalid")))
    return fail(HTTPStatus.BAD_REQUEST, data)


def _http_fail(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == HTTPStatus.NOT_FOUND:
        data = {"path": f"no such resource: {request.url.path}"}
    elif exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        data = {"method": f"{request.method} is not allowed here"}
    else:
        data = {"request": str(exc.detail)}
    if exc.status_code >= 500:
        return error(exc.status_code, str(exc.detail))
    return fail(exc.status_code, data, dict(exc.headers or {}))


def _api_fail(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiFail)
    return fail(exc.status_code, exc.data, exc.headers)


Handler = Callable[[Request, Exception], JSONResponse | Awaitable[JSONResponse]]
HANDLERS: dict[type[Exception], Handler] = {
    RequestValidationError: _validation_fail,
    StarletteHTTPException: _http_fail,
    ApiFail: _api_fail,
}


class CatchAll:
    """ASGI middleware: an unexpected exception is logged and answered as a JSend error 500,
    never with its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("http_request_failed", method=scope.get("method"),
                          path=scope.get("path"))
            if not started:
                await error(HTTPStatus.INTERNAL_SERVER_ERROR,
                            "internal error; the server logged it")(scope, receive, send)


def install(app: FastAPI) -> None:
    """Answer every failure of `app` in the envelope."""
    for exc_type, handler in HANDLERS.items():
        app.add_exception_handler(exc_type, handler)
    app.add_middleware(CatchAll)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for routes: the JSend model of each failure code."""
    return {code: {"model": Error if code >= 500 else Fail,
                   "description": HTTPStatus(code).phrase} for code in codes}
