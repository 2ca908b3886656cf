"""SqliteStore's outbound commands, the frame log's reads and pruning by age."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from csms.clock import parse_iso
from csms.store.base import CommandRecord, FrameRecord
from csms.store.sqlite_base import Db, SqliteBase, _dt, _ts, _writes


class CommandsMixin(SqliteBase):
    """Commands sent to chargers and their answers; the frame log; retention."""

    @_writes
    def abandon_pending_commands(self, db: Db, now: datetime) -> int:
        """Commands a previous run left waiting (it was killed) will never get an answer."""
        cur = db.execute(
            "UPDATE commands SET status='failed', response=?, answered_at=?"
            " WHERE status='pending'",
            (json.dumps({"error": "interrupted: the CSMS stopped before the answer"}),
             _ts(now)))
        return cur.rowcount

    @_writes
    def record_command(self, db: Db, cp_id: str, action: str, payload: dict[str, Any],
                       now: datetime) -> int:
        cur = db.execute(
            "INSERT INTO commands (cp_id, action, payload, status, created_at)"
            " VALUES (?,?,?,'pending',?)",
            (cp_id, action, json.dumps(payload), _ts(now)),
        )
        return int(cur.lastrowid or 0)

    @_writes
    def finish_command(self, db: Db, command_id: int, status: str,
                       response: dict[str, Any] | None, now: datetime) -> None:
        db.execute(
            "UPDATE commands SET status=?, response=?, answered_at=? WHERE id=?",
            (status, None if response is None else json.dumps(response), _ts(now),
             command_id),
        )

    async def list_commands(self, cp_id: str | None = None,
                            limit: int = 100) -> list[CommandRecord]:
        where, params = ("WHERE cp_id=?", (cp_id,)) if cp_id else ("", ())
        rows = await self._all(
            f"SELECT * FROM commands {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [
            CommandRecord(
                id=r["id"], cp_id=r["cp_id"], action=r["action"], payload=json.loads(r["payload"]),
                status=r["status"],
                response=None if r["response"] is None else json.loads(r["response"]),
                created_at=parse_iso(r["created_at"]), answered_at=_dt(r["answered_at"]),
            )
            for r in rows
        ]

    async def list_frames(self, cp_id: str | None = None, limit: int = 100) -> list[FrameRecord]:
        where, params = ("WHERE cp_id=?", (cp_id,)) if cp_id else ("", ())
        rows = await self._all(
            f"SELECT * FROM frames {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [
            FrameRecord(parse_iso(r["ts"]), r["cp_id"], r["direction"], r["message_type"],
                        r["unique_id"], r["action"], r["text"])
            for r in rows
        ]

    async def prune_frames(self, older_than: datetime) -> int:
        return await self._prune("frames", "ts", older_than)

    async def prune_plans(self, older_than: datetime) -> int:
        return await self._prune("plans", "ts", older_than)

    async def prune_commands(self, older_than: datetime) -> int:
        # A command still waiting for its answer is kept however old it is.
        return await self._prune("commands", "created_at", older_than,
                                 " AND status != 'pending'")

    @_writes
    def _prune(self, db: Db, table: str, column: str, older_than: datetime,
               extra: str = "") -> int:
        """Delete rows of `table` older than the cutoff (`table` and `column` are constants)."""
        cur = db.execute(f"DELETE FROM {table} WHERE {column} < ?{extra}", (_ts(older_than),))
        return cur.rowcount
