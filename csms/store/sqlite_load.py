"""SqliteStore's load management records: plans, sites, charger models, external limits."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from csms.store.sqlite_base import Db, SqliteBase, _ts, _writes


class LoadMixin(SqliteBase):
    """Plans, site specs, per-model records and external limits (JSON documents by key)."""

    @_writes
    def record_plan(self, db: Db, site_id: str, ts: datetime, trigger: str,
                    limit_kw: float | None, limit_a: float | None, source: str,
                    solver_status: str, solve_time_s: float, inputs: dict[str, Any],
                    result: dict[str, Any]) -> int:
        cur = db.execute(
            "INSERT INTO plans (site_id, ts, trigger, limit_kw, limit_a, limit_source,"
            " solver_status, solve_time_s, inputs, result) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (site_id, _ts(ts), trigger, limit_kw, limit_a, source, solver_status,
             solve_time_s, json.dumps(inputs), json.dumps(result)),
        )
        return int(cur.lastrowid or 0)

    async def list_plans(self, site_id: str | None = None, limit: int = 100) -> list[dict]:
        where, params = ("WHERE site_id=?", (site_id,)) if site_id else ("", ())
        rows = await self._all(
            f"SELECT * FROM plans {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        out = []
        for r in rows:
            d = dict(r)
            d["inputs"] = json.loads(d["inputs"])
            d["result"] = json.loads(d["result"])
            out.append(d)
        return out

    @_writes
    def _put_document(self, db: Db, table: str, key_column: str, doc_column: str, key: str,
                      doc: dict[str, Any], now: datetime) -> None:
        """Insert or replace a JSON document by key (`table` and columns are our constants)."""
        db.execute(
            f"INSERT INTO {table} ({key_column}, {doc_column}, updated_at) VALUES (?,?,?)"
            f" ON CONFLICT ({key_column}) DO UPDATE SET {doc_column}=excluded.{doc_column},"
            " updated_at=excluded.updated_at",
            (key, json.dumps(doc, sort_keys=True), _ts(now)),
        )

    async def save_site(self, site_id: str, spec: dict[str, Any], now: datetime) -> None:
        await self._put_document("sites", "id", "spec", site_id, spec, now)

    async def list_sites(self) -> list[dict[str, Any]]:
        rows = await self._all("SELECT spec FROM sites ORDER BY id")
        return [json.loads(r["spec"]) for r in rows]

    async def save_model_record(self, model_key: str, record: dict[str, Any],
                                now: datetime) -> None:
        await self._put_document("charger_models", "model_key", "record", model_key, record, now)

    async def list_model_records(self) -> dict[str, dict[str, Any]]:
        rows = await self._all("SELECT model_key, record FROM charger_models")
        return {r["model_key"]: json.loads(r["record"]) for r in rows}

    @_writes
    def add_external_limit(self, db: Db, node_id: str, power_kw: float | None,
                           current_a: float | None, start: datetime | None,
                           end: datetime, now: datetime) -> int:
        cur = db.execute(
            "INSERT INTO external_limits (node_id, power_kw, current_a, start, end,"
            " created_at) VALUES (?,?,?,?,?,?)",
            (node_id, power_kw, current_a, _ts(start), _ts(end), _ts(now)),
        )
        return int(cur.lastrowid or 0)

    async def list_external_limits(self, active_at: datetime | None = None) -> list[dict]:
        if active_at is None:
            rows = await self._all("SELECT * FROM external_limits ORDER BY id")
        else:
            rows = await self._all(
                "SELECT * FROM external_limits WHERE end > ? ORDER BY id", (_ts(active_at),)
            )
        return [dict(r) for r in rows]
