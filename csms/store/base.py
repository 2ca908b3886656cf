"""The repository interface the rest of Loadstar uses; SQLite is its embedded implementation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
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
from csms.registration import Standing
from csms.sites import ChargerFacts, SiteDirectory
from csms.store.authlist import LocalListRecord, ReservationRecord
from csms.store.catalog import (
    ConfigurationRecord,
    IdTagQuery,
    IdTagRecord,
    OcppSettingsRecord,
    VehicleQuery,
    VehicleRecord,
)
from csms.store.transfers import TransferRecord


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
    registration: str | None = None  # the operator's: Accepted, Pending, Rejected or none
    boot_status: str | None = None  # what its last BootNotification was answered


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
    cost: StoredCost | None = None


@dataclass(frozen=True, slots=True)
class StoredCost:
    """A session's cost as kept: final once the session ended and its cost was settled."""

    total: Decimal
    currency: str
    final: bool


@dataclass(frozen=True, slots=True)
class SeqState:
    """A 2.0.1 transaction's sequence numbers: the last one, its numbering epoch (a charger
    that rebooted numbers again from 0), the seqNos missing so far, and the answer of the
    GetTransactionStatus asked for them."""

    last_seq_no: int | None
    epoch: int
    missing: tuple[int, ...]
    status_check: dict[str, Any] | None


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
    direction: str  # "in", "out", or "undelivered" (an answer the closed socket refused)
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
class ApiSessionRecord:
    """A session as the HTTP view shows it: the transaction plus what the API added."""

    id: int
    cp_id: str
    connector_id: int
    ocpp_tx_id: str | None
    id_tag: str | None
    started_at: datetime
    stopped_at: datetime | None
    meter_start_wh: float | None
    meter_stop_wh: float | None
    energy_kwh: float
    stop_reason: str | None
    source: str  # "ocpp" (a transaction of ours) or "api" (created through the API)
    status: str | None  # the connector's OCPP status now
    charging_rate_unit: str = "W"
    energy_to_charge_kwh: float | None = None
    departure: datetime | None = None
    priority: int | None = None
    vehicle_id: str | None = None
    max_power_kw: float | None = None
    payment_info: str | None = None
    remote_stop: bool | None = None
    start_soc: float | None = None
    updated_at: datetime | None = None
    cost: StoredCost | None = None


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Filters of the session list, resolved to store ids (None: no filter on it)."""

    now: datetime
    cp_ids: tuple[str, ...] | None = None
    connectors: tuple[tuple[str, int], ...] | None = None
    session_ids: tuple[int, ...] | None = None
    vehicles: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    id_tags: tuple[str, ...] | None = None
    transaction_id: str | None = None
    active: bool | None = None
    priorities: tuple[int, ...] | None = None
    ended_after: datetime | None = None
    started_before: datetime | None = None
    updated_since: datetime | None = None
    search: str | None = None
    search_ids: tuple[int, ...] = ()
    duration_s: tuple[float | None, float | None] = (None, None)  # [min, max)
    energy_kwh: tuple[float | None, float | None] = (None, None)  # [min, max)
    sort: tuple[tuple[str, bool], ...] = (("isActive", True),)  # (field, descending)


@dataclass(frozen=True, slots=True)
class MeterValueRecord:
    id: int
    cp_id: str
    connector_id: int
    session_id: int | None
    timestamp: datetime
    measurand: str
    phase: str | None
    unit: str | None
    value: float
    context: str | None
    location: str | None


@dataclass(frozen=True, slots=True)
class MeterQuery:
    """Which stored samples: any of the connectors, charge points or session ids, in a window."""

    connectors: tuple[tuple[str, int], ...] | None = None
    cp_ids: tuple[str, ...] | None = None
    vehicles: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None
    measurands: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PlanResultRecord:
    """One connector's result in one stored plan (an optimization of the HTTP view)."""

    plan_id: int
    site_id: str
    ts: datetime
    connector: str  # the allocator's key, "CP/1"
    result: dict[str, Any]
    latest: bool  # from the newest plan of its site


class InventoryConflict(Exception):
    """A write the inventory refuses because of what another record holds (HTTP 409)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(field_name, message)
        self.field, self.message = field_name, message


@dataclass(frozen=True, slots=True)
class ChargePointQuery:
    """Filters, sort and page of the charge point list; None or empty: no filter."""

    nodes: tuple[str, ...] | None = None  # placed under one of these sites or groups
    online: bool | None = None
    vendor: str | None = None
    custom_name: str | None = None
    allow_all_id_tags: bool | None = None
    power_split: bool | None = None
    current: str | None = None  # AC, DC or Mix
    active: bool | None = None
    search: str | None = None
    updated_after: datetime | None = None
    sort: str = "active"  # a sort field of document 002
    descending: bool = True
    live_kw: dict[str, float] = field(default_factory=dict)  # draw of chargers drawing
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ConnectorQuery:
    """Filters, sort and page of the connector list; None or empty: no filter."""

    nodes: tuple[str, ...] | None = None
    cp_uuids: tuple[str, ...] = ()
    connector_ids: tuple[int, ...] = ()
    ocpp_status: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    current: str | None = None  # AC or DC
    plug_types: tuple[str, ...] = ()
    search: str | None = None
    sort: str = "active"
    descending: bool = True
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class FrameQuery:
    """Which logged frames to list, and in what order (filters left None match everything)."""

    cp_ids: tuple[str, ...] | None = None
    directions: tuple[str, ...] | None = None  # "in", "out"
    message_type: int | None = None  # 2 CALL, 3 CALLRESULT, 4 CALLERROR
    actions: tuple[str, ...] | None = None  # a reply matches the action of its call
    protocol: str | None = None  # the charger's last known subprotocol, "ocpp1.6"
    start: datetime | None = None
    end: datetime | None = None
    search: str | None = None  # a part of the charger's id or of the action
    sort: str = "timestamp"  # timestamp | chargepoint | source | operationType
    descending: bool = True


@dataclass(frozen=True, slots=True)
class LoggedFrame:
    """A frame of the log with its row id; `action` of a reply is that of its call."""

    id: int
    timestamp: datetime
    cp_id: str
    direction: str
    message_type: int | None
    unique_id: str | None
    action: str | None
    text: str
    protocol: str | None


@dataclass(frozen=True, slots=True)
class RelayRecord:
    """A message an API client gave for a charger, and what became of it."""

    id: int
    uuid: str
    cp_id: str
    protocol: str  # "ocpp1.6" / "ocpp2.0.1": the version it was checked against
    action: str
    unique_id: str  # the client's MessageId
    payload: dict[str, Any]
    source: str
    url: str | None
    send: bool
    status: str  # logged | queued | sending | answered | failed | timeout
    command_id: int | None
    reply: list[Any] | None  # the charger's CALLRESULT or CALLERROR frame
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """What the HTTP networks view keeps beside a site, group or API-made limit."""

    id: str  # the site, group or limit id
    kind: str  # "network", "capacity" or "dr_event"
    site_id: str
    attrs: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """A site's webhook; `sealed_secret` is the secret encrypted (csms.secrets)."""

    site_id: str
    url: str
    sealed_secret: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One plan's webhook delivery: pending until delivered, gone (404), or given up."""

    id: int
    site_id: str
    plan_id: int
    status: str  # pending | delivered | gone | rejected | expired | cancelled | skipped
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    gone: list[list[Any]] | None  # [[cp_id, connector], ...] a 404 ended
    created_at: datetime
    finished_at: datetime | None
    body: str | None = None  # an alert's delivery (plan_id 0): the body to POST as it is


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert (document 002 `/v2/alerts/`): open while `end` is None; `key` names what it is
    about (one open alert per key), `details` its latest amounts."""

    uuid: str
    key: str
    site_id: str | None
    node_id: str | None
    cp_id: str | None
    connector_id: int | None
    name: str
    category: str
    urgency: str
    status: str  # Triggered | Acknowledged | Resolved
    description: str
    details: dict[str, Any]
    notes: str | None
    start: datetime
    end: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Filters of the alerts list; an empty tuple filters nothing. Alerts overlapping
    [start, end] match; `sort` is (field, asc|desc) pairs."""

    start: datetime
    end: datetime
    site_ids: tuple[str, ...] = ()
    node_ids: tuple[str, ...] = ()
    cp_id: str | None = None
    connector_id: int | None = None
    names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    urgencies: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    sort: tuple[tuple[str, str], ...] = ()
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class StationReport:
    """One report a station sent in parts for one requestId; `parts` in station order."""

    cp_id: str
    kind: str
    request_id: int
    parts: list[dict[str, Any]]
    complete: bool
    started_at: datetime
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
    async def is_known(self, cp_id: str) -> bool: ...
    async def set_registration(self, cp_id: str, status: str) -> None: ...
    async def standing(self, cp_id: str) -> Standing: ...
    async def record_refused_boot(self, event: Booted, status: str, now: datetime,
                                  create: bool) -> None: ...
    async def get_charge_point(self, cp_id: str) -> ChargePointRecord | None: ...
    async def list_charge_points(self) -> list[ChargePointRecord]: ...
    chargers_changed: int
    def charger_connectors(self) -> dict[str, frozenset[int]]: ...
    async def save_capabilities(self, cp_id: str, capabilities: dict[str, Any]) -> None: ...
    def capabilities(self, cp_ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...
    async def save_variables(self, cp_id: str, variables: list[dict[str, Any]],
                             now: datetime) -> None: ...
    async def record_status(self, event: StatusChanged) -> None: ...
    async def record_charger_event(self, cp_id: str, kind: str, payload: dict[str, Any],
                                   now: datetime) -> None: ...
    async def save_ev_charging_needs(self, event: EvChargingNeeds, now: datetime) -> None: ...

    # Reports a station sends in parts (csms.store.sqlite_reports)
    async def add_report_part(self, cp_id: str, kind: str, request_id: int,
                              part: dict[str, Any], now: datetime) -> StationReport: ...
    async def station_reports(self, cp_id: str, kind: str,
                              request_id: int | None = None) -> list[StationReport]: ...
    async def variable_instances(self, cp_id: str, component: str,
                                 variable: str) -> dict[str, str | None]: ...

    # Firmware and log transfers asked of a station (csms.store.sqlite_transfers)
    async def add_transfer(self, cp_id: str, family: str, action: str,
                           payload: dict[str, Any], with_request_id: bool,
                           now: datetime) -> TransferRecord: ...
    async def answer_transfer(self, transfer_id: int, payload: dict[str, Any],
                              answer_status: str, file_name: str | None,
                              now: datetime) -> TransferRecord: ...
    async def notify_transfer(self, cp_id: str, family: str, request_id: int | None,
                              status: str, now: datetime) -> TransferRecord | None: ...
    async def get_transfer(self, transfer_id: int) -> TransferRecord | None: ...
    async def list_transfers(self, cp_id: str, family: str | None = None,
                             limit: int = 20) -> list[TransferRecord]: ...

    # Local authorization lists and reservations (csms.store.sqlite_authlist)
    async def local_list(self, cp_id: str) -> LocalListRecord | None: ...
    async def save_local_list(self, cp_id: str, version: int,
                              entries: dict[str, dict[str, Any]], out_of_date: bool,
                              now: datetime) -> None: ...
    async def mark_local_lists_out_of_date(self, now: datetime) -> None: ...
    async def all_id_tags(self) -> dict[str, dict[str, Any]]: ...
    async def add_reservation(self, cp_id: str, connector_id: int | None, id_tag: str,
                              parent_id_tag: str | None, expiry: datetime,
                              now: datetime) -> ReservationRecord: ...
    async def set_reservation_status(self, reservation_id: int, status: str, now: datetime, *,
                                     cp_id: str | None = None,
                                     charger_status: str | None = None,
                                     transaction_id: str | None = None,
                                     only_open: bool = False) -> ReservationRecord | None: ...
    async def expire_reservations(self, now: datetime) -> int: ...
    async def get_reservation(self, reservation_id: int) -> ReservationRecord | None: ...
    async def list_reservations(self, cp_id: str | None = None,
                                open_only: bool = False) -> list[ReservationRecord]: ...

    # Authorization
    async def get_id_tag(self, id_tag: str) -> IdTagInfo | None: ...
    async def open_sessions_of_tag(self, id_tag: str) -> list[tuple[str, int]]: ...
    async def put_id_tag(self, id_tag: str, status: str, expiry: datetime | None = None,
                         parent_id_tag: str | None = None) -> None: ...

    # Transactions and meter values
    async def start_transaction(self, event: TransactionStarted) -> tuple[int, bool]: ...
    async def add_meter_values(self, event: Metered) -> None: ...
    async def end_transaction(self, event: TransactionEnded) -> bool: ...
    async def apply_transaction_event(self, event: TransactionEvent201) -> bool: ...
    async def seq_state(self, cp_id: str, ocpp_tx_id: str) -> SeqState | None: ...
    async def save_transaction_status(self, cp_id: str, ocpp_tx_id: str,
                                      answer: dict[str, Any], now: datetime) -> None: ...
    async def list_sessions(self, active_only: bool = False) -> list[SessionRecord]: ...
    async def get_session(self, cp_id: str, ocpp_tx_id: str) -> SessionRecord | None: ...
    async def count_meter_values(self, cp_id: str | None = None) -> int: ...
    # Session costs (sqlite_costs)
    async def energy_readings(self, session_id: int) -> list[tuple[datetime, float]]: ...
    async def variable_reports(self, cp_id: str, component: str) -> list[dict[str, Any]]: ...
    async def save_session_cost(self, session_id: int, total: Decimal, currency: str,
                                final: bool) -> StoredCost | None: ...

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

    # The HTTP session view (csms.store.sqlite_api_sessions)
    async def page_api_sessions(self, query: SessionQuery, limit: int,
                                offset: int) -> tuple[list[ApiSessionRecord], int]: ...
    async def get_api_session(self, session_id: int) -> ApiSessionRecord | None: ...
    async def open_session_on(self, cp_id: str,
                              connector_id: int) -> ApiSessionRecord | None: ...
    async def open_session_of_vehicle(self, vehicle_id: str) -> ApiSessionRecord | None: ...
    async def open_session_details(self) -> list[ApiSessionRecord]: ...
    async def max_session_id(self) -> int: ...
    async def save_session_details(self, session_id: int, fields: dict[str, Any],
                                   now: datetime) -> None: ...
    async def forget_session_details(self, session_id: int) -> None: ...
    async def start_api_session(self, cp_id: str, connector_id: int, ocpp_tx_id: str | None,
                                id_tag: str | None, started_at: datetime,
                                meter_start_wh: float | None, fields: dict[str, Any],
                                now: datetime) -> int: ...
    async def end_api_session(self, session_id: int, stopped_at: datetime,
                              meter_stop_wh: float | None, reason: str,
                              now: datetime) -> None: ...
    async def page_meter_values(self, query: MeterQuery, limit: int,
                                offset: int) -> tuple[list[MeterValueRecord], int]: ...
    async def meter_series(self, query: MeterQuery) -> list[MeterValueRecord]: ...
    async def page_plan_results(self, site_ids: tuple[str, ...], connectors: tuple[str, ...] | None,
                                latest_only: bool, start: datetime | None, end: datetime | None,
                                limit: int, offset: int,
                                transaction_id: str | None = None,
                                ) -> tuple[list[PlanResultRecord], int]: ...
    async def plan_result(self, plan_id: int, connector: str) -> PlanResultRecord | None: ...
    async def plan_keys_after(self, plan_id: int) -> list[tuple[int, str]]: ...
    async def plan_history(self, site_id: str, start: datetime,
                           end: datetime) -> list[tuple[int, datetime, dict[str, Any]]]: ...
    # Inventory: charge points and connectors as the HTTP API sees them (csms.inventory)
    async def sync_inventory(self, now: datetime) -> None: ...
    async def list_inventory_charge_points(self, directory: SiteDirectory, query: ChargePointQuery
                                           ) -> tuple[list[dict[str, Any]], int]: ...
    async def get_inventory_charge_point(self, directory: SiteDirectory, uuid: str
                                         ) -> dict[str, Any] | None: ...
    async def find_inventory_uuid(self, cp_id: str) -> str | None: ...
    async def connector_statuses(self, cp_ids: Iterable[str]
                                 ) -> dict[str, list[dict[str, Any]]]: ...
    async def create_inventory_charge_point(self, uuid: str, cp_id: str, values: dict[str, Any],
                                            now: datetime) -> str: ...
    async def update_inventory_charge_point(self, uuid: str, cp_id: str | None,
                                            values: dict[str, Any], now: datetime) -> str: ...
    async def delete_inventory_charge_point(self, uuid: str) -> bool: ...
    async def list_inventory_connectors(self, directory: SiteDirectory, query: ConnectorQuery
                                        ) -> tuple[list[dict[str, Any]], int]: ...
    async def get_inventory_connector(self, directory: SiteDirectory, uuid: str
                                      ) -> dict[str, Any] | None: ...
    async def create_inventory_connector(self, cp_uuid: str, connector_id: int,
                                         values: dict[str, Any], now: datetime) -> str: ...
    async def update_inventory_connector(self, uuid: str, values: dict[str, Any],
                                         now: datetime) -> bool: ...
    async def delete_inventory_connector(self, uuid: str) -> bool: ...
    async def charger_facts(self, cp_id: str) -> ChargerFacts | None: ...
    async def list_charger_facts(self) -> dict[str, ChargerFacts]: ...
    # The message log through the API, and messages relayed to chargers (sqlite_relay)
    async def page_frames(self, query: FrameQuery, limit: int,
                          offset: int) -> tuple[list[LoggedFrame], int]: ...
    async def stored_charge_point_ids(self) -> list[str]: ...
    async def get_command(self, command_id: int) -> CommandRecord | None: ...
    async def add_relay_message(self, uuid: str, cp_id: str, protocol: str, action: str,
                                unique_id: str, payload: dict[str, Any], source: str,
                                url: str | None, send: bool, status: str,
                                now: datetime) -> RelayRecord: ...
    async def update_relay_message(self, uuid: str, status: str, command_id: int | None,
                                   reply: list[Any] | None, now: datetime) -> None: ...
    async def get_relay_message(self, uuid: str) -> RelayRecord | None: ...
    async def queued_relay_messages(self, cp_id: str) -> list[RelayRecord]: ...
    async def cp_ids_with_queued_messages(self) -> list[str]: ...
    async def fail_interrupted_relay_messages(self, now: datetime) -> int: ...

    # Webhooks and their outbox (sqlite_webhooks)
    async def put_webhook(self, site_id: str, url: str, sealed_secret: str,
                          now: datetime) -> None: ...
    async def delete_webhook(self, site_id: str) -> bool: ...
    async def list_webhooks(self) -> list[WebhookRecord]: ...
    async def pending_outbox_heads(self) -> list[OutboxRecord]: ...
    async def get_outbox(self, outbox_id: int) -> OutboxRecord | None: ...
    async def list_outbox(self, site_id: str | None = None,
                          limit: int = 100) -> list[OutboxRecord]: ...
    async def finish_outbox(self, outbox_id: int, status: str, last_status: int | None,
                            last_error: str | None, gone: list[list[Any]] | None,
                            now: datetime, attempted: bool = True) -> None: ...
    async def retry_outbox(self, outbox_id: int, next_attempt_at: datetime,
                           last_status: int | None, last_error: str | None) -> None: ...
    async def get_plan(self, plan_id: int) -> dict[str, Any] | None: ...
    async def prune_outbox(self, older_than: datetime) -> int: ...

    # Alerts (sqlite_alerts); `delivery` is a webhook body queued with the write if the
    # alert's site has a webhook
    async def put_alert(self, alert: AlertRecord, delivery: str | None = None) -> None: ...
    async def get_alert(self, alert_uuid: str) -> AlertRecord | None: ...
    async def open_alerts(self) -> list[AlertRecord]: ...
    async def list_alerts(self, query: AlertQuery) -> tuple[list[AlertRecord], int]: ...
    async def prune_alerts(self, older_than: datetime) -> int: ...

    # API keys (hashed)
    async def add_api_key(self, key_hash: str, scopes: tuple[str, ...],
                          now: datetime) -> int: ...
    async def revoke_api_key(self, key_id: int, now: datetime) -> bool: ...
    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...
    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    # Catalog of the HTTP side: id tags (by UUID), vehicles, configurations, OCPP settings
    async def add_id_tag(self, tag: IdTagRecord) -> None: ...
    async def update_id_tag(self, tag: IdTagRecord) -> bool: ...
    async def delete_id_tag(self, uuid: str) -> bool: ...
    async def find_id_tag(self, uuid: str) -> IdTagRecord | None: ...
    async def list_id_tags(self, query: IdTagQuery, limit: int,
                           offset: int) -> tuple[list[IdTagRecord], int]: ...
    async def id_tag_custom_groups(self) -> list[str]: ...
    async def id_tag_priorities(self) -> dict[str, int]: ...
    async def save_vehicle(self, vehicle: VehicleRecord) -> None: ...
    async def delete_vehicle(self, uuid: str) -> bool: ...
    async def get_vehicle(self, uuid: str) -> VehicleRecord | None: ...
    async def all_vehicles(self) -> list[VehicleRecord]: ...
    async def list_vehicles(self, query: VehicleQuery, limit: int,
                            offset: int) -> tuple[list[VehicleRecord], int]: ...
    async def save_configuration(self, config: ConfigurationRecord) -> None: ...
    async def delete_configuration(self, uuid: str) -> bool: ...
    async def all_configurations(self) -> list[ConfigurationRecord]: ...
    async def save_ocpp_settings(self, settings: OcppSettingsRecord) -> None: ...
    async def get_ocpp_settings(self, scope: str) -> OcppSettingsRecord | None: ...
    def charge_point_ids(self) -> list[str]: ...
    # Networks view: records beside site specs, and deleting a site
    async def save_network_record(self, record_id: str, kind: str, site_id: str,
                                  attrs: dict[str, Any], now: datetime) -> None: ...
    async def list_network_records(self, site_id: str | None = None
                                   ) -> list[NetworkRecord]: ...
    async def delete_network_records(self, record_ids: list[str]) -> int: ...
    async def delete_site(self, site_id: str) -> bool: ...
    async def site_times(self) -> dict[str, datetime]: ...
