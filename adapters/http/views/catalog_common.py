"""What the catalog views (id tags, vehicles, configurations) share: seed-002 times, 404s."""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus

from adapters.http.envelope import ApiFail


def utc(dt: datetime | None) -> datetime | None:
    """A client's time as aware UTC; one without an offset is read as UTC (seed 002)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def not_found(what: str, ident: object) -> ApiFail:
    """404 naming the path's `id`."""
    return ApiFail(HTTPStatus.NOT_FOUND, {"id": f"no {what} {ident}"})
