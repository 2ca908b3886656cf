"""SqliteStore's catalog: id tags (the table Authorize reads), vehicles, configurations and
OCPP settings. Lists are paged in SQL with a COUNT of the matches."""

from __future__ import annotations

import json
from dataclasses import astuple
from typing import Any

import aiosqlite

from csms.store.catalog import (
    ConfigurationRecord,
    IdTagQuery,
    IdTagRecord,
    OcppSettingsRecord,
    VehicleQuery,
    VehicleRecord,
)
from csms.store.sqlite_base import Db, SqliteBase, _dt, _ts, _writes

# API sort names -> SQL (a closed list: never a client string in the query).
ID_TAG_SORTS = {"customGroup": "t.custom_group", "group": "t.tag_group",
                "priority": "t.priority", "value": "t.id_tag", "vehicleName": "v.name"}
VEHICLE_SORTS = {"batteryCapacity": "battery_capacity_kwh", "group": "vehicle_group",
                 "integrationId": "customer_vehicle_id", "licensePlate": "license_plate",
                 "make": "make", "maxChargingPower": "max_charging_power_kw", "model": "model",
                 "name": "name", "targetSOC": "target_state_of_charge", "VIN": "vin",
                 "year": "year"}


def _order(sort: tuple[str, str] | None, columns: dict[str, str], default: str) -> str:
    if sort is None:
        return default
    direction = "DESC" if sort[1] == "desc" else "ASC"
    return f"{columns[sort[0]]} {direction}, {default}"


def _any_of(column: str, values: tuple[Any, ...], where: list[str], params: list[Any]) -> None:
    if values:
        where.append(f"{column} IN ({','.join('?' * len(values))})")
        params.extend(values)


def _contains(columns: list[str], needle: str, where: list[str], params: list[Any]) -> None:
    """Case-insensitive substring match on any column (instr: no LIKE wildcards to escape)."""
    where.append("(" + " OR ".join(f"instr(lower(coalesce({c}, '')), ?) > 0"
                                   for c in columns) + ")")
    params.extend([needle.lower()] * len(columns))


def _id_tag(row: aiosqlite.Row) -> IdTagRecord:
    return IdTagRecord(
        uuid=row["uuid"], value=row["id_tag"], status=row["status"], expiry=_dt(row["expiry"]),
        parent_id_tag=row["parent_id_tag"], priority=row["priority"], group=row["tag_group"],
        vehicle_id=row["vehicle_id"], list_version=row["list_version"],
        custom_group=row["custom_group"], created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]))


VEHICLE_COLUMNS = ("id, name, vin, customer_vehicle_id, departure_time, battery_capacity_kwh,"
                   " location, max_charging_power_kw, state_of_charge, target_state_of_charge,"
                   " vehicle_group, inside_depot, make, model, year, license_plate, active,"
                   " created_at, updated_at")


def _vehicle(row: aiosqlite.Row) -> VehicleRecord:
    return VehicleRecord(
        uuid=row["id"], name=row["name"], vin=row["vin"],
        customer_vehicle_id=row["customer_vehicle_id"],
        departure_time=_dt(row["departure_time"]),
        battery_capacity_kwh=row["battery_capacity_kwh"], location=row["location"],
        max_charging_power_kw=row["max_charging_power_kw"],
        state_of_charge=row["state_of_charge"],
        target_state_of_charge=row["target_state_of_charge"], group=row["vehicle_group"],
        inside_depot=row["inside_depot"], make=row["make"], model=row["model"],
        year=row["year"], license_plate=row["license_plate"], active=bool(row["active"]),
        created_at=_dt(row["created_at"]), updated_at=_dt(row["updated_at"]))


def _vehicle_row(v: VehicleRecord) -> tuple[Any, ...]:
    values = list(astuple(v))
    for i, value in enumerate(values):
        if hasattr(value, "isoformat"):
            values[i] = _ts(value)
    values[16] = int(v.active)
    return tuple(values)


def _configuration(row: aiosqlite.Row) -> ConfigurationRecord:
    return ConfigurationRecord(uuid=row["id"], level=row["level"], target=row["target"],
                               doc=json.loads(row["doc"]), created_at=_dt(row["created_at"]),
                               updated_at=_dt(row["updated_at"]))


class CatalogMixin(SqliteBase):
    """Id tags, vehicles, configurations and OCPP settings."""

    # -- id tags ---------------------------------------------------------------------------

    @_writes
    def add_id_tag(self, db: Db, tag: IdTagRecord) -> None:
        """Insert a new tag; sqlite3.IntegrityError if its value (or UUID) is taken."""
        db.execute(
            "INSERT INTO id_tags (uuid, id_tag, status, expiry, parent_id_tag, priority,"
            " tag_group, vehicle_id, list_version, custom_group, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (tag.uuid, tag.value, tag.status, _ts(tag.expiry), tag.parent_id_tag, tag.priority,
             tag.group, tag.vehicle_id, tag.list_version, tag.custom_group,
             _ts(tag.created_at), _ts(tag.updated_at)))

    @_writes
    def update_id_tag(self, db: Db, tag: IdTagRecord) -> bool:
        """Replace the tag with `tag.uuid`; False if there is none. IntegrityError if the new
        value belongs to another tag."""
        cur = db.execute(
            "UPDATE id_tags SET id_tag=?, status=?, expiry=?, parent_id_tag=?, priority=?,"
            " tag_group=?, vehicle_id=?, list_version=?, custom_group=?, updated_at=?"
            " WHERE uuid=?",
            (tag.value, tag.status, _ts(tag.expiry), tag.parent_id_tag, tag.priority, tag.group,
             tag.vehicle_id, tag.list_version, tag.custom_group, _ts(tag.updated_at), tag.uuid))
        return cur.rowcount > 0

    @_writes
    def delete_id_tag(self, db: Db, uuid: str) -> bool:
        return db.execute("DELETE FROM id_tags WHERE uuid=?", (uuid,)).rowcount > 0

    async def find_id_tag(self, uuid: str) -> IdTagRecord | None:
        """The tag named `uuid` (the API's id), if any."""
        row = await self._one("SELECT * FROM id_tags WHERE uuid=?", (uuid,))
        return None if row is None else _id_tag(row)

    async def list_id_tags(self, query: IdTagQuery, limit: int,
                           offset: int) -> tuple[list[IdTagRecord], int]:
        """One page of the tags matching `query`, and how many match in all."""
        where: list[str] = []
        params: list[Any] = []
        if query.value is not None:
            where.append("t.id_tag = ?")
            params.append(query.value)
        _any_of("t.custom_group", query.custom_groups, where, params)
        _any_of("t.priority", query.priorities, where, params)
        _any_of("t.tag_group", query.groups, where, params)
        _any_of("t.vehicle_id", query.vehicle_ids, where, params)
        if query.search:
            _contains(["t.id_tag", "v.name", "t.uuid"], query.search, where, params)
        sql = (" FROM id_tags t LEFT JOIN vehicles v ON v.id = t.vehicle_id"
               + (" WHERE " + " AND ".join(where) if where else ""))
        total_row = await self._one("SELECT count(*)" + sql, tuple(params))
        order = _order(query.sort, ID_TAG_SORTS, "t.rowid")
        rows = await self._all(f"SELECT t.*{sql} ORDER BY {order} LIMIT ? OFFSET ?",
                               (*params, limit, offset))
        return [_id_tag(r) for r in rows], int(total_row[0]) if total_row else 0

    async def id_tag_custom_groups(self) -> list[str]:
        rows = await self._all("SELECT DISTINCT custom_group FROM id_tags"
                               " WHERE custom_group IS NOT NULL ORDER BY custom_group")
        return [r[0] for r in rows]

    async def id_tag_priorities(self) -> dict[str, int]:
        """Value -> priority of every tag that has one (the planner's in-memory copy)."""
        rows = await self._all("SELECT id_tag, priority FROM id_tags WHERE priority IS NOT NULL")
        return {r[0]: int(r[1]) for r in rows}

    # -- vehicles --------------------------------------------------------------------------

    @_writes
    def save_vehicle(self, db: Db, vehicle: VehicleRecord) -> None:
        """Insert or replace the vehicle with `vehicle.uuid`."""
        names = VEHICLE_COLUMNS.replace(" ", "")
        db.execute(f"INSERT OR REPLACE INTO vehicles ({names}) VALUES"
                   f" ({','.join('?' * len(names.split(',')))})", _vehicle_row(vehicle))

    @_writes
    def delete_vehicle(self, db: Db, uuid: str) -> bool:
        """Delete the vehicle; its id tags stay, naming no vehicle."""
        db.execute("UPDATE id_tags SET vehicle_id=NULL WHERE vehicle_id=?", (uuid,))
        return db.execute("DELETE FROM vehicles WHERE id=?", (uuid,)).rowcount > 0

    async def get_vehicle(self, uuid: str) -> VehicleRecord | None:
        row = await self._one(f"SELECT {VEHICLE_COLUMNS} FROM vehicles WHERE id=?", (uuid,))
        return None if row is None else _vehicle(row)

    async def all_vehicles(self) -> list[VehicleRecord]:
        """Every vehicle (loaded once at start for the planner's in-memory copy)."""
        return [_vehicle(r) for r in await self._all(f"SELECT {VEHICLE_COLUMNS} FROM vehicles")]

    async def list_vehicles(self, query: VehicleQuery, limit: int,
                            offset: int) -> tuple[list[VehicleRecord], int]:
        """One page of the vehicles matching `query`, and how many match in all."""
        where: list[str] = []
        params: list[Any] = []
        if query.group is not None:
            where.append("vehicle_group = ?")
            params.append(query.group)
        if query.updated_after is not None:
            where.append("updated_at > ?")
            params.append(_ts(query.updated_after))
        if query.search:
            where.append(
                "(" + " OR ".join(f"instr(lower(coalesce({c}, '')), ?) > 0" for c in (
                    "name", "license_plate", "vin", "vehicle_group", "make", "model",
                    "CAST(year AS TEXT)", "id"))
                + " OR EXISTS (SELECT 1 FROM id_tags t WHERE t.vehicle_id = vehicles.id"
                  " AND instr(lower(t.id_tag), ?) > 0))")
            params.extend([query.search.lower()] * 9)
        sql = " FROM vehicles" + (" WHERE " + " AND ".join(where) if where else "")
        total_row = await self._one("SELECT count(*)" + sql, tuple(params))
        order = _order(query.sort, VEHICLE_SORTS, "rowid")
        rows = await self._all(f"SELECT {VEHICLE_COLUMNS}{sql} ORDER BY {order}"
                               " LIMIT ? OFFSET ?", (*params, limit, offset))
        return [_vehicle(r) for r in rows], int(total_row[0]) if total_row else 0

    # -- configurations and OCPP settings ---------------------------------------------------

    @_writes
    def save_configuration(self, db: Db, config: ConfigurationRecord) -> None:
        """Insert or replace the configuration of (`level`, `target`)."""
        db.execute(
            "INSERT INTO configurations (id, level, target, doc, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (level, target) DO UPDATE SET"
            " doc=excluded.doc, updated_at=excluded.updated_at",
            (config.uuid, config.level, config.target, json.dumps(config.doc, sort_keys=True),
             _ts(config.created_at), _ts(config.updated_at)))

    @_writes
    def delete_configuration(self, db: Db, uuid: str) -> bool:
        return db.execute("DELETE FROM configurations WHERE id=?", (uuid,)).rowcount > 0

    async def all_configurations(self) -> list[ConfigurationRecord]:
        """Every configuration (few: one per customer, network, charge point or user set)."""
        return [_configuration(r) for r in await self._all(
            "SELECT * FROM configurations ORDER BY created_at")]

    @_writes
    def save_ocpp_settings(self, db: Db, settings: OcppSettingsRecord) -> None:
        db.execute(
            "INSERT OR REPLACE INTO ocpp_settings (scope, secret_hash, feature, target_cms_url,"
            " default_network_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
            (settings.scope, settings.secret_hash, settings.feature, settings.target_cms_url,
             settings.default_network_id, _ts(settings.created_at), _ts(settings.updated_at)))

    def charge_point_ids(self) -> list[str]:
        """Every charger with a record (from memory: the capabilities kept for the planner)."""
        return list(self._capabilities)

    async def get_ocpp_settings(self, scope: str) -> OcppSettingsRecord | None:
        row = await self._one("SELECT * FROM ocpp_settings WHERE scope=?", (scope,))
        if row is None:
            return None
        return OcppSettingsRecord(
            scope=row["scope"], secret_hash=row["secret_hash"], feature=row["feature"],
            target_cms_url=row["target_cms_url"], default_network_id=row["default_network_id"],
            created_at=_dt(row["created_at"]), updated_at=_dt(row["updated_at"]))
