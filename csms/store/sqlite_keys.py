"""SqliteStore's API keys: stored as hashes, listed without them, revoked by id."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from csms.clock import parse_iso
from csms.store.base import ApiKeyRecord
from csms.store.sqlite_base import Db, SqliteBase, _dt, _ts, _writes


def _key(row: aiosqlite.Row) -> ApiKeyRecord:
    return ApiKeyRecord(id=row["id"], key_hash=row["key_hash"],
                        scopes=tuple(s for s in row["scopes"].split(",") if s),
                        created_at=parse_iso(row["created_at"]),
                        revoked_at=_dt(row["revoked_at"]))


class KeysMixin(SqliteBase):
    """API keys of the HTTP adapters."""

    @_writes
    def add_api_key(self, db: Db, key_hash: str, scopes: tuple[str, ...], now: datetime) -> int:
        cur = db.execute("INSERT INTO api_keys (key_hash, scopes, created_at) VALUES (?,?,?)",
                         (key_hash, ",".join(scopes), _ts(now)))
        return int(cur.lastrowid or 0)

    @_writes
    def revoke_api_key(self, db: Db, key_id: int, now: datetime) -> bool:
        """Revoke a key; False if there is no such key or it was revoked already."""
        cur = db.execute("UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                         (_ts(now), key_id))
        return cur.rowcount > 0

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key (revoked or not) with this hash."""
        row = await self._one("SELECT * FROM api_keys WHERE key_hash=?", (key_hash,))
        return None if row is None else _key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return [_key(r) for r in await self._all("SELECT * FROM api_keys ORDER BY id")]
