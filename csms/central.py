"""The version-neutral core behind both OCPP versions: decide, commit, then publish.

Per-version handlers translate a message into a call here and the decision back into a
response; everything a charger is acknowledged for is committed before the call returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from csms.clock import Clock
from csms.config import OcppConfig
from csms.domain import (
    Booted,
    ConnectionChanged,
    EvChargingNeeds,
    EvChargingSchedule,
    IdTagInfo,
    Metered,
    StartDecision,
    StatusChanged,
    TransactionEnded,
    TransactionEvent201,
    TransactionStarted,
)
from csms.events import EventBus
from csms.plausible import ConnectorsDeclared, declared_connectors, reported_evses
from csms.registration import boot_answer
from csms.store import Store

if TYPE_CHECKING:
    from csms.pki.service import Pki

log = structlog.get_logger("csms.central")


@dataclass(frozen=True, slots=True)
class TransactionStatusChecked:
    """A charger answered the GetTransactionStatus asked for a transaction whose Ended came
    with seqNos missing (committed before it is published)."""

    cp_id: str
    ocpp_tx_id: str
    answer: dict[str, Any]


class SessionCosts(Protocol):
    """What a session costs now under its site's tariff, kept on it (csms.costs)."""

    async def update(self, cp_id: str, ocpp_tx_id: str,
                     now: datetime | None = None) -> Decimal | None: ...


class Central:
    """Domain decisions shared by OCPP 1.6 and 2.0.1."""

    def __init__(self, store: Store, config: OcppConfig, clock: Clock, bus: EventBus) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.bus = bus
        # Post-boot configuration calls at once, across chargers: a storm's boots are answered
        # at once, their configuration follows at this pace.
        self.configuring = asyncio.Semaphore(config.post_boot_concurrency)
        # Judges an ISO 15118 EV's schedule against what its transaction holds (the planner).
        self.judge_ev_schedule: Callable[[EvChargingSchedule], str | None] | None = None
        # Set at start-up when sessions are costed (csms.costs needs the commands and sites).
        self.costs: SessionCosts | None = None
        # Our CA, OCSP client and contract-certificate endpoint (set at start-up).
        self.pki: Pki | None = None

    def now(self) -> datetime:
        return self.clock.now()

    def configuration_due(self, booted: Booted, status: str) -> str | None:
        """After a boot answered `status`: the fingerprint to configure the charger for (our
        settings and its firmware), or None when nothing changed since it last was configured
        (a reconnect storm then costs no configuration calls at all) or none is wanted."""
        cfg = self.config
        if status != "Accepted" or not cfg.configure_after_boot:
            return None
        fingerprint = (f"{booted.firmware}|{cfg.meter_sample_interval_s}|"
                       f"{','.join(cfg.meter_measurands)}")
        if cfg.master_pass_group:
            fingerprint += f"|{cfg.master_pass_group}"  # existing fingerprints stay equal
        known = self.store.capabilities([booted.cp_id]).get(booted.cp_id, {})
        return None if known.get("configured_for") == fingerprint else fingerprint

    async def paced(self, configuration: Awaitable[None]) -> None:
        """Run a charger's post-boot configuration when fewer than the limit are under way."""
        async with self.configuring:
            await configuration

    async def boot(self, event: Booted) -> str:
        """Record a boot and answer it: the operator's registration (Accepted, Pending,
        Rejected), else Accepted or the configured status for unknown chargers."""
        standing = await self.store.standing(event.cp_id)
        status = boot_answer(standing.registration, self.config.allow_unknown_chargers,
                             self.config.unknown_charger_status)
        if status == "Accepted":
            await self.store.record_boot(event, self.now())
            self.bus.publish(event)
            return status
        # Pending: kept, so that an operator can see what asks and accept it. Rejected: kept
        # only on a record that exists (unknown chargers leave no rows).
        await self.store.record_refused_boot(event, status, self.now(),
                                             create=status == "Pending")
        log.warning("boot_not_accepted", status=status, registration=standing.registration)
        return status

    def boot_interval(self, status: str) -> int:
        """The BootNotification answer's interval: the heartbeat interval when Accepted, else
        when to boot again (OCPP: the minimum wait before the next BootNotification)."""
        cfg = self.config
        return cfg.heartbeat_interval_s if status == "Accepted" else cfg.boot_retry_interval_s

    async def connection_changed(self, cp_id: str, online: bool, protocol: str | None) -> None:
        """A charger connected or went away."""
        await self.store.set_online(cp_id, online, protocol, self.now())
        self.bus.publish(ConnectionChanged(cp_id, online, protocol))

    def declared(self, cp_id: str) -> int | None:
        """How many connectors (EVSEs) `cp_id` declared; None: it declared none."""
        return declared_connectors(self.store.capabilities([cp_id]).get(cp_id, {}))

    def _undeclared(self, cp_id: str, connector_id: int, action: str) -> bool:
        """Whether `connector_id` is above what `cp_id` declared (logged): such a connector
        cannot be real, so what it reports must not add it to a plan."""
        declared = self.declared(cp_id)
        if declared is None or connector_id <= declared:
            return False
        log.warning("connector_undeclared", cp_id=cp_id, connector_id=connector_id,
                    declared=declared, action=action)
        return True

    async def save_capabilities(self, cp_id: str, capabilities: dict[str, Any]) -> None:
        """Keep what a charger said it can do; tell the planner how many connectors it
        declared, so connectors it reported before saying so (above that count) leave."""
        await self.store.save_capabilities(cp_id, capabilities)
        declared = self.declared(cp_id)
        reported = self.store.charger_connectors().get(cp_id, frozenset())
        # Only when it reported more than it declared: otherwise nothing changes to re-plan.
        if declared is not None and any(n > declared for n in reported):
            self.bus.publish(ConnectorsDeclared(cp_id, declared))

    async def report(self, cp_id: str, report_data: list[dict[str, Any]]) -> None:
        """Keep a 2.0.1 device-model report; its EVSE components declare the station's EVSEs
        (the highest id seen: a report comes in parts, each may list some of them)."""
        await self.store.save_variables(cp_id, report_data, self.now())
        evses = reported_evses(report_data)
        known = self.store.capabilities([cp_id]).get(cp_id, {}).get("evses")
        if evses is not None and (type(known) is not int or evses > known):
            await self.save_capabilities(cp_id, {"evses": evses})

    async def status(self, event: StatusChanged) -> None:
        """Record a connector's status; one the charger did not declare is answered only
        (not stored: the store's connectors are the plan's after a restart)."""
        if self._undeclared(event.cp_id, event.connector_id, "StatusNotification"):
            return
        await self.store.record_status(event)
        self.bus.publish(event)

    async def authorize(self, id_tag: str | None,
                        at: tuple[str, int | None] | None = None) -> IdTagInfo:
        """Accept all tags, or check the id-tag list (blocked, expired, unknown, already in
        a transaction elsewhere than `at`: a charger, or one connector of it)."""
        if id_tag is None:
            return IdTagInfo("Accepted")
        known = await self.store.get_id_tag(id_tag)
        if self.config.authorize_all and known is None:
            return IdTagInfo("Accepted")
        if known is None:
            return IdTagInfo("Invalid")
        if known.status == "Accepted" and known.expiry is not None and known.expiry <= self.now():
            return IdTagInfo("Expired", known.expiry, known.parent_id_tag)
        if known.status == "Accepted" and at is not None and not self.config.allow_concurrent_tx \
                and await self._elsewhere(id_tag, at):
            return IdTagInfo("ConcurrentTx", known.expiry, known.parent_id_tag)
        return known

    async def _elsewhere(self, id_tag: str, at: tuple[str, int | None]) -> bool:
        """Whether `id_tag` has an open session other than on `at`."""
        cp_id, connector_id = at
        return any(cp != cp_id or (connector_id is not None and n != connector_id)
                   for cp, n in await self.store.open_sessions_of_tag(id_tag))

    async def start_transaction(self, event: TransactionStarted) -> StartDecision:
        """Store a start (once, even when the charger retries) and give its transaction id."""
        info = await self.authorize(event.id_tag, (event.cp_id, event.connector_id))
        session_id, duplicate = await self.store.start_transaction(event)
        if duplicate:
            log.info("duplicate_start_transaction", transaction_id=session_id)
        else:
            # Listeners need the id we just gave the transaction (1.6 profiles carry it).
            self.bus.publish(replace(event, ocpp_tx_id=str(session_id)))
        return StartDecision(session_id, info, duplicate)

    async def meter_values(self, event: Metered) -> None:
        """Store samples; those of a connector the charger did not declare steer no plan."""
        await self.store.add_meter_values(event)
        if not self._undeclared(event.cp_id, event.connector_id, "MeterValues"):
            self.bus.publish(event)

    async def end_transaction(self, event: TransactionEnded) -> IdTagInfo | None:
        known = await self.store.end_transaction(event)
        if not known:
            log.warning("stop_for_unknown_transaction", transaction_id=event.ocpp_tx_id)
        self.bus.publish(event)
        return None if event.id_tag is None else await self.authorize(event.id_tag)

    async def transaction_event(self, event: TransactionEvent201) -> IdTagInfo | None:
        """Store a 2.0.1 TransactionEvent once per (transactionId, seqNo)."""
        stored = await self.store.apply_transaction_event(event)
        if stored:
            self.bus.publish(event)
        else:
            log.info("duplicate_transaction_event", transaction_id=event.ocpp_tx_id,
                     seq_no=event.seq_no)
        if event.id_tag is None:
            return None
        # Its own transaction is open on its EVSE: only one elsewhere is concurrent.
        return await self.authorize(event.id_tag, (event.cp_id, event.connector_id))

    async def session_cost(self, cp_id: str, ocpp_tx_id: str) -> Decimal | None:
        """The transaction's cost so far, final once it ended, and kept; None where its site
        has no tariff."""
        return None if self.costs is None else await self.costs.update(cp_id, ocpp_tx_id)

    async def status_check_due(self, cp_id: str, ocpp_tx_id: str) -> tuple[int, ...]:
        """The seqNos missing from a transaction that has ended, when the charger has not yet
        answered about them (2.0.1 E_31: the CSMS then asks with GetTransactionStatus); a
        question that got no answer is asked again when the Ended is sent again."""
        state = await self.store.seq_state(cp_id, ocpp_tx_id)
        if state is None or not state.missing or (
                state.status_check is not None and "error" not in state.status_check):
            return ()
        log.warning("transaction_events_missing", cp_id=cp_id, transaction_id=ocpp_tx_id,
                    missing_seq_nos=list(state.missing))
        return state.missing

    async def transaction_status(self, cp_id: str, ocpp_tx_id: str,
                                 answer: dict[str, Any]) -> None:
        """Keep what the charger answered to GetTransactionStatus for `ocpp_tx_id`."""
        await self.store.save_transaction_status(cp_id, ocpp_tx_id, answer, self.now())
        log.info("transaction_status_checked", cp_id=cp_id, transaction_id=ocpp_tx_id,
                 messages_in_queue=answer.get("messagesInQueue"),
                 ongoing=answer.get("ongoingIndicator"), error=answer.get("error"))
        self.bus.publish(TransactionStatusChecked(cp_id, ocpp_tx_id, answer))

    async def ev_charging_needs(self, event: EvChargingNeeds) -> None:
        await self.store.save_ev_charging_needs(event, self.now())
        self.bus.publish(event)

    async def ev_charging_schedule(self, event: EvChargingSchedule,
                                   payload: dict[str, Any]) -> str:
        """Keep an EV's schedule; "Rejected" when it asks more than the TxProfile its
        transaction holds (the planner then sends that profile again), else "Accepted"."""
        await self.store.record_charger_event(event.cp_id, "NotifyEVChargingSchedule", payload,
                                              self.now())
        reason = None if self.judge_ev_schedule is None else self.judge_ev_schedule(event)
        if reason is None:
            return "Accepted"
        log.warning("ev_schedule_rejected", evse_id=event.connector_id, reason=reason)
        return "Rejected"

    async def charger_event(self, cp_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Keep a notification we have no model for yet (firmware, diagnostics, limits...)."""
        await self.store.record_charger_event(cp_id, kind, payload, self.now())
