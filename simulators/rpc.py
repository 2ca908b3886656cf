"""OCPP-J framing for the simulated charger: CALLs out and their answers, CALLs in.

One `Rpc` per charger correlates the CALLs it sends with their CALLRESULT/CALLERROR by
message id and answers the central system's CALLs with what the protocol side returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import ocpp
from ocpp.messages import Call, CallResult, _validate_payload
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from simulators.clock import Clock
from simulators.records import Payload

log = logging.getLogger("simulators.charger")

#: What answers a central-system CALL: (CALLRESULT payload, follow-up to run after it).
Handler = Callable[[str, Any], tuple[Payload, Callable[[], Awaitable[None]] | None]]


class CallFailed(Exception):
    """The central system answered a CALL with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: {code} {description}")
        self.action = action
        self.code = code
        self.description = description


class Offline(ConnectionError):
    """A non-transaction message cannot be sent because the charger is not connected."""


class Reply(Exception):
    """Raised by a handler to answer with a CALLERROR."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(description or code)
        self.code = code
        self.description = description or code


@functools.cache
def known_actions(version: str) -> frozenset[str]:
    """Actions that have a request schema in the `ocpp` package for `version`."""
    folder = os.path.join(os.path.dirname(ocpp.__file__), "v" + version.replace(".", ""), "schemas")
    names = set()
    for fname in os.listdir(folder):
        base = fname.removesuffix(".json")
        if version == "1.6" and not base.endswith("Response"):
            names.add(base)
        elif version != "1.6" and base.endswith("Request"):
            names.add(base.removesuffix("Request"))
    return frozenset(names)


def error_code(version: str, code: str) -> str:
    """OCPP-J 1.6 spells two error codes differently from 2.0.1 (and from `ocpp`)."""
    if version == "1.6":
        return {
            "FormatViolation": "FormationViolation",
            "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
        }.get(code, code)
    return {
        "FormationViolation": "FormatViolation",
        "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
    }.get(code, code)


def validate_call(action: str, payload: Payload, version: str) -> None:
    """Validate a CALL payload against the `ocpp` JSON schema (raises an OCPPError)."""
    _validate_payload(Call("check", action, copy.deepcopy(payload)), version)


def validate_result(action: str, payload: Payload, version: str) -> None:
    """Validate a CALLRESULT payload against the `ocpp` JSON schema (raises an OCPPError)."""
    _validate_payload(CallResult("check", copy.deepcopy(payload), action), version)


class Rpc:
    """Message-id correlation of CALLs on the current connection, and answers to CALLs in."""

    def __init__(
        self,
        cp_id: str,
        version: str,
        clock: Clock,
        *,
        validate_outgoing: bool,
        handle_call: Handler,
        spawn: Callable[..., None],
    ) -> None:
        self.cp_id = cp_id
        self.version = version
        self.clock = clock
        self.validate_outgoing = validate_outgoing
        self.handle_call = handle_call
        self.spawn = spawn
        self.pending: dict[str, tuple[str, asyncio.Future[Payload]]] = {}
        self.messages_sent = 0
        self.results_sent = 0
        self.messages_received = 0
        self.call_errors: list[tuple[str, str, str]] = []
        self.last_sent_at: datetime | None = None

    async def call(
        self, ws: ClientConnection, action: str, payload: Payload, timeout: float
    ) -> Payload:
        """Send one CALL on `ws` and wait (at most `timeout`) for its CALLRESULT payload."""
        if self.validate_outgoing:
            validate_call(action, payload, self.version)
        uid = str(uuid.uuid4())
        fut: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        self.pending[uid] = (action, fut)
        try:
            await ws.send(json.dumps([2, uid, action, payload], separators=(",", ":")))
            self.messages_sent += 1
            self.last_sent_at = self.clock.now()
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self.pending.pop(uid, None)

    def fail_pending(self) -> None:
        """The connection is gone: every call waiting for an answer fails."""
        for _action, fut in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
            if not fut.cancelled():
                fut.exception()  # retrieved: the caller may already be gone (stop)

    async def read_frames(self, ws: ClientConnection) -> None:
        """Read frames until the connection closes: answer CALLs, resolve pending calls."""
        async for raw in ws:
            self.messages_received += 1
            try:
                msg = json.loads(raw)
                kind = msg[0]
            except (ValueError, TypeError, IndexError, KeyError):
                log.warning("charger %s: unparsable frame %r", self.cp_id, raw)
                continue
            if kind == 2 and len(msg) >= 4:
                await self._answer(ws, str(msg[1]), str(msg[2]), msg[3])
            elif kind in (3, 4):
                pending = self.pending.get(str(msg[1]))
                if pending is None:
                    continue  # late answer to a call that timed out
                action, fut = pending
                if fut.done():
                    continue
                if kind == 3:
                    fut.set_result(msg[2] if len(msg) > 2 and isinstance(msg[2], dict) else {})
                else:
                    code = str(msg[2]) if len(msg) > 2 else "GenericError"
                    desc = str(msg[3]) if len(msg) > 3 else ""
                    self.call_errors.append((action, code, desc))
                    fut.set_exception(CallFailed(action, code, desc))

    async def _answer(self, ws: ClientConnection, uid: str, action: str, payload: Any) -> None:
        followup: Callable[[], Awaitable[None]] | None = None
        try:
            result, followup = self.handle_call(action, payload)
            frame = [3, uid, result]
            self.results_sent += 1
        except Reply as reply:
            frame = [4, uid, error_code(self.version, reply.code), reply.description, {}]
        except Exception as exc:  # edge of the connection: a handler bug becomes InternalError
            log.exception("charger %s: handler for %s failed", self.cp_id, action)
            frame = [4, uid, "InternalError", f"{type(exc).__name__}", {}]
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame, separators=(",", ":")))
        if followup is not None:
            self.spawn(followup(), busy=True)
