"""What every part of one simulated charger shares: waiters, background tasks, sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from simulators.clock import Clock

log = logging.getLogger("simulators.charger")


class Runtime:
    """Predicate waiters woken on every change, and follow-up tasks held until done."""

    def __init__(self, cp_id: str, clock: Clock) -> None:
        self.cp_id = cp_id
        self.clock = clock
        self.busy = 0
        self.last_error: str | None = None
        self._waiters: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._aux: set[asyncio.Task[Any]] = set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait (wall `timeout`) until `predicate()` is truthy; return its value."""
        value = predicate()
        if value:
            return value
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def notify(self) -> None:
        """Something changed: resolve the waiters whose predicate now holds."""
        for predicate, fut in list(self._waiters):
            if not fut.done():
                value = predicate()
                if value:
                    fut.set_result(value)

    def spawn(self, coro: Awaitable[Any], *, busy: bool = False) -> None:
        """Run a follow-up in the background, holding a reference and logging its failure."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # edge of a background task: log, don't kill the charger
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("charger %s: background task failed: %r", self.cp_id, exc)
            finally:
                if busy:
                    self.busy -= 1
                    self.notify()

        if busy:
            self.busy += 1
        task = asyncio.ensure_future(guarded())
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)

    async def cancel_all(self) -> None:
        """Cancel every follow-up still running and wait for them to end."""
        for aux in list(self._aux):
            aux.cancel()
        for aux in list(self._aux):
            with contextlib.suppress(asyncio.CancelledError):
                await aux

    async def sleep_or(self, event: asyncio.Event, sim_seconds: float) -> None:
        """Sleep `sim_seconds` of simulated time, or until `event` is set."""
        if event.is_set():
            event.clear()
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(sim_seconds))
        waker = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        event.clear()
