"""What the simulated station records: its connectors, their transactions, profile events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulators.ev import EV

Payload = dict[str, Any]


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
class Remote:
    """A remote start waiting for (or starting) a transaction."""

    id_tag: str
    profile: Payload | None
    remote_start_id: int | None


@dataclass
class Conn:
    """One connector (2.0.1: one EVSE with connector 1) and what is plugged into it."""

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
    remote: Remote | None = None
    auth_rejected: bool = False
    draw_log: list[tuple[datetime, float]] = field(default_factory=list)

    def tx_key(self) -> tuple[str | None, datetime | None]:
        """(id, start) that TxProfiles match the running transaction by."""
        if self.tx is None:
            return None, None
        # A 1.6 transaction has no id until StartTransaction.conf; profiles bound to it match
        # through an unbound TxProfile (transaction_id None) until then.
        tx_id = self.tx.transaction_id
        return (str(tx_id) if tx_id is not None else f"local-{id(self.tx)}"), self.tx.started_at

    @property
    def phases_in_use(self) -> int:
        """Phases the connector draws on: its own, or fewer if the EV has fewer."""
        return min(self.phases, self.ev.phases) if self.ev else self.phases
