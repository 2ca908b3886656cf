"""The repository interface the rest of Loadstar uses; SQLite is its embedded implementation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from csms.domain import (
    Booted,
    EvChargingNeeds,
    IdTagInfo,
    Metered,
    StatusChanged,
    TransactionEnded,
    TransactionEvent201,
    TransactionStarted,
)


@dataclass(frozen=True, slots=True)
class ConnectorRecord:
    connector_id: int
    status: str | None
    error_code: str | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChargePointRecord:
    cp_id: str
    protocol: str | None
    vendor: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    online: bool
    last_seen: datetime | None
    registered: bool
    capabilities: dict[str, Any] = field(default_factory=dict)
    connectors: tuple[ConnectorRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    cp_id: str
    connector_id: int
    ocpp_tx_id: str
    id_tag: str | None
    started_at: datetime
    stopped_at: datetime | None
    meter_start_wh: float | None
    meter_stop_wh: float | None
    energy_kwh: float
    stop_reason: str | None
    meter_value_count: int


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: int
    cp_id: str
    action: str
    payload: dict[str, Any]
    status: str
    response: dict[str, Any] | None
    created_at: datetime
    answered_at: datetime | None


@dataclass(frozen=True, slots=True)
class FrameRecord:
    timestamp: datetime
    cp_id: str
    direction: str  # "in" or "out"
    message_type: int | None
    unique_id: str | None
    action: str | None
    text: str


@dataclass(slots=True)
class StoreHealth:
    """Whether writes succeed; a failing store refuses to acknowledge until one succeeds again."""

    ok: bool = True
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None

    def failed(self, exc: BaseException, now: datetime) -> None:
        if isinstance(exc, Exception):  # a cancellation says nothing about the disk
            self.ok = False
            self.consecutive_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_error_at = now

    def succeeded(self, now: datetime) -> None:
        self.ok = True
        self.consecutive_failures = 0
        self.last_success_at = now


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: its hash, never the key."""

    id: int
    key_hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """What the HTTP networks view keeps beside a site, group or API-made limit."""

    id: str  # the site, group or limit id
    kind: str  # "network", "capacity" or "dr_event"
    site_id: str
    attrs: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class Store(Protocol):
    """Everything Loadstar persists. Every write method returns only after it is committed."""

    health: StoreHealth

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def flush(self) -> None: ...

    # Charge points
    async def record_boot(self, event: Booted, now: datetime) -> None: ...
    async def set_online(self, cp_id: str, online: bool, protocol: str | None,
                         now: datetime) -> None: ...
    async def mark_all_offline(self) -> None: ...
    async def abandon_pending_commands(self, now: datetime) -> int: ...
    async def register_charge_point(self, cp_id: str, password_hash: str | None = None) -> None: ...
    async def get_password_hash(self, cp_id: str) -> str | None: ...
    async def is_registered(self, cp_id: str) -> bool: ...
    async def is_known(self, cp_id: str) -> bool: ...
    async def get_charge_point(self, cp_id: str) -> ChargePointRecord | None: ...
    async def list_charge_points(self) -> list[ChargePointRecord]: ...
    async def save_capabilities(self, cp_id: str, capabilities: dict[str, Any]) -> None: ...
    def capabilities(self, cp_ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...
    async def save_variables(self, cp_id: str, variables: list[dict[str, Any]],
                             now: datetime) -> None: ...
    async def record_status(self, event: StatusChanged) -> None: ...
    async def record_charger_event(self, cp_id: str, kind: str, payload: dict[str, Any],
                                   now: datetime) -> None: ...
    async def save_ev_charging_needs(self, event: EvChargingNeeds, now: datetime) -> None: ...

    # Authorization
    async def get_id_tag(self, id_tag: str) -> IdTagInfo | None: ...
    async def put_id_tag(self, id_tag: str, status: str, expiry: datetime | None = None,
                         parent_id_tag: str | None = None) -> None: ...

    # Transactions and meter values
    async def start_transaction(self, event: TransactionStarted) -> tuple[int, bool]: ...
    async def add_meter_values(self, event: Metered) -> None: ...
    async def end_transaction(self, event: TransactionEnded) -> bool: ...
    async def apply_transaction_event(self, event: TransactionEvent201) -> bool: ...
    async def list_sessions(self, active_only: bool = False) -> list[SessionRecord]: ...
    async def get_session(self, cp_id: str, ocpp_tx_id: str) -> SessionRecord | None: ...
    async def count_meter_values(self, cp_id: str | None = None) -> int: ...

    # Load management
    async def record_plan(self, site_id: str, ts: datetime, trigger: str,
                          limit_kw: float | None, limit_a: float | None, source: str,
                          solver_status: str, solve_time_s: float, inputs: dict[str, Any],
                          result: dict[str, Any]) -> int: ...
    async def list_plans(self, site_id: str | None = None, limit: int = 100) -> list[dict]: ...
    async def add_external_limit(self, node_id: str, power_kw: float | None,
                                 current_a: float | None, start: datetime | None,
                                 end: datetime, now: datetime) -> int: ...
    async def list_external_limits(self, active_at: datetime | None = None) -> list[dict]: ...
    async def save_site(self, site_id: str, spec: dict[str, Any], now: datetime) -> None: ...
    async def list_sites(self) -> list[dict[str, Any]]: ...
    async def save_model_record(self, model_key: str, record: dict[str, Any],
                                now: datetime) -> None: ...
    async def list_model_records(self) -> dict[str, dict[str, Any]]: ...

    # Commands and the raw frame log
    async def record_command(self, cp_id: str, action: str, payload: dict[str, Any],
                             now: datetime) -> int: ...
    async def finish_command(self, command_id: int, status: str,
                             response: dict[str, Any] | None, now: datetime) -> None: ...
    async def list_commands(self, cp_id: str | None = None,
                            limit: int = 100) -> list[CommandRecord]: ...
    def log_frame(self, frame: FrameRecord) -> None: ...
    async def list_frames(self, cp_id: str | None = None,
                          limit: int = 100) -> list[FrameRecord]: ...
    async def prune_frames(self, older_than: datetime) -> int: ...
    async def prune_plans(self, older_than: datetime) -> int: ...
    async def prune_commands(self, older_than: datetime) -> int: ...

    # API keys (hashed)
    async def add_api_key(self, key_hash: str, scopes: tuple[str, ...],
                          now: datetime) -> int: ...
    async def revoke_api_key(self, key_id: int, now: datetime) -> bool: ...
    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...
    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    # Networks view: records beside site specs, and deleting a site
    async def save_network_record(self, record_id: str, kind: str, site_id: str,
                                  attrs: dict[str, Any], now: datetime) -> None: ...
    async def list_network_records(self, site_id: str | None = None
                                   ) -> list[NetworkRecord]: ...
    async def delete_network_records(self, record_ids: list[str]) -> int: ...
    async def delete_site(self, site_id: str) -> bool: ...
    async def site_times(self) -> dict[str, datetime]: ...
