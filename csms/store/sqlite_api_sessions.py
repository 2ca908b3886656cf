"""SqliteStore's HTTP session view: sessions with what the API added, meter values and plan
results, each listed a page at a time in SQL (COUNT for the total)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from csms.clock import parse_iso
from csms.store.base import (
    ApiSessionRecord,
    MeterQuery,
    MeterValueRecord,
    PlanResultRecord,
    SessionQuery,
)
from csms.store.sqlite_base import TOTAL_ROWS, Db, SqliteBase, _dt, _one, _ts, _writes
from csms.store.sqlite_sessions import stored_cost

# Energy of a session in kWh: the charger's start/stop meter, else the register readings.
ENERGY = ("max(0.0, coalesce((coalesce(s.meter_stop_wh, s.last_energy_wh)"
          " - coalesce(s.meter_start_wh, s.first_energy_wh)) / 1000.0, 0.0))")
# Seconds charged so far (`?` is now, for open sessions).
# Rounded to the millisecond: julianday's float noise put exactly 300 s below 300.
DURATION = "round((julianday(coalesce(s.stopped_at, ?)) - julianday(s.started_at)) * 86400.0, 3)"
UPDATED = "max(s.started_at, coalesce(s.stopped_at, ''), coalesce(d.updated_at, ''))"
PRIORITY = "coalesce(d.priority, 3)"
SORT_COLUMNS = {
    "chargerName": "s.cp_id",
    "connectorId": "s.connector_id",
    "connectorName": "s.cp_id || '/' || printf('%06d', s.connector_id)",
    "chargingDuration": DURATION,
    "energyConsumption": ENERGY,
    "idTag": "s.id_tag",
    "isActive": "(s.stopped_at IS NULL)",
    "priority": PRIORITY,
    "sessionEnd": "s.stopped_at",
    "sessionStart": "s.started_at",
    "vehicleName": "d.vehicle_id",
}
SESSION_FROM = (" FROM sessions s LEFT JOIN session_details d ON d.session_id = s.id"
                " LEFT JOIN connectors c ON c.cp_id = s.cp_id AND c.connector_id = s.connector_id")
DETAIL_COLUMNS = ("source", "charging_rate_unit", "energy_to_charge_kwh", "departure",
                  "priority", "vehicle_id", "max_power_kw", "payment_info", "remote_stop",
                  "start_soc")


def _json_list(values: Any) -> str:
    return json.dumps(list(values))


def _session(r: aiosqlite.Row) -> ApiSessionRecord:
    remote = r["remote_stop"]
    return ApiSessionRecord(
        id=r["id"], cp_id=r["cp_id"], connector_id=r["connector_id"],
        ocpp_tx_id=r["ocpp_tx_id"], id_tag=r["id_tag"],
        started_at=parse_iso(r["started_at"]), stopped_at=_dt(r["stopped_at"]),
        meter_start_wh=r["meter_start"], meter_stop_wh=r["meter_stop"],
        energy_kwh=round(r["energy"], 6), stop_reason=r["stop_reason"],
        source=r["source"] or "ocpp", status=r["status"],
        charging_rate_unit=r["charging_rate_unit"] or "W",
        energy_to_charge_kwh=r["energy_to_charge_kwh"], departure=_dt(r["departure"]),
        priority=r["priority"], vehicle_id=r["vehicle_id"], max_power_kw=r["max_power_kw"],
        payment_info=r["payment_info"], remote_stop=None if remote is None else bool(remote),
        start_soc=r["start_soc"], updated_at=_dt(r["updated"]), cost=stored_cost(r),
    )


def _session_where(q: SessionQuery) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) for the filters of `q`."""
    where: list[str] = []
    params: list[Any] = []

    def cond(sql: str, *values: Any) -> None:
        where.append(sql)
        params.extend(values)

    if q.cp_ids is not None:
        cond("s.cp_id IN (SELECT value FROM json_each(?))", _json_list(q.cp_ids))
    if q.connectors is not None:
        cond("(s.cp_id || '/' || s.connector_id) IN (SELECT value FROM json_each(?))",
             _json_list(f"{cp}/{n}" for cp, n in q.connectors))
    if q.session_ids is not None:
        cond("s.id IN (SELECT value FROM json_each(?))", _json_list(q.session_ids))
    if q.vehicles is not None:
        cond("d.vehicle_id IN (SELECT value FROM json_each(?))", _json_list(q.vehicles))
    if q.statuses is not None:
        cond("c.status IN (SELECT value FROM json_each(?))", _json_list(q.statuses))
    if q.id_tags is not None:
        cond("s.id_tag IN (SELECT value FROM json_each(?))", _json_list(q.id_tags))
    if q.transaction_id is not None:
        cond("s.ocpp_tx_id = ?", q.transaction_id)
    if q.active is not None:
        cond("s.stopped_at IS NULL" if q.active else "s.stopped_at IS NOT NULL")
    if q.priorities is not None:
        cond(f"{PRIORITY} IN (SELECT value FROM json_each(?))", _json_list(q.priorities))
    if q.ended_after is not None:
        cond("(s.stopped_at IS NULL OR s.stopped_at >= ?)", _ts(q.ended_after))
    if q.started_before is not None:
        cond("s.started_at <= ?", _ts(q.started_before))
    if q.updated_since is not None:
        cond(f"{UPDATED} >= ?", _ts(q.updated_since))
    if q.search:
        like = f"%{q.search.replace('%', '').replace('_', '')}%"
        cond("(s.cp_id LIKE ? OR CAST(s.connector_id AS TEXT) = ? OR s.id_tag LIKE ?"
             " OR d.vehicle_id LIKE ? OR s.ocpp_tx_id = ?"
             " OR s.id IN (SELECT value FROM json_each(?)))",
             like, q.search, like, like, q.search, _json_list(q.search_ids))
    for expr, (low, high) in ((DURATION, q.duration_s), (ENERGY, q.energy_kwh)):
        needs_now = expr is DURATION
        if low is not None:
            cond(f"{expr} >= ?", *((_ts(q.now),) if needs_now else ()), low)
        if high is not None:
            cond(f"{expr} < ?", *((_ts(q.now),) if needs_now else ()), high)
    return where, params


# The charge point of a plan result's key "cp/n" (the key less its trailing number and slash).
_KEY_CP = "rtrim(rtrim(j.key, '0123456789'), '/')"
# A result in force: from the newest plan of its site, for a session still open (a site whose
# last session ended plans no more, so its last plan stays the newest).
IN_FORCE = ("(p.id = (SELECT max(id) FROM plans q WHERE q.site_id = p.site_id) AND EXISTS ("
            f"SELECT 1 FROM sessions s WHERE s.cp_id = {_KEY_CP} AND s.stopped_at IS NULL"
            " AND s.ocpp_tx_id = CAST(json_extract(j.value, '$.transaction_id') AS TEXT)))")
# A connector counted at its draw (it did not or may not follow a limit) has no limit of ours
# to show: its counted draw, given as an optimization, could exceed the network's limit.
NOT_PINNED = "NOT coalesce(json_extract(j.value, '$.pinned'), 0)"


class ApiSessionsMixin(SqliteBase):
    """Sessions as the HTTP view pages them; what the API adds; API-created sessions."""

    def _select_sessions(self, extra: str = "") -> str:
        return (f"SELECT {extra}s.*, {ENERGY} AS energy, {UPDATED} AS updated,"
                " coalesce(s.meter_start_wh, s.first_energy_wh) AS meter_start,"
                " coalesce(s.meter_stop_wh, s.last_energy_wh) AS meter_stop, c.status,"
                " d.source, d.charging_rate_unit, d.energy_to_charge_kwh, d.departure,"
                " d.priority, d.vehicle_id, d.max_power_kw, d.payment_info, d.remote_stop,"
                f" d.start_soc {SESSION_FROM}")

    async def page_api_sessions(self, query: SessionQuery, limit: int,
                                offset: int) -> tuple[list[ApiSessionRecord], int]:
        """One page of the sessions matching `query`, and how many match in all."""
        where, params = _session_where(query)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order: list[str] = []
        order_params: list[Any] = []
        for name, desc in query.sort:
            order.append(f"{SORT_COLUMNS[name]} {'DESC' if desc else 'ASC'}")
            if SORT_COLUMNS[name] is DURATION:
                order_params.append(_ts(query.now))
        order.append("s.id DESC")
        rows, total = await self._page(
            f"{self._select_sessions(TOTAL_ROWS + ', ')}{clause} ORDER BY {', '.join(order)}",
            f"SELECT count(*) {SESSION_FROM}{clause}", (*params, *order_params), limit, offset,
            tuple(params))
        return [_session(r) for r in rows], total

    async def _session_where_one(self, sql: str, params: tuple[Any, ...]
                                 ) -> ApiSessionRecord | None:
        rows = await self._all(f"{self._select_sessions()} WHERE {sql}", params)
        return _session(rows[0]) if rows else None

    async def get_api_session(self, session_id: int) -> ApiSessionRecord | None:
        return await self._session_where_one("s.id = ?", (session_id,))

    async def open_session_on(self, cp_id: str, connector_id: int) -> ApiSessionRecord | None:
        """The newest open session on a connector (an OCPP transaction or an API session)."""
        return await self._session_where_one(
            "s.cp_id = ? AND s.connector_id = ? AND s.stopped_at IS NULL"
            " ORDER BY s.id DESC LIMIT 1", (cp_id, connector_id))

    async def open_session_of_vehicle(self, vehicle_id: str) -> ApiSessionRecord | None:
        return await self._session_where_one(
            "d.vehicle_id = ? AND s.stopped_at IS NULL ORDER BY s.id DESC LIMIT 1",
            (vehicle_id,))

    async def open_session_details(self) -> list[ApiSessionRecord]:
        """Open sessions the API said something about (restored into the planner at start)."""
        rows = await self._all(f"{self._select_sessions()} WHERE s.stopped_at IS NULL"
                               " AND d.session_id IS NOT NULL ORDER BY s.id")
        return [_session(r) for r in rows]

    async def max_session_id(self) -> int:
        row = await self._one("SELECT max(id) FROM sessions")
        return int(row[0] or 0) if row else 0

    @staticmethod
    def _upsert_details(db: Db, session_id: int, fields: dict[str, Any], now: datetime) -> None:
        unknown = set(fields) - set(DETAIL_COLUMNS)
        if unknown:
            raise ValueError(f"not session details: {sorted(unknown)}")
        values = {k: _ts(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        db.execute("INSERT OR IGNORE INTO session_details (session_id, created_at, updated_at)"
                   " VALUES (?,?,?)", (session_id, _ts(now), _ts(now)))
        sets = ", ".join(f"{k}=?" for k in values)
        db.execute(f"UPDATE session_details SET {sets}{', ' if sets else ''}updated_at=?"
                   " WHERE session_id=?", (*values.values(), _ts(now), session_id))

    @_writes
    def save_session_details(self, db: Db, session_id: int, fields: dict[str, Any],
                             now: datetime) -> None:
        """Set what the API says about a session (columns of DETAIL_COLUMNS)."""
        self._upsert_details(db, session_id, fields, now)

    @_writes
    def forget_session_details(self, db: Db, session_id: int) -> None:
        db.execute("DELETE FROM session_details WHERE session_id=?", (session_id,))

    @_writes
    def start_api_session(self, db: Db, cp_id: str, connector_id: int, ocpp_tx_id: str | None,
                          id_tag: str | None, started_at: datetime,
                          meter_start_wh: float | None, fields: dict[str, Any],
                          now: datetime) -> int:
        """Open a session created through the API; its id. Without a transaction id it is
        stored as "api-<id>" (never a number, so never an OCPP 1.6 id of ours)."""
        cur = db.execute(
            "INSERT INTO sessions (cp_id, connector_id, ocpp_tx_id, id_tag, started_at,"
            " meter_start_wh) VALUES (?,?,?,?,?,?)",
            (cp_id, connector_id, ocpp_tx_id, id_tag, _ts(started_at), meter_start_wh))
        session_id = int(cur.lastrowid or 0)
        if ocpp_tx_id is None:
            db.execute("UPDATE sessions SET ocpp_tx_id=? WHERE id=?",
                       (f"api-{session_id}", session_id))
        self._upsert_details(db, session_id, {**fields, "source": "api"}, now)
        return session_id

    @_writes
    def end_api_session(self, db: Db, session_id: int, stopped_at: datetime,
                        meter_stop_wh: float | None, reason: str, now: datetime) -> None:
        db.execute("UPDATE sessions SET stopped_at=?, meter_stop_wh=coalesce(?, meter_stop_wh),"
                   " stop_reason=? WHERE id=? AND stopped_at IS NULL",
                   (_ts(stopped_at), meter_stop_wh, reason, session_id))
        if _one(db, "SELECT 1 FROM session_details WHERE session_id=?", (session_id,)):
            self._upsert_details(db, session_id, {}, now)

    # -- meter values ----------------------------------------------------------------------

    @staticmethod
    def _meter_where(q: MeterQuery) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        targets: list[str] = []
        if q.connectors is not None:
            # One equality pair per connector: each term uses meter_values_connector_ts.
            for cp, n in q.connectors or (("", -1),):
                targets.append("(m.cp_id = ? AND m.connector_id = ?)")
                params.extend((cp, n))
        if q.cp_ids is not None:
            targets.append("m.cp_id IN (SELECT value FROM json_each(?))")
            params.append(_json_list(q.cp_ids))
        if q.vehicles is not None:
            targets.append("m.session_id IN (SELECT session_id FROM session_details"
                           " WHERE vehicle_id IN (SELECT value FROM json_each(?)))")
            params.append(_json_list(q.vehicles))
        if targets:
            where.append(f"({' OR '.join(targets)})")
        if q.start is not None:
            where.append("m.ts >= ?")
            params.append(_ts(q.start))
        if q.end is not None:
            where.append("m.ts <= ?")
            params.append(_ts(q.end))
        if q.measurands is not None:
            where.append("m.measurand IN (SELECT value FROM json_each(?))")
            params.append(_json_list(q.measurands))
        return (f" WHERE {' AND '.join(where)}" if where else ""), params

    @staticmethod
    def _meter(r: aiosqlite.Row) -> MeterValueRecord:
        return MeterValueRecord(
            id=r["id"], cp_id=r["cp_id"], connector_id=r["connector_id"],
            session_id=r["session_id"], timestamp=parse_iso(r["ts"]), measurand=r["measurand"],
            phase=r["phase"], unit=r["unit"], value=r["value"], context=r["context"],
            location=r["location"])

    async def page_meter_values(self, query: MeterQuery, limit: int,
                                offset: int) -> tuple[list[MeterValueRecord], int]:
        """One page of samples, oldest first, and how many match."""
        where, params = self._meter_where(query)
        rows, total = await self._page(
            f"SELECT m.*, {TOTAL_ROWS} FROM meter_values m{where} ORDER BY m.ts, m.id",
            f"SELECT count(*) FROM meter_values m{where}", tuple(params), limit, offset)
        return await self._as(rows, self._meter), total

    async def meter_series(self, query: MeterQuery) -> list[MeterValueRecord]:
        """Every sample matching `query`, oldest first (profiles: a bounded window)."""
        where, params = self._meter_where(query)
        rows = await self._all(f"SELECT m.* FROM meter_values m{where} ORDER BY m.ts, m.id",
                               tuple(params))
        return [self._meter(r) for r in rows]

    # -- plan results (optimizations) ------------------------------------------------------

    @staticmethod
    def _plan_result(r: aiosqlite.Row) -> PlanResultRecord:
        return PlanResultRecord(plan_id=r["id"], site_id=r["site_id"], ts=parse_iso(r["ts"]),
                                connector=r["key"], result=json.loads(r["value"]),
                                latest=bool(r["latest"]))

    async def page_plan_results(self, site_ids: tuple[str, ...],
                                connectors: tuple[str, ...] | None, latest_only: bool,
                                start: datetime | None, end: datetime | None,
                                limit: int, offset: int, transaction_id: str | None = None,
                                ) -> tuple[list[PlanResultRecord], int]:
        """Per-connector results with a session in plans of `site_ids`, newest first.

        `latest_only`: only the newest plan of each site (the optimizations in force).
        """
        where = ["p.site_id IN (SELECT value FROM json_each(?))",
                 "json_extract(j.value, '$.active')", NOT_PINNED]
        params: list[Any] = [_json_list(site_ids)]
        if connectors is not None:
            where.append("j.key IN (SELECT value FROM json_each(?))")
            params.append(_json_list(connectors))
        if latest_only:
            where.append(IN_FORCE)
        if start is not None:
            where.append("p.ts >= ?")
            params.append(_ts(start))
        if end is not None:
            where.append("p.ts <= ?")
            params.append(_ts(end))
        if transaction_id is not None:
            where.append("CAST(json_extract(j.value, '$.transaction_id') AS TEXT) = ?")
            params.append(transaction_id)
        body = f" FROM plans p, json_each(p.result) j WHERE {' AND '.join(where)}"
        rows, total = await self._page(
            f"SELECT p.id, p.site_id, p.ts, j.key, j.value, {IN_FORCE} AS latest,"
            f" {TOTAL_ROWS}{body} ORDER BY p.id DESC, j.key", f"SELECT count(*){body}",
            tuple(params), limit, offset)
        return [self._plan_result(r) for r in rows], total

    async def plan_result(self, plan_id: int, connector: str) -> PlanResultRecord | None:
        rows = await self._all(
            f"SELECT p.id, p.site_id, p.ts, j.key, j.value, {IN_FORCE} AS latest"
            " FROM plans p, json_each(p.result) j WHERE p.id = ? AND j.key = ?",
            (plan_id, connector))
        return self._plan_result(rows[0]) if rows else None

    async def plan_keys_after(self, plan_id: int) -> list[tuple[int, str]]:
        """(plan id, connector) of every result with a session in plans after `plan_id`."""
        rows = await self._all(
            "SELECT p.id, j.key FROM plans p, json_each(p.result) j WHERE p.id > ?"
            f" AND json_extract(j.value, '$.active') AND {NOT_PINNED} ORDER BY p.id", (plan_id,))
        return [(int(r[0]), str(r[1])) for r in rows]

    async def plan_history(self, site_id: str, start: datetime,
                           end: datetime) -> list[tuple[int, datetime, dict[str, Any]]]:
        """The plans of `site_id` in force over [start, end]: the last one before `start`
        and every one up to `end`, oldest first."""
        rows = await self._all(
            "SELECT id, ts, result FROM plans WHERE site_id = ? AND ts <= ? AND ts >= coalesce("
            "(SELECT max(ts) FROM plans WHERE site_id = ? AND ts <= ?), ?) ORDER BY ts, id",
            (site_id, _ts(end), site_id, _ts(start), _ts(start)))
        return [(int(r["id"]), parse_iso(r["ts"]), json.loads(r["result"])) for r in rows]
