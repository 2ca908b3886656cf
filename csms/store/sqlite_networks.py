"""SqliteStore's records of the HTTP networks view: attributes of sites, groups and their
API-made limits that the site spec has no place for, and the deletion of a site."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from csms.clock import parse_iso
from csms.store.base import NetworkRecord
from csms.store.sqlite_base import Db, SqliteBase, _ts, _writes


def _record(row: aiosqlite.Row) -> NetworkRecord:
    return NetworkRecord(id=row["id"], kind=row["kind"], site_id=row["site_id"],
                         attrs=json.loads(row["attrs"]),
                         created_at=parse_iso(row["created_at"]),
                         updated_at=parse_iso(row["updated_at"]))


class NetworksMixin(SqliteBase):
    """Network records by id (a site, group or limit id) and kind."""

    @_writes
    def save_network_record(self, db: Db, record_id: str, kind: str, site_id: str,
                            attrs: dict[str, Any], now: datetime) -> None:
        """Insert or replace a record; `created_at` is kept from the first save."""
        db.execute(
            "INSERT INTO network_records (id, kind, site_id, attrs, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET kind=excluded.kind,"
            " site_id=excluded.site_id, attrs=excluded.attrs, updated_at=excluded.updated_at",
            (record_id, kind, site_id, json.dumps(attrs, sort_keys=True), _ts(now), _ts(now)),
        )

    async def list_network_records(self, site_id: str | None = None) -> list[NetworkRecord]:
        """Every record, or those of one site."""
        if site_id is None:
            rows = await self._all("SELECT * FROM network_records ORDER BY id")
        else:
            rows = await self._all(
                "SELECT * FROM network_records WHERE site_id=? ORDER BY id", (site_id,))
        return [_record(r) for r in rows]

    @_writes
    def delete_network_records(self, db: Db, record_ids: list[str]) -> int:
        """Delete the records with these ids; how many there were."""
        cur = db.executemany("DELETE FROM network_records WHERE id=?",
                             [(i,) for i in record_ids])
        return cur.rowcount

    @_writes
    def delete_site(self, db: Db, site_id: str) -> bool:
        """Delete a site's spec and every network record of it; False if it was not stored."""
        cur = db.execute("DELETE FROM sites WHERE id=?", (site_id,))
        db.execute("DELETE FROM network_records WHERE site_id=?", (site_id,))
        return cur.rowcount > 0

    async def site_times(self) -> dict[str, datetime]:
        """When each stored site spec was last written."""
        rows = await self._all("SELECT id, updated_at FROM sites")
        return {r["id"]: parse_iso(r["updated_at"]) for r in rows}
