"""SqliteStore's webhooks (secrets stored sealed) and their outbox of plan deliveries.

Rows reach the outbox through a trigger on `plans` (migration 9), in the plan's own write.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from csms.clock import parse_iso
from csms.store.base import OutboxRecord, WebhookRecord
from csms.store.sqlite_base import Db, SqliteBase, _dt, _ts, _writes


def _outbox(row: aiosqlite.Row) -> OutboxRecord:
    return OutboxRecord(
        id=row["id"], site_id=row["site_id"], plan_id=row["plan_id"], status=row["status"],
        attempts=row["attempts"], next_attempt_at=parse_iso(row["next_attempt_at"]),
        last_status=row["last_status"], last_error=row["last_error"],
        gone=None if row["gone"] is None else json.loads(row["gone"]),
        created_at=parse_iso(row["created_at"]), finished_at=_dt(row["finished_at"]),
        body=row["body"])


class WebhooksMixin(SqliteBase):
    """Webhooks by site and the durable outbox of their deliveries."""

    @_writes
    def put_webhook(self, db: Db, site_id: str, url: str, sealed_secret: str,
                    now: datetime) -> None:
        db.execute(
            "INSERT INTO webhooks (site_id, url, secret, updated_at) VALUES (?,?,?,?)"
            " ON CONFLICT (site_id) DO UPDATE SET url = excluded.url,"
            " secret = excluded.secret, updated_at = excluded.updated_at",
            (site_id, url, sealed_secret, _ts(now)))

    @_writes
    def delete_webhook(self, db: Db, site_id: str) -> bool:
        """Remove a site's webhook; deliveries still pending for it are cancelled."""
        cur = db.execute("DELETE FROM webhooks WHERE site_id = ?", (site_id,))
        db.execute("UPDATE webhook_outbox SET status = 'cancelled' WHERE site_id = ?"
                   " AND status = 'pending'", (site_id,))
        return cur.rowcount > 0

    async def list_webhooks(self) -> list[WebhookRecord]:
        rows = await self._all("SELECT * FROM webhooks ORDER BY site_id")
        return [WebhookRecord(r["site_id"], r["url"], r["secret"], parse_iso(r["updated_at"]))
                for r in rows]

    async def pending_outbox_heads(self) -> list[OutboxRecord]:
        """The oldest pending delivery of each site (a site's plans go out in order)."""
        rows = await self._all(
            "SELECT o.* FROM webhook_outbox o JOIN (SELECT min(id) AS id FROM webhook_outbox"
            " WHERE status = 'pending' GROUP BY site_id) h ON h.id = o.id ORDER BY o.id")
        return [_outbox(r) for r in rows]

    async def get_outbox(self, outbox_id: int) -> OutboxRecord | None:
        row = await self._one("SELECT * FROM webhook_outbox WHERE id = ?", (outbox_id,))
        return None if row is None else _outbox(row)

    async def list_outbox(self, site_id: str | None = None,
                          limit: int = 100) -> list[OutboxRecord]:
        """Deliveries, newest first."""
        where, params = ("WHERE site_id = ?", (site_id,)) if site_id else ("", ())
        rows = await self._all(f"SELECT * FROM webhook_outbox {where} ORDER BY id DESC LIMIT ?",
                               (*params, limit))
        return [_outbox(r) for r in rows]

    @_writes
    def finish_outbox(self, db: Db, outbox_id: int, status: str, last_status: int | None,
                      last_error: str | None, gone: list[list[Any]] | None,
                      now: datetime, attempted: bool = True) -> None:
        """Settle a delivery; `attempted` False when nothing was sent (nothing to send)."""
        db.execute(
            "UPDATE webhook_outbox SET status = ?, attempts = attempts + ?, last_status = ?,"
            " last_error = ?, gone = ?, finished_at = ? WHERE id = ?",
            (status, int(attempted), last_status, last_error,
             None if gone is None else json.dumps(gone), _ts(now), outbox_id))

    @_writes
    def retry_outbox(self, db: Db, outbox_id: int, next_attempt_at: datetime,
                     last_status: int | None, last_error: str | None) -> None:
        db.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?,"
            " last_status = ?, last_error = ? WHERE id = ?",
            (_ts(next_attempt_at), last_status, last_error, outbox_id))

    async def get_plan(self, plan_id: int) -> dict[str, Any] | None:
        """One plan record (as `list_plans` gives them), or None once pruned."""
        row = await self._one("SELECT * FROM plans WHERE id = ?", (plan_id,))
        if row is None:
            return None
        plan = dict(row)
        plan["inputs"] = json.loads(plan["inputs"])
        plan["result"] = json.loads(plan["result"])
        return plan

    @_writes
    def prune_outbox(self, db: Db, older_than: datetime) -> int:
        """Forget finished deliveries older than the cutoff (pending ones are kept)."""
        cur = db.execute("DELETE FROM webhook_outbox WHERE created_at < ?"
                         " AND status != 'pending'", (_ts(older_than),))
        return cur.rowcount
