"""Per-site loops: requests coalesce into one plan, and timers wake a site when something is due.

Each site has its own loop, so a slow plan for one site never delays another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms.live import ChargerState
from csms.planning.context import PlanContext
from csms.sites import connector_key
from loadmgmt.limits import Resolved

log = structlog.get_logger("csms.planner")


async def _first_done(*aws: Awaitable[Any]) -> set[asyncio.Future[Any]]:
    """Wait for the first of `aws` to finish, cancel the rest; return the finished."""
    futures = {asyncio.ensure_future(a) for a in aws}
    try:
        done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also when this wait is itself cancelled (the planner stops): leave no task behind.
        for f in futures:
            if not f.done():
                f.cancel()
    return done


@dataclass(slots=True)
class SiteLoop:
    """One site's wake-ups, pending triggers, next timer and completed plans."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    triggers: list[str] = field(default_factory=list)
    next_due: datetime | None = None
    planned: asyncio.Event = field(default_factory=asyncio.Event)
    plans: int = 0
    # A connector draws more than it may, or a car's share changes hands (a lent car ramps up,
    # a car's headroom is lent): plan without waiting out the coalescing window.
    urgent: bool = False
    urgent_wake: asyncio.Event = field(default_factory=asyncio.Event)


class SiteLoops:
    """One loop per site, each a child of the planner's task group; `plan` plans one site."""

    def __init__(self, ctx: PlanContext,
                 plan: Callable[[str, str], Awaitable[object]]) -> None:
        self._ctx = ctx
        self._plan = plan
        self.loops: dict[str, SiteLoop] = {}

    def loop(self, site_id: str) -> SiteLoop:
        """The loop of `site_id`, started on first use if the planner runs."""
        if site_id not in self.loops:
            self.loops[site_id] = SiteLoop()
            if self._ctx.tasks is not None:
                self._ctx.tasks.create_task(self._site_loop(site_id), name=f"plan-{site_id}")
        return self.loops[site_id]

    def request(self, site_id: str, trigger: str, *, urgent: bool = False) -> None:
        """Ask for a re-plan of `site_id`; requests within the coalescing window merge.

        An urgent request (a connector draws more than it may, a share changes hands) skips
        the window.
        """
        loop = self.loop(site_id)
        loop.triggers.append(trigger)
        loop.urgent = loop.urgent or urgent
        if urgent:
            loop.urgent_wake.set()
        loop.wake.set()

    async def wait_planned(self, site_id: str) -> None:
        """Wait for the next completed plan of `site_id` (tests and the CLI use this)."""
        loop = self.loop(site_id)
        loop.planned.clear()
        await loop.planned.wait()

    async def _site_loop(self, site_id: str) -> None:
        loop = self.loops[site_id]
        while True:
            await self._wait(loop)
            if not loop.urgent:
                await self._coalesce(loop)
            loop.wake.clear()
            loop.urgent = False
            loop.urgent_wake.clear()
            triggers, loop.triggers = loop.triggers, []
            trigger = ",".join(sorted(set(triggers))) or "timer"
            try:
                await self._plan(site_id, trigger)
            except Exception:  # the edge of the site's task: keep planning the next time
                log.exception("plan_failed", site_id=site_id)
            loop.plans += 1
            loop.planned.set()

    async def _coalesce(self, loop: SiteLoop) -> None:
        """Let requests gather for the coalescing window, unless an urgent one cuts it short."""
        clock = self._ctx.clock
        await _first_done(loop.urgent_wake.wait(), clock.sleep(self._ctx.config.coalesce_s))

    async def _wait(self, loop: SiteLoop) -> None:
        if loop.wake.is_set():
            return
        clock = self._ctx.clock
        waiter = asyncio.ensure_future(loop.wake.wait())
        due = [] if loop.next_due is None else [clock.sleep(
            max(0.0, (loop.next_due - clock.now()).total_seconds()))]
        if waiter not in await _first_done(waiter, *due):
            loop.triggers.append("timer")

    def next_due(self, chargers: list[ChargerState], resolved: dict[str, Resolved],
                 now: datetime) -> datetime | None:
        """The earliest limit boundary, TxProfile renewal, retry, or deferred raise."""
        ctx = self._ctx
        due: list[datetime] = [r.next_boundary for r in resolved.values()
                               if r.next_boundary is not None]
        # Plan a little before a boundary so a drop is in force at its start.
        due = [d - timedelta(seconds=ctx.config.profile_validity_s) for d in due]
        for cp in chargers:
            for n, c in cp.connectors.items():
                key = connector_key(cp.cp_id, n)
                held = ctx.held_for(key)
                if c.tx_id is not None and c.held_tx_valid_to is not None:
                    due.append(c.held_tx_valid_to - timedelta(seconds=ctx.policy.renew_before_s))
                if held.retry_at is not None:
                    due.append(held.retry_at)
                if c.last_sent_at is not None and c.tx_id is not None:
                    due.append(c.last_sent_at + timedelta(seconds=ctx.policy.min_interval_s))
        future = [d for d in due if d > now]
        return min(future) if future else None
