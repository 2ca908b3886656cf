"""API keys for the HTTP side: made here, shown once, kept only as a hash, checked by scope."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from csms.store import ApiKeyRecord, Store

SCOPES = ("read", "write", "admin")
# What each scope also grants: admin may do everything, write may also read.
IMPLIED = {"read": {"read"}, "write": {"read", "write"}, "admin": set(SCOPES)}
PREFIX = "lsk_"


class ScopeError(ValueError):
    """A scope that does not exist (the message names it)."""


def parse_scopes(text: str) -> tuple[str, ...]:
    """`read,write` -> ("read", "write"), in SCOPES order; ScopeError for unknown or none."""
    wanted = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ScopeError(f"unknown scope {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    if not wanted:
        raise ScopeError(f"at least one scope is needed ({', '.join(SCOPES)})")
    return tuple(s for s in SCOPES if s in wanted)


def hash_key(key: str) -> str:
    """The stored form of a key.

    A plain SHA-256 suffices (no salt, no slow KDF): the keys are 256 random bits, not
    passwords, so there is nothing to guess from a leaked hash; and a fast, unsalted hash lets
    a request find its key by an indexed lookup instead of checking every key.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def grants(record: ApiKeyRecord, scope: str) -> bool:
    """Whether the key's scopes include `scope` (directly or implied)."""
    return any(scope in IMPLIED.get(s, {s}) for s in record.scopes)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: `key` is shown to the operator once and never stored."""

    id: int
    key: str
    scopes: tuple[str, ...]
    created_at: datetime


class ApiKeys:
    """Creates, checks, lists and revokes the keys in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, scopes: tuple[str, ...], now: datetime) -> NewKey:
        key = PREFIX + secrets.token_urlsafe(32)
        key_id = await self.store.add_api_key(hash_key(key), scopes, now)
        return NewKey(key_id, key, scopes, now)

    async def verify(self, key: str) -> ApiKeyRecord | None:
        """The live (not revoked) key record for `key`, else None."""
        digest = hash_key(key)
        record = await self.store.find_api_key(digest)
        # The lookup found it by hash; compare again in constant time so that no code path
        # answers faster for a nearly right value.
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            return None
        return record if record.revoked_at is None else None

    async def list(self) -> list[ApiKeyRecord]:
        return await self.store.list_api_keys()

    async def revoke(self, key_id: int, now: datetime) -> bool:
        return await self.store.revoke_api_key(key_id, now)
