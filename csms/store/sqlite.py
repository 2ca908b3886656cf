"""SQLite implementation of the Store: WAL, one writer, commit before anyone is acknowledged.

SqliteStore is the lifecycle and the frame buffer; the tables' reads and writes live in mixins
by family (csms.store.sqlite_*), sharing `_writes` and the reading helpers of sqlite_base.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import aiosqlite
import structlog

from csms.store.base import FrameRecord, StoreHealth
from csms.store.migrations import MIGRATIONS
from csms.store.sqlite_alerts import AlertsMixin
from csms.store.sqlite_api_sessions import ApiSessionsMixin
from csms.store.sqlite_authlist import AuthListMixin
from csms.store.sqlite_base import Db, SqliteBase, _ts
from csms.store.sqlite_catalog import CatalogMixin
from csms.store.sqlite_chargers import ChargePointsMixin
from csms.store.sqlite_commands import CommandsMixin
from csms.store.sqlite_costs import CostsMixin
from csms.store.sqlite_inventory import InventoryMixin
from csms.store.sqlite_keys import KeysMixin
from csms.store.sqlite_load import LoadMixin
from csms.store.sqlite_networks import NetworksMixin
from csms.store.sqlite_relay import RelayMixin
from csms.store.sqlite_reports import ReportsMixin
from csms.store.sqlite_sessions import SessionsMixin
from csms.store.sqlite_transfers import TransfersMixin
from csms.store.sqlite_webhooks import WebhooksMixin
from csms.store.writer import BatchWriter

log = structlog.get_logger("csms.store")

# Bounded so a flood of frames cannot grow memory without limit between flushes.
FRAME_BUFFER_MAX = 5000


INSERT_FRAME = ("INSERT INTO frames (ts, cp_id, direction, message_type, unique_id, action, text)"
                " VALUES (?,?,?,?,?,?,?)")


def _encodable(value: Any) -> Any:
    """`value` with anything UTF-8 cannot hold replaced (strings only)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


class FrameLog:
    """Raw frames buffered on the event loop and written with the next group of writes (a
    Rider of BatchWriter): the log costs no commit of its own. Only the loop touches the
    buffer; the writer thread gets the frames a group carries."""

    def __init__(self) -> None:
        self._buffer: list[FrameRecord] = []

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    def add(self, frame: FrameRecord) -> None:
        """Buffer a frame; past FRAME_BUFFER_MAX it is dropped (a flood cannot grow memory)."""
        if len(self._buffer) < FRAME_BUFFER_MAX:
            self._buffer.append(frame)

    def take(self) -> list[FrameRecord]:
        """The buffered frames, for the next group."""
        frames, self._buffer = self._buffer, []
        return frames

    def write(self, db: Db, frames: list[FrameRecord]) -> None:
        """Insert the frames a group carries (in the writer thread)."""
        if not frames:
            return
        rows = [(_ts(f.timestamp), f.cp_id, f.direction, f.message_type, f.unique_id,
                 f.action, f.text) for f in frames]
        try:
            db.executemany(INSERT_FRAME, rows)
        except UnicodeEncodeError:
            # A hostile frame's lone surrogate must not cost the rest of the log (or the
            # group it rides with): keep it, made encodable.
            db.executemany(INSERT_FRAME, [tuple(map(_encodable, r)) for r in rows])

    def give_back(self, frames: list[FrameRecord]) -> None:
        """Keep the frames of a group that was not committed, for the next one."""
        self._buffer[:0] = frames[: max(0, FRAME_BUFFER_MAX - len(self._buffer))]


class SqliteStore(ChargePointsMixin, SessionsMixin, CostsMixin, LoadMixin, CommandsMixin, KeysMixin,
                  CatalogMixin, ApiSessionsMixin, InventoryMixin, RelayMixin, WebhooksMixin,
                  NetworksMixin, AlertsMixin, ReportsMixin, AuthListMixin, TransfersMixin,
                  SqliteBase):
    """The embedded store: one writer thread committing in groups, one reading connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._frame_log = FrameLog()
        # cp_id -> capabilities of every charger with a record; see `capabilities`.
        self._capabilities: dict[str, dict[str, Any]] = {}
        # cp_id -> connector numbers (> 0) reported; see `charger_connectors`.
        self._connector_numbers: dict[str, set[int]] = {}
        self.chargers_changed = 0
        self.writer = BatchWriter(self._connect_writer, self._frame_log)

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
            for r in await self._all(
                    "SELECT cp_id, connector_id FROM connectors WHERE connector_id > 0"):
                self._connector_numbers.setdefault(r["cp_id"], set()).add(r["connector_id"])
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
        """Write buffered frame-log entries (also those a group in flight carries)."""
        if self._frame_log.pending or self.writer.busy:
            await self.writer.submit(lambda db: None)

    def log_frame(self, frame: FrameRecord) -> None:
        """Buffer a raw frame; it is written with the next commit or flush."""
        self._frame_log.add(frame)
