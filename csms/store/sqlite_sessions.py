"""SqliteStore's id tags, transactions (sessions), meter values and EV charging needs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.clock import parse_iso
from csms.domain import (
    EvChargingNeeds,
    IdTagInfo,
    Metered,
    Sample,
    TransactionEnded,
    TransactionEvent201,
    TransactionStarted,
)
from csms.store.base import SeqState, SessionRecord, StoredCost
from csms.store.sqlite_base import Db, SqliteBase, _dt, _one, _ts, _writes

ENERGY_REGISTER = "Energy.Active.Import.Register"


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


def stored_cost(row: Any) -> StoredCost | None:
    """The cost kept on a `sessions` row, if any."""
    if row["total_cost"] is None:
        return None
    return StoredCost(Decimal(row["total_cost"]), row["cost_currency"], bool(row["cost_final"]))


class SessionsMixin(SqliteBase):
    """Id tags, sessions from 1.6 and 2.0.1 transactions, their meter values, EV needs."""

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

    async def open_sessions_of_tag(self, id_tag: str) -> list[tuple[str, int]]:
        """(charger, connector) of every open session started with `id_tag`."""
        rows = await self._all("SELECT cp_id, connector_id FROM sessions"
                               " WHERE id_tag=? AND stopped_at IS NULL", (id_tag,))
        return [(r["cp_id"], r["connector_id"]) for r in rows]

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
                        session_id: int | None, samples: tuple[Sample, ...],
                        track_energy: bool = True) -> None:
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
        if session_id is not None and track_energy:
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
        # A second stop keeps the first (time, meter, reason): its samples move nothing.
        self._insert_samples(db, event.cp_id, row["connector_id"], row["id"],
                             event.samples, track_energy=row["stopped_at"] is None)
        if row["stopped_at"] is None:
            db.execute(
                "UPDATE sessions SET stopped_at=?, meter_stop_wh=?, stop_reason=? WHERE id=?",
                (_ts(event.timestamp), event.meter_stop_wh, event.reason, row["id"]),
            )
        return True

    @staticmethod
    def _retransmitted_or_epoch(db: Db, event: TransactionEvent201,
                                epoch: int) -> int | None:
        """The numbering epoch `event` belongs to, or None when it is a retransmission.

        A retransmission (our answer never reached the charger) repeats an event's seqNo with
        its type and time; the same seqNo with other content means the charger numbers anew
        (it rebooted and lost its count, so it starts from 0 again): a new epoch.
        """
        rows = db.execute(
            "SELECT epoch, event_type, ts FROM tx_events"
            " WHERE cp_id=? AND ocpp_tx_id=? AND seq_no=?",
            (event.cp_id, event.ocpp_tx_id, event.seq_no),
        ).fetchall()
        ts = _ts(event.timestamp)
        if any(r["event_type"] == event.event_type and r["ts"] == ts for r in rows):
            return None
        return epoch + 1 if any(r["epoch"] == epoch for r in rows) else epoch

    @_writes
    def apply_transaction_event(self, db: Db, event: TransactionEvent201) -> bool:
        """Store a 2.0.1 TransactionEvent once; False for a retransmission of a stored one.
        An Ended after the first keeps the first stop (time, reason, final energy)."""
        row = _one(db,
            "SELECT id, connector_id, started_at, id_tag, stopped_at, seq_epoch FROM sessions"
            " WHERE cp_id=? AND ocpp_tx_id=?",
            (event.cp_id, event.ocpp_tx_id),
        )
        epoch = self._retransmitted_or_epoch(db, event, 0 if row is None else row["seq_epoch"])
        if epoch is None:
            return False
        db.execute(
            "INSERT INTO tx_events (cp_id, ocpp_tx_id, epoch, seq_no, event_type,"
            " trigger_reason, ts) VALUES (?,?,?,?,?,?,?)",
            (event.cp_id, event.ocpp_tx_id, epoch, event.seq_no, event.event_type,
             event.trigger_reason, _ts(event.timestamp)),
        )
        stopped = row is not None and row["stopped_at"] is not None
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
        db.execute(
            "UPDATE sessions SET last_seq_no=?, seq_epoch=?,"
            " charging_state=coalesce(?, charging_state) WHERE id=?",
            (event.seq_no, epoch, event.charging_state, session_id),
        )
        # Samples of a stopped session are kept, but do not move its final energy.
        self._insert_samples(db, event.cp_id, connector_id, session_id, event.samples,
                             track_energy=not stopped)
        if event.event_type == "Ended" and not stopped:
            readings = _energy_wh(event.samples)
            # The final energy is fixed now: what arrives later cannot change the bill.
            db.execute(
                "UPDATE sessions SET stopped_at=?, stop_reason=?,"
                " meter_stop_wh=coalesce(?, meter_stop_wh, last_energy_wh) WHERE id=?",
                (_ts(event.timestamp), event.stopped_reason,
                 max(readings) if readings else None, session_id),
            )
        return True

    async def seq_state(self, cp_id: str, ocpp_tx_id: str) -> SeqState | None:
        row = await self._one(
            "SELECT last_seq_no, seq_epoch, status_check FROM sessions"
            " WHERE cp_id=? AND ocpp_tx_id=?", (cp_id, ocpp_tx_id))
        if row is None:
            return None
        events = await self._all(
            "SELECT epoch, seq_no, event_type FROM tx_events WHERE cp_id=? AND ocpp_tx_id=?"
            " ORDER BY epoch, seq_no", (cp_id, ocpp_tx_id))
        by_epoch: dict[int, list[tuple[int, str]]] = {}
        for e in events:
            by_epoch.setdefault(int(e["epoch"]), []).append((int(e["seq_no"]), e["event_type"]))
        missing: set[int] = set()
        for epoch, seen in by_epoch.items():
            numbers = {n for n, _ in seen}
            # Numbering starts at 0; a charger that numbers its Started event from 1 has a
            # quirk, not a lost message. Numbering after a reboot starts at 0 again.
            first = seen[0][0] if epoch == 0 and seen[0][1] == "Started" else 0
            missing.update(n for n in range(first, max(numbers) + 1) if n not in numbers)
        check = row["status_check"]
        return SeqState(row["last_seq_no"], int(row["seq_epoch"]), tuple(sorted(missing)),
                        None if check is None else json.loads(check))

    @_writes
    def save_transaction_status(self, db: Db, cp_id: str, ocpp_tx_id: str,
                                answer: dict[str, Any], now: datetime) -> None:
        db.execute(
            "UPDATE sessions SET status_check=? WHERE cp_id=? AND ocpp_tx_id=?",
            (json.dumps({**answer, "checked_at": _ts(now)}), cp_id, ocpp_tx_id),
        )

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
                stop_reason=r["stop_reason"], meter_value_count=r["n"], cost=stored_cost(r),
            ))
        return out

    async def count_meter_values(self, cp_id: str | None = None) -> int:
        if cp_id is None:
            row = await self._one("SELECT count(*) FROM meter_values")
        else:
            row = await self._one("SELECT count(*) FROM meter_values WHERE cp_id=?", (cp_id,))
        return int(row[0]) if row else 0
