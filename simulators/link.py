"""The charger's link to the central system: connection, boot, heartbeat and the send queue.

Outgoing CALLs go through one FIFO queue, one in flight at a time, each with a timeout;
transaction messages survive disconnects and are resent in order after reconnecting (and
retried on a timeout or CALLERROR as the transaction message settings say), others fail fast
while offline. The connection reconnects with backoff and boots again when it must.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import ssl as ssl_module
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from simulators.clock import Clock
from simulators.records import Payload
from simulators.rpc import CallFailed, Offline, Rpc
from simulators.runtime import Runtime


class LinkSettings(Protocol):
    """What the link asks the protocol side: the boot message and the retry settings."""

    def boot_payload(self) -> Payload: ...
    def message_attempts(self) -> int: ...
    def retry_interval(self) -> float: ...
    def heartbeat_interval(self) -> int: ...
    def set_heartbeat_interval(self, seconds: int) -> None: ...


@dataclass
class Outgoing:
    """A queued CALL: its payload is built when it first goes out (then kept for resends)."""

    action: str
    build: Callable[[], Payload]
    transactional: bool
    on_result: Callable[[Payload, Payload], None] | None
    future: asyncio.Future[Payload]
    payload: Payload | None = None
    attempts: int = 0


class Link:
    """One websocket connection at a time to the central system, and what goes over it."""

    def __init__(
        self,
        rt: Runtime,
        rpc: Rpc,
        clock: Clock,
        *,
        cp_id: str,
        url: str,
        protocol: str,
        password: str | None,
        ssl: ssl_module.SSLContext | None,
        call_timeout_s: float,
        reconnect_min_s: float,
        reconnect_max_s: float,
        boot_on_reconnect: bool,
        user_agent: str,
        rng: random.Random,
        on_registered: Callable[[], None],
    ) -> None:
        self.rt = rt
        self.rpc = rpc
        self.clock = clock
        self.cp_id = cp_id
        self.url = url
        self.protocol = protocol
        self.password = password
        self.ssl = ssl
        self.call_timeout_s = call_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.boot_on_reconnect = boot_on_reconnect
        self.user_agent = user_agent
        self.rng = rng
        self.on_registered = on_registered
        self.settings: LinkSettings | None = None  # the protocol side, wired after it exists

        self.booted = asyncio.Event()
        self.connected = asyncio.Event()
        self.boot_status: str | None = None
        self.connect_count = 0
        self.ws: ClientConnection | None = None
        self.accepted = asyncio.Event()
        self.outbox: deque[Outgoing] = deque()
        self.outbox_ready = asyncio.Event()
        self.inflight: Outgoing | None = None
        self.hb_wake = asyncio.Event()
        self.stopping = False
        self.boot_done = False
        self.boot_reason = "PowerUp"
        self.reboot_pending = False

    @property
    def proto(self) -> LinkSettings:
        assert self.settings is not None, "Link.settings is wired at construction"
        return self.settings

    @property
    def online(self) -> bool:
        """True while connected and registered (boot accepted)."""
        return self.accepted.is_set()

    # ------------------------------------------------------------------ the send queue

    def enqueue(
        self,
        action: str,
        build: Callable[[], Payload],
        *,
        transactional: bool,
        on_result: Callable[[Payload, Payload], None] | None,
    ) -> asyncio.Future[Payload]:
        """Queue a CALL; a non-transaction one fails at once (`Offline`) while offline."""
        fut: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        item = Outgoing(action, build, transactional, on_result, fut)
        if not transactional and not self.online:
            fut.set_exception(Offline(f"{action}: offline"))
            fut.exception()  # retrieved: nobody has to await a dropped notification
            return fut
        self.outbox.append(item)
        self.outbox_ready.set()
        self.rt.notify()
        return fut

    async def call(self, action: str, payload: Payload, *, transactional: bool = False) -> Payload:
        """Send a CALL through the queue and return the server's CALLRESULT payload."""
        return await self.enqueue(
            action, lambda: payload, transactional=transactional, on_result=None
        )

    async def soft_call(self, action: str, payload: Payload) -> None:
        """`call`, for a message whose failure nobody acts on."""
        with contextlib.suppress(CallFailed, TimeoutError, ConnectionError):
            await self.call(action, payload)

    async def sender(self) -> None:
        """Send the head of the queue while online: one in flight, retried as configured."""
        while True:
            await self.accepted.wait()
            if not self.outbox:
                self.outbox_ready.clear()
                self.rt.notify()
                await self.outbox_ready.wait()
                continue
            ws = self.ws
            item = self.outbox[0]
            if ws is None:
                await asyncio.sleep(0.01)
                continue
            if item.payload is None:
                item.payload = item.build()
            self.inflight = item
            try:
                result = await self.rpc.call(ws, item.action, item.payload, self.call_timeout_s)
            except (ConnectionClosed, ConnectionError, OSError):
                self.inflight = None
                if not item.transactional:
                    self._drop_head(item, Offline(f"{item.action}: connection lost"))
                if self.stopping:
                    # Stopped while sending: what is queued stays queued, as in a real charger.
                    # Looping would spin without yielding (a send on a closed connection
                    # fails without suspending) and starve the event loop.
                    return
                # Wait until the connection loop notices; the message is resent after reconnect.
                await self.rt.wait_for(lambda ws=ws: self.ws is not ws or self.stopping)
                continue
            except (TimeoutError, CallFailed) as exc:
                self.inflight = None
                item.attempts += 1
                attempts = self.proto.message_attempts()
                if item.transactional and item.attempts < attempts:
                    await self.clock.sleep(self.proto.retry_interval() * item.attempts)
                    continue
                self._drop_head(item, exc)
                continue
            self.inflight = None
            if self.outbox and self.outbox[0] is item:
                self.outbox.popleft()
            if item.on_result is not None:
                item.on_result(item.payload, result)
            if not item.future.done():
                item.future.set_result(result)
            self.rt.notify()

    def _drop_head(self, item: Outgoing, exc: BaseException) -> None:
        if self.outbox and self.outbox[0] is item:
            self.outbox.popleft()
        if not item.future.done():
            item.future.set_exception(exc)
            item.future.exception()
        self.rt.notify()

    # ------------------------------------------------------------------ the connection

    def _headers(self) -> dict[str, str]:
        if self.password is None:
            return {}
        token = base64.b64encode(f"{self.cp_id}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def connection_loop(self) -> None:
        """Connect, register and read until stopped; reconnect with backoff when lost."""
        delay = self.reconnect_min_s
        while not self.stopping:
            if self.reboot_pending:
                self.reboot_pending = False
                await self.clock.sleep(5.0)  # the time a reboot takes
            registered = False
            try:
                async with connect(
                    self.url,
                    subprotocols=[self.protocol],  # type: ignore[list-item]
                    additional_headers=self._headers(),
                    ssl=self.ssl,
                    proxy=None,
                    compression=None,
                    open_timeout=max(10.0, self.call_timeout_s),
                    user_agent_header=self.user_agent,
                ) as ws:
                    if ws.subprotocol != self.protocol:
                        self.rt.last_error = f"server chose subprotocol {ws.subprotocol!r}"
                        await ws.close(1002, "subprotocol")
                        raise InvalidHandshake(self.rt.last_error)
                    self.ws = ws
                    self.connect_count += 1
                    self.connected.set()
                    async with asyncio.TaskGroup() as tg:
                        reader = tg.create_task(self.reader(ws))
                        await self._register(ws)
                        registered = True
                        delay = self.reconnect_min_s
                        await reader
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                self.rt.last_error = f"{type(exc).__name__}: {exc}"
            except ExceptionGroup as group:
                # The TaskGroup wraps what its tasks raised; only connection loss ends here.
                lost, rest = group.split(
                    (OSError, ConnectionClosed, InvalidHandshake, TimeoutError))
                if rest is not None:
                    raise rest from None
                assert lost is not None
                self.rt.last_error = f"{lost.exceptions[0]!r}"
            finally:
                self.ws = None
                self.fail_pending()
                self.connected.clear()
                self.rt.notify()
            if self.stopping:
                break
            if self.reboot_pending:
                continue
            # Exponential backoff with jitter (2.0.1 RetryBackOff*), in wall seconds: it is
            # about the network, and a fast clock must not turn into a reconnect storm.
            wait = delay * (0.5 + self.rng.random()) if not registered else self.reconnect_min_s
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.reconnect_max_s)

    async def _register(self, ws: ClientConnection) -> None:
        """Boot (unless this is a reconnect of a registered charger) and announce status."""
        if not self.boot_done or self.boot_on_reconnect:
            while True:
                try:
                    res = await self.rpc.call(
                        ws, "BootNotification", self.proto.boot_payload(), self.call_timeout_s
                    )
                except (TimeoutError, CallFailed) as exc:
                    self.rt.last_error = f"BootNotification: {exc!r}"
                    await self.clock.sleep(30.0)
                    continue
                self.boot_status = res["status"]
                interval = int(res.get("interval") or 0)
                if res["status"] == "Accepted":
                    if interval > 0:
                        self.proto.set_heartbeat_interval(interval)
                        self.hb_wake.set()
                    break
                # Pending/Rejected: retry after the interval given (or a default).
                self.rt.notify()
                await self.clock.sleep(interval if interval > 0 else 60.0)
            self.boot_done = True
            self.boot_reason = "PowerUp"
        self.booted.set()
        self.accepted.set()
        self.on_registered()
        self.hb_wake.set()
        self.rt.notify()

    async def heartbeat(self) -> None:
        """Send a Heartbeat when nothing else went out for an interval."""
        while True:
            interval = max(1, self.proto.heartbeat_interval())
            await self.rt.sleep_or(self.hb_wake, interval)
            if not self.online:
                continue
            last = self.rpc.last_sent_at
            if last is not None and (self.clock.now() - last).total_seconds() < interval * 0.9:
                continue  # other traffic within the interval counts as a heartbeat (1.6 4.6)
            with contextlib.suppress(CallFailed, TimeoutError, ConnectionError):
                await self.call("Heartbeat", {})

    async def reader(self, ws: ClientConnection) -> None:
        """Read frames until the connection ends, then fail what waits for an answer."""
        try:
            await self.rpc.read_frames(ws)
        finally:
            # Whatever waits for an answer on this connection (boot included) fails now
            # rather than at its timeout; the sender keeps transaction messages for later.
            self.fail_pending()

    def fail_pending(self) -> None:
        """The connection is gone: not accepted any more, and every pending call fails."""
        self.accepted.clear()
        self.rpc.fail_pending()

    async def reboot(self) -> None:
        """Boot again (reason RemoteReset) after closing the connection and a reboot's pause."""
        self.boot_done = False
        self.boot_reason = "RemoteReset"
        self.booted.clear()
        self.reboot_pending = True
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close(1012, "reboot")

    async def close(self) -> None:
        """Stop: close the connection with a closing handshake."""
        self.stopping = True
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close()

    def abort(self) -> None:
        """Drop the connection without a closing handshake, as a network failure does."""
        ws = self.ws
        if ws is not None:
            ws.transport.abort()
