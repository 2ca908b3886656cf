"""Relay: send any OCPP action an API client gives for a charger, now or when it connects.

What OCPP knowledge the HTTP view needs lives here (which actions a CSMS may send in each
version, the frame's shape, the schemas), so that adapters never import `csms.ocpp`. A message
goes out through `Commands` (recorded as a command, one call in flight per charger; the request
is checked against the charger's version's schema there and again by the connection, and the
answer by the connection). A message for a charger that is not connected is stored as queued
and sent, oldest first, once the charger's next BootNotification is Accepted (or, when it
reconnects without booting, after its first other message). Delivery is at most once: a
message whose connection is lost after it may have gone out is not sent again.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from csms.clock import Clock
from csms.commands import Commands
from csms.connection import ChargerConnection
from csms.domain import Booted, ConnectionChanged, DomainEvent
from csms.ocpp.errors import V16, V201, OcppError
from csms.ocpp.framing import (
    CALL,
    CALLERROR,
    CALLRESULT,
    MAX_ID_LENGTH,
    is_known_action,
    validate,
)
from csms.server import Registry
from csms.store import Store
from csms.store.base import RelayRecord

log = structlog.get_logger("csms.relay")

PROTOCOLS = {"ocpp1.6": V16, "ocpp2.0.1": V201}
SOURCES = ("Charger", "AmpCMS", "AmpCMS_created", "AmpCMS_queued", "External", "UI", "API")

# What a central system may send, per version (the rest a charger sends to us). An explicit
# list: a schema added by an upgrade of the `ocpp` package does not become sendable unseen.
CSMS_ACTIONS: dict[str, frozenset[str]] = {
    V16: frozenset({
        "CancelReservation", "CertificateSigned", "ChangeAvailability", "ChangeConfiguration",
        "ClearCache", "ClearChargingProfile", "DataTransfer", "DeleteCertificate",
        "ExtendedTriggerMessage", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics",
        "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "InstallCertificate",
        "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset",
        "SendLocalList", "SetChargingProfile", "SignedUpdateFirmware", "TriggerMessage",
        "UnlockConnector", "UpdateFirmware",
    }),
    V201: frozenset({
        "CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache",
        "ClearChargingProfile", "ClearDisplayMessage", "ClearVariableMonitoring", "CostUpdated",
        "CustomerInformation", "DataTransfer", "DeleteCertificate", "GetBaseReport",
        "GetChargingProfiles", "GetCompositeSchedule", "GetDisplayMessages",
        "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "GetMonitoringReport",
        "GetReport", "GetTransactionStatus", "GetVariables", "InstallCertificate",
        "PublishFirmware", "RequestStartTransaction", "RequestStopTransaction", "ReserveNow",
        "Reset", "SendLocalList", "SetChargingProfile", "SetDisplayMessage",
        "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile",
        "SetVariableMonitoring", "SetVariables", "TriggerMessage", "UnlockConnector",
        "UnpublishFirmware", "UpdateFirmware",
    }),
}

# How long an HTTP client is kept waiting beyond the charger's own call timeout (the call may
# first queue behind others to the same charger).
WAIT_MARGIN_S = 5.0


class RelayError(ValueError):
    """The message cannot be sent as given: `field` names what to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class UnknownCharger(LookupError):
    """No charger of that id has connected, booted or been registered."""


class ChargerOffline(Exception):
    """The charger is not connected and the client asked not to queue."""


@dataclass(frozen=True, slots=True)
class CallFrame:
    unique_id: str
    action: str
    payload: dict[str, Any]


def parse_call(frame: Any) -> CallFrame:
    """The CALL in `frame` (`[2, "id", "Action", {...}]`); RelayError("body", ...) if it is not
    one. Only a CALL can be sent: a charger answers it."""
    if not isinstance(frame, list) or not frame:
        raise RelayError("body", "an OCPP-J frame is a JSON array: [2, id, action, payload]")
    if frame[0] != CALL or isinstance(frame[0], bool):
        known = {CALLRESULT: "a CALLRESULT", CALLERROR: "a CALLERROR"}
        # Any JSON may stand first, a list or an object too (neither can be a dict key).
        kind = known.get(frame[0], "not a CALL") if isinstance(frame[0], int) else "not a CALL"
        raise RelayError("body", f"only a CALL (message type 2) can be sent; this is {kind}")
    if len(frame) != 4:
        raise RelayError("body", "a CALL has 4 elements: [2, id, action, payload]")
    _, unique_id, action, payload = frame
    if not isinstance(unique_id, str) or not 0 < len(unique_id) <= MAX_ID_LENGTH:
        raise RelayError("body", f"the MessageId must be a string of 1 to {MAX_ID_LENGTH}"
                                 " characters")
    if not isinstance(action, str) or not action:
        raise RelayError("body", "the action must be a non-empty string")
    if not isinstance(payload, dict):
        raise RelayError("body", "the payload must be a JSON object")
    return CallFrame(unique_id, action, payload)


def check_call(version: str, call: CallFrame) -> None:
    """RelayError unless `version` lets a CSMS send `call.action` with this payload."""
    if call.action not in CSMS_ACTIONS[version]:
        known = is_known_action(version, call.action)
        why = "is sent by a charger, not to one" if known else "is not an action it defines"
        raise RelayError("body", f"{call.action} {why} in OCPP {version}")
    try:
        validate(version, call.action, call.payload, response=False)
    except OcppError as exc:
        raise RelayError("body", f"not valid OCPP {version}: {exc.description}") from exc


def reply_frame(unique_id: str, status: str, response: dict[str, Any] | None) -> list[Any] | None:
    """The charger's answer as a frame under the client's MessageId (a command's ending as
    Commands records it), or None when there was no answer (timeout, connection lost)."""
    if status in ("accepted", "rejected") and response is not None:
        return [CALLRESULT, unique_id, response]
    if response is not None and "code" in response:
        return [CALLERROR, unique_id, response["code"], response.get("description", ""),
                response.get("details") or {}]
    return None


class Relay:
    """Sends clients' messages to chargers (durably queued while a charger is away)."""

    def __init__(self, store: Store, registry: Registry, commands: Commands, clock: Clock,
                 call_timeout_s: float) -> None:
        self.store = store
        self.registry = registry
        self.commands = commands
        self.clock = clock
        self.wait_s = call_timeout_s + WAIT_MARGIN_S
        self._tasks: set[asyncio.Task[RelayRecord]] = set()
        # Chargers with queued messages: the bus listener is synchronous, so it asks here.
        self._queued_for: set[str] = set()
        self._flushing: set[str] = set()
        self.delivered = asyncio.Condition()

    async def start(self) -> None:
        """Settle what a previous run left sending; remember who has queued messages."""
        failed = await self.store.fail_interrupted_relay_messages(self.clock.now())
        if failed:
            log.warning("relay_messages_interrupted", count=failed)
        self._queued_for = set(await self.store.cp_ids_with_queued_messages())

    async def stop(self) -> None:
        """Wait for sends under way (the OCPP server closed their sockets first)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    # -- sending -------------------------------------------------------------------------------

    async def version_of(self, cp_id: str, declared: str | None) -> str:
        """The OCPP version to check a message for `cp_id` against: its connection's, else
        the one it last connected with, else `declared` (the client's, default 1.6)."""
        conn = self.registry.get(cp_id)
        if conn is not None:
            return conn.version
        record = await self.store.get_charge_point(cp_id)
        if record is None:
            raise UnknownCharger(cp_id)
        if record.protocol in PROTOCOLS:
            return PROTOCOLS[record.protocol]
        return PROTOCOLS[declared or "ocpp1.6"]

    async def submit(self, cp_id: str, frame: Any, *, source: str = "API",
                     url: str | None = None, protocol: str | None = None,
                     operation_type: str | None = None, send: bool = True,
                     queue: bool = True) -> tuple[RelayRecord, asyncio.Task[RelayRecord] | None]:
        """Check and store a message for `cp_id`; with `send`, start sending it (the task ends
        with the record as the charger's answer left it) or queue it while the charger is away.

        RelayError for a message that cannot be sent, UnknownCharger, ChargerOffline (with
        `queue` False and the charger away).
        """
        call = parse_call(frame)
        if operation_type is not None and operation_type != call.action:
            raise RelayError("operationType", f"{operation_type!r} is not the frame's action "
                                              f"{call.action!r}")
        if protocol is not None and protocol not in PROTOCOLS:
            raise RelayError("protocol", f"one of {', '.join(PROTOCOLS)}")
        version = await self.version_of(cp_id, protocol)
        subprotocol = next(p for p, v in PROTOCOLS.items() if v == version)
        if protocol is not None and protocol != subprotocol:
            raise RelayError("protocol", f"the charger speaks {subprotocol}, not {protocol}")
        if send:
            check_call(version, call)
        conn = self.registry.get(cp_id) if send else None
        if conn is not None and not conn.standing().reachable:
            conn = None  # connected, but neither accepted nor pending: nothing may go yet
        if send and conn is None and not queue:
            raise ChargerOffline(cp_id)
        status = "logged" if not send else ("sending" if conn is not None else "queued")
        record = await self.store.add_relay_message(
            str(uuid.uuid4()), cp_id, subprotocol, call.action, call.unique_id, call.payload,
            source, url, send, status, self.clock.now())
        log.info("relay_message_stored", message=record.uuid, action=call.action,
                 status=status)
        if status == "queued":
            self._queued_for.add(cp_id)
            return record, None
        if conn is None:
            return record, None
        task = asyncio.create_task(self._deliver(conn, record, requeue=queue),
                                   name=f"relay-{record.uuid}")
        self._tasks.add(task)
        task.add_done_callback(self._sent)
        return record, task

    def _sent(self, task: asyncio.Task[RelayRecord]) -> None:
        """A send ended; one that failed is logged (its HTTP client may have stopped waiting)."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("relay_send_failed", error=str(task.exception()))

    async def _deliver(self, conn: ChargerConnection, record: RelayRecord, *,
                       requeue: bool) -> RelayRecord:
        """Send one stored message on `conn` and store how it ended.

        At most once: a message is queued again only when its connection was gone before it
        could be sent. Once the CALL may have gone out, a lost connection ends it `failed`
        (outcome unknown), since sending again could repeat a Reset or a firmware update.
        """
        if conn.closed.is_set() and requeue:
            return await self._settle(record, "queued", None, None)
        result = await self.commands.exchange(conn, record.action, record.payload)
        command = await self.store.get_command(result.command_id)
        response = command.response if command is not None else result.response
        reply = reply_frame(record.unique_id, result.status, response)
        if reply is not None:
            status = "answered"
        elif result.status == "timeout":
            status = "timeout"
        else:
            status = "failed"
        return await self._settle(record, status, result.command_id, reply)

    async def _settle(self, record: RelayRecord, status: str, command_id: int | None,
                      reply: list[Any] | None) -> RelayRecord:
        """Store where a message ended up and tell those who wait."""
        if status == "queued":
            self._queued_for.add(record.cp_id)
        await self.store.update_relay_message(record.uuid, status, command_id, reply,
                                              self.clock.now())
        log.info("relay_message_ended", message=record.uuid, action=record.action,
                 status=status)
        async with self.delivered:
            self.delivered.notify_all()
        updated = await self.store.get_relay_message(record.uuid)
        assert updated is not None
        return updated

    async def get(self, message_uuid: str) -> RelayRecord | None:
        return await self.store.get_relay_message(message_uuid)

    # -- queued messages -------------------------------------------------------------------------

    def on_event(self, event: DomainEvent) -> None:
        """Bus listener: a charger with queued messages is ready for them once its boot was
        Accepted (Booted is published only then), or when it talks after a reconnect."""
        if event.cp_id not in self._queued_for or event.cp_id in self._flushing:
            return
        if isinstance(event, ConnectionChanged):
            return  # connected is not yet booted: wait for what it says
        conn = self.registry.get(event.cp_id)
        if conn is None:
            return
        self._flushing.add(event.cp_id)
        # Events are published while the charger's message is being handled: the queue goes
        # out after our answer to it (a boot is answered before anything is sent).
        conn.context.after_reply(lambda: self._flush(conn))
        if isinstance(event, Booted):
            log.info("relay_queue_due", queued_for=event.cp_id)

    async def _flush(self, conn: ChargerConnection) -> None:
        """Send `conn`'s charger its queued messages, oldest first, while it stays connected."""
        cp_id = conn.cp_id
        try:
            self._queued_for.discard(cp_id)
            for record in await self.store.queued_relay_messages(cp_id):
                if conn.closed.is_set():
                    self._queued_for.add(cp_id)
                    return
                version = conn.version
                try:
                    check_call(version, CallFrame(record.unique_id, record.action,
                                                  record.payload))
                except RelayError as exc:
                    # It was checked for another version (the charger's firmware changed).
                    log.warning("relay_message_unsendable", message=record.uuid,
                                error=exc.message)
                    await self.store.update_relay_message(record.uuid, "failed", None, None,
                                                          self.clock.now())
                    continue
                await self.store.update_relay_message(record.uuid, "sending", None, None,
                                                      self.clock.now())
                await self._deliver(conn, record, requeue=True)
        finally:
            self._flushing.discard(cp_id)
