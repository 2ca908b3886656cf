"""SqliteStore's reports that stations send in parts, assembled per requestId."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

import aiosqlite

from csms.clock import parse_iso
from csms.store.base import StationReport
from csms.store.sqlite_base import Db, SqliteBase, _one, _ts, _writes


def _order(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parts by seqNo where the message has one (a stable sort keeps arrival order else)."""
    return sorted(parts, key=lambda p: p["seqNo"] if isinstance(p.get("seqNo"), int) else 0)


def _complete(parts: list[dict[str, Any]]) -> bool:
    """Whether the last part (tbc false) came and, where parts are numbered, none is missing
    before it: parts may overtake one another."""
    if not any(not p.get("tbc", False) for p in parts):
        return False
    numbers = {p["seqNo"] for p in parts if isinstance(p.get("seqNo"), int)}
    return not numbers or numbers == set(range(max(numbers) + 1))


def _report(row: aiosqlite.Row | sqlite3.Row) -> StationReport:
    return StationReport(
        cp_id=row["cp_id"], kind=row["kind"], request_id=row["request_id"],
        parts=json.loads(row["parts"]), complete=bool(row["complete"]),
        started_at=parse_iso(row["started_at"]), updated_at=parse_iso(row["updated_at"]),
    )


class ReportsMixin(SqliteBase):
    """Parts of 2.0.1 NotifyCustomerInformation / NotifyDisplayMessages, one row per report."""

    @_writes
    def add_report_part(self, db: Db, cp_id: str, kind: str, request_id: int,
                        part: dict[str, Any], now: datetime) -> StationReport:
        """Add `part` to the report it belongs to; a part numbered as one already kept is a
        repeat (the station missed our answer) and is kept once."""
        row = _one(db, "SELECT * FROM station_reports WHERE cp_id=? AND kind=? AND request_id=?"
                       " ORDER BY id DESC LIMIT 1", (cp_id, kind, request_id))
        parts: list[dict[str, Any]] = [] if row is None else json.loads(row["parts"])
        seq = part.get("seqNo")
        if row is not None and seq is not None and any(p.get("seqNo") == seq for p in parts):
            return _report(row)
        if row is None or row["complete"]:
            parts = [part]
            db.execute(
                "INSERT INTO station_reports (cp_id, kind, request_id, parts, complete,"
                " started_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                (cp_id, kind, request_id, json.dumps(parts), int(_complete(parts)), _ts(now),
                 _ts(now)))
            return StationReport(cp_id, kind, request_id, parts, _complete(parts), now, now)
        parts = _order([*parts, part])
        db.execute("UPDATE station_reports SET parts=?, complete=?, updated_at=? WHERE id=?",
                   (json.dumps(parts), int(_complete(parts)), _ts(now), row["id"]))
        return StationReport(cp_id, kind, request_id, parts, _complete(parts),
                             parse_iso(row["started_at"]), now)

    async def station_reports(self, cp_id: str, kind: str,
                              request_id: int | None = None) -> list[StationReport]:
        """The station's reports of `kind` (for one requestId if given), oldest first."""
        where, params = "cp_id=? AND kind=?", (cp_id, kind)
        if request_id is not None:
            where, params = where + " AND request_id=?", (*params, request_id)
        return await self._all_as(f"SELECT * FROM station_reports WHERE {where} ORDER BY id",
                                  params, _report)
