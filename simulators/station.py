"""The station: its connectors, the EVs plugged in, their transactions and statuses.

Version-neutral: what goes on the wire for a transaction or a status is asked of the
protocol side (`simulators.v16` / `simulators.v201`), which queues it on the link.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.charging import SmartCharging
from simulators.clock import Clock
from simulators.ev import EV
from simulators.link import Link
from simulators.physics import Physics
from simulators.records import Conn, Remote, TxRecord
from simulators.rpc import CallFailed
from simulators.runtime import Runtime

if TYPE_CHECKING:
    from simulators.protocol import ProtocolSide


class Station:
    """Connectors, transactions and availability of one charging station."""

    def __init__(
        self,
        *,
        cp_id: str,
        clock: Clock,
        rt: Runtime,
        link: Link,
        conns: dict[int, Conn],
        physics: Physics,
        charging: SmartCharging,
        stop_when_full: bool,
    ) -> None:
        self.cp_id = cp_id
        self.clock = clock
        self.rt = rt
        self.link = link
        self.conns = conns
        self.physics = physics
        self.charging = charging
        self.stop_when_full = stop_when_full
        self.proto: ProtocolSide | None = None  # the protocol side, wired after it exists
        self.transactions: list[TxRecord] = []
        self.station_status = "Available"
        self.station_operative = True
        self.scheduled_station_operative: bool | None = None
        self.reset_scheduled: str | None = None

    @property
    def p(self) -> ProtocolSide:
        assert self.proto is not None, "Station.proto is wired at construction"
        return self.proto

    def conn(self, connector: int) -> Conn:
        try:
            return self.conns[connector]
        except KeyError:
            raise ValueError(f"{self.cp_id} has no connector {connector}") from None

    # ------------------------------------------------------------------ EV side

    async def plug_in(self, connector: int, ev: EV, id_tag: str) -> None:
        """Plug `ev` into `connector`; authorize `id_tag` and start a transaction."""
        c = self.conn(connector)
        if c.ev is not None:
            raise RuntimeError(f"{self.cp_id}/{connector}: already occupied")
        now = self.clock.now()
        self.physics.advance(now)
        c.ev, c.id_tag, c.auth_rejected = ev, id_tag, False
        if not (c.operative and self.station_operative):
            return
        remote, c.remote = c.remote, None
        self.set_status(c, "Preparing", now)
        self.rt.spawn(self._authorize_and_start(c, id_tag, remote), busy=True)

    async def unplug(self, connector: int) -> None:
        """Unplug the EV: ends a running transaction (EVDisconnected) and frees the connector."""
        c = self.conn(connector)
        now = self.clock.now()
        self.physics.advance(now)
        ev, c.ev = c.ev, None
        if ev is None:
            return
        if c.tx is not None:
            self.stop_tx(c, "EVDisconnected", now)
        else:
            self.set_status(c, self.idle_status(c), now)
        self.physics.wake.set()
        self.rt.notify()

    def idle_status(self, c: Conn) -> str:
        """The 1.6 status of a connector without a transaction."""
        if not (c.operative and self.station_operative):
            return "Unavailable"
        if c.ev is not None:
            return "Finishing" if c.last_tx is not None and not c.last_tx.active else "Preparing"
        return "Available"

    async def _authorize_and_start(self, c: Conn, id_tag: str, remote: Remote | None) -> None:
        if remote is not None:
            id_tag = remote.id_tag  # the central system already authorized this one
        if remote is None and self.link.online:
            try:
                res = await self.link.call("Authorize", self.p.authorize_payload(id_tag))
            except (CallFailed, TimeoutError, ConnectionError):
                res = None  # unreachable: the LocalAuthorizeOffline/offline-tx settings apply
            if res is not None:
                info = res.get("idTagInfo") or res.get("idTokenInfo") or {}
                if info.get("status") != "Accepted":
                    c.auth_rejected = True
                    self.rt.notify()
                    return
        if c.ev is None or c.tx is not None or not c.operative:
            return
        self.start_tx(c, id_tag, remote)

    # ------------------------------------------------------------------ transactions

    def start_tx(self, c: Conn, id_tag: str, remote: Remote | None) -> TxRecord:
        """Start a transaction on `c` and queue the message that reports it."""
        now = self.clock.now()
        self.physics.advance(now)
        tx = TxRecord(
            connector=c.id,
            id_tag=id_tag,
            started_at=now,
            meter_start_wh=round(c.meter_wh),
            remote_start_id=remote.remote_start_id if remote else None,
        )
        tx.transaction_id = self.p.new_transaction_id()
        c.tx, c.last_tx = tx, tx
        self.transactions.append(tx)
        c.next_meter_at = now + timedelta(seconds=self.p.meter_interval())
        if remote is not None and remote.profile is not None:
            self.p.install_remote_profile(c, remote.profile, now)
        self.physics.t_advanced = now
        self.physics.refresh_draws(now)
        c.charging_state = self.charging_state(c)
        self.p.tx_started(c, tx, remote, now)
        self.physics.wake.set()
        self.rt.notify()
        return tx

    def stop_tx(self, c: Conn, reason: str, now: datetime) -> None:
        """End the connector's transaction. `reason` is the 1.6 Reason, mapped for 2.0.1."""
        self.physics.advance(now)
        tx = c.tx
        if tx is None:
            return
        tx.ended_at = now
        tx.meter_stop_wh = round(c.meter_wh)
        tx.stop_reason = reason
        c.tx = None
        c.next_meter_at = None
        c.power_w = 0.0
        self.physics.log_power(c, now, 0.0)
        self.charging.tx_ended(c.id, now)
        self.p.tx_ended(c, tx, reason, now)
        if c.scheduled_operative is not None:
            c.operative, c.scheduled_operative = c.scheduled_operative, None
        if self.scheduled_station_operative is not None and not any(
            x.tx for x in self.conns.values()
        ):
            self.station_operative = self.scheduled_station_operative
            self.scheduled_station_operative = None
            self.set_station_status(now)
        self.set_status(c, self.idle_status(c), now)
        self.physics.wake.set()
        self.rt.notify()
        if self.reset_scheduled and not any(x.tx for x in self.conns.values()):
            self.rt.spawn(self.reboot(self.reset_scheduled))

    def charging_state(self, c: Conn) -> str:
        """The 2.0.1 ChargingState of a connector (1.6 derives its status from it)."""
        if c.tx is None:
            return "EVConnected" if c.ev is not None else "Idle"
        if c.power_w > 0:
            return "Charging"
        if c.ev is None or c.ev.full or c.ev.acceptance_w() <= 0:
            return "SuspendedEV"
        return "SuspendedEVSE"

    @staticmethod
    def status_for_state(state: str) -> str:
        """The 1.6 status of a connector in a transaction in `state`."""
        return state if state in ("Charging", "SuspendedEV", "SuspendedEVSE") else "Preparing"

    def step(self, now: datetime) -> None:
        """Advance to `now`: stop full EVs, report state changes, send due meter values."""
        self.physics.advance(now)
        for c in self.conns.values():
            if c.tx is None or c.ev is None:
                continue
            if c.ev.full and self.stop_when_full:
                self.stop_tx(c, self.p.full_reason, now)
                continue
            state = self.charging_state(c)
            if state != c.charging_state:
                c.charging_state = state
                self.p.charging_state_changed(c, now)
            if c.next_meter_at is not None and now >= c.next_meter_at - timedelta(
                milliseconds=1
            ):
                self.p.send_meter_values(c, now, "Sample.Periodic")
                interval = timedelta(seconds=self.p.meter_interval())
                c.next_meter_at += interval
                if c.next_meter_at <= now:
                    c.next_meter_at = now + interval

    async def engine(self) -> None:
        """Step whenever something can change, never on a fixed tick."""
        while True:
            now = self.clock.now()
            self.step(now)
            await self.rt.sleep_or(self.physics.wake, self.physics.next_wake(now))

    def reschedule_meters(self) -> None:
        """The meter interval changed: the next sample is one new interval from now."""
        now = self.clock.now()
        for c in self.conns.values():
            if c.tx is not None:
                c.next_meter_at = now + timedelta(seconds=self.p.meter_interval())
        self.physics.wake.set()

    # ------------------------------------------------------------------ status

    def availability_state(self, evse: int | None) -> str:
        """AvailabilityState of the station (None) or an EVSE, as the device model reports."""
        if evse is None:
            return "Available" if self.station_operative else "Unavailable"
        return self.occupancy(self.conns[evse])

    def occupancy(self, c: Conn) -> str:
        """Available, Occupied or Unavailable (the 2.0.1 connector status)."""
        if not (c.operative and self.station_operative):
            return "Unavailable"
        return "Occupied" if (c.ev is not None or c.tx is not None) else "Available"

    def set_status(self, c: Conn, status: str, now: datetime) -> None:
        """Set the (1.6) status; report it if what goes on the wire changed."""
        c.status = status
        wire = self.p.wire_status(c)
        if wire == c.reported:
            return
        c.reported = wire
        if self.link.online:
            self.queue_status(c, now)

    def queue_status(self, c: Conn | None, now: datetime) -> None:
        """Queue a StatusNotification of `c` (None: the whole station) as it is at `now`."""
        # The payload is taken now: a status queued behind a slow call must still say what
        # the connector was at `now`, not what it is when the message finally goes out.
        payload = self.p.status_payload(c, now)
        self.link.enqueue(
            "StatusNotification", lambda: payload, transactional=False, on_result=None
        )

    def set_station_status(self, now: datetime) -> None:
        """The station became (in)operative: report it and every idle connector."""
        self.station_status = "Available" if self.station_operative else "Unavailable"
        for c in self.conns.values():
            if c.tx is None:
                self.set_status(c, self.idle_status(c), now)
        if self.p.reports_station_status and self.link.online:
            self.queue_status(None, now)

    def send_all_statuses(self) -> None:
        """Report every status (after registering)."""
        now = self.clock.now()
        targets: list[Conn | None] = [None] if self.p.reports_station_status else []
        targets.extend(self.conns.values())
        for c in targets:
            if c is not None:
                c.reported = self.p.wire_status(c)
            self.queue_status(c, now)

    def change_availability(self, target: int, operative: bool) -> str | None:
        """Accepted, Scheduled (after the transactions) or None for an unknown connector."""
        now = self.clock.now()
        if not target:
            if any(c.tx for c in self.conns.values()):
                self.scheduled_station_operative = operative
                return "Scheduled"
            self.station_operative = operative
            self.set_station_status(now)
            return "Accepted"
        c = self.conns.get(target)
        if c is None:
            return None
        if c.tx is not None:
            c.scheduled_operative = operative
            return "Scheduled"
        c.operative = operative
        self.set_status(c, self.idle_status(c), now)
        return "Accepted"

    # ------------------------------------------------------------------ remote control

    def pick_connector(self, wanted: int | None) -> Conn | None:
        """The connector a remote start goes to (None: none can take it)."""
        if not self.station_operative:
            return None
        if wanted is not None:
            c = self.conns.get(wanted)
            ok = c is not None and c.operative and c.tx is None and c.remote is None
            return c if ok else None
        free = [c for c in self.conns.values() if c.operative and c.tx is None]
        plugged = [c for c in free if c.ev is not None]
        return (plugged or [c for c in free if c.remote is None] or [None])[0]

    async def remote_start(self, c: Conn, remote: Remote) -> None:
        """Start at once if a car is plugged in, else when one is."""
        if c.ev is not None and c.tx is None:
            self.start_tx(c, remote.id_tag, remote)
        else:
            # No car yet: the transaction starts when one is plugged in (no Authorize needed,
            # AuthorizeRemoteTxRequests=false).
            c.remote = remote
            self.set_status(c, "Preparing", self.clock.now())

    def find_tx(self, tx_id: Any) -> Conn | None:
        """The connector running transaction `tx_id`, if any."""
        for c in self.conns.values():
            if c.tx is not None and c.tx.transaction_id is not None:
                if str(c.tx.transaction_id) == str(tx_id):
                    return c
        return None

    async def remote_stop(self, c: Conn) -> None:
        """Stop the connector's transaction (if it still runs) on the central system's word."""
        if c.tx is not None:
            self.stop_tx(c, "Remote", self.clock.now())

    async def reboot(self, reason: str) -> None:
        """Stop transactions, drop the connection and boot again (profiles persist)."""
        self.reset_scheduled = None
        now = self.clock.now()
        for c in self.conns.values():
            if c.tx is not None:
                self.stop_tx(c, reason, now)
        await self.link.reboot()


