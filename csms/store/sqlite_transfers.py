"""SqliteStore's firmware and log transfer requests and the statuses stations report."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

import aiosqlite

from csms.clock import parse_iso
from csms.store.sqlite_base import Db, SqliteBase, _one, _ts, _writes
from csms.store.transfers import FINAL, TransferRecord

REQUESTED = "requested"
ACCEPTED_CANCELED = "AcceptedCanceled"
CANCELED = "Canceled"  # ours: a newer request of the same family replaced it


def _transfer(row: aiosqlite.Row | sqlite3.Row) -> TransferRecord:
    return TransferRecord(
        id=row["id"], cp_id=row["cp_id"], family=row["family"], action=row["action"],
        request_id=row["request_id"], payload=json.loads(row["payload"]),
        answer_status=row["answer_status"], status=row["status"], file_name=row["file_name"],
        history=json.loads(row["history"]), open=bool(row["open"]),
        created_at=parse_iso(row["created_at"]), updated_at=parse_iso(row["updated_at"]),
    )


def _get(db: Db, transfer_id: int) -> TransferRecord:
    row = _one(db, "SELECT * FROM transfer_requests WHERE id=?", (transfer_id,))
    assert row is not None
    return _transfer(row)


class TransfersMixin(SqliteBase):
    """One row per firmware update, publication or log upload asked of a station."""

    @_writes
    def add_transfer(self, db: Db, cp_id: str, family: str, action: str,
                     payload: dict[str, Any], with_request_id: bool,
                     now: datetime) -> TransferRecord:
        """A new request, `requested`; with `with_request_id` its requestId is its row id
        (unique per CSMS, so never one the station is still reporting on)."""
        cur = db.execute(
            "INSERT INTO transfer_requests (cp_id, family, action, payload, status, history,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
            (cp_id, family, action, json.dumps(payload), REQUESTED,
             json.dumps([{"status": REQUESTED, "at": _ts(now)}]), _ts(now), _ts(now)))
        transfer_id = int(cur.lastrowid or 0)
        if with_request_id:
            db.execute("UPDATE transfer_requests SET request_id=id WHERE id=?", (transfer_id,))
        return _get(db, transfer_id)

    @_writes
    def answer_transfer(self, db: Db, transfer_id: int, payload: dict[str, Any],
                        answer_status: str, file_name: str | None,
                        now: datetime) -> TransferRecord:
        """Keep the payload as sent and the station's answer. The status becomes the answer
        unless a notification overtook it; a request not accepted is closed."""
        row = _one(db, "SELECT * FROM transfer_requests WHERE id=?", (transfer_id,))
        assert row is not None
        history = json.loads(row["history"])
        status = row["status"]
        if status == REQUESTED:
            status = answer_status
            history.append({"status": answer_status, "at": _ts(now)})
        still_open = bool(row["open"]) and answer_status in ("Accepted", ACCEPTED_CANCELED)
        if answer_status == ACCEPTED_CANCELED:
            # The station cancelled the transfer it was busy with to start this one (2.0.1
            # UpdateFirmware / GetLog, 1.6 SignedUpdateFirmware / GetLog): that one is over.
            self._cancel_others(db, row, now)
        db.execute(
            "UPDATE transfer_requests SET payload=?, answer_status=?, status=?, history=?,"
            " file_name=COALESCE(?, file_name), open=?, updated_at=? WHERE id=?",
            (json.dumps(payload), answer_status, status, json.dumps(history), file_name,
             int(still_open), _ts(now), transfer_id))
        return _get(db, transfer_id)

    def _cancel_others(self, db: Db, row: sqlite3.Row, now: datetime) -> None:
        """Close the charger's other open requests of `row`'s family as Canceled."""
        for other in db.execute("SELECT id, history FROM transfer_requests WHERE cp_id=?"
                                " AND family=? AND open=1 AND id<>?",
                                (row["cp_id"], row["family"], row["id"])).fetchall():
            history = [*json.loads(other["history"]), {"status": CANCELED, "at": _ts(now)}]
            db.execute("UPDATE transfer_requests SET status=?, history=?, open=0,"
                       " updated_at=? WHERE id=?",
                       (CANCELED, json.dumps(history), _ts(now), other["id"]))

    @_writes
    def notify_transfer(self, db: Db, cp_id: str, family: str, request_id: int | None,
                        status: str, now: datetime) -> TransferRecord | None:
        """Follow a station's status notification: the request of that requestId, else the
        charger's latest open request of `family`; None when there is none to follow."""
        if request_id is not None:
            row = _one(db, "SELECT * FROM transfer_requests WHERE cp_id=? AND family=?"
                           " AND request_id=? ORDER BY id DESC LIMIT 1",
                       (cp_id, family, request_id))
        else:
            row = _one(db, "SELECT * FROM transfer_requests WHERE cp_id=? AND family=?"
                           " AND open=1 ORDER BY id DESC LIMIT 1", (cp_id, family))
        if row is None:
            return None
        history = [*json.loads(row["history"]), {"status": status, "at": _ts(now)}]
        db.execute("UPDATE transfer_requests SET status=?, history=?, open=?, updated_at=?"
                   " WHERE id=?",
                   (status, json.dumps(history), int(status not in FINAL and bool(row["open"])),
                    _ts(now), row["id"]))
        return _get(db, row["id"])

    async def get_transfer(self, transfer_id: int) -> TransferRecord | None:
        row = await self._one("SELECT * FROM transfer_requests WHERE id=?", (transfer_id,))
        return None if row is None else _transfer(row)

    async def list_transfers(self, cp_id: str, family: str | None = None,
                             limit: int = 20) -> list[TransferRecord]:
        """The charger's requests (of one family if given), newest first."""
        where, params = "cp_id=?", (cp_id,)
        if family is not None:
            where, params = where + " AND family=?", (*params, family)
        return await self._all_as(
            f"SELECT * FROM transfer_requests WHERE {where} ORDER BY id DESC LIMIT ?",
            (*params, limit), _transfer)
