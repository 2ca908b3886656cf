"""Wires Loadstar together explicitly at start-up: store, core, commands, server."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from csms.central import Central
from csms.clock import Clock, SystemClock
from csms.commands import Commands
from csms.config import Config
from csms.events import EventBus
from csms.planner import Planner
from csms.server import OcppServer, Registry
from csms.sites import SiteDirectory
from csms.store import SqliteStore, Store

log = structlog.get_logger("csms.service")


class Loadstar:
    """One running CSMS: start() it, use `commands` and `store`, then stop() it."""

    def __init__(self, config: Config, clock: Clock | None = None,
                 store: Store | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store or SqliteStore(config.store.path)
        self.bus = EventBus()
        self.central = Central(self.store, config.ocpp, self.clock, self.bus)
        self.registry = Registry()
        self.commands = Commands(self.store, self.registry, self.clock)
        self.server = OcppServer(config.ocpp, self.central, self.store, self.clock,
                                 self.registry, self.commands.record)
        self.sites = SiteDirectory.from_config(config)
        self.planner: Planner | None = None
        if config.load.enabled:
            self.planner = Planner(self.sites, self.store, self.commands, self.clock,
                                   config.load)
            self.bus.listen(self.planner.on_event)
        self._housekeeping: asyncio.Task[None] | None = None

    @property
    def ocpp_port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        """Open the store (migrating it), forget stale online flags, start listening."""
        await self.store.open()
        await self.store.mark_all_offline()
        if self.planner is not None:
            await self.planner.start(self.config.sites)
        await self.server.start()
        self._housekeeping = asyncio.create_task(self._housekeep(), name="housekeeping")

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, close sockets, flush and close the store."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        # Closing the sockets ends the calls under way; their endings are recorded before the
        # store closes.
        await self.server.stop()
        if self.planner is not None:
            await self.planner.stop()
        await self.commands.drain()
        await self.store.close()
        log.info("stopped")

    async def _housekeep(self) -> None:
        """Flush the frame log every second; prune frames, plans and commands hourly."""
        ticks = 0
        while True:
            await asyncio.sleep(1.0)
            await self.store.flush()
            ticks += 1
            if ticks % 3600 == 1:
                await self.prune()

    async def prune(self) -> None:
        """Delete frames, plans and finished commands older than their retention."""
        now, cfg = self.clock.now(), self.config.store
        await self.store.prune_frames(now - timedelta(days=cfg.frame_log_retention_days))
        await self.store.prune_plans(now - timedelta(days=cfg.plan_retention_days))
        await self.store.prune_commands(now - timedelta(days=cfg.command_retention_days))
