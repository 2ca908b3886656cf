"""SqliteStore's side of the OCPP message API: the frame log paged in SQL, relayed messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from csms.clock import parse_iso
from csms.store.base import CommandRecord, FrameQuery, LoggedFrame, RelayRecord
from csms.store.sqlite_base import TOTAL_ROWS, Db, SqliteBase, _dt, _ts, _writes

# The action of an inbound reply is not on the wire: it is that of our CALL it answers.
_CALL_OF_REPLY = ("SELECT c.action FROM frames c WHERE c.cp_id = f.cp_id"
                  " AND c.unique_id = f.unique_id AND c.direction = 'out'"
                  " AND c.message_type = 2 LIMIT 1")

# Sort keys: each ends with the row id so that pages never overlap or skip a row.
_ORDER = {
    "timestamp": "f.ts {d}, f.id {d}",
    "chargepoint": "f.cp_id {d}, f.ts {d}, f.id {d}",
    # Sources by name: AmpCMS (our frames, out) before Charger (in).
    "source": "f.direction = 'in' {d}, f.ts {d}, f.id {d}",
    "operationType": "f.action {d}, f.ts {d}, f.id {d}",
}


def _bound(dt: datetime) -> str:
    """A time as the frame log writes it (aware UTC isoformat), so text order is time order."""
    return dt.astimezone(UTC).isoformat()


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _marks(values: tuple[Any, ...]) -> str:
    return ",".join("?" * len(values))


def _where(q: FrameQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of `q` and its parameters; every value is bound, none is spliced."""
    clauses: list[str] = []
    params: list[Any] = []
    if q.cp_ids is not None:
        clauses.append(f"f.cp_id IN ({_marks(q.cp_ids)})" if q.cp_ids else "0")
        params += q.cp_ids
    if q.directions is not None:
        clauses.append(f"f.direction IN ({_marks(q.directions)})" if q.directions else "0")
        params += q.directions
    if q.message_type is not None:
        clauses.append("f.message_type = ?")
        params.append(q.message_type)
    if q.actions is not None:
        if not q.actions:
            clauses.append("0")
        else:
            marks = _marks(q.actions)
            clauses.append(
                f"(f.action IN ({marks}) OR (f.action IS NULL AND f.direction = 'in'"
                " AND f.message_type IN (3, 4) AND EXISTS (SELECT 1 FROM frames c"
                " WHERE c.cp_id = f.cp_id AND c.unique_id = f.unique_id"
                f" AND c.direction = 'out' AND c.message_type = 2 AND c.action IN ({marks}))))")
            params += [*q.actions, *q.actions]
    if q.protocol is not None:
        clauses.append("f.cp_id IN (SELECT cp_id FROM charge_points WHERE protocol = ?)")
        params.append(q.protocol)
    if q.start is not None:
        clauses.append("f.ts >= ?")
        params.append(_bound(q.start))
    if q.end is not None:
        clauses.append("f.ts <= ?")
        params.append(_bound(q.end))
    if q.search:
        clauses.append("(f.cp_id LIKE ? ESCAPE '\\' OR f.action LIKE ? ESCAPE '\\')")
        params += [_like(q.search), _like(q.search)]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _relay(row: aiosqlite.Row) -> RelayRecord:
    return RelayRecord(
        id=row["id"], uuid=row["uuid"], cp_id=row["cp_id"], protocol=row["protocol"],
        action=row["action"], unique_id=row["unique_id"], payload=json.loads(row["payload"]),
        source=row["source"], url=row["url"], send=bool(row["send"]), status=row["status"],
        command_id=row["command_id"],
        reply=None if row["reply"] is None else json.loads(row["reply"]),
        created_at=parse_iso(row["created_at"]), updated_at=parse_iso(row["updated_at"]))


class RelayMixin(SqliteBase):
    """The frame log as the HTTP API lists it; messages relayed to chargers and their fate."""

    async def page_frames(self, query: FrameQuery, limit: int,
                          offset: int) -> tuple[list[LoggedFrame], int]:
        """One page of the frames `query` matches, and how many match in all."""
        where, params = _where(query)
        order = _ORDER[query.sort].format(d="DESC" if query.descending else "ASC")
        rows, total = await self._page(
            f"SELECT f.*, coalesce(f.action, ({_CALL_OF_REPLY})) AS operation, cp.protocol,"
            f" {TOTAL_ROWS} FROM frames f LEFT JOIN charge_points cp ON cp.cp_id = f.cp_id"
            f"{where} ORDER BY {order}", f"SELECT count(*) FROM frames f{where}",
            tuple(params), limit, offset)
        return [LoggedFrame(r["id"], parse_iso(r["ts"]), r["cp_id"], r["direction"],
                            r["message_type"], r["unique_id"], r["operation"], r["text"],
                            r["protocol"]) for r in rows], total

    async def stored_charge_point_ids(self) -> list[str]:
        """Every charger with a record (booted or registered)."""
        return [r["cp_id"] for r in await self._all("SELECT cp_id FROM charge_points")]

    async def get_command(self, command_id: int) -> CommandRecord | None:
        r = await self._one("SELECT * FROM commands WHERE id = ?", (command_id,))
        if r is None:
            return None
        return CommandRecord(
            id=r["id"], cp_id=r["cp_id"], action=r["action"], payload=json.loads(r["payload"]),
            status=r["status"],
            response=None if r["response"] is None else json.loads(r["response"]),
            created_at=parse_iso(r["created_at"]), answered_at=_dt(r["answered_at"]))

    async def add_relay_message(self, uuid: str, cp_id: str, protocol: str, action: str,
                                unique_id: str, payload: dict[str, Any], source: str,
                                url: str | None, send: bool, status: str,
                                now: datetime) -> RelayRecord:
        """Store a message given for a charger (committed when this returns)."""
        row_id = await self._add_relay_message(uuid, cp_id, protocol, action, unique_id,
                                               payload, source, url, send, status, now)
        return RelayRecord(row_id, uuid, cp_id, protocol, action, unique_id, payload, source,
                           url, send, status, None, None, now, now)

    @_writes
    def _add_relay_message(self, db: Db, uuid: str, cp_id: str, protocol: str, action: str,
                           unique_id: str, payload: dict[str, Any], source: str,
                           url: str | None, send: bool, status: str, now: datetime) -> int:
        cur = db.execute(
            "INSERT INTO relay_messages (uuid, cp_id, protocol, action, unique_id, payload,"
            " source, url, send, status, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (uuid, cp_id, protocol, action, unique_id, json.dumps(payload), source, url,
             int(send), status, _ts(now), _ts(now)))
        return int(cur.lastrowid or 0)

    @_writes
    def update_relay_message(self, db: Db, uuid: str, status: str, command_id: int | None,
                             reply: list[Any] | None, now: datetime) -> None:
        db.execute(
            "UPDATE relay_messages SET status = ?, command_id = coalesce(?, command_id),"
            " reply = ?, updated_at = ? WHERE uuid = ?",
            (status, command_id, None if reply is None else json.dumps(reply), _ts(now), uuid))

    async def get_relay_message(self, uuid: str) -> RelayRecord | None:
        row = await self._one("SELECT * FROM relay_messages WHERE uuid = ?", (uuid,))
        return None if row is None else _relay(row)

    async def queued_relay_messages(self, cp_id: str) -> list[RelayRecord]:
        """The messages waiting for `cp_id` to connect, oldest first."""
        rows = await self._all("SELECT * FROM relay_messages WHERE cp_id = ?"
                               " AND status = 'queued' ORDER BY id", (cp_id,))
        return [_relay(r) for r in rows]

    async def cp_ids_with_queued_messages(self) -> list[str]:
        rows = await self._all("SELECT DISTINCT cp_id FROM relay_messages"
                               " WHERE status = 'queued'")
        return [r["cp_id"] for r in rows]

    @_writes
    def fail_interrupted_relay_messages(self, db: Db, now: datetime) -> int:
        """Messages a previous run was sending when it stopped: the charger may or may not
        have them, so they are not sent again (a second Reset is not harmless)."""
        cur = db.execute(
            "UPDATE relay_messages SET status = 'failed', updated_at = ?"
            " WHERE status = 'sending'", (_ts(now),))
        return cur.rowcount
