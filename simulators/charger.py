"""A simulated OCPP 1.6J / 2.0.1 charge point with EVs behind its connectors.

One `SimCharger` is one charging station: a websocket client that boots, reports status,
authorizes and runs transactions, meters them and answers the central system's calls, plus a
small physics engine that integrates what each EV draws under the charging profiles the charger
holds (see `simulators.smart`). It is written to be a correct client that a conformance reviewer
would recognise, and cheap enough to run a hundred of in one event loop:

- outgoing CALLs go through one FIFO queue, one in flight at a time, each with a timeout;
  transaction messages survive disconnects and are resent in order after reconnecting, others
  fail fast while offline;
- the engine task wakes only when something can change (a meter interval, a schedule boundary,
  an EV reaching full, a new profile), never on a fixed tick;
- tests await events (`booted`, `wait_for_tx_started`, `wait_idle`, `profile_events`) instead
  of sleeping.

In OCPP 2.0.1 the "connector" numbers of this API are EVSE ids; each EVSE has one connector (1).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import json
import logging
import math
import os
import random
import ssl as ssl_module
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import ocpp
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult, _validate_payload
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from simulators import smart
from simulators.clock import Clock, SimClock
from simulators.device_model import (
    SUPPORTED_MEASURANDS,
    DeviceModel,
    V16Config,
    build_device_model,
)
from simulators.ev import EV

log = logging.getLogger(__name__)

Payload = dict[str, Any]

PROTOCOLS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
MODES = ("normal", "reject_profiles", "ignore_profiles")

#: Longest simulated step of the physics integration (taper accuracy); see `_advance`.
MAX_STEP_S = 30.0
#: How far ahead the engine looks for schedule boundaries before sleeping.
HORIZON_S = 3600.0


class CallFailed(Exception):
    """The central system answered a CALL with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: {code} {description}")
        self.action = action
        self.code = code
        self.description = description


class Offline(ConnectionError):
    """A non-transaction message cannot be sent because the charger is not connected."""


class _Reply(Exception):
    """Raised by a handler to answer with a CALLERROR."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(description or code)
        self.code = code
        self.description = description or code


@dataclass
class TxRecord:
    """One transaction as the charger saw it, and what the server acknowledged of it."""

    connector: int
    id_tag: str
    started_at: datetime
    meter_start_wh: int
    transaction_id: int | str | None = None
    acknowledged: bool = False
    id_tag_status: str | None = None
    samples_acked: int = 0
    meter_messages_acked: int = 0
    energy_wh: float = 0.0
    ended_at: datetime | None = None
    meter_stop_wh: int | None = None
    stop_reason: str | None = None
    stop_acknowledged: bool = False
    remote_start_id: int | None = None
    seq_no: int = 0
    begin_sample: list[Payload] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        """True until the transaction has ended (locally)."""
        return self.ended_at is None


@dataclass(frozen=True)
class ProfileEvent:
    """A change of the profiles a charger holds (or a refusal)."""

    kind: str  # installed | cleared | rejected
    cp_id: str
    connector: int
    profile_id: int
    purpose: str
    stack_level: int
    at: datetime
    reason: str | None = None


@dataclass
class _Outgoing:
    action: str
    build: Callable[[], Payload]
    transactional: bool
    on_result: Callable[[Payload, Payload], None] | None
    future: asyncio.Future[Payload]
    payload: Payload | None = None
    attempts: int = 0


@dataclass
class _Remote:
    id_tag: str
    profile: Payload | None
    remote_start_id: int | None


@dataclass
class _Conn:
    id: int
    max_current_a: float
    phases: int
    ev: EV | None = None
    id_tag: str | None = None
    tx: TxRecord | None = None
    last_tx: TxRecord | None = None
    meter_wh: float = 0.0
    power_w: float = 0.0
    status: str = "Available"  # the 1.6 ChargePointStatus; 2.0.1 maps it
    reported: str = "Available"  # last status put on the wire (per version)
    charging_state: str = "Idle"
    operative: bool = True
    scheduled_operative: bool | None = None
    next_meter_at: datetime | None = None
    remote: _Remote | None = None
    auth_rejected: bool = False
    draw_log: list[tuple[datetime, float]] = field(default_factory=list)


@functools.cache
def _known_actions(version: str) -> frozenset[str]:
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


def _error_code(version: str, code: str) -> str:
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


class SimCharger:
    """A simulated charge point speaking OCPP 1.6J or 2.0.1.

    Use `await start()` (or `async with`), then `plug_in`/`unplug` EVs; `stop()` closes it.
    """

    def __init__(
        self,
        cp_id: str,
        url: str,
        *,
        protocol: str = "ocpp1.6",
        connectors: int = 1,
        clock: Clock | None = None,
        password: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        meter_interval_s: int = 60,
        mode: str = "normal",
        max_power_kw: float | Sequence[float] = 22.0,
        voltage_v: float = 230.0,
        phases: int = 3,
        heartbeat_interval_s: int = 300,
        call_timeout_s: float = 30.0,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        stop_when_full: bool = True,
        boot_on_reconnect: bool = False,
        validate_outgoing: bool = False,
        relax_validation: bool = False,
        max_stack_level: int = 8,
        max_periods: int = 24,
        max_profiles: int | None = None,
        record_draw: bool = True,
        on_profile: Callable[[ProfileEvent], None] | None = None,
        vendor: str = "Loadstar",
        model: str = "SimCharger",
        firmware: str = "1.0.0",
        seed: int | None = None,
        accepted_units: tuple[str, ...] = ("A", "W"),
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if connectors < 1:
            raise ValueError("connectors must be >= 1")
        self.cp_id = cp_id
        self.url = url.rstrip("/") + "/" + quote(cp_id, safe="")
        self.protocol = protocol
        self.version = PROTOCOLS[protocol]
        self.v16 = self.version == "1.6"
        self.clock: Clock = clock or SimClock()
        self.password = password
        self.ssl = ssl
        self.mode = mode
        self.voltage_v = voltage_v
        self.call_timeout_s = call_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.stop_when_full = stop_when_full
        self.boot_on_reconnect = boot_on_reconnect
        self.validate_outgoing = validate_outgoing
        self.relax_validation = relax_validation
        self.record_draw = record_draw
        self.on_profile = on_profile
        self.vendor, self.model, self.firmware = vendor, model, firmware
        # What its firmware really takes, whatever it reports (it always reports A and W).
        self.accepted_units = accepted_units
        self.serial = f"SIM-{cp_id}"
        self._rng = random.Random(seed if seed is not None else cp_id)
        powers = (
            [float(max_power_kw)] * connectors
            if isinstance(max_power_kw, int | float)
            else [float(p) for p in max_power_kw]
        )
        if len(powers) != connectors:
            raise ValueError("max_power_kw needs one value per connector")
        self.conns: dict[int, _Conn] = {
            i + 1: _Conn(id=i + 1, max_current_a=p * 1000.0 / (voltage_v * phases), phases=phases)
            for i, p in enumerate(powers)
        }
        self.profiles = smart.ProfileStore()
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.max_profiles = max_profiles or max(16, 4 * connectors + 4)
        security_profile = (2 if ssl else 1) if password else 0
        self.config = V16Config(
            connectors=connectors,
            heartbeat_interval_s=heartbeat_interval_s,
            meter_interval_s=meter_interval_s,
            max_stack_level=max_stack_level,
            max_periods=max_periods,
            max_profiles=self.max_profiles,
            security_profile=security_profile,
        )
        self.device_model: DeviceModel = build_device_model(
            cp_id=cp_id,
            evses=connectors,
            evse_max_w=[p * 1000.0 for p in powers],
            phases=phases,
            heartbeat_interval_s=heartbeat_interval_s,
            meter_interval_s=meter_interval_s,
            max_stack_level=max_stack_level,
            max_periods=max_periods,
            max_profiles=self.max_profiles,
            security_profile=security_profile,
            profile_count=lambda: str(len(self.profiles)),
            availability=self._availability_state,
            date_time=lambda: smart.iso(self.clock.now()),
        )
        self.station_status = "Available"
        self.station_operative = True
        self.scheduled_station_operative: bool | None = None

        # Public records and events.
        self.booted = asyncio.Event()
        self.connected = asyncio.Event()
        self.boot_status: str | None = None
        self.transactions: list[TxRecord] = []
        self.profile_events: asyncio.Queue[ProfileEvent] = asyncio.Queue()
        self.messages_sent = 0
        self.results_sent = 0
        self.messages_received = 0
        self.call_errors: list[tuple[str, str, str]] = []
        self.incoming: list[tuple[str, Payload]] = []
        self.connect_count = 0
        self.last_error: str | None = None

        # Internals.
        self._ws: ClientConnection | None = None
        self._accepted = asyncio.Event()
        self._outbox: deque[_Outgoing] = deque()
        self._outbox_ready = asyncio.Event()
        self._inflight: _Outgoing | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[Payload]]] = {}
        self._busy = 0
        self._wake = asyncio.Event()
        self._hb_wake = asyncio.Event()
        self._waiters: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._aux: set[asyncio.Task[Any]] = set()
        self._run_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._boot_done = False
        self._boot_reason = "PowerUp"
        self._reboot_pending = False
        self._reset_scheduled: str | None = None
        self._t_advanced: datetime | None = None
        self._last_sent_at: datetime | None = None
        self._report_seq = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SimCharger:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start connecting, booting and simulating in the background."""
        if self._run_task is None:
            self._t_advanced = self.clock.now()
            self._run_task = asyncio.create_task(self._run(), name=f"charger-{self.cp_id}")

    async def stop(self) -> None:
        """Close the connection and stop all background work (EVs stay where they are)."""
        self._stopping = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close()
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for aux in list(self._aux):
            aux.cancel()
        for aux in list(self._aux):
            with contextlib.suppress(asyncio.CancelledError):
                await aux

    async def disconnect(self) -> None:
        """Drop the connection (as a network failure would); it reconnects with backoff."""
        ws = self._ws
        if ws is not None:
            # Abort the TCP connection without a closing handshake, as a network failure does.
            ws.transport.abort()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._connection_loop(), name=f"{self.cp_id}-conn")
            tg.create_task(self._sender(), name=f"{self.cp_id}-send")
            tg.create_task(self._engine(), name=f"{self.cp_id}-engine")
            tg.create_task(self._heartbeat(), name=f"{self.cp_id}-heartbeat")

    def _spawn(self, coro: Awaitable[Any], *, busy: bool = False) -> None:
        """Run a follow-up in the background, holding a reference and logging its failure."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # edge of a background task: log, don't kill the charger
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("charger %s: background task failed: %r", self.cp_id, exc)
            finally:
                if busy:
                    self._busy -= 1
                    self._notify()

        if busy:
            self._busy += 1
        task = asyncio.ensure_future(guarded())
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)

    # ------------------------------------------------------------------ public helpers

    @property
    def online(self) -> bool:
        """True while connected and registered (boot accepted)."""
        return self._accepted.is_set()

    @property
    def idle(self) -> bool:
        """True when nothing is queued, in flight or being prepared, and we are online."""
        return (
            not self._outbox and self._inflight is None and self._busy == 0 and self.online
        )

    async def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait (wall `timeout`) until `predicate()` is truthy; return its value."""
        value = predicate()
        if value:
            return value
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def _notify(self) -> None:
        for predicate, fut in list(self._waiters):
            if not fut.done():
                value = predicate()
                if value:
                    fut.set_result(value)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every queued message has been sent and answered."""
        await self.wait_for(lambda: self.idle, timeout)

    async def wait_for_tx_started(self, connector: int, timeout: float | None = None) -> TxRecord:
        """Wait until the connector's latest transaction was acknowledged by the server."""
        c = self._conn(connector)
        return await self.wait_for(
            lambda: c.last_tx if c.last_tx is not None and c.last_tx.acknowledged else None,
            timeout,
        )

    async def wait_for_tx_ended(self, connector: int, timeout: float | None = None) -> TxRecord:
        """Wait until the connector's latest transaction ended and the server acknowledged it."""
        c = self._conn(connector)
        return await self.wait_for(
            lambda: c.last_tx if c.last_tx is not None and c.last_tx.stop_acknowledged else None,
            timeout,
        )

    @property
    def acknowledged_transactions(self) -> list[int | str]:
        """Transaction ids the server acknowledged (1.6: the ids it returned)."""
        return [
            t.transaction_id
            for t in self.transactions
            if t.acknowledged and t.transaction_id is not None
        ]

    @property
    def samples_acked(self) -> int:
        """sampledValue entries acknowledged by the server, over all transactions."""
        return sum(t.samples_acked for t in self.transactions)

    def samples_acked_by_tx(self) -> dict[int | str, int]:
        """sampledValue entries acknowledged per (acknowledged) transaction id."""
        return {
            t.transaction_id: t.samples_acked
            for t in self.transactions
            if t.transaction_id is not None
        }

    def energy_by_tx_wh(self) -> dict[int | str, float]:
        """Energy delivered per transaction id (Wh)."""
        return {
            t.transaction_id: t.energy_wh for t in self.transactions if t.transaction_id is not None
        }

    def draw_log(self, connector: int) -> list[tuple[datetime, float]]:
        """(instant, watts from then on) change points of a connector's draw."""
        return self._conn(connector).draw_log

    def composite_limit_w(self, connector: int, at: datetime | None = None) -> float:
        """The limit (W) the profiles put on `connector` at `at` (station cap not shared out)."""
        at = at or self.clock.now()
        c = self._conn(connector)
        phases = min(c.phases, c.ev.phases) if c.ev else c.phases
        tx_id, tx_start = self._tx_key(c)
        limit = c.max_current_a * self.voltage_v * phases
        for lim in self.profiles.connector_limits(
            c.id, at, tx_id=tx_id, tx_start=tx_start or at
        ):
            limit = min(limit, smart.to_watts(lim, phases, self.voltage_v))
        station = self.profiles.station_limit(at)
        if station is not None:
            limit = min(limit, smart.to_watts(station, phases, self.voltage_v))
        return limit

    def current_draw_w(self, connector: int) -> float:
        """What the EV on `connector` draws now (W)."""
        self._advance(self.clock.now())
        return self._conn(connector).power_w

    def total_draw_w(self) -> float:
        """What the whole charger draws now (W)."""
        self._advance(self.clock.now())
        return sum(c.power_w for c in self.conns.values())

    def meter_wh(self, connector: int) -> float:
        """The connector's energy register (Wh)."""
        self._advance(self.clock.now())
        return self._conn(connector).meter_wh

    def status(self, connector: int) -> str:
        """The connector status as last reported (1.6 names; 2.0.1 maps Charging etc. to
        Occupied on the wire)."""
        return self._conn(connector).status

    def _conn(self, connector: int) -> _Conn:
        try:
            return self.conns[connector]
        except KeyError:
            raise ValueError(f"{self.cp_id} has no connector {connector}") from None

    # ------------------------------------------------------------------ EV side

    async def plug_in(self, connector: int, ev: EV, id_tag: str = "SIMTAG0001") -> None:
        """Plug `ev` into `connector`; authorize `id_tag` and start a transaction."""
        c = self._conn(connector)
        if c.ev is not None:
            raise RuntimeError(f"{self.cp_id}/{connector}: already occupied")
        now = self.clock.now()
        self._advance(now)
        c.ev, c.id_tag, c.auth_rejected = ev, id_tag, False
        if not (c.operative and self.station_operative):
            return
        remote, c.remote = c.remote, None
        self._set_status(c, "Preparing", now)
        self._spawn(self._authorize_and_start(c, id_tag, remote), busy=True)

    async def unplug(self, connector: int) -> None:
        """Unplug the EV: ends a running transaction (EVDisconnected) and frees the connector."""
        c = self._conn(connector)
        now = self.clock.now()
        self._advance(now)
        ev, c.ev = c.ev, None
        if ev is None:
            return
        if c.tx is not None:
            self._stop_tx(c, "EVDisconnected", now)
        else:
            self._set_status(c, self._idle_status(c), now)
        self._wake.set()
        self._notify()

    def _idle_status(self, c: _Conn) -> str:
        if not (c.operative and self.station_operative):
            return "Unavailable"
        if c.ev is not None:
            return "Finishing" if c.last_tx is not None and not c.last_tx.active else "Preparing"
        return "Available"

    async def _authorize_and_start(self, c: _Conn, id_tag: str, remote: _Remote | None) -> None:
        if remote is not None:
            id_tag = remote.id_tag  # the central system already authorized this one
        if remote is None and self.online:
            try:
                res = await self.call("Authorize", self._authorize_payload(id_tag))
            except (CallFailed, TimeoutError, ConnectionError):
                res = None  # unreachable: the LocalAuthorizeOffline/offline-tx settings apply
            if res is not None:
                info = res.get("idTagInfo") or res.get("idTokenInfo") or {}
                if info.get("status") != "Accepted":
                    c.auth_rejected = True
                    self._notify()
                    return
        if c.ev is None or c.tx is not None or not c.operative:
            return
        self._start_tx(c, id_tag, remote)

    def _authorize_payload(self, id_tag: str) -> Payload:
        if self.v16:
            return {"idTag": id_tag}
        return {"idToken": {"idToken": id_tag, "type": "ISO14443"}}

    # ------------------------------------------------------------------ transactions

    def _tx_key(self, c: _Conn) -> tuple[str | None, datetime | None]:
        if c.tx is None:
            return None, None
        # A 1.6 transaction has no id until StartTransaction.conf; profiles bound to it match
        # through an unbound TxProfile (transaction_id None) until then.
        tx_id = c.tx.transaction_id
        return (str(tx_id) if tx_id is not None else f"local-{id(c.tx)}"), c.tx.started_at

    def _start_tx(self, c: _Conn, id_tag: str, remote: _Remote | None) -> TxRecord:
        now = self.clock.now()
        self._advance(now)
        tx = TxRecord(
            connector=c.id,
            id_tag=id_tag,
            started_at=now,
            meter_start_wh=round(c.meter_wh),
            remote_start_id=remote.remote_start_id if remote else None,
        )
        if not self.v16:
            tx.transaction_id = str(uuid.uuid4())
        c.tx, c.last_tx = tx, tx
        self.transactions.append(tx)
        c.next_meter_at = now + timedelta(seconds=self._meter_interval())
        if remote is not None and remote.profile is not None:
            self._install_remote_profile(c, remote.profile, now)
        self._t_advanced = now
        self._refresh_draws(now)
        c.charging_state = self._charging_state(c)
        offline = not self.online
        if self.v16:
            payload = {
                "connectorId": c.id,
                "idTag": id_tag,
                "meterStart": tx.meter_start_wh,
                "timestamp": smart.iso(now),
            }
            tx.begin_sample = [self._sample_v16(c, now, "Transaction.Begin", begin=True)]
            self._enqueue(
                "StartTransaction",
                lambda: payload,
                transactional=True,
                on_result=lambda _req, res: self._on_start_v16(c, tx, res),
            )
            self._set_status(c, self._status_for_state(c.charging_state), now)
        else:
            event = self._tx_event(
                c,
                tx,
                "Started",
                "RemoteStart" if remote is not None else "Authorized",
                now,
                offline=offline,
                meter=self._meter_value_v201(c, now, "Transaction.Begin", begin=True),
                id_token=True,
            )
            self._enqueue(
                "TransactionEvent",
                lambda: event,
                transactional=True,
                on_result=lambda req, res: self._on_tx_event_ack(c, tx, req, res),
            )
            self._set_status(c, "Occupied", now)
            if c.ev is not None and c.ev.departure_after_s is not None and self.online:
                # What the car said at the start, not what it needs when the message leaves.
                needs = self._charging_needs(c, now)
                self._enqueue("NotifyEVChargingNeeds", lambda: needs,
                              transactional=False, on_result=None)
        self._wake.set()
        self._notify()
        return tx

    def _charging_needs(self, c: _Conn, now: datetime) -> Payload:
        """NotifyEVChargingNeeds (2.0.1 K15) for the car on `c`: energy, departure, limits."""
        ev = c.ev
        assert ev is not None and ev.departure_after_s is not None
        phases = min(c.phases, ev.phases)
        max_a = min(c.max_current_a, ev.max_power_kw * 1000.0 / (self.voltage_v * phases))
        return {
            "evseId": c.id,
            "chargingNeeds": {
                "requestedEnergyTransfer": "AC_three_phase" if phases == 3 else "AC_single_phase",
                "departureTime": smart.iso(now + timedelta(seconds=ev.departure_after_s)),
                "acChargingParameters": {
                    "energyAmount": round(ev.energy_needed_wh),
                    "evMinCurrent": int(math.ceil(ev.min_current_a)),
                    "evMaxCurrent": int(max_a),
                    "evMaxVoltage": int(self.voltage_v * (3**0.5 if phases == 3 else 1)),
                },
            },
        }

    def _on_start_v16(self, c: _Conn, tx: TxRecord, res: Payload) -> None:
        tx.transaction_id = int(res["transactionId"])
        tx.acknowledged = True
        tx.id_tag_status = (res.get("idTagInfo") or {}).get("status")
        self.profiles.bind_tx(c.id, str(tx.transaction_id))
        if tx.id_tag_status != "Accepted" and tx.active and c.tx is tx:
            # StopTransactionOnInvalidId=true: the central system refused the id tag.
            self._stop_tx(c, "DeAuthorized", self.clock.now())
        self._notify()

    def _on_tx_event_ack(self, c: _Conn, tx: TxRecord, req: Payload, res: Payload) -> None:
        samples = sum(len(mv.get("sampledValue", [])) for mv in req.get("meterValue", []))
        if samples:
            tx.samples_acked += samples
            tx.meter_messages_acked += 1
        kind = req["eventType"]
        if kind == "Started":
            tx.acknowledged = True
        if "idTokenInfo" in res:
            tx.id_tag_status = res["idTokenInfo"].get("status")
            if tx.id_tag_status != "Accepted" and tx.active and c.tx is tx:
                self._stop_tx(c, "DeAuthorized", self.clock.now())
        if kind == "Ended":
            tx.stop_acknowledged = True
        self._notify()

    def _stop_tx(self, c: _Conn, reason: str, now: datetime) -> None:
        """End the connector's transaction. `reason` is the 1.6 Reason, mapped for 2.0.1."""
        self._advance(now)
        tx = c.tx
        if tx is None:
            return
        tx.ended_at = now
        tx.meter_stop_wh = round(c.meter_wh)
        tx.stop_reason = reason
        c.tx = None
        c.next_meter_at = None
        c.power_w = 0.0
        self._log_power(c, now, 0.0)
        # A TxProfile lives only as long as its transaction (1.6 3.13.4, 2.0.1 K01.FR.05).
        for p in self.profiles.clear(connector=c.id, purpose=smart.TX):
            self._profile_event("cleared", p, now)
        if self.v16:
            end_sample = self._sample_v16(c, now, "Transaction.End", end=True)

            def build() -> Payload:
                payload: Payload = {
                    "meterStop": tx.meter_stop_wh,
                    "timestamp": smart.iso(now),
                    "reason": reason,
                    "idTag": tx.id_tag,
                    "transactionData": [*tx.begin_sample, end_sample],
                }
                # If StartTransaction was never acknowledged there is no id to refer to.
                payload["transactionId"] = (
                    tx.transaction_id if tx.transaction_id is not None else -1
                )
                return payload

            def done(req: Payload, _res: Payload) -> None:
                tx.stop_acknowledged = True
                tx.samples_acked += sum(
                    len(mv["sampledValue"]) for mv in req.get("transactionData", [])
                )
                tx.meter_messages_acked += 1
                self._notify()

            self._enqueue("StopTransaction", build, transactional=True, on_result=done)
        else:
            trigger, stopped = {
                "EVDisconnected": ("EVDeparted", "EVDisconnected"),
                "Remote": ("RemoteStop", "Remote"),
                "DeAuthorized": ("Deauthorized", "DeAuthorized"),
                "HardReset": ("ResetCommand", "ImmediateReset"),
                "SoftReset": ("ResetCommand", "ImmediateReset"),
                "Full": ("ChargingStateChanged", "SOCLimitReached"),
            }.get(reason, ("AbnormalCondition", "Other"))
            c.charging_state = "EVConnected" if c.ev is not None else "Idle"
            event = self._tx_event(
                c,
                tx,
                "Ended",
                trigger,
                now,
                offline=not self.online,
                meter=self._meter_value_v201(c, now, "Transaction.End", end=True),
                stopped_reason=stopped,
            )
            self._enqueue(
                "TransactionEvent",
                lambda: event,
                transactional=True,
                on_result=lambda req, res: self._on_tx_event_ack(c, tx, req, res),
            )
        if c.scheduled_operative is not None:
            c.operative, c.scheduled_operative = c.scheduled_operative, None
        if self.scheduled_station_operative is not None and not any(
            x.tx for x in self.conns.values()
        ):
            self.station_operative = self.scheduled_station_operative
            self.scheduled_station_operative = None
            self._set_station_status(now)
        self._set_status(c, self._idle_status(c), now)
        self._wake.set()
        self._notify()
        if self._reset_scheduled and not any(x.tx for x in self.conns.values()):
            self._spawn(self._reboot(self._reset_scheduled))

    def _tx_event(
        self,
        c: _Conn,
        tx: TxRecord,
        event_type: str,
        trigger: str,
        now: datetime,
        *,
        offline: bool,
        meter: Payload | None = None,
        id_token: bool = False,
        stopped_reason: str | None = None,
    ) -> Payload:
        info: Payload = {"transactionId": str(tx.transaction_id), "chargingState": c.charging_state}
        if stopped_reason:
            info["stoppedReason"] = stopped_reason
        if tx.remote_start_id is not None and event_type == "Started":
            info["remoteStartId"] = tx.remote_start_id
        event: Payload = {
            "eventType": event_type,
            "timestamp": smart.iso(now),
            "triggerReason": trigger,
            "seqNo": tx.seq_no,
            "transactionInfo": info,
        }
        tx.seq_no += 1
        if offline:
            event["offline"] = True
        if event_type == "Started":
            event["evse"] = {"id": c.id, "connectorId": 1}
            if c.ev is not None:
                event["numberOfPhasesUsed"] = min(c.phases, c.ev.phases)
        if id_token:
            event["idToken"] = {"idToken": tx.id_tag, "type": "ISO14443"}
        if meter is not None:
            event["meterValue"] = [meter]
        return event

    # ------------------------------------------------------------------ metering

    def _meter_interval(self) -> int:
        if self.v16:
            value = self.config.get_int("MeterValueSampleInterval")
        else:
            value = int(self.device_model.value("SampledDataCtrlr", "TxUpdatedInterval"))
        return value if value > 0 else 60

    def _measurands(self, kind: str) -> list[str]:
        if self.v16:
            key = {"periodic": "MeterValuesSampledData", "end": "StopTxnSampledData"}
            text = self.config.get(key.get(kind, "MeterValuesSampledData"))
        else:
            name = {
                "periodic": "TxUpdatedMeasurands",
                "begin": "TxStartedMeasurands",
                "end": "TxEndedMeasurands",
            }.get(kind, "TxUpdatedMeasurands")
            text = self.device_model.value("SampledDataCtrlr", name)
        found = [m.strip() for m in text.split(",") if m.strip() in SUPPORTED_MEASURANDS]
        return found or ["Energy.Active.Import.Register"]

    def _readings(
        self, c: _Conn, measurands: list[str]
    ) -> list[tuple[str, str | None, float, str]]:
        """(measurand, phase, value, unit) of the meter right now."""
        phases = min(c.phases, c.ev.phases) if c.ev else c.phases
        out: list[tuple[str, str | None, float, str]] = []
        for m in measurands:
            if m == "Energy.Active.Import.Register":
                out.append((m, None, round(c.meter_wh, 1), "Wh"))
            elif m == "Power.Active.Import":
                out.append((m, None, round(c.power_w, 1), "W"))
            elif m == "Power.Offered":
                offered = self.composite_limit_w(c.id) if c.tx else 0.0
                out.append((m, None, round(offered, 1), "W"))
            elif m == "Current.Import":
                per_phase = c.power_w / (self.voltage_v * phases) if c.power_w else 0.0
                for i, ph in enumerate(("L1", "L2", "L3")):
                    out.append((m, ph, round(per_phase if i < phases else 0.0, 2), "A"))
            elif m == "Current.Offered":
                offered = self.composite_limit_w(c.id) / (self.voltage_v * phases) if c.tx else 0
                out.append((m, None, round(offered, 1), "A"))
            elif m == "Voltage":
                for ph in ("L1-N", "L2-N", "L3-N"):
                    out.append((m, ph, self.voltage_v, "V"))
            elif m == "SoC" and c.ev is not None:
                out.append((m, None, round(c.ev.soc * 100.0, 1), "Percent"))
        return out

    def _sample_v16(
        self, c: _Conn, now: datetime, context: str, *, begin: bool = False, end: bool = False
    ) -> Payload:
        kind = "end" if (begin or end) else "periodic"
        values = []
        for measurand, phase, value, unit in self._readings(c, self._measurands(kind)):
            sv: Payload = {
                "value": f"{value:g}" if unit != "Wh" else f"{value:.1f}",
                "context": context,
                "format": "Raw",
                "measurand": measurand,
                "location": "EV" if measurand == "SoC" else "Outlet",
                "unit": unit,
            }
            if phase:
                sv["phase"] = phase
            values.append(sv)
        return {"timestamp": smart.iso(now), "sampledValue": values}

    def _meter_value_v201(
        self, c: _Conn, now: datetime, context: str, *, begin: bool = False, end: bool = False
    ) -> Payload:
        kind = "begin" if begin else "end" if end else "periodic"
        values = []
        for measurand, phase, value, unit in self._readings(c, self._measurands(kind)):
            sv: Payload = {
                "value": value,
                "context": context,
                "measurand": measurand,
                "location": "EV" if measurand == "SoC" else "Outlet",
                "unitOfMeasure": {"unit": unit},
            }
            if phase:
                sv["phase"] = phase
            values.append(sv)
        return {"timestamp": smart.iso(now), "sampledValue": values}

    def _send_meter_values(self, c: _Conn, now: datetime, context: str) -> None:
        tx = c.tx
        if tx is None:
            return
        if self.v16:
            sample = self._sample_v16(c, now, context)

            def build() -> Payload:
                payload: Payload = {"connectorId": c.id, "meterValue": [sample]}
                if tx.transaction_id is not None:
                    payload["transactionId"] = tx.transaction_id
                return payload

            def done(_req: Payload, _res: Payload) -> None:
                tx.samples_acked += len(sample["sampledValue"])
                tx.meter_messages_acked += 1
                self._notify()

            self._enqueue("MeterValues", build, transactional=True, on_result=done)
        else:
            trigger = "Trigger" if context == "Trigger" else "MeterValuePeriodic"
            event = self._tx_event(
                c,
                tx,
                "Updated",
                trigger,
                now,
                offline=not self.online,
                meter=self._meter_value_v201(c, now, context),
            )
            self._enqueue(
                "TransactionEvent",
                lambda: event,
                transactional=True,
                on_result=lambda req, res: self._on_tx_event_ack(c, tx, req, res),
            )

    # ------------------------------------------------------------------ physics engine

    def _log_power(self, c: _Conn, at: datetime, watts: float) -> None:
        if not self.record_draw:
            return
        if c.draw_log and abs(c.draw_log[-1][1] - watts) < 1e-6:
            return
        if c.draw_log and c.draw_log[-1][0] == at:
            c.draw_log[-1] = (at, watts)
        else:
            c.draw_log.append((at, watts))

    def _draws_at(self, at: datetime) -> dict[int, float]:
        """What each connector draws at `at` given the profiles, EVs and station cap."""
        demand: dict[int, float] = {}
        apply = self.mode != "ignore_profiles"
        for c in self.conns.values():
            if c.tx is None or c.ev is None:
                continue
            phases = min(c.phases, c.ev.phases)
            limit = c.max_current_a * self.voltage_v * phases
            if apply:
                tx_id, tx_start = self._tx_key(c)
                for lim in self.profiles.connector_limits(
                    c.id, at, tx_id=tx_id, tx_start=tx_start
                ):
                    limit = min(limit, smart.to_watts(lim, phases, self.voltage_v))
            demand[c.id] = c.ev.draw_w(limit, self.voltage_v)
        station = self.profiles.station_limit(at) if apply else None
        if station is None or not demand:
            return demand
        ids = [i for i, d in demand.items() if d > 0]
        while ids:
            per_unit = [
                self.voltage_v * min(self.conns[i].phases, self.conns[i].ev.phases)  # type: ignore[union-attr]
                if station.unit == "A"
                else 1.0
                for i in ids
            ]
            # In A the cap is a per-phase current, shared by the currents of the connectors.
            shares = smart.water_fill([demand[i] / u for i, u in zip(ids, per_unit, strict=True)],
                                      station.value)
            granted = {i: s * u for i, s, u in zip(ids, shares, per_unit, strict=True)}
            too_low = [
                i
                for i in ids
                if self.conns[i].ev.draw_w(granted[i], self.voltage_v) <= 0  # type: ignore[union-attr]
            ]
            if not too_low:
                demand.update(granted)
                break
            # An EV offered less than its minimum current pauses; its share goes to the others.
            for i in too_low:
                demand[i] = 0.0
            ids = [i for i in ids if i not in too_low]
        return demand

    def _tx_starts(self) -> dict[int, datetime | None]:
        return {c.id: c.tx.started_at if c.tx else None for c in self.conns.values()}

    def _advance(self, now: datetime) -> None:
        """Integrate every EV from the last instant up to `now`.

        Segments end at schedule boundaries, at most every MAX_STEP_S (taper) and when an EV
        fills up, so energy is exact at limit changes rather than tick-quantised.
        """
        t = self._t_advanced
        if t is None:
            self._t_advanced = now
            return
        if now <= t:
            return
        marks = (
            self.profiles.boundaries(t, now, self._tx_starts())
            if self.mode != "ignore_profiles"
            else []
        )
        idx = 0
        while t < now:
            while idx < len(marks) and marks[idx] <= t:
                idx += 1
            seg_end = now
            if idx < len(marks):
                seg_end = min(seg_end, marks[idx])
            seg_end = min(seg_end, t + timedelta(seconds=MAX_STEP_S))
            draws = self._draws_at(t)
            for cid, p in draws.items():
                ev = self.conns[cid].ev
                to_full = ev.seconds_to_full(p) if ev is not None else None
                if to_full is not None:
                    seg_end = min(seg_end, t + timedelta(seconds=max(to_full, 0.001)))
            dt = (seg_end - t).total_seconds()
            for cid, p in draws.items():
                c = self.conns[cid]
                self._log_power(c, t, p)
                c.power_w = p
                if p > 0 and c.ev is not None:
                    wh = c.ev.add_energy(p * dt / 3600.0)
                    c.meter_wh += wh
                    if c.tx is not None:
                        c.tx.energy_wh += wh
            t = seg_end
        self._t_advanced = now
        self._refresh_draws(now)

    def _refresh_draws(self, now: datetime) -> None:
        draws = self._draws_at(now)
        for c in self.conns.values():
            p = draws.get(c.id, 0.0)
            c.power_w = p
            self._log_power(c, now, p)

    def _charging_state(self, c: _Conn) -> str:
        if c.tx is None:
            return "EVConnected" if c.ev is not None else "Idle"
        if c.power_w > 0:
            return "Charging"
        if c.ev is None or c.ev.full or c.ev.acceptance_w() <= 0:
            return "SuspendedEV"
        return "SuspendedEVSE"

    @staticmethod
    def _status_for_state(state: str) -> str:
        return state if state in ("Charging", "SuspendedEV", "SuspendedEVSE") else "Preparing"

    def _step(self, now: datetime) -> None:
        self._advance(now)
        for c in self.conns.values():
            if c.tx is None or c.ev is None:
                continue
            if c.ev.full and self.stop_when_full:
                self._stop_tx(c, "Full" if not self.v16 else "Other", now)
                continue
            state = self._charging_state(c)
            if state != c.charging_state:
                c.charging_state = state
                if self.v16:
                    self._set_status(c, self._status_for_state(state), now)
                elif c.tx is not None:
                    event = self._tx_event(
                        c, c.tx, "Updated", "ChargingStateChanged", now, offline=not self.online
                    )
                    tx = c.tx
                    self._enqueue(
                        "TransactionEvent",
                        lambda event=event: event,
                        transactional=True,
                        on_result=lambda req, res, c=c, tx=tx: self._on_tx_event_ack(
                            c, tx, req, res
                        ),
                    )
            if c.next_meter_at is not None and now >= c.next_meter_at - timedelta(
                milliseconds=1
            ):
                self._send_meter_values(c, now, "Sample.Periodic")
                interval = timedelta(seconds=self._meter_interval())
                c.next_meter_at += interval
                if c.next_meter_at <= now:
                    c.next_meter_at = now + interval

    def _next_wake(self, now: datetime) -> float:
        until = now + timedelta(seconds=HORIZON_S)
        wake = until
        for c in self.conns.values():
            if c.next_meter_at is not None:
                wake = min(wake, c.next_meter_at)
            if c.ev is not None and c.power_w > 0:
                to_full = c.ev.seconds_to_full(c.power_w)
                if to_full is not None:
                    wake = min(wake, now + timedelta(seconds=to_full))
        if self.mode != "ignore_profiles":
            marks = self.profiles.boundaries(now, wake, self._tx_starts())
            if marks:
                wake = min(wake, marks[0])
        return max(0.0, (wake - now).total_seconds())

    async def _sleep_or(self, event: asyncio.Event, sim_seconds: float) -> None:
        """Sleep `sim_seconds` of simulated time, or until `event` is set."""
        if event.is_set():
            event.clear()
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(sim_seconds))
        waker = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        event.clear()

    async def _engine(self) -> None:
        while True:
            now = self.clock.now()
            self._step(now)
            await self._sleep_or(self._wake, self._next_wake(now))

    # ------------------------------------------------------------------ status

    def _availability_state(self, evse: int | None) -> str:
        if evse is None:
            return "Available" if self.station_operative else "Unavailable"
        return self._status_v201(self.conns[evse])

    def _status_v201(self, c: _Conn) -> str:
        if not (c.operative and self.station_operative):
            return "Unavailable"
        return "Occupied" if (c.ev is not None or c.tx is not None) else "Available"

    def _status_payload(self, c: _Conn | None, now: datetime) -> Payload:
        if self.v16:
            status = self.station_status if c is None else c.status
            return {
                "connectorId": 0 if c is None else c.id,
                "errorCode": "NoError",
                "status": status,
                "timestamp": smart.iso(now),
            }
        assert c is not None
        return {
            "timestamp": smart.iso(now),
            "connectorStatus": self._status_v201(c),
            "evseId": c.id,
            "connectorId": 1,
        }

    def _set_status(self, c: _Conn, status: str, now: datetime) -> None:
        c.status = status
        wire = c.status if self.v16 else self._status_v201(c)
        if wire == c.reported:
            return
        c.reported = wire
        if self.online:
            self._queue_status(c, now)

    def _queue_status(self, c: _Conn | None, now: datetime) -> None:
        # The payload is taken now: a status queued behind a slow call must still say what
        # the connector was at `now`, not what it is when the message finally goes out.
        payload = self._status_payload(c, now)
        self._enqueue(
            "StatusNotification", lambda: payload, transactional=False, on_result=None
        )

    def _set_station_status(self, now: datetime) -> None:
        self.station_status = "Available" if self.station_operative else "Unavailable"
        for c in self.conns.values():
            if c.tx is None:
                self._set_status(c, self._idle_status(c), now)
        if self.v16 and self.online:
            self._queue_status(None, now)

    def _send_all_statuses(self) -> None:
        now = self.clock.now()
        targets: list[_Conn | None] = [None] if self.v16 else []
        targets.extend(self.conns.values())
        for c in targets:
            if c is not None:
                c.reported = c.status if self.v16 else self._status_v201(c)
            self._queue_status(c, now)

    # ------------------------------------------------------------------ outgoing calls

    def _enqueue(
        self,
        action: str,
        build: Callable[[], Payload],
        *,
        transactional: bool,
        on_result: Callable[[Payload, Payload], None] | None,
    ) -> asyncio.Future[Payload]:
        fut: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        item = _Outgoing(action, build, transactional, on_result, fut)
        if not transactional and not self.online:
            fut.set_exception(Offline(f"{action}: offline"))
            fut.exception()  # retrieved: nobody has to await a dropped notification
            return fut
        self._outbox.append(item)
        self._outbox_ready.set()
        self._notify()
        return fut

    async def call(self, action: str, payload: Payload, *, transactional: bool = False) -> Payload:
        """Send a CALL through the queue and return the server's CALLRESULT payload."""
        return await self._enqueue(
            action, lambda: payload, transactional=transactional, on_result=None
        )

    async def _sender(self) -> None:
        while True:
            await self._accepted.wait()
            if not self._outbox:
                self._outbox_ready.clear()
                self._notify()
                await self._outbox_ready.wait()
                continue
            ws = self._ws
            item = self._outbox[0]
            if ws is None:
                await asyncio.sleep(0.01)
                continue
            if item.payload is None:
                item.payload = item.build()
            self._inflight = item
            try:
                result = await self._rpc(ws, item.action, item.payload, self.call_timeout_s)
            except (ConnectionClosed, ConnectionError, OSError):
                self._inflight = None
                if not item.transactional:
                    self._drop_head(item, Offline(f"{item.action}: connection lost"))
                if self._stopping:
                    # Stopped while sending: what is queued stays queued, as in a real charger.
                    # Looping would spin without yielding (a send on a closed connection
                    # fails without suspending) and starve the event loop.
                    return
                # Wait until the connection loop notices; the message is resent after reconnect.
                await self.wait_for(lambda ws=ws: self._ws is not ws or self._stopping)
                continue
            except (TimeoutError, CallFailed) as exc:
                self._inflight = None
                item.attempts += 1
                attempts = self._message_attempts()
                if item.transactional and item.attempts < attempts:
                    await self.clock.sleep(self._retry_interval() * item.attempts)
                    continue
                self._drop_head(item, exc)
                continue
            self._inflight = None
            if self._outbox and self._outbox[0] is item:
                self._outbox.popleft()
            if item.on_result is not None:
                item.on_result(item.payload, result)
            if not item.future.done():
                item.future.set_result(result)
            self._notify()

    def _drop_head(self, item: _Outgoing, exc: BaseException) -> None:
        if self._outbox and self._outbox[0] is item:
            self._outbox.popleft()
        if not item.future.done():
            item.future.set_exception(exc)
            item.future.exception()
        self._notify()

    def _message_attempts(self) -> int:
        if self.v16:
            return max(1, self.config.get_int("TransactionMessageAttempts"))
        return max(
            1,
            int(
                self.device_model.value(
                    "OCPPCommCtrlr", "MessageAttempts", instance="TransactionEvent"
                )
            ),
        )

    def _retry_interval(self) -> float:
        if self.v16:
            return float(self.config.get_int("TransactionMessageRetryInterval"))
        return float(
            self.device_model.value(
                "OCPPCommCtrlr", "MessageAttemptInterval", instance="TransactionEvent"
            )
        )

    async def _rpc(
        self, ws: ClientConnection, action: str, payload: Payload, timeout: float
    ) -> Payload:
        if self.validate_outgoing:
            _validate_payload(Call("check", action, copy.deepcopy(payload)), self.version)
        uid = str(uuid.uuid4())
        fut: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        self._pending[uid] = (action, fut)
        try:
            await ws.send(json.dumps([2, uid, action, payload], separators=(",", ":")))
            self.messages_sent += 1
            self._last_sent_at = self.clock.now()
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._pending.pop(uid, None)

    # ------------------------------------------------------------------ connection

    def _headers(self) -> dict[str, str]:
        if self.password is None:
            return {}
        token = base64.b64encode(f"{self.cp_id}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _connection_loop(self) -> None:
        delay = self.reconnect_min_s
        while not self._stopping:
            if self._reboot_pending:
                self._reboot_pending = False
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
                    user_agent_header=f"{self.vendor}-{self.model}/{self.firmware}",
                ) as ws:
                    if ws.subprotocol != self.protocol:
                        self.last_error = f"server chose subprotocol {ws.subprotocol!r}"
                        await ws.close(1002, "subprotocol")
                        raise InvalidHandshake(self.last_error)
                    self._ws = ws
                    self.connect_count += 1
                    self.connected.set()
                    async with asyncio.TaskGroup() as tg:
                        reader = tg.create_task(self._reader(ws))
                        await self._register(ws)
                        registered = True
                        delay = self.reconnect_min_s
                        await reader
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            except ExceptionGroup as group:
                # The TaskGroup wraps what its tasks raised; only connection loss ends here.
                lost, rest = group.split(
                    (OSError, ConnectionClosed, InvalidHandshake, TimeoutError))
                if rest is not None:
                    raise rest from None
                assert lost is not None
                self.last_error = f"{lost.exceptions[0]!r}"
            finally:
                self._ws = None
                self._fail_pending()
                self.connected.clear()
                self._notify()
            if self._stopping:
                break
            if self._reboot_pending:
                continue
            # Exponential backoff with jitter (2.0.1 RetryBackOff*), in wall seconds: it is
            # about the network, and a fast clock must not turn into a reconnect storm.
            wait = delay * (0.5 + self._rng.random()) if not registered else self.reconnect_min_s
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.reconnect_max_s)

    async def _register(self, ws: ClientConnection) -> None:
        """Boot (unless this is a reconnect of a registered charger) and announce status."""
        if not self._boot_done or self.boot_on_reconnect:
            while True:
                try:
                    res = await self._rpc(
                        ws, "BootNotification", self._boot_payload(), self.call_timeout_s
                    )
                except (TimeoutError, CallFailed) as exc:
                    self.last_error = f"BootNotification: {exc!r}"
                    await self.clock.sleep(30.0)
                    continue
                self.boot_status = res["status"]
                interval = int(res.get("interval") or 0)
                if res["status"] == "Accepted":
                    if interval > 0:
                        self._set_heartbeat_interval(interval)
                    break
                # Pending/Rejected: retry after the interval given (or a default).
                self._notify()
                await self.clock.sleep(interval if interval > 0 else 60.0)
            self._boot_done = True
            self._boot_reason = "PowerUp"
        self.booted.set()
        self._accepted.set()
        self._send_all_statuses()
        self._hb_wake.set()
        self._notify()

    def _boot_payload(self) -> Payload:
        if self.v16:
            return {
                "chargePointVendor": self.vendor,
                "chargePointModel": self.model,
                "chargePointSerialNumber": self.serial[:25],
                "chargeBoxSerialNumber": self.serial[:25],
                "firmwareVersion": self.firmware,
                "meterType": "SimMeter",
            }
        return {
            "reason": self._boot_reason,
            "chargingStation": {
                "model": self.model,
                "vendorName": self.vendor,
                "serialNumber": self.serial[:25],
                "firmwareVersion": self.firmware,
            },
        }

    def _heartbeat_interval(self) -> int:
        if self.v16:
            return self.config.get_int("HeartbeatInterval")
        return int(self.device_model.value("OCPPCommCtrlr", "HeartbeatInterval"))

    def _set_heartbeat_interval(self, seconds: int) -> None:
        self.config.keys["HeartbeatInterval"].value = str(seconds)
        self.device_model.get("OCPPCommCtrlr", "HeartbeatInterval").value = str(seconds)
        self._hb_wake.set()

    async def _heartbeat(self) -> None:
        while True:
            interval = max(1, self._heartbeat_interval())
            await self._sleep_or(self._hb_wake, interval)
            if not self.online:
                continue
            last = self._last_sent_at
            if last is not None and (self.clock.now() - last).total_seconds() < interval * 0.9:
                continue  # other traffic within the interval counts as a heartbeat (1.6 4.6)
            with contextlib.suppress(CallFailed, TimeoutError, ConnectionError):
                await self.call("Heartbeat", {})

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            await self._read_frames(ws)
        finally:
            # Whatever waits for an answer on this connection (boot included) fails now
            # rather than at its timeout; the sender keeps transaction messages for later.
            self._fail_pending()

    def _fail_pending(self) -> None:
        """The connection is gone: not accepted any more, and every pending call fails."""
        self._accepted.clear()
        for _action, fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
            if not fut.cancelled():
                fut.exception()  # retrieved: the caller may already be gone (stop)

    async def _read_frames(self, ws: ClientConnection) -> None:
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
                pending = self._pending.get(str(msg[1]))
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
        except _Reply as reply:
            frame = [4, uid, _error_code(self.version, reply.code), reply.description, {}]
        except Exception as exc:  # edge of the connection: a handler bug becomes InternalError
            log.exception("charger %s: handler for %s failed", self.cp_id, action)
            frame = [4, uid, "InternalError", f"{type(exc).__name__}", {}]
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame, separators=(",", ":")))
        if followup is not None:
            self._spawn(followup(), busy=True)

    # ------------------------------------------------------------------ incoming calls

    def handle_call(
        self, action: str, payload: Any
    ) -> tuple[Payload, Callable[[], Awaitable[None]] | None]:
        """Answer a central-system CALL: (CALLRESULT payload, follow-up to run after it).

        Raises `_Reply` for a CALLERROR. Pure with respect to the network, so unit tests call
        it directly.
        """
        self.incoming.append((action, payload))
        if not isinstance(payload, dict):
            raise _Reply("FormatViolation", "payload is not an object")
        if action not in _known_actions(self.version):
            raise _Reply("NotImplemented", f"unknown action {action}")
        handler = getattr(self, f"_on_{'v16' if self.v16 else 'v201'}_{action}", None)
        if handler is None:
            if action == "DataTransfer":
                return {"status": "UnknownVendorId"}, None
            raise _Reply("NotSupported", f"{action} is not supported")
        if not self.relax_validation:
            try:
                _validate_payload(Call("check", action, copy.deepcopy(payload)), self.version)
            except OCPPError as exc:
                raise _Reply(exc.code, str(exc.description)) from None
        self._advance(self.clock.now())
        result = handler(payload)
        if isinstance(result, tuple):
            return result
        return result, None

    # --- shared pieces

    def _profile_event(self, kind: str, p: smart.Profile, now: datetime, reason: str = "") -> None:
        purpose_names = smart.PURPOSE_TO_V16 if self.v16 else smart.PURPOSE_TO_V201
        event = ProfileEvent(
            kind=kind,
            cp_id=self.cp_id,
            connector=p.connector,
            profile_id=p.id,
            purpose=purpose_names.get(p.purpose, p.purpose),
            stack_level=p.stack_level,
            at=now,
            reason=reason or None,
        )
        self.profile_events.put_nowait(event)
        if self.on_profile is not None:
            self.on_profile(event)

    def _smart_enabled(self) -> bool:
        if self.v16:
            return True
        return self.device_model.value("SmartChargingCtrlr", "Enabled") == "true"

    def _set_profile(self, profile: smart.Profile, now: datetime) -> str | None:
        """Validate and install; return None if accepted or the reasonCode of the refusal."""
        try:
            if self.mode == "reject_profiles" or not self._smart_enabled():
                raise smart.ProfileError("NotSupported", "profiles refused by this charger")
            smart.validate_profile(
                profile,
                version=self.version,
                max_stack_level=self.max_stack_level,
                max_periods=self.max_periods,
                allowed_units=self.accepted_units,
            )
            if profile.connector != 0 and profile.connector not in self.conns:
                raise smart.ProfileError("UnknownEVSE", f"no connector {profile.connector}")
            if profile.purpose == smart.TX:
                c = self.conns[profile.connector]
                if c.tx is None:
                    raise smart.ProfileError("TxNotFound", "no transaction on connector")
                current = c.tx.transaction_id
                if profile.transaction_id is None and not self.v16:
                    raise smart.ProfileError("TxNotFound", "TxProfile without transactionId")
                if profile.transaction_id is not None and (
                    current is None or str(current) != profile.transaction_id
                ):
                    raise smart.ProfileError("TxNotFound", "transactionId does not match")
            if (
                not self.v16
                and profile.purpose == smart.TXDEFAULT
                and any(
                    p.purpose == smart.TXDEFAULT
                    and p.id != profile.id
                    and p.stack_level == profile.stack_level
                    and (p.connector == 0) != (profile.connector == 0)
                    for p in self.profiles.profiles.values()
                )
            ):
                # K01.FR.52/53: the same stack level on EVSE 0 and on one EVSE is ambiguous.
                raise smart.ProfileError("DuplicateProfile", "TxDefaultProfile on 0 and EVSE")
            self._advance(now)  # the old limits hold up to this instant
            replaced = self.profiles.install(profile, version=self.version)
            if len(self.profiles) > self.max_profiles:
                del self.profiles.profiles[profile.id]
                for old in replaced:
                    self.profiles.profiles[old.id] = old
                raise smart.ProfileError("InvalidProfile", "too many profiles installed")
        except smart.ProfileError as err:
            self._profile_event("rejected", profile, now, err.reason)
            return err.reason
        for old in replaced:
            if old.id != profile.id:
                self._profile_event("cleared", old, now, "replaced")
        self._profile_event("installed", profile, now)
        self._refresh_draws(now)
        self._wake.set()
        return None

    def _install_remote_profile(self, c: _Conn, data: Payload, now: datetime) -> None:
        try:
            if self.v16:
                profile = smart.profile_from_v16(data, c.id, now)
            else:
                bound = dict(data, transactionId=str(c.tx.transaction_id) if c.tx else None)
                profile = smart.profile_from_v201(bound, c.id, now)
        except (smart.ProfileError, KeyError, ValueError):
            return
        self._set_profile(profile, now)

    def _clear_profiles(
        self,
        *,
        profile_id: int | None,
        connector: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> bool:
        now = self.clock.now()
        self._advance(now)
        removed = self.profiles.clear(
            profile_id=profile_id, connector=connector, purpose=purpose, stack_level=stack_level
        )
        for p in removed:
            self._profile_event("cleared", p, now)
        if removed:
            self._refresh_draws(now)
            self._wake.set()
        return bool(removed)

    def _composite(
        self, connector: int, duration: int, unit: str | None
    ) -> tuple[datetime, str, list[smart.Period]]:
        now = self.clock.now()
        start = now.replace(microsecond=0)
        c = self.conns.get(connector)
        tx_id, tx_start = self._tx_key(c) if c is not None else (None, None)
        rel_start = tx_start or start
        if unit is None:
            lim = None
            if c is not None:
                found = self.profiles.connector_limits(
                    connector, start, tx_id=tx_id, tx_start=rel_start
                )
                lim = found[-1] if found else None
            lim = lim or self.profiles.station_limit(start)
            unit = lim.unit if lim is not None else "A"
        phases = (
            min(c.phases, c.ev.phases) if c is not None and c.ev is not None
            else (c.phases if c is not None else max(x.phases for x in self.conns.values()))
        )

        def evaluate(at: datetime) -> tuple[float, int | None]:
            if c is None:
                watts = sum(
                    x.max_current_a * self.voltage_v * x.phases for x in self.conns.values()
                )
            else:
                watts = c.max_current_a * self.voltage_v * phases
                for lim in self.profiles.connector_limits(
                    connector, at, tx_id=tx_id, tx_start=rel_start
                ):
                    watts = min(watts, smart.to_watts(lim, phases, self.voltage_v))
            station = self.profiles.station_limit(at)
            if station is not None:
                watts = min(watts, smart.to_watts(station, phases, self.voltage_v))
            value = smart.from_watts(watts, unit, phases, self.voltage_v)
            return round(value, 1), (phases if unit == "A" else None)

        tx_starts = self._tx_starts()
        if c is not None and tx_starts.get(c.id) is None:
            tx_starts[c.id] = rel_start
        marks = self.profiles.boundaries(start, start + timedelta(seconds=duration), tx_starts)
        return start, unit, smart.composite_periods(evaluate, start, duration, marks)

    # --- OCPP 1.6 handlers (central system -> charge point)

    def _on_v16_RemoteStartTransaction(self, p: Payload) -> Payload | tuple:  # noqa: N802
        profile = p.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}
        c = self._pick_connector(p.get("connectorId"))
        if c is None:
            return {"status": "Rejected"}
        remote = _Remote(p["idTag"], profile, None)
        return {"status": "Accepted"}, functools.partial(self._remote_start, c, remote)

    def _pick_connector(self, wanted: int | None) -> _Conn | None:
        if not self.station_operative:
            return None
        if wanted is not None:
            c = self.conns.get(wanted)
            ok = c is not None and c.operative and c.tx is None and c.remote is None
            return c if ok else None
        free = [c for c in self.conns.values() if c.operative and c.tx is None]
        plugged = [c for c in free if c.ev is not None]
        return (plugged or [c for c in free if c.remote is None] or [None])[0]

    async def _remote_start(self, c: _Conn, remote: _Remote) -> None:
        if c.ev is not None and c.tx is None:
            self._start_tx(c, remote.id_tag, remote)
        else:
            # No car yet: the transaction starts when one is plugged in (no Authorize needed,
            # AuthorizeRemoteTxRequests=false).
            c.remote = remote
            self._set_status(c, "Preparing", self.clock.now())

    def _find_tx(self, tx_id: Any) -> _Conn | None:
        for c in self.conns.values():
            if c.tx is not None and c.tx.transaction_id is not None:
                if str(c.tx.transaction_id) == str(tx_id):
                    return c
        return None

    def _on_v16_RemoteStopTransaction(self, p: Payload) -> Payload | tuple:  # noqa: N802
        c = self._find_tx(p["transactionId"])
        if c is None:
            return {"status": "Rejected"}

        async def stop() -> None:
            if c.tx is not None:
                self._stop_tx(c, "Remote", self.clock.now())

        return {"status": "Accepted"}, stop

    def _on_v16_Reset(self, p: Payload) -> tuple:  # noqa: N802
        kind = "HardReset" if p["type"] == "Hard" else "SoftReset"
        return {"status": "Accepted"}, functools.partial(self._reboot, kind)

    async def _reboot(self, reason: str) -> None:
        """Stop transactions, drop the connection and boot again (profiles persist)."""
        self._reset_scheduled = None
        now = self.clock.now()
        for c in self.conns.values():
            if c.tx is not None:
                self._stop_tx(c, reason, now)
        self._boot_done = False
        self._boot_reason = "RemoteReset"
        self.booted.clear()
        self._reboot_pending = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close(1012, "reboot")

    def _on_v16_ChangeConfiguration(self, p: Payload) -> Payload:  # noqa: N802
        status = self.config.change(p["key"], p["value"])
        if status == "Accepted":
            if p["key"] == "HeartbeatInterval":
                self._hb_wake.set()
            if p["key"] == "MeterValueSampleInterval":
                self._reschedule_meters()
        return {"status": status}

    def _reschedule_meters(self) -> None:
        now = self.clock.now()
        for c in self.conns.values():
            if c.tx is not None:
                c.next_meter_at = now + timedelta(seconds=self._meter_interval())
        self._wake.set()

    def _on_v16_GetConfiguration(self, p: Payload) -> Payload:  # noqa: N802
        return self.config.report(p.get("key"))

    def _on_v16_TriggerMessage(self, p: Payload) -> Payload | tuple:  # noqa: N802
        what = p["requestedMessage"]
        cid = p.get("connectorId")
        if cid is not None and cid != 0 and cid not in self.conns:
            return {"status": "Rejected"}
        targets = [self.conns[cid]] if cid else list(self.conns.values())

        async def send() -> None:
            now = self.clock.now()
            if what == "BootNotification":
                await self._soft_call("BootNotification", self._boot_payload())
            elif what == "Heartbeat":
                await self._soft_call("Heartbeat", {})
            elif what == "StatusNotification":
                if not cid:
                    self._queue_status(None, now)
                for c in targets:
                    self._queue_status(c, now)
            elif what == "MeterValues":
                for c in targets:
                    if c.tx is not None:
                        self._send_meter_values(c, now, "Trigger")
                    else:
                        sample = self._sample_v16(c, now, "Trigger", end=True)
                        self._enqueue(
                            "MeterValues",
                            lambda c=c, s=sample: {"connectorId": c.id, "meterValue": [s]},
                            transactional=False, on_result=None,
                        )
            elif what == "FirmwareStatusNotification":
                await self._soft_call("FirmwareStatusNotification", {"status": "Idle"})
            elif what == "DiagnosticsStatusNotification":
                await self._soft_call("DiagnosticsStatusNotification", {"status": "Idle"})

        return {"status": "Accepted"}, send

    async def _soft_call(self, action: str, payload: Payload) -> None:
        with contextlib.suppress(CallFailed, TimeoutError, ConnectionError):
            await self.call(action, payload)

    def _on_v16_UnlockConnector(self, p: Payload) -> Payload:  # noqa: N802
        c = self.conns.get(p["connectorId"])
        if c is None:
            return {"status": "NotSupported"}
        if c.tx is not None:
            self._stop_tx(c, "UnlockCommand", self.clock.now())
        return {"status": "Unlocked"}

    def _on_v16_ChangeAvailability(self, p: Payload) -> Payload:  # noqa: N802
        operative = p["type"] == "Operative"
        cid = p["connectorId"]
        now = self.clock.now()
        if cid == 0:
            if any(c.tx for c in self.conns.values()):
                self.scheduled_station_operative = operative
                return {"status": "Scheduled"}
            self.station_operative = operative
            self._set_station_status(now)
            return {"status": "Accepted"}
        c = self.conns.get(cid)
        if c is None:
            return {"status": "Rejected"}
        if c.tx is not None:
            c.scheduled_operative = operative
            return {"status": "Scheduled"}
        c.operative = operative
        self._set_status(c, self._idle_status(c), now)
        return {"status": "Accepted"}

    def _on_v16_SetChargingProfile(self, p: Payload) -> Payload:  # noqa: N802
        now = self.clock.now()
        try:
            profile = smart.profile_from_v16(p["csChargingProfiles"], p["connectorId"], now)
        except smart.ProfileError:
            return {"status": "Rejected"}
        reason = self._set_profile(profile, now)
        if reason == "NotSupported" and self.mode != "reject_profiles":
            return {"status": "NotSupported"}
        return {"status": "Accepted" if reason is None else "Rejected"}

    def _on_v16_ClearChargingProfile(self, p: Payload) -> Payload:  # noqa: N802
        purpose = p.get("chargingProfilePurpose")
        cleared = self._clear_profiles(
            profile_id=p.get("id"),
            connector=p.get("connectorId"),
            purpose=smart.PURPOSE_FROM_OCPP[purpose] if purpose else None,
            stack_level=p.get("stackLevel"),
        )
        return {"status": "Accepted" if cleared else "Unknown"}

    def _on_v16_GetCompositeSchedule(self, p: Payload) -> Payload:  # noqa: N802
        cid = p["connectorId"]
        if cid != 0 and cid not in self.conns:
            return {"status": "Rejected"}
        start, unit, periods = self._composite(cid, int(p["duration"]), p.get("chargingRateUnit"))
        return {
            "status": "Accepted",
            "connectorId": cid,
            "scheduleStart": smart.iso(start),
            "chargingSchedule": {
                "duration": int(p["duration"]),
                "startSchedule": smart.iso(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [_period_json(x) for x in periods],
            },
        }

    # --- OCPP 2.0.1 handlers

    def _on_v201_RequestStartTransaction(self, p: Payload) -> Payload | tuple:  # noqa: N802
        profile = p.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidProfile"}}
        c = self._pick_connector(p.get("evseId"))
        if c is None:
            return {"status": "Rejected"}
        remote = _Remote(p["idToken"]["idToken"], profile, int(p["remoteStartId"]))
        return {"status": "Accepted"}, functools.partial(self._remote_start, c, remote)

    def _on_v201_RequestStopTransaction(self, p: Payload) -> Payload | tuple:  # noqa: N802
        c = self._find_tx(p["transactionId"])
        if c is None:
            return {"status": "Rejected"}

        async def stop() -> None:
            if c.tx is not None:
                self._stop_tx(c, "Remote", self.clock.now())

        return {"status": "Accepted"}, stop

    def _on_v201_Reset(self, p: Payload) -> Payload | tuple:  # noqa: N802
        if p.get("evseId"):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}
        busy = any(c.tx for c in self.conns.values())
        if p["type"] == "OnIdle" and busy:
            self._reset_scheduled = "HardReset"
            return {"status": "Scheduled"}
        return {"status": "Accepted"}, functools.partial(self._reboot, "HardReset")

    def _on_v201_GetVariables(self, p: Payload) -> Payload:  # noqa: N802
        items = p["getVariableData"]
        limit = int(self.device_model.value("DeviceDataCtrlr", "ItemsPerMessage",
                                            instance="GetVariables"))
        if len(items) > limit:
            raise _Reply("OccurrenceConstraintViolation", f"more than {limit} items")
        results = []
        for item in items:
            attr = item.get("attributeType", "Actual")
            status, var = self.device_model.find(item["component"], item["variable"])
            result: Payload = {
                "attributeStatus": status,
                "attributeType": attr,
                "component": item["component"],
                "variable": item["variable"],
            }
            if var is not None:
                if attr != "Actual":
                    result["attributeStatus"] = "NotSupportedAttributeType"
                elif var.mutability == "WriteOnly":
                    result["attributeStatus"] = "Rejected"
                else:
                    result["attributeValue"] = var.actual()[:2500]
            results.append(result)
        return {"getVariableResult": results}

    def _on_v201_SetVariables(self, p: Payload) -> Payload:  # noqa: N802
        items = p["setVariableData"]
        limit = int(self.device_model.value("DeviceDataCtrlr", "ItemsPerMessage",
                                            instance="SetVariables"))
        if len(items) > limit:
            raise _Reply("OccurrenceConstraintViolation", f"more than {limit} items")
        results = []
        for item in items:
            attr = item.get("attributeType", "Actual")
            status, var = self.device_model.find(item["component"], item["variable"])
            if var is not None:
                value = str(item["attributeValue"])
                if attr != "Actual":
                    status = "NotSupportedAttributeType"
                elif var.mutability == "ReadOnly" or not var.valid(value):
                    status = "Rejected"
                else:
                    var.value = value.lower() if var.data_type == "boolean" else value
                    self._on_variable_changed(var.component, var.name)
            results.append({
                "attributeStatus": status,
                "attributeType": attr,
                "component": item["component"],
                "variable": item["variable"],
            })
        return {"setVariableResult": results}

    def _on_variable_changed(self, component: str, name: str) -> None:
        if (component, name) == ("OCPPCommCtrlr", "HeartbeatInterval"):
            self._hb_wake.set()
        elif (component, name) == ("SampledDataCtrlr", "TxUpdatedInterval"):
            self._reschedule_meters()

    def _on_v201_GetBaseReport(self, p: Payload) -> Payload | tuple:  # noqa: N802
        base = p["reportBase"]
        if base == "ConfigurationInventory":
            chosen = [v for v in self.device_model if v.mutability != "ReadOnly"]
        elif base == "SummaryInventory":
            chosen = [v for v in self.device_model if v.name in ("AvailabilityState", "Available")]
        else:
            chosen = list(self.device_model)
        if not chosen:
            return {"status": "EmptyResultSet"}
        return {"status": "Accepted"}, functools.partial(self._notify_report, p["requestId"],
                                                          chosen)

    def _on_v201_GetReport(self, p: Payload) -> Payload | tuple:  # noqa: N802
        wanted = p.get("componentVariable")
        chosen = list(self.device_model)
        if wanted:
            def match(v: Any) -> bool:
                for cv in wanted:
                    comp, var = cv["component"], cv.get("variable")
                    if comp["name"] != v.component:
                        continue
                    if "evse" in comp and comp["evse"].get("id") != v.evse:
                        continue
                    if var is None or var["name"] == v.name:
                        return True
                return False

            chosen = [v for v in chosen if match(v)]
        if p.get("componentCriteria"):
            # Every component here is Active/Available/Enabled; only "Problem" selects nothing.
            if p["componentCriteria"] == ["Problem"]:
                chosen = []
        if not chosen:
            return {"status": "EmptyResultSet"}
        return {"status": "Accepted"}, functools.partial(self._notify_report, p["requestId"],
                                                          chosen)

    async def _notify_report(self, request_id: int, chosen: list[Any]) -> None:
        per_msg = int(self.device_model.value("DeviceDataCtrlr", "ItemsPerMessage",
                                              instance="GetReport"))
        chunks = [chosen[i:i + per_msg] for i in range(0, len(chosen), per_msg)]
        for seq, chunk in enumerate(chunks):
            payload = {
                "requestId": request_id,
                "generatedAt": smart.iso(self.clock.now()),
                "reportData": [v.report_data() for v in chunk],
                "tbc": seq < len(chunks) - 1,
                "seqNo": seq,
            }
            await self._soft_call("NotifyReport", payload)

    def _on_v201_TriggerMessage(self, p: Payload) -> Payload | tuple:  # noqa: N802
        what = p["requestedMessage"]
        evse = (p.get("evse") or {}).get("id")
        if evse is not None and evse != 0 and evse not in self.conns:
            return {"status": "Rejected"}
        targets = [self.conns[evse]] if evse else list(self.conns.values())
        if what == "BootNotification" and self.boot_status == "Accepted":
            # F06.FR.17: no BootNotification trigger once accepted.
            return {"status": "Rejected"}
        if what == "TransactionEvent" and not any(c.tx for c in targets):
            return {"status": "Rejected"}
        supported = {
            "BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
            "TransactionEvent", "FirmwareStatusNotification", "LogStatusNotification",
        }
        if what not in supported:
            return {"status": "NotImplemented"}

        async def send() -> None:
            now = self.clock.now()
            if what == "BootNotification":
                self._boot_reason = "Triggered"
                await self._soft_call("BootNotification", self._boot_payload())
            elif what == "Heartbeat":
                await self._soft_call("Heartbeat", {})
            elif what == "StatusNotification":
                for c in targets:
                    self._queue_status(c, now)
            elif what == "MeterValues":
                for c in targets:
                    mv = self._meter_value_v201(c, now, "Trigger")
                    self._enqueue("MeterValues",
                                  lambda c=c, mv=mv: {"evseId": c.id, "meterValue": [mv]},
                                  transactional=False, on_result=None)
            elif what == "TransactionEvent":
                for c in targets:
                    if c.tx is not None:
                        self._send_meter_values(c, now, "Trigger")
            elif what == "FirmwareStatusNotification":
                await self._soft_call("FirmwareStatusNotification", {"status": "Idle"})
            elif what == "LogStatusNotification":
                await self._soft_call("LogStatusNotification", {"status": "Idle"})

        return {"status": "Accepted"}, send

    def _on_v201_ChangeAvailability(self, p: Payload) -> Payload:  # noqa: N802
        operative = p["operationalStatus"] == "Operative"
        evse = (p.get("evse") or {}).get("id")
        now = self.clock.now()
        if not evse:
            if any(c.tx for c in self.conns.values()):
                self.scheduled_station_operative = operative
                return {"status": "Scheduled"}
            self.station_operative = operative
            self._set_station_status(now)
            return {"status": "Accepted"}
        c = self.conns.get(evse)
        if c is None:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        if c.tx is not None:
            c.scheduled_operative = operative
            return {"status": "Scheduled"}
        c.operative = operative
        self._set_status(c, self._idle_status(c), now)
        return {"status": "Accepted"}

    def _on_v201_UnlockConnector(self, p: Payload) -> Payload:  # noqa: N802
        c = self.conns.get(p["evseId"])
        if c is None or p["connectorId"] != 1:
            return {"status": "UnknownConnector"}
        if c.tx is not None:
            return {"status": "OngoingAuthorizedTransaction"}
        return {"status": "Unlocked"}

    def _on_v201_SetChargingProfile(self, p: Payload) -> Payload:  # noqa: N802
        now = self.clock.now()
        try:
            profile = smart.profile_from_v201(p["chargingProfile"], p["evseId"], now)
        except smart.ProfileError as err:
            return {"status": "Rejected", "statusInfo": {"reasonCode": err.reason}}
        reason = self._set_profile(profile, now)
        if reason is None:
            return {"status": "Accepted"}
        return {"status": "Rejected", "statusInfo": {"reasonCode": reason}}

    def _on_v201_ClearChargingProfile(self, p: Payload) -> Payload:  # noqa: N802
        crit = p.get("chargingProfileCriteria") or {}
        purpose = crit.get("chargingProfilePurpose")
        cleared = self._clear_profiles(
            profile_id=p.get("chargingProfileId"),
            connector=crit.get("evseId"),
            purpose=smart.PURPOSE_FROM_OCPP[purpose] if purpose else None,
            stack_level=crit.get("stackLevel"),
        )
        return {"status": "Accepted" if cleared else "Unknown"}

    def _on_v201_GetCompositeSchedule(self, p: Payload) -> Payload:  # noqa: N802
        evse = p["evseId"]
        if evse != 0 and evse not in self.conns:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEVSE"}}
        start, unit, periods = self._composite(evse, int(p["duration"]), p.get("chargingRateUnit"))
        return {
            "status": "Accepted",
            "schedule": {
                "evseId": evse,
                "duration": int(p["duration"]),
                "scheduleStart": smart.iso(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [_period_json(x) for x in periods],
            },
        }


def _period_json(period: smart.Period) -> Payload:
    out: Payload = {"startPeriod": period.start_s, "limit": period.limit}
    if period.number_phases is not None:
        out["numberPhases"] = period.number_phases
    return out


def validate_call(action: str, payload: Payload, version: str) -> None:
    """Validate a CALL payload against the `ocpp` JSON schema (raises an OCPPError)."""
    _validate_payload(Call("check", action, copy.deepcopy(payload)), version)


def validate_result(action: str, payload: Payload, version: str) -> None:
    """Validate a CALLRESULT payload against the `ocpp` JSON schema (raises an OCPPError)."""
    _validate_payload(CallResult("check", copy.deepcopy(payload), action), version)
