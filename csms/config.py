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


class HttpConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8080


class StoreConfig(_Section):
    path: str = "loadstar.db"
    frame_log_retention_days: float = 7.0


class LogConfig(_Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: str = "info"


class Config(BaseModel):
    """All settings; unknown keys are errors so typos do not pass silently."""

    model_config = ConfigDict(extra="allow")

    ocpp: OcppConfig = Field(default_factory=OcppConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    log: LogConfig = Field(default_factory=LogConfig)


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
