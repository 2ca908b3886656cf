"""SqliteStore's alerts (csms.alerts): one row per alert, updated in place; a webhook delivery
of an alert rides in the same write as the alert (an outbox row with the body to POST)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from csms.clock import parse_iso
from csms.store.base import AlertQuery, AlertRecord
from csms.store.sqlite_base import TOTAL_ROWS, Db, SqliteBase, _dt, _ts, _writes

COLUMNS = ("uuid", "key", "site_id", "node_id", "cp_id", "connector_id", "name", "category",
           "urgency", "status", "description", "details", "notes", "start", "end", "updated_at")
# The document's urgency order, so that `urgency:desc` puts Very High first.
URGENCY_RANK = ("CASE urgency WHEN 'Very High' THEN 5 WHEN 'High' THEN 4 WHEN 'Medium' THEN 3"
                " WHEN 'Low' THEN 2 ELSE 1 END")
SORT_COLUMNS = {"start": "start", "end": "\"end\"", "urgency": URGENCY_RANK, "name": "name"}


def _alert(row: aiosqlite.Row) -> AlertRecord:
    return AlertRecord(
        uuid=row["uuid"], key=row["key"], site_id=row["site_id"], node_id=row["node_id"],
        cp_id=row["cp_id"], connector_id=row["connector_id"], name=row["name"],
        category=row["category"], urgency=row["urgency"], status=row["status"],
        description=row["description"], details=json.loads(row["details"]),
        notes=row["notes"], start=parse_iso(row["start"]), end=_dt(row["end"]),
        updated_at=parse_iso(row["updated_at"]))


def _any_of(column: str, values: tuple[Any, ...], where: list[str], params: list[Any]) -> None:
    if values:
        where.append(f"{column} IN ({','.join('?' * len(values))})")
        params.extend(values)


class AlertsMixin(SqliteBase):
    """Alerts and their webhook deliveries."""

    @_writes
    def put_alert(self, db: Db, alert: AlertRecord, delivery: str | None = None) -> None:
        """Insert or update `alert` (by uuid); queue `delivery` if its site has a webhook."""
        values = (alert.uuid, alert.key, alert.site_id, alert.node_id, alert.cp_id,
                  alert.connector_id, alert.name, alert.category, alert.urgency, alert.status,
                  alert.description, json.dumps(alert.details), alert.notes, _ts(alert.start),
                  _ts(alert.end), _ts(alert.updated_at))
        names = ", ".join(f'"{c}"' for c in COLUMNS)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in COLUMNS if c != "uuid")
        db.execute(f"INSERT INTO alerts ({names}) VALUES ({','.join('?' * len(COLUMNS))})"
                   f" ON CONFLICT (uuid) DO UPDATE SET {updates}", values)
        if delivery is not None and alert.site_id is not None:
            now = _ts(alert.updated_at)
            db.execute(
                "INSERT INTO webhook_outbox (site_id, plan_id, body, next_attempt_at, created_at)"
                " SELECT ?, 0, ?, ?, ? WHERE EXISTS (SELECT 1 FROM webhooks WHERE site_id = ?)",
                (alert.site_id, delivery, now, now, alert.site_id))

    async def get_alert(self, alert_uuid: str) -> AlertRecord | None:
        row = await self._one("SELECT * FROM alerts WHERE uuid = ?", (alert_uuid,))
        return None if row is None else _alert(row)

    async def open_alerts(self) -> list[AlertRecord]:
        """Every alert not yet resolved, oldest first (the alerts service's memory at start)."""
        return await self._all_as('SELECT * FROM alerts WHERE "end" IS NULL ORDER BY id', (),
                                  _alert)

    async def list_alerts(self, query: AlertQuery) -> tuple[list[AlertRecord], int]:
        """One page of the alerts overlapping the query's window, and how many match."""
        where = ['start <= ?', '("end" IS NULL OR "end" >= ?)']
        params: list[Any] = [_ts(query.end), _ts(query.start)]
        if query.site_ids or query.node_ids:
            places = [f"{col} IN ({','.join('?' * len(ids))})"
                      for col, ids in (("site_id", query.site_ids), ("node_id", query.node_ids))
                      if ids]
            where.append(f"({' OR '.join(places)})")
            params.extend([*query.site_ids, *query.node_ids])
        if query.cp_id is not None:
            where.append("cp_id = ?")
            params.append(query.cp_id)
        if query.connector_id is not None:
            where.append("connector_id = ?")
            params.append(query.connector_id)
        _any_of("name", query.names, where, params)
        _any_of("category", query.categories, where, params)
        _any_of("urgency", query.urgencies, where, params)
        _any_of("status", query.statuses, where, params)
        clause = " AND ".join(where)
        order = [f"{SORT_COLUMNS[f]} {'DESC' if d == 'desc' else 'ASC'}" for f, d in query.sort]
        order = order or ["start DESC"]
        rows, total = await self._page(
            f"SELECT *, {TOTAL_ROWS} FROM alerts WHERE {clause}"
            f" ORDER BY {', '.join(order)}, id DESC", f"SELECT count(*) FROM alerts WHERE {clause}",
            tuple(params), query.limit, query.offset)
        return await self._as(rows, _alert), total

    @_writes
    def prune_alerts(self, db: Db, older_than: datetime) -> int:
        """Forget alerts resolved before the cutoff (open ones are kept however old)."""
        cur = db.execute('DELETE FROM alerts WHERE "end" IS NOT NULL AND "end" < ?',
                         (_ts(older_than),))
        return cur.rowcount
