"""What the session, meter value, optimization and profile views share: time handling, the
mapping of service problems to JSend failures, and UUID selectors resolved to our ids."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus

from fastapi import Request

from adapters.http.auth import service_of
from adapters.http.envelope import ApiFail
from csms.api_optimizations import Optimizations
from csms.api_sessions import ApiProblem, ApiSessions, Ids


def utc(value: datetime | None) -> datetime | None:
    """A query or body time as aware UTC (naive times are UTC, as the document says)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)




@contextmanager
def answered() -> Iterator[None]:
    """Turn the services' ApiProblem into the envelope's JSend fail."""
    try:
        yield
    except ApiProblem as e:
        raise ApiFail(e.status, e.data) from e


def bad(field: str, message: str) -> ApiFail:
    return ApiFail(HTTPStatus.BAD_REQUEST, {field: message})


def missing(field: str, what: str) -> ApiFail:
    return ApiFail(HTTPStatus.NOT_FOUND, {field: f"no such {what}"})


def sessions_of(request: Request) -> ApiSessions:
    return service_of(request).api_sessions


def optimizations_of(request: Request) -> Optimizations:
    return service_of(request).optimizations


def ids_of(request: Request) -> Ids:
    return sessions_of(request).ids


async def network_site(ids: Ids, value: uuid.UUID, field: str = "network") -> str:
    """The site a network UUID names (404 naming `field` otherwise)."""
    site = ids.network(value)
    if site is None:
        raise missing(field, "network")
    return site


async def charge_point_id(ids: Ids, value: uuid.UUID, field: str = "chargepoint") -> str:
    cp_id = await ids.charge_point(value)
    if cp_id is None:
        raise missing(field, "charge point")
    return cp_id


async def connector_of(ids: Ids, value: uuid.UUID, field: str = "connector") -> tuple[str, int]:
    found = await ids.connector(value)
    if found is None:
        raise missing(field, "connector")
    return found


def window(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    """`start` and `end` as UTC; 400 when end is before start."""
    start, end = utc(start), utc(end)
    if start is not None and end is not None and end < start:
        raise bad("end", "end is before start")
    return start, end
