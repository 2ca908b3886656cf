"""Fixtures the catalog view tests share: the real app over a real Loadstar, keys by scope."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.service import Loadstar

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def key(server: Loadstar, *scopes: str) -> dict[str, str]:
    """Authorization headers of a new key with `scopes`."""
    new = await server.api_keys.create(scopes, NOW)
    return {"Authorization": f"Bearer {new.key}"}
