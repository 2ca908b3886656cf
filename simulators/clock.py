"""Simulated time for chargers, fleets and (optionally) the server under test.

A `SimClock` runs `speed` times faster than the wall clock from a chosen start instant. The
chargers only ever read `now()` and `await sleep()`, so one object can drive a whole fleet and
be handed to the server as well (which only needs `now()`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the simulators need from a clock."""

    def now(self) -> datetime:
        """Return the current (simulated) instant, tz-aware UTC."""
        ...

    async def sleep(self, sim_seconds: float) -> None:
        """Sleep for `sim_seconds` of simulated time."""
        ...


class SimClock:
    """A clock that advances at `speed` x real time from `start` (default: the real now)."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        if start is None:
            # Whole seconds keep schedule offsets and timestamps readable in logs and tests.
            start = datetime.now(UTC).replace(microsecond=0)
        elif start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.start = start.astimezone(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        """Return the simulated instant (tz-aware UTC)."""
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def elapsed(self) -> float:
        """Simulated seconds since `start`."""
        return (time.monotonic() - self._t0) * self.speed

    def wall_seconds(self, sim_seconds: float) -> float:
        """Convert a simulated duration to wall-clock seconds."""
        return max(0.0, sim_seconds) / self.speed

    async def sleep(self, sim_seconds: float) -> None:
        """Sleep for `sim_seconds` of simulated time (0 or less just yields)."""
        await asyncio.sleep(self.wall_seconds(sim_seconds))

    async def sleep_until(self, at: datetime) -> None:
        """Sleep until the simulated instant `at` (returns at once if it is past)."""
        await self.sleep((at - self.now()).total_seconds())
