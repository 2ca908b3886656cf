"""Alerts: over-limit plans and chargers that cannot be limited are never silent.

A plan that lets a node (the site, a group) draw over its limit raises one alert per node
(METER_VALUE_LIMIT_VIOLATION), kept up to date while it lasts and resolved by the first plan
that brings the node back within its limit. A charger learned uncontrollable raises one alert
per charger and firmware (INCORRECT_SETTINGS). Alerts live in the store (an open one survives
a restart) and reach the site's webhook, if any, when raised and when resolved.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

import structlog

from csms.clock import Clock, document_time
from csms.identity import charge_point_uuid, connector_uuid, network_uuid
from csms.planning.verdicts import reported_uncontrollable
from csms.sites import SiteDirectory
from csms.store import Store
from csms.store.base import AlertQuery, AlertRecord

log = structlog.get_logger("csms.alerts")

# The document's 27 codes have none for "a node of the grid connection is over its limit";
# METER_VALUE_LIMIT_VIOLATION ("a charger drew more than its limit") is the same fact one
# level up, so a client filtering on it sees both.
OVERLOAD = "METER_VALUE_LIMIT_VIOLATION"
# The charger answered that it cannot take limits: what an operator fixes is its settings
# (enable smart charging) or firmware, not a failed call to retry.
UNCONTROLLABLE = "INCORRECT_SETTINGS"
NAMES = ("METER_VALUE_LIMIT_VIOLATION", "UNEXPECTED_CONNECTOR_AND_PHASE_COMBINATION",
         "CHARGER_DISCONNECTED", "INVALID_ID_TAGS", "OCPP_MESSAGE_OUT_OF_SYNC", "CALL_ERROR",
         "CHARGE_POINT_HIGH_INTERNAL_TEMPERATURE", "SUSPENDED_EVSE", "SUSPENDED_EV",
         "UNAVAILABLE", "FAULTED", "CONNECTOR_LOCK_FAILURE", "EV_COMMUNICATION_ERROR",
         "GROUND_FAILURE", "HIGH_TEMPERATURE", "INTERNAL_ERROR", "LOCAL_LIST_CONFLICT",
         "OVER_CURRENT_FAILURE", "OVER_VOLTAGE", "POWER_METER_FAILURE", "POWER_SWITCH_FAILURE",
         "READER_FAILURE", "RESET_FAILURE", "UNDER_VOLTAGE", "WEAK_SIGNAL", "VENDOR_ERROR_CODE",
         "INCORRECT_SETTINGS")
CATEGORIES = ("Charge Point", "Connector", "Vehicle", "IdTag", "Operations", "Maintenance",
              "System Error", "Settings Error", "Hardware", "Software")
URGENCIES = ("Very High", "High", "Medium", "Low", "Very Low")
STATUSES = ("Triggered", "Acknowledged", "Resolved", "Pending")
OPEN = ("Triggered", "Acknowledged")
STOP_DRAIN_S = 5.0
Overloads = dict[str, dict[str, float]]


class AlertRefused(ValueError):
    """An operator's change that cannot apply; `field` names the body field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class PlannerLike(Protocol):
    """What alerts need of the planner: its overload listeners and its plans."""

    on_overload: list[Callable[[str, Overloads], None]]

    async def wait_planned(self, site_id: str) -> None: ...


def to_api(alert: AlertRecord) -> dict[str, Any]:
    """The alert as `/v2/alerts/` and the webhook show it (document 002 names; `details` and
    `description` are Loadstar's)."""
    network = alert.node_id or alert.site_id
    return {
        "id": alert.uuid,
        "network": None if network is None else str(network_uuid(network)),
        "charger": None if alert.cp_id is None else str(charge_point_uuid(alert.cp_id)),
        "connector": None if alert.cp_id is None or alert.connector_id is None
        else str(connector_uuid(alert.cp_id, alert.connector_id)),
        "name": alert.name, "category": alert.category, "urgency": alert.urgency,
        "status": alert.status, "start": document_time(alert.start),
        "end": document_time(alert.end), "notes": alert.notes,
        "description": alert.description, "details": alert.details,
        "updated": document_time(alert.updated_at),
    }


def webhook_body(alert: AlertRecord, event: str) -> str:
    """What a site's webhook receives: the alert in the API's envelope, with `event`
    (`alert_raised` or `alert_resolved`)."""
    return json.dumps({"status": "success", "event": event, "data": [to_api(alert)],
                       "total": 1}, separators=(",", ":"))


def controllability(capabilities: dict[str, Any], firmware: str | None,
                    operator: bool | None = None) -> tuple[bool | None, str]:
    """Whether a charger can be limited, and why, from its stored capabilities and what the
    operator configured (`controllable`), by the planner's rules: (False, why), (True, why) or
    (None, "not known yet"). Verdicts count on the firmware they were reached on."""
    def on_firmware(verdict: Any) -> bool:
        return isinstance(verdict, dict) and verdict.get("firmware") == (firmware or "")

    if operator is False:
        return False, "set uncontrollable by the operator"
    uncontrollable = capabilities.get("uncontrollable")
    if on_firmware(uncontrollable):
        return False, str(uncontrollable.get("reason") or "uncontrollable")
    if operator is True:
        return True, "set controllable by the operator"
    reported = reported_uncontrollable(capabilities)
    if reported is not None:
        return False, reported
    if on_firmware(capabilities.get("ignores_profiles")):
        return False, "accepts limits and draws more"
    if on_firmware(capabilities.get("follows_profiles")):
        return True, "seen following its limit"
    if capabilities.get("smart_charging") is True:
        return True, "smart charging supported"
    return None, "not known yet"


def _overload_text(site_id: str, node: str, amounts: dict[str, float]) -> str:
    what = f"Site {site_id}" if node == site_id else f"Group {node} of site {site_id}"
    return (f"{what} is planned to draw {amounts['counted_w'] / 1000:.1f} kW against its limit"
            f" of {amounts['limit_w'] / 1000:.1f} kW ({amounts['over_w'] / 1000:.1f} kW over):"
            " load it cannot limit")


class Alerts:
    """Raises, updates and resolves alerts; one worker applies changes in order."""

    def __init__(self, store: Store, clock: Clock, directory: Callable[[], SiteDirectory],
                 delivered: Callable[[], None] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.directory = directory
        # Told after a write that may have queued a webhook delivery (wakes the worker).
        self.delivered = delivered or (lambda: None)
        self._open: dict[str, AlertRecord] = {}  # key -> open alert
        self._jobs: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, planner: PlannerLike | None = None) -> None:
        """Recall open alerts, hear the planner, and start the worker."""
        self._open = {a.key: a for a in await self.store.open_alerts()}
        self._spawn(self._work(), "alerts")
        if planner is None:
            return
        planner.on_overload.append(self.on_overload)
        # The planner only tells of an overload's end if it saw it begin since its start: the
        # first plan of a site with an alert still open says whether it still holds.
        for site_id in {a.site_id for a in self._open.values()
                        if a.name == OVERLOAD and a.site_id is not None}:
            self._spawn(self._recheck(planner, site_id), f"alerts-recheck-{site_id}")

    async def stop(self) -> None:
        """Store what was heard (briefly: a wedged store must not hold the stop), then end."""
        if any(t.get_name() == "alerts" for t in self._tasks):
            try:
                await asyncio.wait_for(self._jobs.join(), STOP_DRAIN_S)
            except TimeoutError:
                log.warning("alerts_not_saved_at_stop", pending=self._jobs.qsize())
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks.clear()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Until every change heard so far is stored (tests, the CLI)."""
        await self._jobs.join()

    async def _work(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                async with self._lock:
                    await job()
            except Exception:  # one failed write must not stop the alerts after it
                log.exception("alert_not_saved")
            finally:
                self._jobs.task_done()

    async def _recheck(self, planner: PlannerLike, site_id: str) -> None:
        await planner.wait_planned(site_id)
        plans = await self.store.list_plans(site_id, limit=1)
        if plans:
            self.on_overload(site_id, plans[0]["inputs"].get("overloaded") or {})

    # -- what raises and resolves them ------------------------------------------------------

    def on_overload(self, site_id: str, overloads: Overloads) -> None:
        """The planner's listener: the nodes of `site_id` its last plan lets draw over their
        limit (empty: all back within)."""
        overloads = {node: dict(amounts) for node, amounts in overloads.items()}
        self._jobs.put_nowait(lambda: self._overloaded(site_id, overloads))

    def on_uncontrollable(self, cp_id: str, firmware: str | None, reason: str) -> None:
        """Verdicts' listener: `cp_id` cannot be limited on `firmware`."""
        self._jobs.put_nowait(lambda: self._uncontrollable(cp_id, firmware, reason))

    async def _overloaded(self, site_id: str, overloads: Overloads) -> None:
        now = self.clock.now()
        for node, amounts in overloads.items():
            key = f"overload:{node}"
            details = {"siteId": site_id, "nodeId": node, "limitW": amounts["limit_w"],
                       "countedW": amounts["counted_w"], "overW": amounts["over_w"]}
            was = self._open.get(key)
            if was is None:
                alert = AlertRecord(
                    uuid=str(uuid.uuid4()), key=key, site_id=site_id, node_id=node, cp_id=None,
                    connector_id=None, name=OVERLOAD, category="Operations",
                    urgency="Very High", status="Triggered",
                    description=_overload_text(site_id, node, amounts),
                    details={**details, "peakOverW": amounts["over_w"]}, notes=None,
                    start=now, end=None, updated_at=now)
                await self._save(alert, "alert_raised")
                log.warning("alert_raised", site_id=site_id, node=node, alert=alert.uuid,
                            name=OVERLOAD, over_w=amounts["over_w"])
                continue
            details["peakOverW"] = max(amounts["over_w"], was.details.get("peakOverW", 0.0))
            if details != was.details:
                await self._save(replace(was, details=details, updated_at=now,
                                         description=_overload_text(site_id, node, amounts)))
        for was in list(self._open.values()):
            if was.name == OVERLOAD and was.site_id == site_id and was.node_id not in overloads:
                await self._resolve(was, "back within its limit")

    async def _uncontrollable(self, cp_id: str, firmware: str | None, reason: str) -> None:
        key = f"uncontrollable:{cp_id}:{firmware or ''}"
        if key in self._open:
            return
        now = self.clock.now()
        try:
            site_id: str | None = self.directory().placement(cp_id).site_id
        except (KeyError, LookupError):
            site_id = None
        alert = AlertRecord(
            uuid=str(uuid.uuid4()), key=key, site_id=site_id, node_id=None, cp_id=cp_id,
            connector_id=None, name=UNCONTROLLABLE, category="Settings Error", urgency="High",
            status="Triggered",
            description=(f"Charger {cp_id} (firmware {firmware or 'unknown'}) cannot be limited:"
                         f" {reason}. It is counted at the most it draws and sent no profile."),
            details={"siteId": site_id, "chargePointId": cp_id, "firmware": firmware,
                     "reason": reason},
            notes=None, start=now, end=None, updated_at=now)
        await self._save(alert, "alert_raised")
        log.warning("alert_raised", cp_id=cp_id, alert=alert.uuid, name=UNCONTROLLABLE,
                    firmware=firmware)

    async def _resolve(self, alert: AlertRecord, why: str) -> None:
        now = self.clock.now()
        done = replace(alert, status="Resolved", end=now, updated_at=now)
        await self._save(done, "alert_resolved")
        log.info("alert_resolved", site_id=alert.site_id, node=alert.node_id, cp_id=alert.cp_id,
                 alert=alert.uuid, name=alert.name, why=why)

    async def _save(self, alert: AlertRecord, event: str | None = None) -> None:
        """Store `alert` (with its webhook delivery for `event`) and keep the open ones."""
        await self.store.put_alert(alert, None if event is None else webhook_body(alert, event))
        if alert.end is None:
            self._open[alert.key] = alert
        else:
            self._open.pop(alert.key, None)
        if event is not None:
            self.delivered()

    # -- what operators see and change ------------------------------------------------------

    async def get(self, alert_uuid: str) -> AlertRecord | None:
        return await self.store.get_alert(alert_uuid)

    async def list(self, query: AlertQuery) -> tuple[list[AlertRecord], int]:
        return await self.store.list_alerts(query)

    async def change(self, alert_uuid: str, status: str | None,
                     notes: str | None) -> AlertRecord | None:
        """An operator's status (Acknowledged, Resolved; Triggered undoes Acknowledged) and
        notes; None if there is no such alert. A resolved alert stays resolved (AlertRefused):
        if what it was about comes back, a new one is raised."""
        async with self._lock:
            alert = await self.store.get_alert(alert_uuid)
            if alert is None:
                return None
            now = self.clock.now()
            changed = alert if notes is None else replace(alert, notes=notes)
            event = None
            if status is not None and status != alert.status:
                if alert.status == "Resolved":
                    raise AlertRefused("status", "a resolved alert cannot change status")
                if status == "Resolved":
                    changed, event = replace(changed, status=status, end=now), "alert_resolved"
                else:
                    changed = replace(changed, status=status)
            if changed == alert:
                return alert
            changed = replace(changed, updated_at=now)
            await self._save(changed, event)
            log.info("alert_changed", alert=alert.uuid, status=changed.status,
                     by="operator", noted=notes is not None)
            return changed
