"""Session costs under their site's tariff (csms.tariffs): kept on the session, told to 2.0.1
stations in TransactionEvent answers (I02/I03) and, while a transaction runs, as CostUpdated.

A session's cost is final once it ended: the first final cost is what the station was told
and is never recomputed (a repeated Ended is answered the same total).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import structlog

from csms.clock import Clock
from csms.commands import Commands
from csms.config import TariffSpec
from csms.domain import ConnectionChanged, DomainEvent, TransactionEvent201
from csms.sites import SiteDirectory
from csms.store import SessionRecord, Store
from csms.tariffs import Reading, session_cost

log = structlog.get_logger("csms.costs")

# Answers that say the station will never take a CostUpdated: stop sending it for the session.
REFUSED = ("NotImplemented", "NotSupported")


def cost_disabled(reports: list[dict]) -> bool:
    """Whether a station's TariffCostCtrlr variables (as reported) switch cost display off:
    `Enabled` or `Available` with instance `Cost` (or none) whose Actual value is false."""
    for raw in reports:
        variable = raw.get("variable") or {}
        if variable.get("instance") not in (None, "Cost"):
            continue
        for attr in raw.get("variableAttribute") or []:
            if attr.get("type", "Actual") == "Actual" and \
                    str(attr.get("value", "")).strip().lower() == "false":
                return True
    return False


def _readings(session: SessionRecord, register: list[Reading]) -> list[Reading]:
    """The register readings, with the start and stop meter (where known) at their times."""
    out = list(register)
    if session.meter_start_wh is not None:
        out.append((session.started_at, session.meter_start_wh))
    if session.stopped_at is not None and session.meter_stop_wh is not None:
        out.append((session.stopped_at, session.meter_stop_wh))
    return out


class Costs:
    """Computes, keeps and sends what sessions cost; one CostUpdated task per running 2.0.1
    transaction on a site with a tariff (and a station that does not switch cost off)."""

    def __init__(self, store: Store, commands: Commands, clock: Clock,
                 directory: Callable[[], SiteDirectory], interval_s: float) -> None:
        self.store = store
        self.commands = commands
        self.clock = clock
        self.directory = directory
        self.interval_s = interval_s
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._stopped = False

    def tariff_for(self, cp_id: str) -> tuple[TariffSpec, str] | None:
        """The tariff and time zone of the site `cp_id` hangs from, if that site has one."""
        directory = self.directory()
        site = directory.specs.get(directory.placement(cp_id).site_id)
        return None if site is None or site.tariff is None else (site.tariff, site.timezone)

    async def update(self, cp_id: str, ocpp_tx_id: str,
                     now: datetime | None = None) -> Decimal | None:
        """The cost of a session now (final once it ended), kept on it; None without a tariff.

        A running session is costed up to `now` (the clock's by default)."""
        # The tariff first: a site without one costs no read on every TransactionEvent.
        found = self.tariff_for(cp_id)
        if found is None:
            return None
        tariff, timezone = found
        session = await self.store.get_session(cp_id, ocpp_tx_id)
        if session is None:
            return None
        if session.cost is not None and session.cost.final:
            return session.cost.total
        end = session.stopped_at or max(session.started_at, now or self.clock.now())
        readings = _readings(session, await self.store.energy_readings(session.id))
        cost = session_cost(tariff, timezone, session.started_at, end, session.energy_kwh,
                            readings)
        final = session.stopped_at is not None
        kept = await self.store.save_session_cost(session.id, cost.total, cost.currency, final)
        if final:
            log.info("session_cost_settled", cp_id=cp_id, transaction_id=ocpp_tx_id,
                     total_cost=str(cost.total), currency=cost.currency,
                     energy_kwh=session.energy_kwh)
        return None if kept is None else kept.total

    # -- CostUpdated while a 2.0.1 transaction runs ------------------------------------------

    def on_event(self, event: DomainEvent) -> None:
        """Start a transaction's CostUpdated task at its first event, end it at its Ended or
        when its station goes offline (it starts again with the next event after that)."""
        if isinstance(event, ConnectionChanged) and not event.online:
            for key in [k for k in self._tasks if k[0] == event.cp_id]:
                self._tasks[key].cancel()
        if not isinstance(event, TransactionEvent201):
            return
        key = (event.cp_id, event.ocpp_tx_id)
        if event.event_type == "Ended":
            task = self._tasks.get(key)
            if task is not None:
                task.cancel()
            return
        if self._stopped or self.interval_s <= 0 or key in self._tasks \
                or self.tariff_for(event.cp_id) is None:
            return
        # A context of its own: not the message id of the event that started it.
        task = asyncio.create_task(self._run(*key), name=f"cost-{event.cp_id}-{event.ocpp_tx_id}",
                                   context=contextvars.Context())
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._ended(key, t))

    def _ended(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("cost_updates_failed", cp_id=key[0], transaction_id=key[1],
                      error=repr(task.exception()))

    async def _run(self, cp_id: str, ocpp_tx_id: str) -> None:
        """Every interval: cost the running session and send it as CostUpdated."""
        while True:
            await self.clock.sleep(self.interval_s)
            try:
                if not await self._send_once(cp_id, ocpp_tx_id):
                    return
            except Exception as e:  # the edge of this task: a failed round is tried again
                log.error("cost_update_failed", cp_id=cp_id, transaction_id=ocpp_tx_id,
                          error=f"{type(e).__name__}: {e}")

    async def _send_once(self, cp_id: str, ocpp_tx_id: str) -> bool:
        """One CostUpdated; False when no more are due for this transaction."""
        session = await self.store.get_session(cp_id, ocpp_tx_id)
        if session is None or session.stopped_at is not None:
            return False
        if cost_disabled(await self.store.variable_reports(cp_id, "TariffCostCtrlr")):
            log.info("cost_updates_off_at_station", cp_id=cp_id, transaction_id=ocpp_tx_id)
            return False
        total = await self.update(cp_id, ocpp_tx_id)
        if total is None:
            return False
        result = await self.commands.send(cp_id, "CostUpdated", {
            "totalCost": float(total), "transactionId": ocpp_tx_id})
        log.info("cost_updated_sent", cp_id=cp_id, transaction_id=ocpp_tx_id,
                 total_cost=str(total), status=result.status, command_id=result.command_id)
        if result.code in REFUSED:
            log.warning("cost_updated_refused", cp_id=cp_id, transaction_id=ocpp_tx_id,
                        code=result.code)
            return False
        return True

    def task_for(self, cp_id: str, ocpp_tx_id: str) -> asyncio.Task[None] | None:
        """The CostUpdated task of a transaction, while it has one."""
        return self._tasks.get((cp_id, ocpp_tx_id))

    async def stop(self) -> None:
        """End every CostUpdated task and wait for each (a call under way is recorded as
        failed by csms.commands)."""
        self._stopped = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

