"""What the planner knows about each charger right now, folded from committed domain events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog

from csms.clock import Clock
from csms.config import SILENT_AT_LEAST_S
from csms.domain import (
    Booted,
    ConnectionChanged,
    DomainEvent,
    EvChargingNeeds,
    Metered,
    Sample,
    StatusChanged,
    TransactionEnded,
    TransactionEvent201,
    TransactionStarted,
)
from csms.plausible import ConnectorsDeclared

log = structlog.get_logger("csms.live")

POWER = "Power.Active.Import"


@dataclass(frozen=True, slots=True)
class ApiDemand:
    """What the HTTP API said about a connector's session (seed 002 charging sessions).

    `external`: the session was created through the API on a charger another CSMS runs (no
    OCPP transaction of ours); the planner plans it but nothing is sent to that charger.
    The other fields, when set, override what the charger reported (EV charging needs).
    """

    session_id: int
    external: bool = False
    priority: int | None = None
    energy_to_charge_kwh: float | None = None
    departure: datetime | None = None
    vehicle_max_kw: float | None = None


@dataclass(slots=True)
class ConnectorState:
    cp_id: str
    connector_id: int
    status: str | None = None
    tx_id: str | None = None
    # The id tag the session started with: its priority may beat the connector's.
    id_tag: str | None = None
    measured_w: float | None = None
    measured_at: datetime | None = None
    # When the charger last said anything about this connector (None: not since our start).
    heard_at: datetime | None = None
    needs: EvChargingNeeds | None = None
    # Set through the HTTP API (enrichment, or a session run by another CSMS).
    api: ApiDemand | None = None
    # What the charger has accepted from us (None: nothing we know of).
    held_tx_w: float | None = None
    held_tx_valid_to: datetime | None = None
    held_floor_w: float | None = None
    last_sent_at: datetime | None = None
    # Counted at this draw by the planner: profile rejected, timed out, charger offline, or
    # the charger accepted a limit and ignores it.
    pinned_w: float | None = None
    ignoring: bool = False
    over_limit_samples: int = 0
    # Since when the car has drawn well below its TxProfile limit (headroom lending).
    below_since: datetime | None = None
    # The last limit this session's car was seen drawing, and when we last raised its limit:
    # a car that falls well below a limit it drew lends at once (see track_headroom).
    drawn_limit_w: float | None = None
    raised_at: datetime | None = None
    fell_from_limit: bool = False
    # How often its charger was promised a TxProfile for this transaction (an ISO 15118 EV
    # sent its needs, or a schedule we rejected), and how many of those one that took
    # answered: while owed exceeds sent, the next plan sends one even if equal or held back.
    profile_owed: int = 0
    profile_sent: int = 0
    # The draw the last plan saw: a lent car's next reading within a hysteresis of it plans
    # nothing new (csms.planning.verdicts.reading_inputs).
    planned_w: float | None = None
    # A lent car ramped up again: its share goes back in the next plan, without the raise cap.
    reclaiming: bool = False
    # The most it has been measured drawing (plausible readings, any session; kept across
    # restarts): what a car on it is counted at where it cannot be limited.
    max_seen_w: float | None = None
    # Made unavailable by us (ChangeAvailability Inoperative) while a car here would overload
    # a node: it cannot start one, so it takes no room (csms.planning.admission).
    closed: bool = False


@dataclass(slots=True)
class ChargerState:
    cp_id: str
    online: bool = False
    protocol: str | None = None
    connectors: dict[int, ConnectorState] = field(default_factory=dict)
    # Its composite schedule once matched a TxProfile we sent ("Accepted" is not proof).
    composite_verified: bool = False
    firmware: str | None = None
    # It accepted limits and drew more on this firmware: every connector counts at its draw.
    ignores_profiles: bool = False
    # It cannot be limited on this firmware (SetChargingProfile answered NotImplemented or
    # NotSupported): no profile is sent to it again, and it counts as ignoring limits.
    uncontrollable: str | None = None
    # Where that came from: "answer" (to a profile; "stored answer" when kept from before this
    # start), "report" (its capabilities) or "operator".
    uncontrollable_by: str | None = None
    # It was seen drawing what a limit allowed on this firmware: no guard needed any more.
    follows_profiles: bool = False
    # When we last heard from it (any event): long silent chargers leave the plans.
    last_seen: datetime | None = None

    def connector(self, connector_id: int) -> ConnectorState:
        if connector_id not in self.connectors:
            self.connectors[connector_id] = ConnectorState(
                self.cp_id, connector_id, ignoring=self.ignores_profiles)
        return self.connectors[connector_id]


def connector_of_tx(cp: ChargerState, tx: str) -> ConnectorState | None:
    """The connector of `cp` running transaction `tx`, if any."""
    return next((c for c in cp.connectors.values() if c.tx_id == tx), None)


def measured_power_w(samples: tuple[Sample, ...]) -> tuple[float, datetime] | None:
    """The latest active import power among `samples`: the total, else the sum of phases."""
    latest: dict[datetime, dict[str | None, float]] = {}
    for s in samples:
        if s.measurand != POWER or s.location not in (None, "Outlet"):
            continue
        watts = s.value * 1000.0 if s.unit == "kW" else s.value
        latest.setdefault(s.timestamp, {})[s.phase] = watts
    if not latest:
        return None
    at = max(latest)
    values = latest[at]
    if None in values:
        return values[None], at
    return sum(v for k, v in values.items() if k and "-" not in k and k != "N"), at


class LiveState:
    """Chargers and connectors by id, updated by `apply(event)`; returns the charger touched.

    With a clock it also knows which sessions went silent (`silent`): no word about their
    connector for `silent_after_s` (None: SILENT_AT_LEAST_S, 0: never silent).
    """

    def __init__(self, clock: Clock | None = None, silent_after_s: float | None = None) -> None:
        self.chargers: dict[str, ChargerState] = {}
        self._clock = clock
        self._silent_after_s = SILENT_AT_LEAST_S if silent_after_s is None else silent_after_s
        # Connectors restored at start were last heard of, at the latest, then.
        self._started_at = None if clock is None else clock.now()
        self._silent: set[tuple[str, int]] = set()

    def silent(self, cp: ChargerState, c: ConnectorState, now: datetime) -> bool:
        """Whether `c`'s session, on a connected charger, has gone unheard of too long to be
        planned as charging (it then counts at what it may draw). Logs each change once."""
        since = c.heard_at or self._started_at
        if not cp.online or c.tx_id is None or since is None or self._silent_after_s <= 0 \
                or (now - since).total_seconds() <= self._silent_after_s:
            return False
        if (c.cp_id, c.connector_id) not in self._silent:
            self._silent.add((c.cp_id, c.connector_id))
            log.warning("connector_silent", cp_id=c.cp_id, connector_id=c.connector_id,
                        transaction_id=c.tx_id, silent_s=round((now - since).total_seconds()))
        return True

    def _heard(self, c: ConnectorState) -> None:
        if self._clock is None:
            return
        c.heard_at = self._clock.now()
        if (c.cp_id, c.connector_id) in self._silent:
            self._silent.discard((c.cp_id, c.connector_id))
            log.info("connector_heard_again", cp_id=c.cp_id, connector_id=c.connector_id)

    def charger(self, cp_id: str) -> ChargerState:
        if cp_id not in self.chargers:
            self.chargers[cp_id] = ChargerState(cp_id)
        return self.chargers[cp_id]

    def apply(self, event: DomainEvent | ConnectorsDeclared) -> ConnectorState | None:
        """Fold one event in; return the connector it concerns, if any (heard from now)."""
        c = self._fold(event)
        if c is not None:
            self._heard(c)
        return c

    def _fold(self, event: DomainEvent | ConnectorsDeclared) -> ConnectorState | None:
        cp = self.charger(event.cp_id)
        match event:
            case ConnectorsDeclared(connectors=declared):
                # Reported before the charger said how many it has: not real. A session on
                # one is left to end (its car draws whatever the number says).
                for n in [n for n, c in cp.connectors.items()
                          if n > declared and c.tx_id is None]:
                    del cp.connectors[n]
                return None
            case ConnectionChanged(online=online, protocol=protocol):
                cp.online = online
                cp.protocol = protocol or cp.protocol
                return None
            case Booted(firmware=firmware):
                cp.online = True
                if firmware != cp.firmware:
                    # New firmware may honour profiles: it has to show again that it does not.
                    cp.ignores_profiles = False
                    cp.follows_profiles = False
                    cp.composite_verified = False
                    cp.uncontrollable = cp.uncontrollable_by = None
                    for c in cp.connectors.values():
                        c.ignoring = False
                cp.firmware = firmware
                # A rebooted charger may have lost what it held; count nothing as held.
                for c in cp.connectors.values():
                    c.held_tx_w = c.held_floor_w = c.held_tx_valid_to = None
                    c.pinned_w = None
                    c.ignoring = cp.ignores_profiles
                return None
            case StatusChanged(connector_id=n, status=status) if n > 0:
                c = cp.connector(n)
                c.status = status
                return c
            case TransactionStarted(connector_id=n, ocpp_tx_id=tx, id_tag=id_tag):
                c = cp.connector(n)
                c.tx_id, c.id_tag = tx, id_tag
                return c
            case TransactionEvent201(event_type=kind, connector_id=n, ocpp_tx_id=tx):
                c = connector_of_tx(cp, tx) or (cp.connector(n) if n else None)
                if c is None:
                    return None
                if kind == "Ended":
                    self._end(c)
                else:
                    c.tx_id = tx
                    c.id_tag = event.id_tag or c.id_tag
                self._meter(c, event.samples)
                return c
            case TransactionEnded(ocpp_tx_id=tx):
                c = connector_of_tx(cp, tx)
                if c is not None:
                    self._end(c)
                return c
            case Metered(connector_id=n, samples=samples) if n > 0:
                c = cp.connector(n)
                self._meter(c, samples)
                return c
            case EvChargingNeeds(connector_id=n):
                c = cp.connector(n)
                c.needs = event
                return c
        return None


    @staticmethod
    def _end(c: ConnectorState) -> None:
        # The charger drops a TxProfile bound to the transaction when it ends.
        c.tx_id = c.id_tag = None
        c.held_tx_w = c.held_tx_valid_to = None
        c.pinned_w = None
        # `ignoring` stays: a charger that ignored our limits in one session will in the next,
        # and its next car draws its maximum from the first second (see csms.planning.snapshot).
        c.over_limit_samples = 0
        c.below_since = None
        c.drawn_limit_w = c.planned_w = None
        c.fell_from_limit = False
        c.profile_owed = c.profile_sent = 0
        c.raised_at = None
        c.reclaiming = False
        c.needs = None
        c.api = None
        c.measured_w = None
        c.last_sent_at = None

    @staticmethod
    def _meter(c: ConnectorState, samples: tuple[Sample, ...]) -> None:
        found = measured_power_w(samples)
        if found is not None:
            c.measured_w, c.measured_at = found
