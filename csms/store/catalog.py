"""Records of the catalog tables (id tags, vehicles, configurations, OCPP settings) and the
list queries the HTTP views page in SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class IdTagRecord:
    """An id tag: what Authorize answers (status, expiry, parent) and the seed-002 fields."""

    uuid: str
    value: str
    status: str = "Accepted"
    expiry: datetime | None = None
    parent_id_tag: str | None = None
    priority: int | None = 3
    group: str | None = None
    vehicle_id: str | None = None
    list_version: float | None = None
    custom_group: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IdTagQuery:
    """Filters of `GET /v2/id_tags/`: each list matches any of its values (empty: all)."""

    value: str | None = None
    custom_groups: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    groups: tuple[str, ...] = ()
    vehicle_ids: tuple[str, ...] = ()
    search: str | None = None
    sort: tuple[str, str] | None = None  # (field, "asc" | "desc")


@dataclass(frozen=True, slots=True)
class VehicleRecord:
    """A vehicle (seed 002 section Vehicles); power kW, energy kWh, charge in %."""

    uuid: str
    name: str
    vin: str | None = None
    customer_vehicle_id: str | None = None
    departure_time: datetime | None = None
    battery_capacity_kwh: float | None = None
    location: str | None = None
    max_charging_power_kw: float | None = None
    state_of_charge: float = 0.0
    target_state_of_charge: float = 100.0
    group: str | None = None
    inside_depot: str | None = None
    make: str | None = None
    model: str | None = None
    year: int | None = None
    license_plate: str | None = None
    active: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VehicleQuery:
    """Filters of `GET /v2/vehicles/`."""

    group: str | None = None
    updated_after: datetime | None = None
    search: str | None = None
    sort: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ConfigurationRecord:
    """A configuration object at one level (`customer`, `network`, `chargepoint`, `user`) of
    one target (that level's UUID); `doc` is the JSON object as the client set it."""

    uuid: str
    level: str
    target: str
    doc: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OcppSettingsRecord:
    """OCPP connection settings of the customer (`scope` "customer") or one charge point
    (`scope` its UUID); the secret is kept only as a hash."""

    scope: str
    secret_hash: str | None = None
    feature: str = "off"
    target_cms_url: str | None = None
    default_network_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
