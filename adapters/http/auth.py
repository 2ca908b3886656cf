"""API keys on HTTP: `Authorization: Bearer <key>`; 401 without a valid key, 403 without the
scope. Keys are made, hashed and checked by `csms.api_keys`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapters.http.envelope import ApiFail
from csms.api_keys import SCOPES, grants
from csms.service import Loadstar
from csms.store import ApiKeyRecord

bearer = HTTPBearer(auto_error=False, description="an API key from `loadstar keys create`")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def service_of(request: Request) -> Loadstar:
    """The running Loadstar the app was made for."""
    service: Loadstar = request.app.state.service
    return service


def require_scope(scope: str) -> Callable[..., Awaitable[ApiKeyRecord]]:
    """A dependency admitting a live key that grants `scope` (401 / 403 otherwise)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def key_with_scope(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKeyRecord:
        if credentials is None:
            raise ApiFail(HTTPStatus.UNAUTHORIZED,
                          {"authorization": "missing: send Authorization: Bearer <key>"},
                          CHALLENGE)
        record = await service_of(request).api_keys.verify(credentials.credentials)
        if record is None:
            raise ApiFail(HTTPStatus.UNAUTHORIZED,
                          {"authorization": "unknown or revoked API key"}, CHALLENGE)
        if not grants(record, scope):
            raise ApiFail(HTTPStatus.FORBIDDEN,
                          {"authorization": f"this API key lacks the {scope!r} scope"})
        return record

    return key_with_scope
