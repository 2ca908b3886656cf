"""Fuzz: random and mutated frames of every action, of both versions, at one live server.

Each version's test starts ONE Loadstar (hypothesis runs many examples per test, which a
function-scoped fixture cannot serve) on an event loop of its own, boots a charger, and sends
it hypothesis-drawn websocket messages (tests/ocpp_strategies.py): schema-valid CALLs of every
action the version defines (charger->CSMS and CSMS->charger alike), the same CALLs with one
mutation (wrong types, integers past 2^63 or of 5,000 digits, nesting 100,000 deep, missing or
extra fields, oversized strings, lone surrogates, impossible dates), broken frames (bad message
ids, MessageTypeIds, arity, actions) and junk (not JSON, not UTF-8, stray replies).

After each message a Heartbeat goes out on the same connection. The server answers in order,
so whatever arrived before the Heartbeat's answer is the answer to the message:
- a CALL (anything but a CALLRESULT/CALLERROR) gets exactly one CALLRESULT or CALLERROR, with
  its message id, or "-1" when the id cannot be read (OCPP 2.0.1 4.2.3); a schema-valid CALL of
  an action the server handles gets a CALLRESULT; a CALLERROR carries a code of that version
  (1.6: FormationViolation, OccurenceConstraintViolation) and never InternalError: bad input
  is the sender's fault, and is classified, not crashed on;
- a CALLRESULT/CALLERROR, however broken, gets no answer;
- the connection stays open (only a message over the websocket's own size limit may close it)
  and the Heartbeat is answered.
At the end: a fresh charger still boots and starts a transaction that is stored, the server
stops without leaving a task behind, and nothing was logged at error level with a traceback
(structlog, stdlib logging, or the loop's exception handler).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from hypothesis import HealthCheck, given, note, settings
from hypothesis.control import currently_in_test_context
from structlog.testing import LogCapture
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from csms.ocpp import v16, v201
from csms.service import Loadstar
from tests.conftest import make_config
from tests.ocpp_strategies import V16, V201, Fuzz, fuzz_frames
from tests.raw_client import RawClient

SUBPROTOCOL = {V16: "ocpp1.6", V201: "ocpp2.0.1"}
HANDLED = {V16: frozenset(v16.HANDLERS), V201: frozenset(v201.HANDLERS)}
CODES = {
    V16: {"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
          "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
          "TypeConstraintViolation", "GenericError"},
    V201: {"FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
           "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
           "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError",
           "SecurityError", "TypeConstraintViolation"},
}
MAX_FRAME_BYTES = 65536  # the server's OCPP limit (the default)
WS_MAX_BYTES = 1 << 20  # the server's websocket limit: max(16 * MAX_FRAME_BYTES, 1 MiB)
WAIT_S = 5.0
BOOT = {
    V16: {"chargePointVendor": "Fuzz", "chargePointModel": "F1"},
    V201: {"reason": "PowerUp", "chargingStation": {"vendorName": "Fuzz", "model": "F1"}},
}


def answer_everything(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """What a cooperative charger answers to the server's own CALLs (configure, profiles)."""
    from tests.raw_client import default_answer

    return default_answer(action, payload) or {"status": "Accepted"}


# -- the oracle -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    ids: frozenset[str]  # acceptable message ids of the answer; empty: no answer at all
    silent_ok: bool = False  # no answer is acceptable too
    result: bool | None = None  # True: CALLRESULT, False: CALLERROR, None: either
    close_ok: bool = False  # over the websocket's limit: the server may close (1009)


_LEADING_ID = re.compile(r'^\s*\[\s*(\d+)\s*,\s*("(?:[^"\\]|\\.){1,200}")')


def _good_id(value: Any) -> bool:
    """A readable message id: 1 to 36 characters that UTF-8 can hold (no lone surrogate)."""
    if not (isinstance(value, str) and 1 <= len(value) <= 36):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _overflowing_multiplier(value: Any) -> bool:
    """Whether a schema-valid payload scales a value by 10**multiplier beyond what a float (and
    so the store) holds: answered PropertyConstraintViolation, as an out-of-range number is."""
    if isinstance(value, dict):
        m = value.get("multiplier")
        if type(m) is int and abs(m) > 300:
            return True
        return any(_overflowing_multiplier(v) for v in value.values())
    if isinstance(value, list):
        return any(_overflowing_multiplier(v) for v in value)
    return False


def expect(fz: Fuzz, handled: frozenset[str]) -> Expect:
    """What the server must do with `fz`, from the spec (not from the server's code)."""
    data = fz.data
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return Expect(frozenset({"-1"}), result=False)
    close_ok = len(data.encode("utf-8", "surrogatepass")) > WS_MAX_BYTES
    try:
        msg = json.loads(data)
    except (ValueError, RecursionError):
        # Unreadable as a whole: "-1", or the id if a cleverer parser reads it off the front.
        ids = {"-1"}
        m = _LEADING_ID.match(data)
        reply_like = False
        if m:
            try:
                uid = json.loads(m.group(2))
            except ValueError:
                uid = None
            if _good_id(uid):
                ids.add(uid)
            reply_like = m.group(1) in ("3", "4")
        return Expect(frozenset(ids), silent_ok=reply_like, result=False, close_ok=close_ok)
    if not isinstance(msg, list) or not msg:
        return Expect(frozenset({"-1"}), result=False, close_ok=close_ok)
    kind = msg[0]
    readable = len(msg) > 1 and _good_id(msg[1])  # (a charger may well use "-1" itself)
    uid = msg[1] if readable else "-1"
    if type(kind) is int and kind in (3, 4):
        return Expect(frozenset(), silent_ok=True, close_ok=close_ok)
    if type(kind) is float and kind in (3.0, 4.0):  # a reply in disguise: ignore or refuse
        return Expect(frozenset({uid, "-1"}), silent_ok=True, result=False, close_ok=close_ok)
    well_formed = (type(kind) is int and kind == 2 and readable and len(msg) == 4
                   and isinstance(msg[2], str) and isinstance(msg[3], dict)
                   and len(data.encode("utf-8", "surrogatepass")) <= MAX_FRAME_BYTES)
    if not well_formed:
        return Expect(frozenset({uid}), result=False, close_ok=close_ok)
    if fz.valid and msg[2] in handled and not _overflowing_multiplier(msg[3]):
        return Expect(frozenset({uid}), result=True, close_ok=close_ok)
    return Expect(frozenset({uid}), close_ok=close_ok)


# -- the harness ----------------------------------------------------------------------------


class Probe(RawClient):
    async def send_then_heartbeat(self, data: str | bytes) -> tuple[list[Any], list[list[Any]]]:
        """Send `data`, then a Heartbeat; return the Heartbeat's answer and what came before."""
        while not self._unmatched.empty():  # late answers to earlier messages: not ours
            self._unmatched.get_nowait()
        hb_id = uuid.uuid4().hex
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting[hb_id] = fut
        await self.ws.send(data)
        await self.ws.send(json.dumps([2, hb_id, "Heartbeat", {}]))
        hb = await asyncio.wait_for(fut, WAIT_S)
        before = []
        while not self._unmatched.empty():
            before.append(self._unmatched.get_nowait())
        return hb, before


class ServerBroken(AssertionError):
    """The server cannot serve a fresh charger any more (kept apart from per-frame failures)."""


@dataclass
class Harness:
    service: Loadstar
    version: str
    client: Probe | None = None
    connects: int = 0
    since_boot: list[Fuzz] = field(default_factory=list)

    def url(self, cp_id: str) -> str:
        return f"ws://127.0.0.1:{self.service.ocpp_port}/ocpp/{cp_id}"

    async def connect(self, cp_id: str) -> Probe:
        ws_client = await Probe.connect(self.url(cp_id), SUBPROTOCOL[self.version],
                                        answer_everything, max_size=None)
        assert isinstance(ws_client, Probe)
        boot = await asyncio.wait_for(ws_client.ok("BootNotification", BOOT[self.version]),
                                      WAIT_S)
        assert boot["status"] == "Accepted", boot
        return ws_client

    async def live_client(self) -> Probe:
        if self.client is None or self.client.ws.state is not State.OPEN:
            if self.client is not None:
                await self.client.close()
            self.connects += 1
            try:
                self.client = await self.connect(f"FUZZ-{self.version}")
            except (AssertionError, ConnectionClosed, OSError, TimeoutError) as exc:
                # Not this example's fault: an earlier frame broke the server for everyone.
                raise ServerBroken(
                    f"the server no longer boots a charger ({type(exc).__name__}: {exc}); "
                    f"frames since the last good boot: {self.since_boot[-5:]}") from None
            self.since_boot = []
        return self.client

    async def probe(self, fz: Fuzz) -> None:
        exp = expect(fz, HANDLED[self.version])
        if currently_in_test_context():
            note(f"expected: {exp}")
        client = await self.live_client()
        self.since_boot.append(fz)
        try:
            hb, replies = await client.send_then_heartbeat(fz.data)
        except ConnectionClosed:
            rcvd = client.ws.protocol.close_rcvd
            if exp.close_ok and rcvd is not None and rcvd.code == 1009:
                return
            raise AssertionError(
                f"the server closed the connection after {fz!r}: {rcvd}") from None
        except TimeoutError:
            raise AssertionError(f"no Heartbeat answer within {WAIT_S} s after {fz!r}") from None
        assert hb[0] == 3 and isinstance(hb[2], dict) and "currentTime" in hb[2], hb
        if not exp.ids:
            assert not replies, f"a reply frame was answered: {fz!r} -> {replies}"
            return
        if not replies and exp.silent_ok:
            return
        assert len(replies) == 1, f"expected one answer to {fz!r}, got {replies}"
        [reply] = replies
        assert reply[0] in (3, 4), reply
        assert reply[1] in exp.ids, (
            f"answer to {fz!r} carries message id {reply[1]!r}, expected one of "
            f"{sorted(exp.ids)}: {str(reply)[:300]}")
        if exp.result is True:
            assert reply[0] == 3, f"a schema-valid {fz.action} got {str(reply)[:300]}"
        if reply[0] == 3:
            assert exp.result is not False, f"{fz!r} got a CALLRESULT: {str(reply)[:300]}"
            assert len(reply) == 3 and isinstance(reply[2], dict), reply
            return
        assert len(reply) == 5, reply
        code, description, details = reply[2], reply[3], reply[4]
        assert code in CODES[self.version], f"{code!r} is not an OCPP {self.version} code"
        assert code != "InternalError", f"{fz!r} made the server fail: {str(reply)[:300]}"
        assert isinstance(description, str) and len(description) <= 255, reply
        assert isinstance(details, dict), reply

    async def still_serves_a_fresh_charger(self) -> None:
        cp_id = f"FRESH-{self.version}"
        c = await self.connect(cp_id)
        try:
            now = "2026-11-23T10:00:00Z"
            if self.version == V16:
                start = await asyncio.wait_for(c.ok("StartTransaction", {
                    "connectorId": 1, "idTag": "FRESHTAG", "meterStart": 1000,
                    "timestamp": now}), WAIT_S)
                tx_id = str(start["transactionId"])
            else:
                tx_id = "fresh-tx-1"
                await asyncio.wait_for(c.ok("TransactionEvent", {
                    "eventType": "Started", "timestamp": now, "triggerReason": "Authorized",
                    "seqNo": 0, "transactionInfo": {"transactionId": tx_id},
                    "evse": {"id": 1, "connectorId": 1},
                    "idToken": {"idToken": "FRESHTAG", "type": "ISO14443"}}), WAIT_S)
        finally:
            await c.close()
        sessions = await self.service.store.list_sessions()
        assert any(s.cp_id == cp_id and s.ocpp_tx_id == tx_id for s in sessions), (
            f"the fresh charger's transaction {tx_id} was not stored: {sessions[-3:]}")


def _keep_exception(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    # `log.exception` passes exc_info=True: keep what it was while it is still known.
    if event.get("exc_info") is True:
        event["exc_info"] = sys.exc_info()
    return event


@contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """structlog.testing.capture_logs, remembering the exception behind each traceback."""
    cap = LogCapture()
    processors = structlog.get_config()["processors"]
    old = processors.copy()
    try:
        processors.clear()
        processors.extend([_keep_exception, cap])
        structlog.configure(processors=processors)
        yield cap.entries
    finally:
        processors.clear()
        processors.extend(old)
        structlog.configure(processors=processors)


class ErrorRecords(logging.Handler):
    """Collects stdlib log records at ERROR and above (websockets, asyncio)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _describe_exc(info: Any) -> str:
    if isinstance(info, tuple) and len(info) == 3 and info[1] is not None:
        return f"{type(info[1]).__name__}: {str(info[1])[:200]}"
    if isinstance(info, BaseException):
        return f"{type(info).__name__}: {str(info)[:200]}"
    return str(info)[:200]


def _where(task: asyncio.Task[Any]) -> str:
    coro: Any = task.get_coro()
    chain = []
    while coro is not None and len(chain) < 6:
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is None:
            break
        chain.append(f"{code.co_qualname} ({Path(code.co_filename).name})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return f"{task.get_name()}: {' -> '.join(chain) or repr(task)}"


def run_fuzz(tmp_path: Path, version: str, max_examples: int) -> None:
    loop = asyncio.new_event_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    stdlib = ErrorRecords()
    logging.getLogger().addHandler(stdlib)
    errors: list[BaseException] = []
    service = Loadstar(make_config(tmp_path, max_frame_bytes=MAX_FRAME_BYTES))
    harness = Harness(service, version)

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fz=fuzz_frames(version, HANDLED[version]))
    def fuzz(fz: Fuzz) -> None:
        loop.run_until_complete(harness.probe(fz))

    try:
        with capture_logs() as logs:
            loop.run_until_complete(service.start())
            try:
                fuzz()
            except BaseException as exc:  # noqa: B036 - keep going to the end-of-run checks
                errors.append(exc)
            try:
                loop.run_until_complete(harness.still_serves_a_fresh_charger())
            except Exception as exc:
                errors.append(exc)
            if harness.client is not None:
                loop.run_until_complete(harness.client.close())
            try:
                loop.run_until_complete(asyncio.wait_for(service.stop(), 30))
            except Exception as exc:
                errors.append(AssertionError(f"stop() failed: {_describe_exc(exc)}"))
            loop.run_until_complete(asyncio.sleep(0.2))
            leaked = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if leaked:
                errors.append(AssertionError(
                    f"{len(leaked)} task(s) still running after stop(): "
                    + ", ".join(sorted({_where(t) for t in leaked}))))
        bad_events = [e for e in logs if e.get("log_level") in ("error", "critical")
                      or e.get("exc_info")]
        if bad_events:
            kinds = sorted({f"{e['event']} ({e.get('log_level')}): "
                            f"{_describe_exc(e.get('exc_info'))}" for e in bad_events})
            errors.append(AssertionError(
                f"{len(bad_events)} error event(s) logged:\n  " + "\n  ".join(kinds)))
        if stdlib.records:
            kinds = sorted({f"{r.name}: {r.getMessage()[:100]} "
                            f"{_describe_exc(r.exc_info) if r.exc_info else ''}"
                            for r in stdlib.records})
            errors.append(AssertionError(
                f"{len(stdlib.records)} stdlib error record(s):\n  " + "\n  ".join(kinds)))
        if loop_errors:
            kinds = sorted({f"{c.get('message')} {_describe_exc(c.get('exception'))}"
                            for c in loop_errors})
            errors.append(AssertionError("loop exception handler:\n  " + "\n  ".join(kinds)))
    finally:
        logging.getLogger().removeHandler(stdlib)
        # A stop() that failed leaves the SQLite worker thread running, and pytest would hang
        # at exit waiting for it: close the connection underneath.
        db = getattr(service.store, "_db", None)
        if db is not None:
            errors.append(AssertionError("stop() left the database open"))
            try:
                loop.run_until_complete(asyncio.wait_for(db.close(), 10))
            except Exception:  # noqa: BLE001 - best effort, the failure is reported above
                db.stop()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup(f"{len(errors)} fuzz failures ({version}, "
                                 f"{harness.connects} connects)", errors)


def test_fuzz_ocpp16_frames(tmp_path: Path) -> None:
    run_fuzz(tmp_path, V16, max_examples=150)


def test_fuzz_ocpp201_frames(tmp_path: Path) -> None:
    run_fuzz(tmp_path, V201, max_examples=150)
