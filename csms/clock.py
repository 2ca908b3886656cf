"""Time as a dependency: the core takes a Clock so tests and simulators can run fast."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, overload


class Clock(Protocol):
    """`now()` gives an aware UTC datetime; `sleep(s)` waits `s` seconds of that clock's time."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait in real time."""
        await asyncio.sleep(seconds)


def iso(dt: datetime) -> str:
    """Format an aware datetime as OCPP wants it: ISO 8601 UTC with a Z and milliseconds."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@overload
def document_time(dt: datetime) -> str: ...
@overload
def document_time(dt: None) -> None: ...
def document_time(dt: datetime | None) -> str | None:
    """A time as seed 002 writes it in answers: ISO 8601 UTC with microseconds and offset."""
    return None if dt is None else dt.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    """Parse an OCPP timestamp; naive values are taken as UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


class ScaledClock:
    """Time running `speed` times faster than the wall clock from `start` at wall time `epoch`.

    Two processes given the same three numbers agree on the time, so a test can run a server
    process and simulated chargers on one fast clock.
    """

    def __init__(self, start: datetime, speed: float, epoch: float) -> None:
        self.start = start.astimezone(UTC)
        self.speed = speed
        self.epoch = epoch

    def now(self) -> datetime:
        """The scaled instant."""
        return self.start + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of scaled time."""
        await asyncio.sleep(max(0.0, seconds) / self.speed)
