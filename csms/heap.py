"""Keeping the cyclic garbage collector's pauses short in a long-running server.

CPython's full (generation 2) collection walks every tracked object. A Loadstar with 1,000
chargers holds about 160,000 of them (connections, live state, caches), so each full pass held
the event loop ~100 ms; under API load (pages of a thousand rows) one came every 2-3 s and was
what the chargers' round-trip p99 measured. What lives long is moved out of the collector's
reach instead (`gc.freeze`), in two steps:

- every `settle_s`: collect what is unfrozen (only what was made since the last freeze, so the
  pass is short), then freeze the survivors;
- every `full_s`: unfreeze, collect everything, freeze again: the one full pass, which also
  frees cycles that became garbage after they were frozen (a closed charger connection).
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass

import structlog

log = structlog.get_logger("csms.heap")

SETTLE_S = 10.0
FULL_S = 3600.0


@dataclass
class Pass:
    """What one pass did: objects freed, objects now frozen, how long the loop was held."""

    collected: int
    frozen: int
    paused_s: float


def settle() -> Pass:
    """Collect what was made since the last freeze; freeze what survived."""
    started = time.perf_counter()
    collected = gc.collect()
    gc.freeze()
    return Pass(collected, gc.get_freeze_count(), time.perf_counter() - started)


def full() -> Pass:
    """Collect everything, frozen or not; freeze what survived."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    return Pass(collected, gc.get_freeze_count(), time.perf_counter() - started)


async def keep(settle_s: float = SETTLE_S, full_s: float = FULL_S) -> None:
    """Run `settle` every `settle_s` and `full` every `full_s` until cancelled."""
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(settle_s)
        if time.monotonic() - last_full >= full_s:
            done, kind = full(), "full"
            last_full = time.monotonic()
        else:
            done, kind = settle(), "settle"
        log.debug("heap_kept", kind=kind, collected=done.collected, frozen=done.frozen,
                  paused_ms=round(done.paused_s * 1000.0, 1))
