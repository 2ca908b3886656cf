"""One charger's websocket: inbound CALLs answered in order, outbound CALLs one at a time.

The protocol decisions live in `csms.ocpp` (framing, correlation, per-version handlers); this
module only moves frames between them and the socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from csms.central import Central
from csms.clock import Clock
from csms.config import OcppConfig
from csms.ocpp.context import HandlerContext, Payload
from csms.ocpp.errors import CallFailed, OcppError
from csms.ocpp.framing import (
    CALLERROR,
    CALLRESULT,
    Call,
    CallError,
    CallResult,
    error_frame,
    is_known_action,
    parse_frame,
    result_frame,
    validate,
)
from csms.ocpp.rpc import CallCorrelator
from csms.ratelimit import TokenBucket
from csms.registration import Standing, requested_by
from csms.store.base import FrameRecord, Store

log = structlog.get_logger("csms.connection")

# The frame log's direction for an answer that could not go out (the socket had closed).
UNDELIVERED = "undelivered"

Recorder = Callable[["ChargerConnection", str, Payload], Awaitable[Payload]]


class ChargerConnection:
    """The live link to one charger, for one protocol version."""

    def __init__(self, ws: ServerConnection, cp_id: str, adapter: ModuleType, central: Central,
                 store: Store, config: OcppConfig, clock: Clock, record: Recorder) -> None:
        self.ws = ws
        self.cp_id = cp_id
        self.adapter = adapter
        self.version: str = adapter.VERSION
        self.subprotocol: str = adapter.SUBPROTOCOL
        self.central = central
        self.store = store
        self.config = config
        self.clock = clock
        self._record = record
        self._correlator = CallCorrelator()
        self._reply: asyncio.Future[Payload] | None = None
        self._call_lock = asyncio.Lock()
        self._tasks: asyncio.TaskGroup | None = None
        self.replaced = False
        # Where the charger stands (csms.registration): the store's word, read when needed,
        # and our answer to a boot on this connection, which is the freshest there is.
        self._stored: Standing | None = None
        self._booted: str | None = None
        # What a not-Accepted charger may send because we asked it to (a report, a trigger).
        self._requested: set[str] = set()
        self.closed = asyncio.Event()
        self.context = HandlerContext(cp_id, central, self.send_recorded, self._after_reply)
        self._pending_after_reply: list[Callable[[], Awaitable[None]]] = []
        self._bucket = TokenBucket(config.max_messages_per_s, config.message_burst,
                                   time.monotonic())
        self._throttled = False

    # -- outbound ------------------------------------------------------------------------------

    async def send_recorded(self, action: str, payload: Payload) -> Payload:
        """Send a CALL that is recorded as a command with its answer."""
        return await self._record(self, action, payload)

    async def call(self, action: str, payload: Payload, timeout_s: float | None = None) -> Payload:
        """Send one CALL and wait for its CALLRESULT; calls queue so one is in flight."""
        validate(self.version, action, payload, response=False)
        timeout = self.config.call_timeout_s if timeout_s is None else timeout_s
        async with self._call_lock:
            if self.closed.is_set():
                raise CallFailed("failed", "connection closed")
            pending, frame = self._correlator.begin(action, payload, self.clock.now(), timeout)
            self._reply = asyncio.get_running_loop().create_future()
            self._log_frame("out", 2, pending.unique_id, action, frame)
            try:
                await self.ws.send(frame)
                answer = await asyncio.wait_for(self._reply, timeout)
            except TimeoutError:
                log.warning("call_timeout", action=action, message_id=pending.unique_id)
                raise CallFailed("timeout", f"{action} got no answer in {timeout} s") from None
            except ConnectionClosed:
                raise CallFailed("failed", "connection closed") from None
            finally:
                self._correlator.abandon()
                reply, self._reply = self._reply, None
                # The socket closed while the frame was going out: the reply future was failed
                # by `run` and nobody will await it now.
                if reply is not None and reply.done() and not reply.cancelled():
                    reply.exception()
        expected = requested_by(action, payload, answer)
        if expected is not None and not self.standing().accepted:
            self._requested.add(expected)
        return answer

    def _on_reply(self, reply: CallResult | CallError) -> None:
        pending = self._correlator.match(reply)
        if pending is None or self._reply is None or self._reply.done():
            log.warning("reply_dropped", message_id=reply.unique_id,
                        reason="no call waits for this id (late or unknown)")
            return
        if isinstance(reply, CallError):
            self._reply.set_exception(CallFailed(
                "failed", f"{reply.code}: {reply.description}",
                {"code": reply.code, "description": reply.description, "details": reply.details},
            ))
            return
        try:
            validate(self.version, pending.action, reply.payload, response=True)
        except OcppError as exc:
            # Keep the answer: a charger's schema slip should not undo what it did.
            log.warning("reply_violates_schema", action=pending.action, error=exc.description)
        self._reply.set_result(reply.payload)

    # -- inbound -------------------------------------------------------------------------------

    def _after_reply(self, job: Callable[[], Awaitable[None]]) -> None:
        self._pending_after_reply.append(job)

    async def _run_job(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except CallFailed as exc:
            log.warning("follow_up_failed", status=exc.status, error=str(exc))
        except Exception:  # the edge of a task: log it, keep the connection
            log.exception("follow_up_crashed")

    def _log_frame(self, direction: str, message_type: int | None, unique_id: str | None,
                   action: str | None, text: str) -> None:
        self.store.log_frame(FrameRecord(self.clock.now(), self.cp_id, direction, message_type,
                                         unique_id, action, text))

    async def _send_text(self, text: str, message_type: int, unique_id: str,
                         action: str | None) -> None:
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            # The charger left while we answered: what it sent before leaving is still in the
            # socket's buffer and is read and handled; only this answer cannot reach it.
            log.info("answer_not_delivered", message_id=unique_id, action=action)
            self._log_frame(UNDELIVERED, message_type, unique_id, action, text)
            return
        # Logged once it is on the wire, so the log's time and order are the socket's.
        self._log_frame("out", message_type, unique_id, action, text)

    async def _answer_error(self, unique_id: str, exc: OcppError, action: str | None) -> None:
        code = exc.code_for(self.version)
        log.warning("call_error_sent", message_id=unique_id, action=action, code=code,
                    error=exc.description)
        await self._send_text(error_frame(unique_id, code, exc.description, exc.details),
                              CALLERROR, unique_id, action)

    async def handle_text(self, text: str | bytes) -> None:
        """Handle one inbound websocket message completely (answer included)."""
        raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
        try:
            frame = parse_frame(text, self.config.max_frame_bytes)
        except OcppError as exc:
            self._log_frame("in", None, exc.unique_id, None, raw[:4096])
            if exc.details.get("message_type") in (CALLRESULT, CALLERROR):
                log.warning("malformed_reply_ignored", error=exc.description)
                return
            await self._answer_error(exc.unique_id or "-1", exc, None)
            return
        if isinstance(frame, Call):
            self._log_frame("in", 2, frame.unique_id, frame.action, raw)
            await self._handle_call(frame)
        else:
            kind = CALLRESULT if isinstance(frame, CallResult) else CALLERROR
            self._log_frame("in", kind, frame.unique_id, None, raw)
            self._on_reply(frame)

    @property
    def boot_answer(self) -> str | None:
        """What this connection's last BootNotification was answered (None: none came)."""
        return self._booted

    def standing(self) -> Standing:
        """Where the charger stands as far as this connection knows (see `_may_talk`)."""
        stored = self._stored or Standing()
        return stored if self._booted is None else Standing(stored.registration, self._booted)

    def registration_changed(self, registration: str) -> None:
        """The operator changed the charger's registration to `registration`."""
        if self._stored is not None:
            self._stored = Standing(registration, self._stored.boot_status)

    async def _may_talk(self, action: str) -> bool:
        """Whether this charger may send `action`: only BootNotification until it has booted
        Accepted or been registered Accepted, none while Pending or Rejected (2.0.1 B02.FR.09,
        B03.FR.07), except what we asked it for (see csms.registration)."""
        if self._stored is not None and self.standing().admits(action):
            return True
        # Read again before refusing: a registration may have been written by another process
        # (`loadstar add-charger` writes the store directly).
        self._stored = await self.store.standing(self.cp_id)
        standing = self.standing()
        if standing.accepted:
            self._requested.clear()
        return standing.admits(action) or (standing.refused and action in self._requested)

    async def _handle_call(self, call: Call) -> None:
        handler = self.adapter.HANDLERS.get(call.action)
        if handler is None:
            if is_known_action(self.version, call.action):
                exc = OcppError("NotSupported", f"{call.action} is not supported by this CSMS")
            else:
                exc = OcppError("NotImplemented", f"Unknown action {call.action!r}")
            await self._answer_error(call.unique_id, exc, call.action)
            return
        with structlog.contextvars.bound_contextvars(message_id=call.unique_id,
                                                      action=call.action):
            try:
                validate(self.version, call.action, call.payload, response=False)
            except OcppError as exc:
                if self.cp_id not in self.config.relaxed_validation:
                    await self._answer_error(call.unique_id, exc, call.action)
                    return
                log.warning("schema_violation_relaxed", error=exc.description)
            if not await self._may_talk(call.action):
                standing = self.standing()
                log.warning("message_from_charger_not_accepted",
                            registration=standing.registration, boot_status=standing.boot_status)
                await self._answer_error(call.unique_id, OcppError(
                    "SecurityError", f"{call.action} before an accepted BootNotification"),
                    call.action)
                return
            try:
                answer = await handler(self.context, call.payload)
            except OcppError as exc:
                await self._answer_error(call.unique_id, exc, call.action)
                return
            except OverflowError as exc:
                # Schema-valid but beyond what a date or a float can hold (year 9999 at -12:00,
                # a 10**huge multiplier): the value is out of range, not our fault.
                await self._answer_error(call.unique_id, OcppError(
                    "PropertyConstraintViolation", f"{call.action}: value out of range: {exc}"),
                    call.action)
                return
            except ValueError as exc:
                # Schema-valid text that does not read as what it names (a date-time, a number
                # in a string): the charger's payload is at fault.
                log.warning("payload_unreadable", error=str(exc))
                await self._answer_error(call.unique_id, OcppError(
                    "FormatViolation", f"{call.action}: {exc}"), call.action)
                return
            except (KeyError, TypeError) as exc:
                if self.cp_id in self.config.relaxed_validation:
                    # Let through unvalidated: the payload lacks what we need.
                    await self._answer_error(call.unique_id, OcppError(
                        "FormatViolation", f"{call.action}: {type(exc).__name__}: {exc}"),
                        call.action)
                else:  # a validated payload: the fault is ours, not the charger's
                    await self._internal_error(call.unique_id, call.action)
                return
            except Exception:  # the edge of the connection: an answer is still owed
                await self._internal_error(call.unique_id, call.action)
                return
            if call.action == "BootNotification":
                self._booted = answer.get("status")
                if self._booted == "Accepted" and self._stored is None:
                    # Accepted means no refusing registration: nothing to read before its
                    # next message (an operator's change since reaches `_stored` directly).
                    self._stored = Standing()
            await self._send_text(result_frame(call.unique_id, answer), CALLRESULT,
                                  call.unique_id, call.action)
        jobs, self._pending_after_reply = self._pending_after_reply, []
        for job in jobs:
            if self._tasks is not None:
                self._tasks.create_task(self._run_job(job))

    async def _internal_error(self, unique_id: str, action: str) -> None:
        """Log our own failure with its traceback and tell the charger only that it happened."""
        log.exception("handler_failed")
        await self._answer_error(unique_id, OcppError(
            "InternalError", "The CSMS could not process this message"), action)

    async def _throttle(self) -> bool:
        """Hold this charger's next frame while it is over its message rate; False when the
        connection closed meanwhile."""
        delay = self._bucket.take(time.monotonic())
        if delay <= 0:
            if self._throttled and self._bucket.available(time.monotonic()) >= 1:
                self._throttled = False
                log.info("rate_limit_ended")
            return True
        if not self._throttled:
            self._throttled = True
            log.warning("rate_limited", max_messages_per_s=self.config.max_messages_per_s)
        # Reading stops meanwhile, so the flood backs up in the charger's own TCP buffers;
        # a close (the charger's, or our shutdown) ends the wait.
        closed = asyncio.ensure_future(self.ws.wait_closed())
        try:
            await asyncio.wait({closed}, timeout=delay)
        finally:
            closed.cancel()
        return not closed.done() or closed.cancelled()

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve this charger until the socket closes; then fail what still waits on it."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                await self.central.connection_changed(self.cp_id, True, self.subprotocol)
                try:
                    async for message in self.ws:
                        if not await self._throttle():
                            break  # closed while it waited: nobody to answer
                        await self.handle_text(message)
                        # Frames already buffered are read without suspending: give every
                        # other charger its turn between two frames of this one.
                        await asyncio.sleep(0)
                except ConnectionClosed:
                    pass
                finally:
                    self.closed.set()
                    if self._reply is not None and not self._reply.done():
                        self._reply.set_exception(CallFailed("failed", "connection closed"))
        finally:
            self.closed.set()
            if not self.replaced:
                await self.central.connection_changed(self.cp_id, False, None)

    async def close(self, reason: str) -> None:
        """Close the socket (replaced by a newer connection, or shutting down)."""
        await self.ws.close(code=1000 if reason == "shutdown" else 1001, reason=reason)


def command_status(answer: Any) -> str:
    """accepted/rejected from an answer's `status` field; answers without one count accepted."""
    status = answer.get("status") if isinstance(answer, dict) else None
    if status is None or status == "Accepted":
        return "accepted"
    return "rejected"
