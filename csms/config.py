"""Loadstar configuration, read from a TOML file into validated settings.

Validators of a whole section raise `_at(key, problem)` for a key below it, so the message
names the full dotted key (see `_problem`).
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import list_currencies
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from csms.clock import parse_iso

Subprotocol = Literal["ocpp2.0.1", "ocpp1.6"]
Port = Annotated[int, Field(ge=0, le=65535)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Id = Annotated[str, Field(min_length=1)]
# A price: exact decimal, written out as a string so a site spec stays JSON (the store keeps
# sites saved through the API as JSON documents).
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False), PlainSerializer(str, return_type=str)]
# A time of day, local to the site: "HH:MM" from 00:00 to 23:59.
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
LEVELS = ("debug", "info", "warning", "error", "critical")
# The shortest default silence before a session stops being planned as charging (s).
SILENT_AT_LEAST_S = 900.0


class ConfigError(Exception):
    """A configuration that cannot be used: one `file: key: problem` line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _at(key: str, problem: str) -> PydanticCustomError:
    """A problem with `key`, relative to the model whose validator raises it."""
    return PydanticCustomError("config_key", "{key}: {problem}", {"key": key, "problem": problem})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OcppConfig(_Section):
    host: str = "0.0.0.0"
    port: Port = 9000
    subprotocols: list[Subprotocol] = Field(default_factory=lambda: ["ocpp2.0.1", "ocpp1.6"])
    heartbeat_interval_s: PositiveInt = 300
    call_timeout_s: Positive = 30.0
    max_frame_bytes: PositiveInt = 65536
    allow_unknown_chargers: bool = True
    unknown_charger_status: Literal["Rejected", "Pending"] = "Rejected"
    # The interval a Pending or Rejected boot is answered with: when to boot again.
    boot_retry_interval_s: PositiveInt = 60
    authorize_all: bool = True
    # 2.0.1 master pass (C16): tokens whose group (parentIdTag) is this id may stop any
    # transaction on a station, not start one; set on each 2.0.1 station after its boot
    # (AuthCtrlr.MasterPassGroupId). Empty: no master pass.
    master_pass_group: str = ""
    # A tag of the id-tag list already in a transaction elsewhere is answered ConcurrentTx
    # (on the same charger it is not: its driver may present it to stop). True allows it.
    allow_concurrent_tx: bool = False
    meter_sample_interval_s: NonNegativeInt = 60  # 0: no periodic samples
    meter_measurands: list[str] = Field(
        default_factory=lambda: [
            "Energy.Active.Import.Register",
            "Power.Active.Import",
            "Current.Import",
            "SoC",
        ]
    )
    configure_after_boot: bool = True
    # Chargers configured after their boot at once (the rest wait their turn).
    post_boot_concurrency: PositiveInt = 50
    # Charge point ids whose firmware breaks the schemas: violations are logged, not refused.
    relaxed_validation: list[str] = Field(default_factory=list)
    ping_interval_s: Positive | None = 30.0
    tls_cert: str = ""
    tls_key: str = ""
    require_auth: bool = False
    # One charger's share of the server: messages a second it may send (bursts up to
    # `message_burst`); past that its frames wait, so a flood slows only the flooder.
    max_messages_per_s: Positive = 20.0
    message_burst: PositiveInt = 200
    # Per source address, websocket upgrades before 429. Generous: a whole car park behind
    # one NAT or APN gateway reconnects from one address after a restart.
    upgrades_per_address_per_s: Positive = 200.0
    upgrade_burst: PositiveInt = 2000
    # Failed Basic-auth attempts before 429: per charge point id from an address (a guesser),
    # and per address over all ids (a sprayer). Kept per id so that one misconfigured charger
    # does not lock out the others behind the same address.
    failed_auth_per_address_per_min: Positive = 6.0
    failed_auth_burst: PositiveInt = 10
    failed_auth_per_address_all_ids_per_min: Positive = 60.0
    failed_auth_all_ids_burst: PositiveInt = 100
    # Password checks (scrypt) run on this many threads; more waiting than
    # `max_pending_auth` (or than `max_pending_auth_per_address` from one address) are
    # refused with 503/429 rather than queued.
    auth_workers: PositiveInt = 2
    max_pending_auth: PositiveInt = 32
    max_pending_auth_per_address: PositiveInt = 8
    # Running cost of a 2.0.1 transaction on a site with a tariff is sent as CostUpdated this
    # often (s); 0: never (the Ended answer still carries the final totalCost).
    cost_update_interval_s: NonNegative = 300.0

    @model_validator(mode="after")
    def _tls_pair(self) -> OcppConfig:
        if bool(self.tls_cert) != bool(self.tls_key):
            given, missing = ("tls_cert", "tls_key") if self.tls_cert else ("tls_key", "tls_cert")
            raise _at(missing, f"required with {given}")
        return self


class HttpConfig(_Section):
    enabled: bool = True
    host: Id = "127.0.0.1"
    port: Port = 8080


class StoreConfig(_Section):
    path: Id = "loadstar.db"
    frame_log_retention_days: NonNegative = 7.0
    plan_retention_days: NonNegative = 30.0
    command_retention_days: NonNegative = 90.0


class LogConfig(_Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: str = "info"

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in LEVELS:
            raise ValueError(f"must be one of {', '.join(LEVELS)}, got {value!r}")
        return value


class CaConfig(_Section):
    """Loadstar's certificate authority for chargers' certificates (SignCertificate)."""

    # PEM files of the CA's certificate and key, made on first start when neither exists (the
    # key with mode 0600). Empty: beside the database (<store.path>.ca.pem, .ca-key.pem).
    cert: str = ""
    key: str = ""
    common_name: Id = "Loadstar Charger CA"
    organization: Id = "Loadstar"
    validity_days: PositiveInt = 3650
    # Certificates issued to chargers (never beyond the CA's own end).
    issued_validity_days: PositiveInt = 365

    @model_validator(mode="after")
    def _pair(self) -> CaConfig:
        if bool(self.cert) != bool(self.key):
            given, missing = ("cert", "key") if self.cert else ("key", "cert")
            raise _at(missing, f"required with {given}")
        return self


class CertificatesConfig(_Section):
    """Where certificate questions of chargers go (GetCertificateStatus, Get15118EVCertificate)."""

    # ISO 15118 contract certificates: EVs' EXI requests are POSTed here. Empty: answered Failed.
    contract_certificate_url: str = ""
    # OCSP responders and the contract endpoint must answer within this.
    http_timeout_s: Positive = 10.0


class LimitSpec(_Section):
    """A limit over time on a site or group (see loadmgmt.limits for the precedence)."""

    kind: Literal["default", "scheduled", "capacity", "dr_event", "external"]
    power_kw: NonNegative | None = None
    current_a: NonNegative | None = None
    start_cron: str | None = None  # scheduled: in the site's time zone
    end_cron: str | None = None
    start: str | None = None  # capacity / dr_event / external: ISO 8601
    end: str | None = None
    # dr_event only: kW taken off what the lower sources allow (a "Load Amount" curtailment).
    reduction_kw: NonNegative | None = None
    # A limit made through the HTTP API (a capacity or DR event): its UUID, to address it.
    id: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> LimitSpec:
        # The planner skips a limit it cannot place in time; say so now instead.
        if self.reduction_kw is not None and self.kind != "dr_event":
            raise _at("reduction_kw", "only a dr_event limit is a reduction")
        if self.power_kw is None and self.current_a is None and self.reduction_kw is None:
            raise _at("power_kw", "a limit needs power_kw or current_a"
                      + (" or reduction_kw" if self.kind == "dr_event" else ""))
        if self.kind == "scheduled":
            for key in ("start_cron", "end_cron"):
                expr = getattr(self, key)
                if not expr:
                    raise _at(key, "required for a scheduled limit")
                if not croniter.is_valid(expr):
                    raise _at(key, f"not a cron expression: {expr!r}")
        elif self.kind != "default":
            times = {}
            for key in ("start", "end"):
                text = getattr(self, key)
                if not text:
                    raise _at(key, f"required for a {self.kind} limit")
                try:
                    times[key] = parse_iso(text)
                except ValueError:
                    raise _at(key, f"not an ISO 8601 time: {text!r}") from None
            if times["end"] <= times["start"]:
                raise _at("end", "must be after start")
        return self


class GroupSpec(_Section):
    id: Id
    parent: str | None = None  # another group's id; the site when absent
    max_power_kw: Positive | None = None
    max_current_a: Positive | None = None
    chargers: list[str] = Field(default_factory=list)  # ids or fnmatch patterns
    limits: list[LimitSpec] = Field(default_factory=list)


def minute_of_day(hhmm: str) -> int:
    """Minutes since midnight of an "HH:MM" time."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class TariffBand(_Section):
    """Prices for a time of day in the site's time zone, from `start` to `end` (an `end` at
    or before `start` runs past midnight: 22:00-06:00); unset prices are the tariff's."""

    start: ClockTime
    end: ClockTime
    energy_price_per_kwh: Money | None = None
    time_price_per_hour: Money | None = None

    def minutes(self) -> set[int]:
        """The minutes of the day (0..1439) the band covers."""
        start, end = minute_of_day(self.start), minute_of_day(self.end)
        return set(range(start, end)) if start < end else \
            set(range(start, 24 * 60)) | set(range(0, end))

    @model_validator(mode="after")
    def _not_empty(self) -> TariffBand:
        if self.start == self.end:
            raise _at("end", "a band from a time to the same time is empty; leave the band out"
                             " to price the whole day at the tariff's prices")
        return self


class TariffSpec(_Section):
    """What a site's sessions cost: energy, time and a fee per session, in `currency`."""

    currency: Annotated[str, Field(min_length=3, max_length=3)]
    energy_price_per_kwh: Money = Decimal(0)
    time_price_per_hour: Money = Decimal(0)
    session_fee: Money = Decimal(0)
    bands: list[TariffBand] = Field(default_factory=list)

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        if value not in list_currencies():
            raise ValueError(f"not an ISO 4217 currency code: {value!r}")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> TariffSpec:
        # A minute priced twice would make the order of bands matter; say so instead.
        seen: dict[int, int] = {}
        for i, band in enumerate(self.bands):
            for minute in band.minutes():
                if minute in seen:
                    raise _at(f"bands[{i}]", f"overlaps bands[{seen[minute]}] at "
                                             f"{minute // 60:02d}:{minute % 60:02d}")
                seen[minute] = i
        return self


class SiteSpec(_Section):
    id: Id
    max_power_kw: Positive
    max_current_a: Positive | None = None
    buffer: Annotated[float, Field(ge=0, lt=1)] = 0.02
    timezone: str = "UTC"
    objective: Literal["load_sharing", "fleet", "off"] = "load_sharing"
    min_power_kw: NonNegative = 1.0
    power_step_kw: Positive | None = None
    fallback_power_kw: NonNegative | None = None
    floors: Literal["fit", "zero"] = "fit"
    # A car drawing well below its limit is capped near its draw, and the rest lent to others,
    # after this long (at once when it drew its limit and fell from it).
    lend_after_s: NonNegative = 120.0
    # Fleet objective: a session that declares no departure is planned to leave this long
    # after it started.
    default_dwell_h: Annotated[float, Field(gt=0, le=168)] = 8.0
    # Connectors we cannot limit: "close" makes one unavailable while its next car would put a
    # node over its limit (and available again when room comes back); "alert_only" leaves them
    # open and only alerts when the site goes over.
    uncontrollable: Literal["close", "alert_only"] = "close"
    # How per-phase A limits add currents: "arithmetic" (magnitudes: safe for any wiring) or
    # "phasor" (as the chargers' declared phases imply: line-to-line loads add as phasors).
    wiring: Literal["arithmetic", "phasor"] = "arithmetic"
    # A delta-wye transformer feeding the site (wiring = "phasor"): its primary line-current
    # limit in primary amps, and its line-to-line primary and secondary voltages.
    transformer: Literal["delta_wye"] | None = None
    transformer_primary_a: Positive | None = None
    transformer_primary_v: Positive | None = None
    transformer_secondary_v: Positive | None = None
    chargers: list[str] = Field(default_factory=list)  # ids or fnmatch patterns
    groups: list[GroupSpec] = Field(default_factory=list)
    limits: list[LimitSpec] = Field(default_factory=list)
    # What charging here costs; None: sessions here carry no cost.
    tariff: TariffSpec | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _transformer(self) -> SiteSpec:
        """A transformer needs phasor wiring, its primary limit and both voltages."""
        if self.transformer is None:
            return self
        if self.wiring != "phasor":
            raise _at("wiring", 'must be "phasor" for a site with a transformer')
        for key in ("transformer_primary_a", "transformer_primary_v",
                    "transformer_secondary_v"):
            if getattr(self, key) is None:
                raise _at(key, "required for a site with a transformer")
        return self

    @model_validator(mode="after")
    def _tree(self) -> SiteSpec:
        """Group ids are unique, and parents are groups of this site with no cycle."""
        parents: dict[str, str | None] = {}
        for i, g in enumerate(self.groups):
            if g.id in parents:
                raise _at(f"groups[{i}].id", f"duplicate group id {g.id!r}")
            if g.id == self.id:
                raise _at(f"groups[{i}].id", f"{g.id!r} is the site's own id")
            parents[g.id] = g.parent
        for i, g in enumerate(self.groups):
            if g.parent is not None and g.parent not in parents and g.parent != self.id:
                raise _at(f"groups[{i}].parent", f"no group {g.parent!r} in site {self.id!r}")
            seen, node = {g.id}, g.parent
            while node is not None and node in parents:
                if node in seen:
                    raise _at(f"groups[{i}].parent", f"group {g.id!r} is its own ancestor")
                seen.add(node)
                node = parents[node]
        return self


class ChargerSpec(_Section):
    """Electrical facts of the chargers whose id matches `match` (first match wins)."""

    match: str = "*"
    current_type: Literal["DC", "AC_phase1", "AC_phase3_LN", "AC_phase3_LL"] = "AC_phase3_LN"
    voltage_v: Positive = 230.0
    power_factor: Annotated[float, Field(gt=0, le=1)] = 1.0
    phases: list[Annotated[int, Field(ge=1, le=3)]] = Field(
        default_factory=lambda: [1, 2, 3], min_length=1, max_length=3)
    max_power_kw: Positive = 22.0
    max_current_a: Positive | None = 32.0
    min_current_a: NonNegative = 6.0
    priority: Annotated[int, Field(ge=0, le=5)] = 3  # 0 opts out, 1 very high .. 5 very low
    # Unit of the profiles sent; None: amps for AC chargers that accept them, else watts.
    unit: Literal["A", "W"] | None = None
    # Whether charging profiles limit these chargers: None learns it from what they report
    # and answer; false counts them as unlimitable whatever they say; true overrides what
    # they report, and asks once more at start one that answered a profile NotImplemented
    # before (if it answers so again, that stands until its firmware changes).
    controllable: bool | None = None

    @field_validator("phases")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"phases repeat: {value}")
        return value


class LoadConfig(_Section):
    enabled: bool = True
    default_site: Id = "default"
    coalesce_s: NonNegative = 0.5
    solve_time_limit_s: Positive = 0.5
    workers: PositiveInt = 1
    # TxProfiles lapse after this long unless renewed, so chargers fall back to their floor.
    profile_validity_s: Positive = 300.0
    hysteresis_a: NonNegative = 1.0
    hysteresis_kw: NonNegative = 0.5
    min_update_interval_s: NonNegative = 30.0
    tx_profile_stack_level: NonNegativeInt = 1
    tx_default_stack_level: NonNegativeInt = 0
    # Accepted but not followed: measured draw above the limit by this much after a few
    # meter intervals flags the charger.
    ignore_margin_kw: NonNegative = 1.0
    ignore_after_samples: PositiveInt = 2
    # Until a charger is seen drawing what a limit allows, keep room for its car's maximum
    # (its session, and the site's largest such idle connector) as far as minimums allow.
    guard_unproven: bool = True
    # A charger offline this long (and with no open session) leaves the plans, and so its
    # connectors' floors stop being reserved; it rejoins with its first message.
    forget_offline_after_s: Positive = 7 * 86400.0
    # A session on a connected charger that has said nothing about it (status, meter values,
    # transaction event) this long is no longer planned as charging: it counts at what it may
    # draw (its TxProfile until that lapses, then its floor) and gets no share. 0: never.
    # Unset: three missed meter readings (ocpp.meter_sample_interval_s), at least 900 s, so
    # a car paused by its owner or a slow meter is not taken for a dead one; 0 when no
    # periodic readings are asked for (silence is then normal).
    connector_silent_after_s: NonNegative | None = None


class Config(BaseModel):
    """All settings; unknown keys are errors so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    ocpp: OcppConfig = Field(default_factory=OcppConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
    ca: CaConfig = Field(default_factory=CaConfig)
    certificates: CertificatesConfig = Field(default_factory=CertificatesConfig)
    sites: list[SiteSpec] = Field(default_factory=list)
    chargers: list[ChargerSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _silence(self) -> Config:
        """Derive `load.connector_silent_after_s` from the meter interval when it is unset."""
        if self.load.connector_silent_after_s is None:
            interval = self.ocpp.meter_sample_interval_s
            self.load.connector_silent_after_s = \
                max(SILENT_AT_LEAST_S, 3.0 * interval) if interval else 0.0
        return self

    @model_validator(mode="after")
    def _unique_nodes(self) -> Config:
        """Sites and groups are nodes of one tree each, but their ids share one namespace."""
        owner: dict[str, str] = {}
        for i, site in enumerate(self.sites):
            if site.id in owner:
                raise _at(f"sites[{i}].id", f"duplicate id {site.id!r} (also {owner[site.id]})")
            owner[site.id] = f"sites[{i}]"
        for i, site in enumerate(self.sites):
            for j, group in enumerate(site.groups):
                key = f"sites[{i}].groups[{j}]"
                if group.id in owner:
                    raise _at(f"{key}.id", f"duplicate id {group.id!r} (also {owner[group.id]})")
                owner[group.id] = key
        return self


def load_config(path: str | Path | None) -> Config:
    """Read `path` (TOML) into a Config; None gives the embedded defaults.

    Raises ConfigError naming the file (and the key or line) for anything it cannot use.
    """
    if path is None:
        return Config()
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found"]) from None
    except OSError as e:
        raise ConfigError([f"{p}: cannot read: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{p}: not UTF-8 text: {e.reason}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{p}: {_toml_problem(str(e))}"]) from None
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError([f"{p}: {line}" for line in problems(e)]) from None
    # A relative database path is relative to the config file, not the working directory.
    db = Path(config.store.path)
    if not db.is_absolute():
        config.store.path = str((p.parent / db).resolve())
    for key in ("cert", "key"):
        named = getattr(config.ca, key)
        if named and not Path(named).is_absolute():
            setattr(config.ca, key, str((p.parent / named).resolve()))
    return config


def _toml_problem(message: str) -> str:
    """'line N: what' from tomllib's 'what (at line N, column C)'."""
    m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
    if m is None:
        return f"invalid TOML: {message}"
    return f"line {m[2]}: invalid TOML: {m[1]} (column {m[3]})"


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problems(error: ValidationError) -> list[str]:
    """Each problem pydantic found, as 'dotted.key: problem'."""
    return [_problem(err) for err in error.errors()]


def _problem(err: Any) -> str:
    """One pydantic error as 'dotted.key: problem'."""
    loc, kind, msg = tuple(err["loc"]), err["type"], str(err["msg"])
    if kind == "extra_forbidden":
        return f"{_dotted(loc)}: unknown {'section' if len(loc) == 1 else 'key'}"
    if kind == "missing":
        return f"{_dotted(loc)}: required key missing"
    if kind == "config_key":
        ctx = err["ctx"]
        head = _dotted(loc)
        return f"{head + '.' if head else ''}{ctx['key']}: {ctx['problem']}"
    if kind == "value_error":
        return f"{_dotted(loc) or '(top level)'}: {msg.removeprefix('Value error, ')}"
    value = err.get("input")
    got = f", got {value!r}" if isinstance(value, str | int | float | bool) else ""
    return f"{_dotted(loc) or '(top level)'}: {msg[:1].lower() + msg[1:]}{got}"
