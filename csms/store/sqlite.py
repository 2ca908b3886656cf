"""SQLite implementation of the Store: WAL, one writer, commit before anyone is acknowledged."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite
import structlog

from csms.clock import parse_iso
from csms.domain import (
    Booted,
    EvChargingNeeds,
    IdTagInfo,
    Metered,
    Sample,
    StatusChanged,
    TransactionEnded,
    TransactionEvent201,
    TransactionStarted,
)
from csms.store.base import (
    ChargePointRecord,
    CommandRecord,
    ConnectorRecord,
    FrameRecord,
    SessionRecord,
    StoreHealth,
)
from csms.store.migrations import MIGRATIONS
from csms.store.writer import BatchWriter

log = structlog.get_logger("csms.store")

ENERGY_REGISTER = "Energy.Active.Import.Register"
# Bounded so a flood of frames cannot grow memory without limit between flushes.
FRAME_BUFFER_MAX = 5000


INSERT_FRAME = ("INSERT INTO frames (ts, cp_id, direction, message_type, unique_id, action, text)"
                " VALUES (?,?,?,?,?,?,?)")


def _encodable(value: Any) -> Any:
    """`value` with anything UTF-8 cannot hold replaced (strings only)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _ts(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else parse_iso(text)


def _energy_wh(samples: Iterable[Sample]) -> list[float]:
    """Energy register readings in Wh (whole-connector, outlet side) among `samples`."""
    out = []
    for s in samples:
        if s.measurand != ENERGY_REGISTER or s.phase is not None:
            continue
        if s.location not in (None, "Outlet"):
            continue
        out.append(s.value * 1000.0 if s.unit == "kWh" else s.value)
    return out


Db = sqlite3.Connection
P = ParamSpec("P")
R = TypeVar("R")


def _writes(
    method: Callable[Concatenate[SqliteStore, sqlite3.Connection, P], R],
) -> Callable[Concatenate[SqliteStore, P], Awaitable[R]]:
    """Make a write (a plain function of the write connection) an awaitable group-commit job.

    The caller gets the result once the job's group is committed; see csms.store.writer.
    """

    @functools.wraps(method)
    async def submit(self: SqliteStore, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.writer.submit(lambda db: method(self, db, *args, **kwargs))

    return submit


def _one(db: Db, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(sql, params).fetchone()
    return row


class SqliteStore:
    """The embedded store: one writer thread committing in groups, one reading connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._frames: list[FrameRecord] = []
        # cp_id -> capabilities of every charger with a record; see `capabilities`.
        self._capabilities: dict[str, dict[str, Any]] = {}
        self.writer = BatchWriter(self._connect_writer, self._write_frames)

    @property
    def health(self) -> StoreHealth:
        return self.writer.health

    # -- lifecycle -------------------------------------------------------------------------

    def _connect_writer(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process; only power loss can drop the last commit.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=5000")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
        return db

    async def open(self) -> None:
        """Open the file, switch to WAL, apply pending migrations; then the reading side."""
        await self.writer.start()
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            self._db.row_factory = aiosqlite.Row
            await self._db.execute("PRAGMA busy_timeout=5000")
            self._capabilities = {
                r["cp_id"]: json.loads(r["capabilities"] or "{}")
                for r in await self._all("SELECT cp_id, capabilities FROM charge_points")}
        except BaseException:
            await self.writer.stop()
            raise

    async def close(self) -> None:
        """Finish submitted writes, flush buffered frames and close both connections."""
        if self._db is None:
            return
        try:
            await self.flush()
        finally:
            await self.writer.stop()
            await self._db.close()
            self._db = None

    async def flush(self) -> None:
        """Write buffered frame-log entries."""
        if self._frames:
            await self.writer.submit(lambda db: None)

    def _write_frames(self, db: Db) -> Callable[[bool], None]:
        """Write the buffered frames with the group (in the writer thread); keep them if the
        group is not committed."""
        frames, self._frames = self._frames, []
        if frames:
            rows = [(_ts(f.timestamp), f.cp_id, f.direction, f.message_type, f.unique_id,
                     f.action, f.text) for f in frames]
            try:
                db.executemany(INSERT_FRAME, rows)
            except UnicodeEncodeError:
                # A hostile frame's lone surrogate must not cost the rest of the log (or the
                # group it rides with): keep it, made encodable.
                db.executemany(INSERT_FRAME, [tuple(map(_encodable, r)) for r in rows])

        def committed(ok: bool) -> None:
            if not ok:
                self._frames[:0] = frames[: max(0, FRAME_BUFFER_MAX - len(self._frames))]

        return committed

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def _one(self, sql: str, params: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        async with self.db.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    # -- charge points ---------------------------------------------------------------------

    async def record_boot(self, event: Booted, now: datetime) -> None:
        await self._record_boot(event, now)
        self._capabilities.setdefault(event.cp_id, {})

    @_writes
    def _record_boot(self, db: Db, event: Booted, now: datetime) -> None:
        db.execute(
            "INSERT INTO charge_points (cp_id, protocol, vendor, model, serial, firmware,"
            " online, last_seen, booted_at) VALUES (?,?,?,?,?,?,1,?,?)"
            " ON CONFLICT (cp_id) DO UPDATE SET protocol=excluded.protocol,"
            " vendor=excluded.vendor, model=excluded.model, serial=excluded.serial,"
            " firmware=excluded.firmware, online=1, last_seen=excluded.last_seen,"
            " booted_at=excluded.booted_at",
            (event.cp_id, event.protocol, event.vendor, event.model, event.serial,
             event.firmware, _ts(now), _ts(now)),
        )

    @_writes
    def set_online(self, db: Db, cp_id: str, online: bool, protocol: str | None,
                   now: datetime) -> None:
        # Only chargers that booted or were registered have a row: a bare connection adds none.
        db.execute(
            "UPDATE charge_points SET online=?, last_seen=?,"
            " protocol=coalesce(?, protocol) WHERE cp_id=?",
            (int(online), _ts(now), protocol, cp_id),
        )

    @_writes
    def mark_all_offline(self, db: Db) -> None:
        db.execute("UPDATE charge_points SET online=0")

    @_writes
    def abandon_pending_commands(self, db: Db, now: datetime) -> int:
        """Commands a previous run left waiting (it was killed) will never get an answer."""
        cur = db.execute(
            "UPDATE commands SET status='failed', response=?, answered_at=?"
            " WHERE status='pending'",
            (json.dumps({"error": "interrupted: the CSMS stopped before the answer"}),
             _ts(now)))
        return cur.rowcount

    async def register_charge_point(self, cp_id: str, password_hash: str | None = None) -> None:
        await self._register_charge_point(cp_id, password_hash)
        self._capabilities.setdefault(cp_id, {})

    @_writes
    def _register_charge_point(self, db: Db, cp_id: str,
                              password_hash: str | None = None) -> None:
        db.execute(
            "INSERT INTO charge_points (cp_id, registered, password_hash) VALUES (?,1,?)"
            " ON CONFLICT (cp_id) DO UPDATE SET registered=1,"
            " password_hash=coalesce(excluded.password_hash, charge_points.password_hash)",
            (cp_id, password_hash),
        )

    async def get_password_hash(self, cp_id: str) -> str | None:
        row = await self._one("SELECT password_hash FROM charge_points WHERE cp_id=?", (cp_id,))
        return None if row is None else row["password_hash"]

    async def is_registered(self, cp_id: str) -> bool:
        row = await self._one("SELECT registered FROM charge_points WHERE cp_id=?", (cp_id,))
        return bool(row and row["registered"])

    async def is_known(self, cp_id: str) -> bool:
        row = await self._one(
            "SELECT 1 FROM charge_points WHERE cp_id=? AND (registered=1 OR booted_at IS NOT NULL)",
            (cp_id,))
        return row is not None

    async def get_charge_point(self, cp_id: str) -> ChargePointRecord | None:
        rows = await self._charge_points("WHERE cp_id=?", (cp_id,))
        return rows[0] if rows else None

    async def list_charge_points(self) -> list[ChargePointRecord]:
        return await self._charge_points("", ())

    async def _charge_points(self, where: str, params: tuple[Any, ...]) -> list[ChargePointRecord]:
        cps = await self._all(f"SELECT * FROM charge_points {where} ORDER BY cp_id", params)
        conns = await self._all(
            f"SELECT * FROM connectors {where} ORDER BY cp_id, connector_id", params
        )
        by_cp: dict[str, list[ConnectorRecord]] = {}
        for c in conns:
            by_cp.setdefault(c["cp_id"], []).append(
                ConnectorRecord(c["connector_id"], c["status"], c["error_code"],
                                _dt(c["updated_at"]))
            )
        return [
            ChargePointRecord(
                cp_id=r["cp_id"], protocol=r["protocol"], vendor=r["vendor"], model=r["model"],
                serial=r["serial"], firmware=r["firmware"], online=bool(r["online"]),
                last_seen=_dt(r["last_seen"]), registered=bool(r["registered"]),
                capabilities=json.loads(r["capabilities"] or "{}"),
                connectors=tuple(by_cp.get(r["cp_id"], ())),
            )
            for r in cps
        ]

    async def save_capabilities(self, cp_id: str, capabilities: dict[str, Any]) -> None:
        merged = await self._save_capabilities(cp_id, capabilities)
        if merged is not None:
            self._capabilities[cp_id] = merged

    @_writes
    def _save_capabilities(self, db: Db, cp_id: str,
                           capabilities: dict[str, Any]) -> dict[str, Any] | None:
        row = _one(db, "SELECT capabilities FROM charge_points WHERE cp_id=?", (cp_id,))
        if row is None:
            return None
        merged = json.loads(row["capabilities"] or "{}")
        merged.update(capabilities)
        db.execute(
            "UPDATE charge_points SET capabilities=? WHERE cp_id=?",
            (json.dumps(merged, sort_keys=True), cp_id),
        )
        return merged

    def capabilities(self, cp_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """What each known charger reported it can do (kept in memory: read on every plan)."""
        return {cp_id: self._capabilities[cp_id] for cp_id in cp_ids
                if cp_id in self._capabilities}

    @_writes
    def save_variables(self, db: Db, cp_id: str, variables: list[dict[str, Any]],
                       now: datetime) -> None:
        rows = []
        for v in variables:
            comp = v.get("component", {})
            var = v.get("variable", {})
            evse = comp.get("evse", {}).get("id", 0)
            for attr in v.get("variableAttribute", [{"type": "Actual", "value": None}]):
                rows.append((
                    cp_id, comp.get("name", ""), evse, var.get("name", ""),
                    attr.get("type", "Actual"), attr.get("value"), json.dumps(v), _ts(now),
                ))
        db.executemany(
            "INSERT OR REPLACE INTO variables (cp_id, component, evse_id, variable,"
            " attribute, value, raw, updated_at) VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )

    async def get_variables(self, cp_id: str) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT component, evse_id, variable, attribute, value FROM variables"
            " WHERE cp_id=? ORDER BY component, evse_id, variable, attribute",
            (cp_id,),
        )
        return [dict(r) for r in rows]

    @_writes
    def record_status(self, db: Db, event: StatusChanged) -> None:
        db.execute(
            "INSERT INTO connectors (cp_id, connector_id, evse_connector_id, status,"
            " error_code, info, updated_at) VALUES (?,?,?,?,?,?,?)"
            " ON CONFLICT (cp_id, connector_id) DO UPDATE SET status=excluded.status,"
            " error_code=excluded.error_code, info=excluded.info,"
            " evse_connector_id=coalesce(excluded.evse_connector_id,"
            " connectors.evse_connector_id), updated_at=excluded.updated_at",
            (event.cp_id, event.connector_id, event.evse_connector_id, event.status,
             event.error_code, event.info, _ts(event.timestamp)),
        )
        db.execute(
            "INSERT INTO status_history (cp_id, connector_id, status, error_code, info, ts)"
            " VALUES (?,?,?,?,?,?)",
            (event.cp_id, event.connector_id, event.status, event.error_code, event.info,
             _ts(event.timestamp)),
        )

    @_writes
    def record_charger_event(self, db: Db, cp_id: str, kind: str, payload: dict[str, Any],
                             now: datetime) -> None:
        db.execute(
            "INSERT INTO charger_events (cp_id, kind, payload, ts) VALUES (?,?,?,?)",
            (cp_id, kind, json.dumps(payload), _ts(now)),
        )

    @_writes
    def save_ev_charging_needs(self, db: Db, event: EvChargingNeeds, now: datetime) -> None:
        db.execute(
            "INSERT INTO ev_charging_needs (cp_id, connector_id, requested_energy_transfer,"
            " departure, energy_amount_wh, ev_max_power_w, ev_max_current_a,"
            " ev_min_current_a, raw, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (event.cp_id, event.connector_id, event.requested_energy_transfer,
             _ts(event.departure), event.energy_amount_wh, event.ev_max_power_w,
             event.ev_max_current_a, event.ev_min_current_a, json.dumps(event.raw),
             _ts(now)),
        )

    async def latest_ev_charging_needs(self, cp_id: str, connector_id: int) -> dict | None:
        row = await self._one(
            "SELECT * FROM ev_charging_needs WHERE cp_id=? AND connector_id=?"
            " ORDER BY id DESC LIMIT 1",
            (cp_id, connector_id),
        )
        return None if row is None else dict(row)

    # -- authorization ---------------------------------------------------------------------

    async def get_id_tag(self, id_tag: str) -> IdTagInfo | None:
        row = await self._one("SELECT * FROM id_tags WHERE id_tag=?", (id_tag,))
        if row is None:
            return None
        return IdTagInfo(row["status"], _dt(row["expiry"]), row["parent_id_tag"])

    @_writes
    def put_id_tag(self, db: Db, id_tag: str, status: str, expiry: datetime | None = None,
                   parent_id_tag: str | None = None) -> None:
        db.execute(
            "INSERT OR REPLACE INTO id_tags (id_tag, status, expiry, parent_id_tag)"
            " VALUES (?,?,?,?)",
            (id_tag, status, _ts(expiry), parent_id_tag),
        )

    # -- transactions ----------------------------------------------------------------------

    @_writes
    def start_transaction(self, db: Db, event: TransactionStarted) -> tuple[int, bool]:
        """Store a started transaction; return (session id, whether it was a retried duplicate)."""
        if event.ocpp_tx_id is None:
            # 1.6: a retry carries the same connector, tag and timestamp.
            row = _one(db,
                "SELECT id FROM sessions WHERE cp_id=? AND connector_id=?"
                " AND coalesce(id_tag,'')=coalesce(?,'') AND started_at=?",
                (event.cp_id, event.connector_id, event.id_tag, _ts(event.timestamp)),
            )
            if row is not None:
                return int(row["id"]), True
        else:
            row = _one(db,
                "SELECT id FROM sessions WHERE cp_id=? AND ocpp_tx_id=?",
                (event.cp_id, event.ocpp_tx_id),
            )
            if row is not None:
                return int(row["id"]), True
        cur = db.execute(
            "INSERT INTO sessions (cp_id, connector_id, ocpp_tx_id, id_tag, started_at,"
            " meter_start_wh) VALUES (?,?,?,?,?,?)",
            (event.cp_id, event.connector_id, event.ocpp_tx_id, event.id_tag,
             _ts(event.timestamp), event.meter_start_wh),
        )
        session_id = int(cur.lastrowid or 0)
        if event.ocpp_tx_id is None:
            db.execute(
                "UPDATE sessions SET ocpp_tx_id=? WHERE id=?", (str(session_id), session_id)
            )
        return session_id, False

    @staticmethod
    def _session_id(db: Db, cp_id: str, ocpp_tx_id: str | None) -> int | None:
        if ocpp_tx_id is None:
            return None
        row = _one(
            db, "SELECT id FROM sessions WHERE cp_id=? AND ocpp_tx_id=?", (cp_id, ocpp_tx_id)
        )
        return None if row is None else int(row["id"])

    @staticmethod
    def _insert_samples(db: Db, cp_id: str, connector_id: int,
                        session_id: int | None, samples: tuple[Sample, ...]) -> None:
        if not samples:
            return
        # OR IGNORE: a resent sample (the charger never saw our acknowledgement) is kept once.
        db.executemany(
            "INSERT OR IGNORE INTO meter_values (cp_id, connector_id, session_id, ts, measurand,"
            " phase,"
            " unit, value, context, location) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (cp_id, connector_id, session_id, _ts(s.timestamp), s.measurand, s.phase,
                 s.unit, s.value, s.context, s.location)
                for s in samples
            ],
        )
        if session_id is not None:
            readings = _energy_wh(samples)
            if readings:
                db.execute(
                    "UPDATE sessions SET first_energy_wh=coalesce(first_energy_wh, ?),"
                    " last_energy_wh=? WHERE id=?",
                    (min(readings), max(readings), session_id),
                )

    @_writes
    def add_meter_values(self, db: Db, event: Metered) -> None:
        session_id = self._session_id(db, event.cp_id, event.ocpp_tx_id)
        self._insert_samples(db, event.cp_id, event.connector_id, session_id,
                                   event.samples)

    @_writes
    def end_transaction(self, db: Db, event: TransactionEnded) -> bool:
        """Close a session; False when the transaction is unknown (still stores its samples)."""
        row = _one(db,
            "SELECT id, connector_id, stopped_at FROM sessions"
            " WHERE cp_id=? AND ocpp_tx_id=?",
            (event.cp_id, event.ocpp_tx_id),
        )
        if row is None:
            self._insert_samples(db, event.cp_id, 0, None, event.samples)
            return False
        self._insert_samples(db, event.cp_id, row["connector_id"], row["id"],
                                   event.samples)
        if row["stopped_at"] is None:
            db.execute(
                "UPDATE sessions SET stopped_at=?, meter_stop_wh=?, stop_reason=? WHERE id=?",
                (_ts(event.timestamp), event.meter_stop_wh, event.reason, row["id"]),
            )
        return True

    @_writes
    def apply_transaction_event(self, db: Db, event: TransactionEvent201) -> bool:
        """Store a 2.0.1 TransactionEvent once; False when (transactionId, seqNo) is stored."""
        seen = _one(db,
            "SELECT 1 FROM tx_events WHERE cp_id=? AND ocpp_tx_id=? AND seq_no=?",
            (event.cp_id, event.ocpp_tx_id, event.seq_no),
        )
        if seen is not None:
            return False
        db.execute(
            "INSERT INTO tx_events (cp_id, ocpp_tx_id, seq_no, event_type, trigger_reason, ts)"
            " VALUES (?,?,?,?,?,?)",
            (event.cp_id, event.ocpp_tx_id, event.seq_no, event.event_type,
             event.trigger_reason, _ts(event.timestamp)),
        )
        row = _one(db,
            "SELECT id, connector_id, started_at, id_tag FROM sessions"
            " WHERE cp_id=? AND ocpp_tx_id=?",
            (event.cp_id, event.ocpp_tx_id),
        )
        if row is None:
            # Started may be lost or arrive later (offline queue): open the session now.
            cur = db.execute(
                "INSERT INTO sessions (cp_id, connector_id, evse_connector_id, ocpp_tx_id,"
                " id_tag, started_at, offline) VALUES (?,?,?,?,?,?,?)",
                (event.cp_id, event.connector_id or 0, event.evse_connector_id,
                 event.ocpp_tx_id, event.id_tag, _ts(event.timestamp), int(event.offline)),
            )
            session_id, connector_id = int(cur.lastrowid or 0), event.connector_id or 0
        else:
            session_id, connector_id = int(row["id"]), int(row["connector_id"])
            updates: list[str] = []
            params: list[Any] = []
            if event.event_type == "Started" and _dt(row["started_at"]) != event.timestamp:
                updates.append("started_at=?")
                params.append(_ts(event.timestamp))
            if connector_id == 0 and event.connector_id:
                updates.append("connector_id=?")
                params.append(event.connector_id)
                connector_id = event.connector_id
            if row["id_tag"] is None and event.id_tag:
                updates.append("id_tag=?")
                params.append(event.id_tag)
            if updates:
                db.execute(
                    f"UPDATE sessions SET {', '.join(updates)} WHERE id=?",
                    (*params, session_id),
                )
        if event.charging_state:
            db.execute(
                "UPDATE sessions SET charging_state=? WHERE id=?",
                (event.charging_state, session_id),
            )
        self._insert_samples(db, event.cp_id, connector_id, session_id, event.samples)
        if event.event_type == "Ended":
            readings = _energy_wh(event.samples)
            db.execute(
                "UPDATE sessions SET stopped_at=?, stop_reason=?,"
                " meter_stop_wh=coalesce(?, meter_stop_wh) WHERE id=?",
                (_ts(event.timestamp), event.stopped_reason,
                 max(readings) if readings else None, session_id),
            )
        return True

    async def list_sessions(self, active_only: bool = False) -> list[SessionRecord]:
        where = "WHERE s.stopped_at IS NULL" if active_only else ""
        return await self._sessions(where, ())

    async def get_session(self, cp_id: str, ocpp_tx_id: str) -> SessionRecord | None:
        rows = await self._sessions("WHERE s.cp_id=? AND s.ocpp_tx_id=?", (cp_id, ocpp_tx_id))
        return rows[0] if rows else None

    async def _sessions(self, where: str, params: tuple[Any, ...]) -> list[SessionRecord]:
        rows = await self._all(
            "SELECT s.*, (SELECT count(*) FROM meter_values m WHERE m.session_id=s.id) AS n"
            f" FROM sessions s {where} ORDER BY s.id",
            params,
        )
        out = []
        for r in rows:
            start = r["meter_start_wh"] if r["meter_start_wh"] is not None else r["first_energy_wh"]
            stop = r["meter_stop_wh"] if r["meter_stop_wh"] is not None else r["last_energy_wh"]
            energy = max(0.0, (stop - start) / 1000.0) if start is not None and stop is not None \
                else 0.0
            out.append(SessionRecord(
                id=r["id"], cp_id=r["cp_id"], connector_id=r["connector_id"],
                ocpp_tx_id=r["ocpp_tx_id"], id_tag=r["id_tag"],
                started_at=parse_iso(r["started_at"]), stopped_at=_dt(r["stopped_at"]),
                meter_start_wh=start, meter_stop_wh=stop, energy_kwh=round(energy, 6),
                stop_reason=r["stop_reason"], meter_value_count=r["n"],
            ))
        return out

    async def count_meter_values(self, cp_id: str | None = None) -> int:
        if cp_id is None:
            row = await self._one("SELECT count(*) FROM meter_values")
        else:
            row = await self._one("SELECT count(*) FROM meter_values WHERE cp_id=?", (cp_id,))
        return int(row[0]) if row else 0

    # -- load management -------------------------------------------------------------------

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

    # -- commands and frames ---------------------------------------------------------------

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

    def log_frame(self, frame: FrameRecord) -> None:
        """Buffer a raw frame; it is written with the next commit or flush."""
        if len(self._frames) < FRAME_BUFFER_MAX:
            self._frames.append(frame)

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
