"""Wires Loadstar together explicitly at start-up: store, core, commands, server."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import ssl
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from pydantic import ValidationError

from csms.alerts import Alerts
from csms.api_keys import ApiKeys
from csms.api_optimizations import Optimizations
from csms.api_sessions import ApiSessions
from csms.central import Central
from csms.clock import Clock, SystemClock
from csms.commands import Commands
from csms.config import Config, problems
from csms.costs import Costs
from csms.delivery import Delivery
from csms.display_monitoring import DisplayMonitoring
from csms.events import EventBus
from csms.id_tags import IdTags
from csms.local_lists import LocalLists
from csms.networks import SITE_OVERRIDE
from csms.pki.ca import CaError
from csms.pki.service import Pki
from csms.planner import Planner
from csms.registrar import Registrar
from csms.relay import Relay
from csms.reservations import Reservations
from csms.secrets import SecretBox, key_path_for
from csms.server import OcppServer, Registry
from csms.sites import SiteDirectory
from csms.station_queries import StationQueries
from csms.store import SqliteStore, Store
from csms.transfers import Transfers
from csms.typed_calls import CommandsChannel
from csms.variable_split import VariableRequests
from csms.vehicles import Vehicles
from csms.webhook_delivery import WebhookDelivery
from csms.webhooks import Webhooks

log = structlog.get_logger("csms.service")

HOUSEKEEPING_INTERVAL_S = 1.0
PRUNE_INTERVAL_S = 3600.0
# While housekeeping keeps failing (a full disk), repeat the error this often, not every tick.
FAILURE_LOG_EVERY = 60


class StartupError(Exception):
    """Loadstar cannot start; the message is one line for the operator."""


def error_text(exc: BaseException) -> str:
    """The operating system's words for an OSError (without asyncio's wrapping), else str()."""
    if isinstance(exc, ssl.SSLError):  # its errno is OpenSSL's, not the operating system's
        return str(exc.strerror or exc)
    if isinstance(exc, OSError) and exc.errno and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def probe_sqlite(path: str) -> None:
    """Open and close `path` with plain sqlite3, raising sqlite3.Error if it cannot be opened.

    When aiosqlite's own connect fails, its worker thread reports to the event loop after
    asyncio.run has closed it and dies with a traceback on stderr; fail here first instead.
    """
    sqlite3.connect(path).close()


class Loadstar:
    """One running CSMS: start() it, use `commands` and `store`, then stop() it."""

    def __init__(self, config: Config, clock: Clock | None = None,
                 store: Store | None = None, *,
                 housekeeping_interval_s: float = HOUSEKEEPING_INTERVAL_S) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store or SqliteStore(config.store.path)
        self.bus = EventBus()
        self.central = Central(self.store, config.ocpp, self.clock, self.bus)
        self.registry = Registry()
        self.api_keys = ApiKeys(self.store)
        self.commands = Commands(self.store, self.registry, self.clock)
        self.registrar = Registrar(self.store, self.registry, self.commands)
        self.server = OcppServer(config.ocpp, self.central, self.store, self.clock,
                                 self.registry, self.commands.record)
        self.sites = SiteDirectory.from_config(config)
        # The catalog of the HTTP side (id tags, vehicles, delivery presets); the planner
        # reads tag priorities and presets from it on every plan.
        self.id_tags = IdTags(self.store, self.clock, self.replan_all)
        self.vehicles = Vehicles(self.store, self.clock, self.replan_all)
        self.delivery = Delivery(self.store, self.clock, self.directory, self.replan_all)
        self.planner: Planner | None = None
        if config.load.enabled:
            self.planner = Planner(self.sites, self.store, self.commands, self.clock,
                                   config.load, tag_priority=self.id_tags.priority_for,
                                   presets=self.delivery.presets_for)
            self.bus.listen(self.planner.on_event)
            self.central.judge_ev_schedule = self.planner.judge_ev_schedule
        # The HTTP API's sessions: enrichment and sessions of chargers another CSMS runs.
        self.api_sessions = ApiSessions(self)
        self.optimizations = Optimizations(self)
        # Messages API clients relay to chargers, and the webhooks plans are delivered to.
        self.relay = Relay(self.store, self.registry, self.commands, self.clock,
                           config.ocpp.call_timeout_s)
        self.bus.listen(self.relay.on_event)
        # What sessions cost under their site's tariff; running costs go out as CostUpdated.
        self.costs = Costs(self.store, self.commands, self.clock, self.directory,
                           config.ocpp.cost_update_interval_s)
        self.central.costs = self.costs
        self.bus.listen(self.costs.on_event)
        # Typed helpers: local authorization lists kept in step with the id tags, reservations.
        channel = CommandsChannel(self.commands, self.store)
        self.local_lists = LocalLists(self.store, channel, self.clock,
                                      config.ocpp.post_boot_concurrency, self.online_chargers,
                                      self.after_reply)
        self.id_tags.on_change.append(self.local_lists.tags_changed)
        self.bus.listen(self.local_lists.on_event)
        self.reservations = Reservations(self.store, channel, self.clock)
        self.bus.listen(self.reservations.on_event)
        self.webhooks = Webhooks(self.store, self.clock, SecretBox(key_path_for(config.store.path)),
                                 self.optimizations.of_plan)
        self.webhooks.on_webhook_gone = self.api_sessions.webhook_gone
        self.webhook_delivery = WebhookDelivery(self.store, self.webhooks, self.clock)
        # Over-limit plans and uncontrollable chargers, raised, kept and sent to webhooks.
        self.alerts = Alerts(self.store, self.clock, self.directory, self.webhook_delivery.wake)
        if self.planner is not None:
            self.planner.on_uncontrollable.append(self.alerts.on_uncontrollable)
        # Typed helpers where the CSMS adds logic to a command (issue 12 point 2).
        channel = CommandsChannel(self.commands, self.store)
        self.transfers = Transfers(self.store, channel, self.clock)
        self.variables = VariableRequests(self.store, channel, self.clock)
        self.station_queries = StationQueries(self.store, channel, self.clock)
        self.display_monitoring = DisplayMonitoring(self.store, channel, self.clock)
        self.typed_channel = channel
        self._housekeeping: asyncio.Task[None] | None = None
        self._housekeeping_interval_s = housekeeping_interval_s
        # Set (with `failure`) when a background task cannot go on: the process should end.
        self.failed = asyncio.Event()
        self.failure: str | None = None

    @property
    def ocpp_port(self) -> int:
        return self.server.port

    def directory(self) -> SiteDirectory:
        """The sites as they are now (the planner's copy follows changes made through the API)."""
        return self.planner.directory if self.planner is not None else self.sites

    def online_chargers(self) -> list[str]:
        """Chargers connected and accepted now."""
        return [conn.cp_id for conn in self.registry.all() if conn.standing().accepted]

    def after_reply(self, cp_id: str, job: Callable[[], Awaitable[None]]) -> bool:
        """Run `job` on `cp_id`'s connection once the answer under way is sent (see
        csms.typed_calls.AfterReply); False when it is not connected."""
        conn = self.registry.get(cp_id)
        if conn is None:
            return False
        conn.context.after_reply(job)
        return True

    def replan_all(self, trigger: str) -> None:
        """Re-plan every site: a catalog change (a tag's priority, a vehicle's need, a preset)
        may concern any running session."""
        if self.planner is not None:
            for site_id in self.planner.directory.specs:
                self.planner.request(site_id, trigger)

    async def start(self) -> None:
        """Open the store (migrating it), forget stale online flags, start listening.

        Raises StartupError for what the operator must fix (database, certificate, port), having
        closed what was opened: the store's worker thread would keep the process alive.
        """
        try:
            await self._start()
        except BaseException:
            await self._abandon_start()
            raise

    async def _start(self) -> None:
        db = self.config.store.path
        try:
            if isinstance(self.store, SqliteStore):
                probe_sqlite(db)
            await self.store.open()
            await self.store.mark_all_offline()
            await self.store.abandon_pending_commands(self.clock.now())
            for catalog in (self.id_tags, self.vehicles, self.delivery):
                await catalog.load()
            await self.relay.start()
            await self.webhooks.load()
        except (sqlite3.Error, OSError) as e:
            raise StartupError(f"cannot open database {db}: {error_text(e)}") from e
        try:
            # Chargers' SignCertificate needs it from their first message on.
            self.central.pki = Pki.open(self.config.ca, self.config.certificates, db,
                                        self.clock.now())
        except CaError as e:
            raise StartupError(str(e)) from e
        if self.planner is not None:
            try:
                overrides = {r.site_id: r.attrs for r in await self.store.list_network_records()
                             if r.kind == SITE_OVERRIDE}
                await self.planner.start(self.config.sites, overrides)
            except (sqlite3.Error, OSError) as e:
                raise StartupError(f"cannot use database {db}: {error_text(e)}") from e
            except ValidationError as e:
                # Saved through the API under older rules; config.toml can replace it.
                raise StartupError(f"a site stored in {db} is no longer valid: "
                                   f"{problems(e)[0]}") from e
            await self.api_sessions.restore()
        ocpp = self.config.ocpp
        try:
            self.server.ssl_context()
        except (OSError, ssl.SSLError) as e:
            raise StartupError(f"cannot load TLS certificate {ocpp.tls_cert} / key "
                               f"{ocpp.tls_key}: {error_text(e)}") from e
        try:
            await self.server.start()
        except OSError as e:
            raise StartupError(f"cannot listen on {ocpp.host}:{ocpp.port}: {error_text(e)}") from e
        await self.alerts.start(self.planner)
        await self.webhook_delivery.start()
        self._housekeeping = asyncio.create_task(self._housekeep(), name="housekeeping")
        self._housekeeping.add_done_callback(self._housekeeping_ended)

    async def _abandon_start(self) -> None:
        """Undo a partial start, best effort: each step may fail for the reason start did."""
        steps = [self.server.stop, self.alerts.stop, self.webhook_delivery.stop,
                 self.store.close]
        if self.planner is not None:
            steps.insert(0, self.planner.stop)
        for step in steps:
            try:
                await step()
            except Exception as e:  # the start-up error is the one to report
                log.warning("start_cleanup_failed", step=step.__qualname__, error=error_text(e))

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, close sockets, flush and close the store."""
        if self._housekeeping is not None:
            task, self._housekeeping = self._housekeeping, None
            task.cancel()
            # Waited for, not awaited: a failure of its own was reported when it ended.
            await asyncio.wait([task])
        await self.costs.stop()
        # Closing the sockets ends the calls under way; their endings are recorded before the
        # store closes.
        await self.server.stop()
        await self.registrar.drain()
        if self.planner is not None:
            await self.planner.stop()
        await self.relay.stop()
        await self.local_lists.stop()
        await self.reservations.idle()
        await self.alerts.stop()
        await self.webhook_delivery.stop()
        await self.commands.drain()
        await self.store.close()
        log.info("stopped")

    async def _housekeep(self) -> None:
        """Flush the frame log every second; prune frames, plans and commands hourly.

        A failing round (a full disk, a locked database) is logged and retried next round.
        """
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        failures = 0
        while True:
            await asyncio.sleep(self._housekeeping_interval_s)
            try:
                await self.store.flush()
                await self.reservations.expire()
                if loop.time() >= next_prune:
                    await self.prune()
                    next_prune = loop.time() + PRUNE_INTERVAL_S
            except Exception as e:  # any failure is retried, none ends the loop
                failures += 1
                if failures % FAILURE_LOG_EVERY == 1:
                    log.error("housekeeping_failed", error=error_text(e),
                              error_type=type(e).__name__, consecutive=failures)
                continue
            if failures:
                log.info("housekeeping_recovered", failed_rounds=failures)
                failures = 0

    def _housekeeping_ended(self, task: asyncio.Task[None]) -> None:
        """Housekeeping only ends when cancelled; anything else must stop the process."""
        if task.cancelled():
            return
        exc = task.exception()
        self.fail(f"housekeeping stopped: {error_text(exc) if exc else 'returned'}")

    def fail(self, reason: str) -> None:
        """Report that Loadstar cannot go on; `loadstar serve` then stops and exits non-zero."""
        if self.failure is None:
            self.failure = reason
            log.error("fatal", reason=reason)
        self.failed.set()

    async def prune(self) -> None:
        """Delete frames, plans and finished commands older than their retention."""
        now, cfg = self.clock.now(), self.config.store
        await self.store.prune_frames(now - timedelta(days=cfg.frame_log_retention_days))
        await self.store.prune_plans(now - timedelta(days=cfg.plan_retention_days))
        await self.store.prune_commands(now - timedelta(days=cfg.command_retention_days))
        # Settled webhook deliveries go with the plans they delivered.
        await self.store.prune_outbox(now - timedelta(days=cfg.plan_retention_days))
        await self.store.prune_alerts(now - timedelta(days=cfg.plan_retention_days))
