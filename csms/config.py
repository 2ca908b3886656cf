"""Loadstar configuration, read from a TOML file into validated settings."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Subprotocol = Literal["ocpp2.0.1", "ocpp1.6"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OcppConfig(_Section):
    host: str = "0.0.0.0"
    port: int = 9000
    subprotocols: list[Subprotocol] = Field(default_factory=lambda: ["ocpp2.0.1", "ocpp1.6"])
    heartbeat_interval_s: int = 300
    call_timeout_s: float = 30.0
    max_frame_bytes: int = 65536
    allow_unknown_chargers: bool = True
    unknown_charger_status: Literal["Rejected", "Pending"] = "Rejected"
    authorize_all: bool = True
    meter_sample_interval_s: int = 60
    meter_measurands: list[str] = Field(
        default_factory=lambda: [
            "Energy.Active.Import.Register",
            "Power.Active.Import",
            "Current.Import",
            "SoC",
        ]
    )
    configure_after_boot: bool = True
    # Charge point ids whose firmware breaks the schemas: violations are logged, not refused.
    relaxed_validation: list[str] = Field(default_factory=list)
    ping_interval_s: float | None = 30.0
    tls_cert: str = ""
    tls_key: str = ""
    require_auth: bool = False
    # One charger's share of the server: messages a second it may send (bursts up to
    # `message_burst`); past that its frames wait, so a flood slows only the flooder.
    max_messages_per_s: float = 20.0
    message_burst: int = 200
    # Per source address: websocket upgrades, and failed Basic-auth attempts, before 429.
    upgrades_per_address_per_s: float = 10.0
    upgrade_burst: int = 200
    failed_auth_per_address_per_min: float = 6.0
    failed_auth_burst: int = 10
    # Password checks (scrypt) run on this many threads; more waiting than
    # `max_pending_auth` are refused with 503 rather than queued.
    auth_workers: int = 2
    max_pending_auth: int = 32
    max_pending_auth_per_address: int = 4


class HttpConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8080


class StoreConfig(_Section):
    path: str = "loadstar.db"
    frame_log_retention_days: float = 7.0
    plan_retention_days: float = 30.0
    command_retention_days: float = 90.0


class LogConfig(_Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: str = "info"


class LimitSpec(_Section):
    """A limit over time on a site or group (see loadmgmt.limits for the precedence)."""

    kind: Literal["default", "scheduled", "capacity", "dr_event", "external"]
    power_kw: float | None = None
    current_a: float | None = None
    start_cron: str | None = None  # scheduled: in the site's time zone
    end_cron: str | None = None
    start: str | None = None  # capacity / dr_event / external: ISO 8601
    end: str | None = None


class GroupSpec(_Section):
    id: str
    parent: str | None = None  # another group's id; the site when absent
    max_power_kw: float | None = None
    max_current_a: float | None = None
    chargers: list[str] = Field(default_factory=list)  # ids or fnmatch patterns
    limits: list[LimitSpec] = Field(default_factory=list)


class SiteSpec(_Section):
    id: str
    max_power_kw: float
    max_current_a: float | None = None
    buffer: float = 0.02
    timezone: str = "UTC"
    objective: Literal["load_sharing", "fleet", "off"] = "load_sharing"
    min_power_kw: float = 1.0
    power_step_kw: float | None = None
    fallback_power_kw: float | None = None
    floors: Literal["fit", "zero"] = "fit"
    chargers: list[str] = Field(default_factory=list)  # ids or fnmatch patterns
    groups: list[GroupSpec] = Field(default_factory=list)
    limits: list[LimitSpec] = Field(default_factory=list)


class ChargerSpec(_Section):
    """Electrical facts of the chargers whose id matches `match` (first match wins)."""

    match: str = "*"
    current_type: Literal["DC", "AC_phase1", "AC_phase3_LN", "AC_phase3_LL"] = "AC_phase3_LN"
    voltage_v: float = 230.0
    power_factor: float = 1.0
    phases: list[int] = Field(default_factory=lambda: [1, 2, 3])
    max_power_kw: float = 22.0
    max_current_a: float | None = 32.0
    min_current_a: float = 6.0
    priority: int = 3
    # Unit of the profiles sent; None: amps for AC chargers that accept them, else watts.
    unit: Literal["A", "W"] | None = None


class LoadConfig(_Section):
    enabled: bool = True
    default_site: str = "default"
    coalesce_s: float = 0.5
    solve_time_limit_s: float = 0.5
    workers: int = 1
    # TxProfiles lapse after this long unless renewed, so chargers fall back to their floor.
    profile_validity_s: float = 300.0
    hysteresis_a: float = 1.0
    hysteresis_kw: float = 0.5
    min_update_interval_s: float = 30.0
    tx_profile_stack_level: int = 1
    tx_default_stack_level: int = 0
    # Accepted but not followed: measured draw above the limit by this much after a few
    # meter intervals flags the charger.
    ignore_margin_kw: float = 1.0
    ignore_after_samples: int = 2
    # Until a charger is seen drawing what a limit allows, keep room for its car's maximum
    # (its session, and the site's largest such idle connector) as far as minimums allow.
    guard_unproven: bool = True
    # A charger offline this long (and with no open session) leaves the plans, and so its
    # connectors' floors stop being reserved; it rejoins with its first message.
    forget_offline_after_s: float = 7 * 86400.0


class Config(BaseModel):
    """All settings; unknown keys are errors so typos do not pass silently."""

    model_config = ConfigDict(extra="allow")

    ocpp: OcppConfig = Field(default_factory=OcppConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
    sites: list[SiteSpec] = Field(default_factory=list)
    chargers: list[ChargerSpec] = Field(default_factory=list)


def load_config(path: str | Path | None) -> Config:
    """Read `path` (TOML) into a Config; a missing path gives the embedded defaults."""
    if path is None:
        return Config()
    p = Path(path)
    if not p.exists():
        return Config()
    with p.open("rb") as f:
        data = tomllib.load(f)
    config = Config.model_validate(data)
    # A relative database path is relative to the config file, not the working directory.
    db = Path(config.store.path)
    if not db.is_absolute():
        config.store.path = str((p.parent / db).resolve())
    return config
