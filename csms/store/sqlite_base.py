"""What the SQLite store's parts share: the `_writes` decorator, row helpers, the reading side."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from csms.clock import parse_iso
from csms.store.writer import BatchWriter


def _ts(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else parse_iso(text)


Db = sqlite3.Connection
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="SqliteBase")


def _writes(
    method: Callable[Concatenate[S, sqlite3.Connection, P], R],
) -> Callable[Concatenate[S, P], Awaitable[R]]:
    """Make a write (a plain function of the write connection) an awaitable group-commit job.

    The caller gets the result once the job's group is committed; see csms.store.writer.
    """

    @functools.wraps(method)
    async def submit(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.writer.submit(lambda db: method(self, db, *args, **kwargs))

    return submit


def _one(db: Db, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(sql, params).fetchone()
    return row


class SqliteBase:
    """The state every part of SqliteStore shares (set in SqliteStore.__init__) and its reads."""

    path: str
    writer: BatchWriter
    _db: aiosqlite.Connection | None
    _capabilities: dict[str, dict[str, Any]]

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
