"""Version-neutral domain events and decisions: what both OCPP versions translate into.

A connector here is the unit one car charges at: OCPP 1.6 `connectorId`, OCPP 2.0.1 `evseId`
(the 2.0.1 physical connector id is kept alongside). Connector 0 means the whole charger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

AuthStatus = Literal["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx", "Unknown"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampled value of a MeterValue: what was measured, where, and when."""

    timestamp: datetime
    measurand: str
    value: float
    unit: str | None = None
    phase: str | None = None
    context: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Booted:
    cp_id: str
    protocol: str
    vendor: str
    model: str
    serial: str | None = None
    firmware: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChanged:
    cp_id: str
    connector_id: int
    status: str
    timestamp: datetime
    error_code: str | None = None
    info: str | None = None
    evse_connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    """A charger started charging; `ocpp_tx_id` is set when the charger names it (2.0.1)."""

    cp_id: str
    connector_id: int
    id_tag: str | None
    timestamp: datetime
    meter_start_wh: float | None = None
    ocpp_tx_id: str | None = None
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True)
class Metered:
    """Meter samples from a connector, bound to a transaction when the charger says so."""

    cp_id: str
    connector_id: int
    samples: tuple[Sample, ...]
    ocpp_tx_id: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionEnded:
    cp_id: str
    ocpp_tx_id: str
    timestamp: datetime
    meter_stop_wh: float | None = None
    reason: str | None = None
    id_tag: str | None = None
    samples: tuple[Sample, ...] = ()


@dataclass(frozen=True, slots=True)
class TransactionEvent201:
    """An OCPP 2.0.1 TransactionEvent with its sequence number, for de-duplication."""

    cp_id: str
    event_type: Literal["Started", "Updated", "Ended"]
    ocpp_tx_id: str
    seq_no: int
    timestamp: datetime
    trigger_reason: str
    connector_id: int | None
    evse_connector_id: int | None = None
    id_tag: str | None = None
    offline: bool = False
    charging_state: str | None = None
    stopped_reason: str | None = None
    samples: tuple[Sample, ...] = ()
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    cp_id: str
    online: bool
    protocol: str | None = None


@dataclass(frozen=True, slots=True)
class EvChargingNeeds:
    cp_id: str
    connector_id: int
    requested_energy_transfer: str
    departure: datetime | None = None
    energy_amount_wh: float | None = None
    ev_max_power_w: float | None = None
    ev_max_current_a: float | None = None
    ev_min_current_a: float | None = None
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EvChargingSchedule:
    """The schedule an ISO 15118 EV means to follow (2.0.1 NotifyEVChargingSchedule)."""

    cp_id: str
    connector_id: int
    time_base: datetime
    unit: str  # "A" or "W"
    periods: tuple[tuple[float, float, int | None], ...]  # (start s, limit, numberPhases)
    duration_s: float | None = None


DomainEvent = (
    Booted
    | StatusChanged
    | TransactionStarted
    | Metered
    | TransactionEnded
    | TransactionEvent201
    | ConnectionChanged
    | EvChargingNeeds
)


@dataclass(frozen=True, slots=True)
class IdTagInfo:
    """The answer to an authorization question."""

    status: AuthStatus
    expiry: datetime | None = None
    parent_id_tag: str | None = None


@dataclass(frozen=True, slots=True)
class StartDecision:
    """What a StartTransaction is answered with: our transaction id and the tag's status."""

    transaction_id: int
    id_tag_info: IdTagInfo
    duplicate: bool = False
