"""What the SQLite store's parts share: the `_writes` decorator, row helpers, the reading side."""

from __future__ import annotations

import asyncio
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
T = TypeVar("T")
# Up to this many rows become records on the event loop; more go to a worker thread.
ROWS_ON_LOOP = 100


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


# Ends the select list of a paged query (`SqliteBase._page`): the count of all its rows.
TOTAL_ROWS = "count(*) OVER () AS total_rows"


class SqliteBase:
    """The state every part of SqliteStore shares (set in SqliteStore.__init__) and its reads."""

    path: str
    writer: BatchWriter
    _db: aiosqlite.Connection | None
    _capabilities: dict[str, dict[str, Any]]
    _connector_numbers: dict[str, set[int]]
    chargers_changed: int

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

    async def _all_as(self, sql: str, params: tuple[Any, ...],
                      record: Callable[[aiosqlite.Row], T]) -> list[T]:
        """The rows as records; many rows are turned into records in a worker thread, so a
        page of an API list does not hold the chargers' event loop."""
        return await self._as(await self._all(sql, params), record)

    @staticmethod
    async def _as(rows: list[aiosqlite.Row], record: Callable[[aiosqlite.Row], T]) -> list[T]:
        if len(rows) < ROWS_ON_LOOP:
            return [record(r) for r in rows]
        return await asyncio.to_thread(lambda: [record(r) for r in rows])

    async def _page(self, sql: str, count_sql: str, params: tuple[Any, ...], limit: int,
                    offset: int, count_params: tuple[Any, ...] | None = None,
                    ) -> tuple[list[aiosqlite.Row], int]:
        """A page of `sql` (whose select list ends in `TOTAL_ROWS`, up to its ORDER BY) and
        how many rows match in all, read in one statement: a count and a page read apart
        disagree when a row is committed between them (one row listed, a total of 0).
        `count_sql` (with `count_params`, else `params`) counts only for a page past the end,
        which has no row to carry it."""
        rows = await self._all(f"{sql} LIMIT ? OFFSET ?", (*params, limit, offset))
        if rows:
            return rows, int(rows[0]["total_rows"])
        if offset == 0:
            return rows, 0
        total = await self._one(count_sql, params if count_params is None else count_params)
        return rows, int(total[0]) if total else 0
