"""The one SQLite writer: jobs from many chargers share a transaction (group commit).

Each job is a plain function of the write connection, run in the writer's own thread. Jobs
that arrive while a group is being committed form the next group, so under load one commit
serves many messages, and a caller's future is resolved only after its group's COMMIT (or
with the error that stopped it). A caller that is cancelled does not cancel its job: nothing
can interrupt a transaction half way, so no failure or cancellation poisons the next write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import structlog

from csms.store.base import StoreHealth

log = structlog.get_logger("csms.store")

R = TypeVar("R")
Job = Callable[[sqlite3.Connection], R]
# Enough to amortise a commit over a burst; small enough that one group stays short.
MAX_GROUP = 500


def is_store_fault(exc: BaseException | None) -> bool:
    """A fault of the database itself (disk, I/O, locks), not of one job's data."""
    return isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError)


@dataclass(slots=True)
class _Pending(Generic[R]):
    job: Job[R]
    future: asyncio.Future[R]


@dataclass(slots=True)
class _Outcome:
    results: list[tuple[bool, Any]] = field(default_factory=list)  # (ok, result or error)
    error: BaseException | None = None  # the group as a whole failed


class Rider(Protocol):
    """Rows that ride along with every group (the frame log), so they cost no commit."""

    def take(self) -> Any:
        """On the event loop: what the next group carries."""

    def write(self, db: sqlite3.Connection, taken: Any) -> None:
        """In the writer thread, before COMMIT: write what was taken."""

    def give_back(self, taken: Any) -> None:
        """On the event loop: the group was not committed; keep what it carried."""


class BatchWriter:
    """Runs write jobs in groups on one connection in one thread; see the module docstring."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], rider: Rider) -> None:
        self._connect = connect
        self._rider = rider
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._db: sqlite3.Connection | None = None
        self._queue: list[_Pending[Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._committing = False
        self.health = StoreHealth()

    async def start(self) -> None:
        """Open the write connection (in the writer thread) and start taking jobs."""
        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._thread, self._connect)
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def stop(self) -> None:
        """Finish every job already submitted, then close the connection and the thread."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._thread, db.close)
        self._thread.shutdown(wait=True)

    @property
    def busy(self) -> bool:
        """A group is being committed or jobs wait for the next one."""
        return self._committing or bool(self._queue)

    async def submit(self, job: Job[R]) -> R:
        """Run `job` in the next group; return its result once that group is committed."""
        if self._task is None or self._closing:
            raise RuntimeError("store is not open")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(job, future))
        self._wake.set()
        # Shielded: a cancelled caller leaves the job to finish (or fail) with its group.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            riding = self._rider.take()
            self._committing = True
            try:
                outcome = await loop.run_in_executor(
                    self._thread, self._commit_group, [p.job for p in group], riding)
            finally:
                self._committing = False
            if outcome.error is not None:
                self._rider.give_back(riding)
            self._settle(group, outcome)

    def _settle(self, group: list[_Pending[Any]], outcome: _Outcome) -> None:
        now = datetime.now(UTC)
        faults = [e for e in (outcome.error, *(v for ok, v in outcome.results if not ok))
                  if is_store_fault(e)]
        if faults:
            was_ok = self.health.ok
            self.health.failed(faults[0], now)
            if was_ok:
                log.error("store_write_failing", error=self.health.last_error)
        elif outcome.error is None or not self.health.ok:
            if not self.health.ok:
                log.warning("store_recovered", failures=self.health.consecutive_failures)
            self.health.succeeded(now)
        if outcome.error is not None:
            for p in group:
                if not p.future.done():
                    p.future.set_exception(outcome.error)
        else:
            for p, (ok, value) in zip(group, outcome.results, strict=True):
                if p.future.done():
                    continue
                if ok:
                    p.future.set_result(value)
                else:
                    p.future.set_exception(value)
        for p in group:
            # A caller that was cancelled never reads its outcome: mark it retrieved.
            if not p.future.cancelled():
                p.future.exception()

    # -- in the writer thread -------------------------------------------------------------

    def _commit_group(self, jobs: list[Job[Any]], riding: Any) -> _Outcome:
        """BEGIN, each job under its own savepoint, COMMIT; a job's failure undoes only it."""
        db = self._db
        assert db is not None
        outcome = _Outcome()
        try:
            if db.in_transaction:
                log.error("store_healed_open_transaction")
                db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            single = len(jobs) == 1
            for job in jobs:
                if not single:
                    db.execute("SAVEPOINT job")
                try:
                    result = job(db)
                except Exception as exc:
                    if single:
                        raise
                    db.execute("ROLLBACK TO job")
                    db.execute("RELEASE job")
                    outcome.results.append((False, exc))
                    continue
                if not single:
                    db.execute("RELEASE job")
                outcome.results.append((True, result))
            self._rider.write(db, riding)
            db.execute("COMMIT")
        except Exception as exc:
            self._rollback(db)
            outcome.error = exc
            outcome.results = []
            return outcome
        return outcome

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        """Roll back whatever is open; never hide the error that got us here."""
        if not db.in_transaction:
            return  # SQLite already rolled back (e.g. disk full), or BEGIN never ran
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("store_rollback_failed", error=str(exc))
