"""A simulated OCPP 1.6J / 2.0.1 charge point with EVs behind its connectors.

One `SimCharger` is one charging station: a websocket client that boots, reports status,
authorizes and runs transactions, meters them and answers the central system's calls, plus a
small physics engine that integrates what each EV draws under the charging profiles the charger
holds (see `simulators.smart`). It is written to be a correct client that a conformance reviewer
would recognise, and cheap enough to run a hundred of in one event loop:

- outgoing CALLs go through one FIFO queue, one in flight at a time, each with a timeout;
  transaction messages survive disconnects and are resent in order after reconnecting, others
  fail fast while offline (`simulators.link`, framing in `simulators.rpc`);
- the engine task wakes only when something can change (a meter interval, a schedule boundary,
  an EV reaching full, a new profile), never on a fixed tick (`simulators.physics`);
- tests await events (`booted`, `wait_for_tx_started`, `wait_idle`, `profile_events`) instead
  of sleeping.

`SimCharger` is the public face; it wires and delegates to the parts: the station and its
transactions (`simulators.station`), smart charging (`simulators.charging`), the physics, the
link, and one protocol side per version that only translates (`simulators.v16`,
`simulators.v201`).

In OCPP 2.0.1 the "connector" numbers of this API are EVSE ids; each EVSE has one connector (1).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl as ssl_module
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from simulators import smart
from simulators.charging import SmartCharging
from simulators.clock import Clock, SimClock
from simulators.device_model import ConfigKey, DeviceModel, V16Config, build_device_model
from simulators.ev import EV
from simulators.link import Link
from simulators.physics import HORIZON_S, MAX_STEP_S, Physics
from simulators.protocol import Answer, ProtocolSide
from simulators.records import Conn, Payload, ProfileEvent, TxRecord
from simulators.rpc import CallFailed, Offline, Rpc, validate_call, validate_result
from simulators.rpc import Reply as _Reply
from simulators.rpc import error_code as _error_code
from simulators.runtime import Runtime
from simulators.station import Station
from simulators.v16 import V16
from simulators.v201 import V201

__all__ = [
    "HORIZON_S", "MAX_STEP_S", "MODES", "PROTOCOLS", "CallFailed", "Offline", "ProfileEvent",
    "SimCharger", "TxRecord", "_Reply", "_error_code", "validate_call", "validate_result",
]

PROTOCOLS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
# no_smart_charging: SetChargingProfile and its kin answer CALLERROR NotImplemented (old
# firmware, no smart charging profile), and the car draws what it can.
MODES = ("normal", "reject_profiles", "ignore_profiles", "no_smart_charging")


def _via(part: str, name: str) -> Any:
    """An attribute (or method) of the charger that lives on one of its parts."""
    return property(
        lambda self: getattr(getattr(self, part), name),
        lambda self, value: setattr(getattr(self, part), name, value),
    )


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
        delivers_kw: float | None = None,
        reports_smart_charging: bool = True,
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
        # `delivers_kw`: the hardware gives at most this (a worn contactor, a 16 A cable),
        # whatever its rating (`max_power_kw`, which it reports) says.
        real = [p if delivers_kw is None else min(p, delivers_kw) for p in powers]
        self.conns: dict[int, Conn] = {
            i + 1: Conn(id=i + 1, max_current_a=p * 1000.0 / (voltage_v * phases), phases=phases)
            for i, p in enumerate(real)
        }
        self.profiles = smart.ProfileStore()
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.max_profiles = max_profiles or max(16, 4 * connectors + 4)
        self.profile_events: asyncio.Queue[ProfileEvent] = asyncio.Queue()

        # The parts, wired once here.
        self.rt = Runtime(cp_id, self.clock)
        self.physics = Physics(self.conns, self.clock, self.profiles, mode=mode,
                               voltage_v=voltage_v, record_draw=record_draw)
        self.rpc = Rpc(cp_id, self.version, self.clock, validate_outgoing=validate_outgoing,
                       handle_call=self.handle_call, spawn=self.rt.spawn)
        self.link = Link(
            self.rt, self.rpc, self.clock,
            cp_id=cp_id, url=self.url, protocol=protocol, password=password, ssl=ssl,
            call_timeout_s=call_timeout_s, reconnect_min_s=reconnect_min_s,
            reconnect_max_s=reconnect_max_s, boot_on_reconnect=boot_on_reconnect,
            user_agent=f"{vendor}-{model}/{firmware}", rng=self._rng,
            on_registered=lambda: self.station.send_all_statuses(),
        )
        self.charging = SmartCharging(
            cp_id=cp_id, version=self.version, clock=self.clock, conns=self.conns,
            profiles=self.profiles, physics=self.physics, mode=mode, voltage_v=voltage_v,
            max_stack_level=max_stack_level, max_periods=max_periods,
            max_profiles=self.max_profiles, accepted_units=accepted_units,
            smart_enabled=lambda: self.proto.smart_enabled(), emit=self._profile_event,
        )
        self.station = Station(
            cp_id=cp_id, clock=self.clock, rt=self.rt, link=self.link, conns=self.conns,
            physics=self.physics, charging=self.charging, stop_when_full=stop_when_full,
        )
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
            availability=self.station.availability_state,
            date_time=lambda: smart.iso(self.clock.now()),
        )
        if not reports_smart_charging:
            # What old firmware says of itself: no SmartCharging feature profile (1.6), the
            # smart charging controller not available (2.0.1).
            self.config.keys["SupportedFeatureProfiles"] = ConfigKey("Core,RemoteTrigger", True)
            self.device_model.get("SmartChargingCtrlr", "Available").value = "false"
        self.proto: ProtocolSide = (V16 if self.v16 else V201)(
            clock=self.clock, station=self.station, link=self.link, physics=self.physics,
            charging=self.charging, config=self.config, device_model=self.device_model,
            vendor=vendor, model=model, firmware=firmware, serial=self.serial,
            voltage_v=voltage_v, mode=mode, relax_validation=relax_validation,
        )
        self.station.proto = self.proto
        self.link.settings = self.proto
        self._run_task: asyncio.Task[None] | None = None

    # Records and events that live on the parts.
    booted = _via("link", "booted")
    connected = _via("link", "connected")
    boot_status = _via("link", "boot_status")
    connect_count = _via("link", "connect_count")
    transactions = _via("station", "transactions")
    station_status = _via("station", "station_status")
    station_operative = _via("station", "station_operative")
    scheduled_station_operative = _via("station", "scheduled_station_operative")
    messages_sent = _via("rpc", "messages_sent")
    results_sent = _via("rpc", "results_sent")
    messages_received = _via("rpc", "messages_received")
    call_errors = _via("rpc", "call_errors")
    incoming = _via("proto", "incoming")
    last_error = _via("rt", "last_error")

    # Internals that unit tests drive directly.
    _ws = _via("link", "ws")
    _stopping = _via("link", "stopping")
    _accepted = _via("link", "accepted")
    _outbox = _via("link", "outbox")
    _t_advanced = _via("physics", "t_advanced")

    _step = _via("station", "step")
    _next_wake = _via("physics", "next_wake")
    _conn = _via("station", "conn")
    _send_all_statuses = _via("station", "send_all_statuses")
    _meter_interval = _via("proto", "meter_interval")
    _measurands = _via("proto", "measurands")
    _boot_payload = _via("proto", "boot_payload")
    _enqueue = _via("link", "enqueue")
    _sender = _via("link", "sender")

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SimCharger:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start connecting, booting and simulating in the background."""
        if self._run_task is None:
            self.physics.t_advanced = self.clock.now()
            self._run_task = asyncio.create_task(self._run(), name=f"charger-{self.cp_id}")

    async def stop(self) -> None:
        """Close the connection and stop all background work (EVs stay where they are)."""
        await self.link.close()
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.rt.cancel_all()

    async def disconnect(self) -> None:
        """Drop the connection (as a network failure would); it reconnects with backoff."""
        self.link.abort()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.connection_loop(), name=f"{self.cp_id}-conn")
            tg.create_task(self.link.sender(), name=f"{self.cp_id}-send")
            tg.create_task(self.station.engine(), name=f"{self.cp_id}-engine")
            tg.create_task(self.link.heartbeat(), name=f"{self.cp_id}-heartbeat")

    def _profile_event(self, event: ProfileEvent) -> None:
        self.profile_events.put_nowait(event)
        if self.on_profile is not None:
            self.on_profile(event)

    # ------------------------------------------------------------------ public helpers

    @property
    def online(self) -> bool:
        """True while connected and registered (boot accepted)."""
        return self.link.online

    @property
    def idle(self) -> bool:
        """True when nothing is queued, in flight or being prepared, and we are online."""
        link = self.link
        return not link.outbox and link.inflight is None and self.rt.busy == 0 and self.online

    async def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait (wall `timeout`) until `predicate()` is truthy; return its value."""
        return await self.rt.wait_for(predicate, timeout)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every queued message has been sent and answered."""
        await self.wait_for(lambda: self.idle, timeout)

    async def wait_for_tx_started(self, connector: int, timeout: float | None = None) -> TxRecord:
        """Wait until the connector's latest transaction was acknowledged by the server."""
        c = self.station.conn(connector)
        return await self.wait_for(
            lambda: c.last_tx if c.last_tx is not None and c.last_tx.acknowledged else None,
            timeout,
        )

    async def wait_for_tx_ended(self, connector: int, timeout: float | None = None) -> TxRecord:
        """Wait until the connector's latest transaction ended and the server acknowledged it."""
        c = self.station.conn(connector)
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
        return self.station.conn(connector).draw_log

    def composite_limit_w(self, connector: int, at: datetime | None = None) -> float:
        """The limit (W) the profiles put on `connector` at `at` (station cap not shared out)."""
        return self.physics.composite_limit_w(self.station.conn(connector).id, at)

    def current_draw_w(self, connector: int) -> float:
        """What the EV on `connector` draws now (W)."""
        self.physics.advance(self.clock.now())
        return self.station.conn(connector).power_w

    def total_draw_w(self) -> float:
        """What the whole charger draws now (W)."""
        self.physics.advance(self.clock.now())
        return sum(c.power_w for c in self.conns.values())

    def meter_wh(self, connector: int) -> float:
        """The connector's energy register (Wh)."""
        self.physics.advance(self.clock.now())
        return self.station.conn(connector).meter_wh

    def status(self, connector: int) -> str:
        """The connector status as last reported (1.6 names; 2.0.1 maps Charging etc. to
        Occupied on the wire)."""
        return self.station.conn(connector).status

    # ------------------------------------------------------------------ EV side

    async def plug_in(self, connector: int, ev: EV, id_tag: str = "SIMTAG0001") -> None:
        """Plug `ev` into `connector`; authorize `id_tag` and start a transaction."""
        await self.station.plug_in(connector, ev, id_tag)

    async def unplug(self, connector: int) -> None:
        """Unplug the EV: ends a running transaction (EVDisconnected) and frees the connector."""
        await self.station.unplug(connector)

    # ------------------------------------------------------------------ calls

    async def call(self, action: str, payload: Payload, *, transactional: bool = False) -> Payload:
        """Send a CALL through the queue and return the server's CALLRESULT payload."""
        return await self.link.call(action, payload, transactional=transactional)

    def handle_call(self, action: str, payload: Any) -> Answer:
        """Answer a central-system CALL: (CALLRESULT payload, follow-up to run after it).

        Raises `_Reply` for a CALLERROR. Pure with respect to the network, so unit tests call
        it directly.
        """
        return self.proto.handle_call(action, payload)
