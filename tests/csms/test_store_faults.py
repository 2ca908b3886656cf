"""The store under interruption and failure: no write may poison the next one."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csms.domain import Booted
from csms.store import SqliteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def on_writer(store: SqliteStore, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run `fn` on the store's write connection, in its writer thread (test fault injection)."""
    return await store.writer.submit(fn)


def no_transaction_left_open(store: SqliteStore) -> bool:
    """Another connection can take the write lock at once: nothing holds a transaction."""
    other = sqlite3.connect(store.path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def boot(cp_id: str) -> Booted:
    return Booted(cp_id=cp_id, protocol="ocpp1.6", vendor="V", model="M", serial=None,
                  firmware="1")


async def test_writes_cancelled_at_every_step_never_leave_the_store_unable_to_write(
        tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.open()
    try:
        for steps in range(40):
            task = asyncio.create_task(store.record_boot(boot(f"CP-{steps}"), NOW))
            # Land the cancellation at a different point of the write each round.
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # done already when it was quicker than this round's steps
        await store.record_boot(boot("CP-after"), NOW)
        assert no_transaction_left_open(store)
        ids = {cp.cp_id for cp in await store.list_charge_points()}
        assert "CP-after" in ids
        assert store.health.ok
    finally:
        await store.close()


async def test_a_write_that_breaks_a_constraint_fails_alone(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.open()
    try:
        await store.save_site("x", {"a": 1}, NOW)
        await store.db.execute("CREATE UNIQUE INDEX t_u ON sites(spec)")
        # Submitted together, so they share a group: the bad one must not take the others down.
        results = await asyncio.gather(
            store.record_boot(boot("CP-1"), NOW),
            store.save_site("y", {"a": 1}, NOW),
            store.record_boot(boot("CP-2"), NOW),
            return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], sqlite3.IntegrityError)
        # The data was at fault, not the database.
        assert store.health.ok
        assert [cp.cp_id for cp in await store.list_charge_points()] == ["CP-1", "CP-2"]
        assert [s["a"] for s in await store.list_sites()] == [1]
    finally:
        await store.close()


async def test_a_full_disk_is_reported_as_itself_and_writes_resume_when_room_returns(
        tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        await store.record_boot(boot("CP-1"), NOW)
        # A query that fails inside the transaction (as a full disk does) must not leave the
        # connection in a transaction, nor report a rollback error instead of the real one.
        await on_writer(store, lambda db: db.execute("PRAGMA max_page_count=1"))
        with pytest.raises(sqlite3.OperationalError, match="full"):  # as with a full disk
            await store.record_charger_event("CP-1", "x", {"blob": "y" * 200_000}, NOW)
        assert no_transaction_left_open(store)
        assert not store.health.ok
        assert store.health.last_error and "full" in store.health.last_error
        await on_writer(store, lambda db: db.execute("PRAGMA max_page_count=1073741823"))
        await store.record_charger_event("CP-1", "x", {"small": 1}, NOW)
        assert store.health.ok
    finally:
        await store.close()
