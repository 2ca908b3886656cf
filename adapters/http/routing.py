"""A router serving each path with and without its trailing slash, as the seed documents do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter


class ApiRouter(APIRouter):
    """`/v2/networks/` and `/v2/networks` reach the same route (no redirect); only the form
    written in the route appears in the OpenAPI document."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        other = path[:-1] if path.endswith("/") else path + "/"
        if other and other != "/":
            alias = dict(kwargs, include_in_schema=False)
            alias.pop("operation_id", None)
            super().add_api_route(other, endpoint, **alias)
