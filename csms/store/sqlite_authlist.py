"""SqliteStore's local authorization lists (per charger) and reservations."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

import aiosqlite

from csms.clock import parse_iso
from csms.store.authlist import OPEN_RESERVATION, LocalListRecord, ReservationRecord
from csms.store.sqlite_base import Db, SqliteBase, _one, _ts, _writes

_OPEN = ",".join("?" * len(OPEN_RESERVATION))


def _local_list(row: aiosqlite.Row | sqlite3.Row) -> LocalListRecord:
    return LocalListRecord(row["cp_id"], row["version"], json.loads(row["entries"]),
                           bool(row["out_of_date"]), parse_iso(row["updated_at"]))


def _reservation(row: aiosqlite.Row | sqlite3.Row) -> ReservationRecord:
    return ReservationRecord(
        id=row["id"], cp_id=row["cp_id"], connector_id=row["connector_id"],
        id_tag=row["id_tag"], parent_id_tag=row["parent_id_tag"],
        expiry=parse_iso(row["expiry"]), status=row["status"],
        charger_status=row["charger_status"], transaction_id=row["transaction_id"],
        created_at=parse_iso(row["created_at"]), updated_at=parse_iso(row["updated_at"]))


class AuthListMixin(SqliteBase):
    """Local lists as last accepted by each charger; reservations and their endings."""

    async def local_list(self, cp_id: str) -> LocalListRecord | None:
        row = await self._one("SELECT * FROM local_lists WHERE cp_id=?", (cp_id,))
        return None if row is None else _local_list(row)

    @_writes
    def save_local_list(self, db: Db, cp_id: str, version: int,
                        entries: dict[str, dict[str, Any]], out_of_date: bool,
                        now: datetime) -> None:
        """Keep what the charger accepted (version and entries) and whether more is due."""
        db.execute(
            "INSERT INTO local_lists (cp_id, version, entries, out_of_date, updated_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT (cp_id) DO UPDATE SET version=excluded.version,"
            " entries=excluded.entries, out_of_date=excluded.out_of_date,"
            " updated_at=excluded.updated_at",
            (cp_id, version, json.dumps(entries, sort_keys=True), int(out_of_date), _ts(now)))

    @_writes
    def mark_local_lists_out_of_date(self, db: Db, now: datetime) -> None:
        """The id tags changed: every list we keep is behind them."""
        db.execute("UPDATE local_lists SET out_of_date=1, updated_at=? WHERE out_of_date=0",
                   (_ts(now),))

    @_writes
    def add_reservation(self, db: Db, cp_id: str, connector_id: int | None, id_tag: str,
                        parent_id_tag: str | None, expiry: datetime,
                        now: datetime) -> ReservationRecord:
        """A new reservation, `requested`: its id is the reservationId sent to the charger."""
        cur = db.execute(
            "INSERT INTO reservations (cp_id, connector_id, id_tag, parent_id_tag, expiry,"
            " status, created_at, updated_at) VALUES (?,?,?,?,?,'requested',?,?)",
            (cp_id, connector_id, id_tag, parent_id_tag, _ts(expiry), _ts(now), _ts(now)))
        row = _one(db, "SELECT * FROM reservations WHERE id=?", (cur.lastrowid,))
        assert row is not None
        return _reservation(row)

    @_writes
    def set_reservation_status(self, db: Db, reservation_id: int, status: str,
                               now: datetime, *, cp_id: str | None = None,
                               charger_status: str | None = None,
                               transaction_id: str | None = None,
                               only_open: bool = False) -> ReservationRecord | None:
        """Set what became of a reservation (of `cp_id`, if given; only while it is still
        open with `only_open`); None when there is no such reservation to change."""
        where, params = "id=?", [reservation_id]
        if cp_id is not None:
            where, params = where + " AND cp_id=?", [*params, cp_id]
        if only_open:
            where, params = where + f" AND status IN ({_OPEN})", [*params, *OPEN_RESERVATION]
        cur = db.execute(
            "UPDATE reservations SET status=?, charger_status=coalesce(?, charger_status),"
            " transaction_id=coalesce(?, transaction_id), updated_at=?"
            f" WHERE {where}",
            (status, charger_status, transaction_id, _ts(now), *params))
        if cur.rowcount == 0:
            return None
        row = _one(db, "SELECT * FROM reservations WHERE id=?", (reservation_id,))
        return None if row is None else _reservation(row)

    @_writes
    def expire_reservations(self, db: Db, now: datetime) -> int:
        """Mark open reservations whose expiry has passed `expired`; how many were."""
        return db.execute(
            f"UPDATE reservations SET status='expired', updated_at=? WHERE status IN ({_OPEN})"
            " AND expiry <= ?", (_ts(now), *OPEN_RESERVATION, _ts(now))).rowcount

    async def get_reservation(self, reservation_id: int) -> ReservationRecord | None:
        row = await self._one("SELECT * FROM reservations WHERE id=?", (reservation_id,))
        return None if row is None else _reservation(row)

    async def list_reservations(self, cp_id: str | None = None,
                                open_only: bool = False) -> list[ReservationRecord]:
        """Reservations (of one charger, only open ones), newest first."""
        where: list[str] = []
        params: list[Any] = []
        if cp_id is not None:
            where.append("cp_id=?")
            params.append(cp_id)
        if open_only:
            where.append(f"status IN ({_OPEN})")
            params.extend(OPEN_RESERVATION)
        sql = "SELECT * FROM reservations" + (f" WHERE {' AND '.join(where)}" if where else "")
        return await self._all_as(sql + " ORDER BY id DESC", tuple(params), _reservation)

    async def all_id_tags(self) -> dict[str, dict[str, Any]]:
        """Every id tag as a local-list entry: tag -> status, expiry, parent, group."""
        rows = await self._all("SELECT id_tag, status, expiry, parent_id_tag, tag_group"
                               " FROM id_tags ORDER BY id_tag")
        return {r["id_tag"]: {k: v for k, v in (
            ("status", r["status"]), ("expiry", r["expiry"]), ("parent", r["parent_id_tag"]),
            ("group", r["tag_group"])) if v is not None} for r in rows}
