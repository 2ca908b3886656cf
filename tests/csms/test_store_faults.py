"""The store under interruption and failure: no write may poison the next one."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from csms.domain import Booted
from csms.store import SqliteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


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
            with pytest.raises(asyncio.CancelledError):
                await task
        await store.record_boot(boot("CP-after"), NOW)
        assert not store.db.in_transaction
        ids = {cp.cp_id for cp in await store.list_charge_points()}
        assert "CP-after" in ids
        assert store.health.ok
    finally:
        await store.close()


async def test_a_failed_write_is_reported_and_the_next_one_succeeds(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.open()
    try:
        await store.save_site("x", {"a": 1}, NOW)
        await store.db.execute("CREATE UNIQUE INDEX t_u ON sites(spec)")
        # A write that breaks a constraint fails inside its transaction.
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            await store.save_site("y", {"a": 1}, NOW)
        assert not store.health.ok
        assert "UNIQUE" in (store.health.last_error or "")
        await store.record_boot(boot("CP-1"), NOW)
        assert store.health.ok and store.health.consecutive_failures == 0
        assert [cp.cp_id for cp in await store.list_charge_points()] == ["CP-1"]
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
        await store.db.execute("PRAGMA max_page_count=1")
        with pytest.raises(Exception, match="full"):  # as with a full disk
            await store.record_charger_event("CP-1", "x", {"blob": "y" * 200_000}, NOW)
        assert not store.db.in_transaction
        assert store.health.last_error and "full" in store.health.last_error
        await store.db.execute("PRAGMA max_page_count=1073741823")
        await store.record_charger_event("CP-1", "x", {"small": 1}, NOW)
        assert store.health.ok
    finally:
        await store.close()
