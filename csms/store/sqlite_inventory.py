"""SqliteStore's inventory: charge points and connectors as the HTTP API (document 002) sees
them, listed, filtered, sorted and paged in SQL.

A charger's effective facts are its own record's where it has one, else the config patterns'
(`SiteDirectory`); the patterns enter the queries as `CASE cp_id GLOB ...` expressions, so a
page costs one query and a COUNT whatever the number of chargers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from csms.config import ChargerSpec
from csms.identity import charge_point_uuid, connector_uuid
from csms.sites import ChargerFacts, ConnectorFacts, SiteDirectory
from csms.store.base import ChargePointQuery, ConnectorQuery, InventoryConflict
from csms.store.sqlite_base import Db, SqliteBase, _one, _ts, _writes

CP_COLUMNS = frozenset({
    "custom_name", "max_capacity", "parent_id", "allow_all_id_tags", "latitude", "longitude",
    "location", "model_name", "orientation", "position", "power_split", "payment_terminal_id",
    "meter_type", "serial_number", "source"})
CONNECTOR_COLUMNS = frozenset({
    "name", "current_type", "voltage", "power_factor", "max_capacity", "max_amperage",
    "priority", "phases", "plug_type", "plug_power_level", "ocpi_status"})

# Sort fields of document 002 -> the column of the listing queries below.
CP_SORTS = {
    "active": "active", "allowAllIdTags": "coalesce(allow_all_id_tags, 0)",
    "current": "current", "current_charging_load": "load_kw",
    "custom_name": "custom_name COLLATE NOCASE", "name": "custom_name COLLATE NOCASE",
    "firmwareVersion": "firmware", "last_session_started": "last_session",
    "max_capacity": "eff_max", "numberOfConnectors": "n_conn", "ocppId": "cp_id",
    "online_status": "coalesce(online, 0)", "powerSplit": "coalesce(power_split, 0)",
    "vendor": "vendor COLLATE NOCASE"}
CONNECTOR_SORTS = {
    "active": "active", "chargerName": "charger_name COLLATE NOCASE",
    "connectorId": "connector_id", "currentType": "eff_current_type",
    "maxCapacity": "eff_max", "name": "name COLLATE NOCASE", "ocppStatus": "ocpp_status",
    "plugType": "plug_type", "powerFactor": "eff_power_factor", "priority": "eff_priority",
    "voltage": "eff_voltage"}

Sql = tuple[str, list[Any]]


def glob_of(pattern: str) -> str:
    """An fnmatch pattern as SQLite GLOB: the same but for `[!...]`, which GLOB writes `[^...]`."""
    return pattern.replace("[!", "[^")


def _placement_sql(directory: SiteDirectory, cp: str, own: str) -> Sql:
    """The node each charger hangs from: its own valid `parent_id`, else the patterns' (groups
    first, then sites, else the default site), as SiteDirectory.placement decides."""
    nodes = list(directory.site_of_node)
    whens: list[str] = []
    params: list[Any] = [*nodes]
    for spec in directory.specs.values():
        for group in spec.groups:
            for p in group.chargers:
                whens.append(f"WHEN {cp} GLOB ? THEN ?")
                params += [glob_of(p), group.id]
    for spec in directory.specs.values():
        for p in spec.chargers:
            whens.append(f"WHEN {cp} GLOB ? THEN ?")
            params += [glob_of(p), spec.id]
    params.append(directory.default_site)
    marks = ",".join("?" * len(nodes))
    sql = (f"CASE WHEN {own} IN ({marks}) THEN {own} ELSE CASE {' '.join(whens)} ELSE ? END END"
           if whens else f"CASE WHEN {own} IN ({marks}) THEN {own} ELSE ? END")
    return sql, params


def _spec_sql(directory: SiteDirectory, cp: str, attr: str) -> Sql:
    """`attr` of the first ChargerSpec whose pattern matches (ChargerSpec() if none)."""
    whens: list[str] = []
    params: list[Any] = []
    for spec in directory.charger_specs:
        whens.append(f"WHEN {cp} GLOB ? THEN ?")
        params += [glob_of(spec.match), getattr(spec, attr)]
    params.append(getattr(ChargerSpec(), attr))
    return f"CASE {' '.join(whens)} ELSE ? END", params


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere (its own % and _ taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _in(column: str, values: Iterable[Any]) -> Sql:
    values = list(values)
    return f"{column} IN ({','.join('?' * len(values))})", values


def _where(parts: list[Sql]) -> Sql:
    if not parts:
        return "", []
    return "WHERE " + " AND ".join(f"({p})" for p, _ in parts), [x for _, ps in parts for x in ps]


def _charge_points_sql(directory: SiteDirectory, live_kw: Mapping[str, float]) -> Sql:
    """Every charge point with its OCPP facts and the derived columns lists sort by."""
    parent, pp = _placement_sql(directory, "i.cp_id", "i.parent_id")
    spec_max, mp = _spec_sql(directory, "i.cp_id", "max_power_kw")
    spec_type, tp = _spec_sql(directory, "i.cp_id", "current_type")
    spec_type2, tp2 = _spec_sql(directory, "i.cp_id", "current_type")
    sql = f"""
        WITH live(cp_id, kw) AS (SELECT key, value FROM json_each(?)),
        cp AS (
            SELECT i.*, c.online AS online, c.vendor AS vendor, c.model AS ocpp_model,
                c.serial AS ocpp_serial, c.firmware AS firmware, c.protocol AS protocol,
                c.last_seen AS last_seen, c.registered AS registered,
                {parent} AS eff_parent,
                coalesce(i.max_capacity, {spec_max}) AS eff_max,
                (SELECT count(*) FROM inventory_connectors k WHERE k.cp_uuid = i.uuid) AS n_conn,
                EXISTS (SELECT 1 FROM sessions s WHERE s.cp_id = i.cp_id
                        AND s.stopped_at IS NULL) AS active,
                (SELECT max(s.started_at) FROM sessions s WHERE s.cp_id = i.cp_id)
                    AS last_session,
                coalesce((SELECT CASE WHEN sum(t = 'DC') = count(*) THEN 'DC'
                                      WHEN sum(t = 'DC') = 0 THEN 'AC' ELSE 'Mix' END
                          FROM (SELECT coalesce(k.current_type, {spec_type}) AS t
                                FROM inventory_connectors k WHERE k.cp_uuid = i.uuid)
                          HAVING count(*) > 0),
                         CASE WHEN {spec_type2} = 'DC' THEN 'DC' ELSE 'AC' END) AS current,
                coalesce((SELECT kw FROM live WHERE live.cp_id = i.cp_id), 0) AS load_kw
            FROM inventory_charge_points i LEFT JOIN charge_points c ON c.cp_id = i.cp_id
        )"""
    return sql, [json.dumps(dict(live_kw)), *pp, *mp, *tp, *tp2]


def _connectors_sql(directory: SiteDirectory) -> Sql:
    """Every connector with its charger, its OCPP status and its effective facts."""
    parent, pp = _placement_sql(directory, "i.cp_id", "i.parent_id")
    params: list[Any] = [*pp]
    effective = []
    for column, attr in (("current_type", "current_type"), ("voltage", "voltage_v"),
                         ("power_factor", "power_factor"), ("max_capacity", "max_power_kw"),
                         ("max_amperage", "max_current_a"), ("priority", "priority")):
        spec, sp = _spec_sql(directory, "i.cp_id", attr)
        name = {"max_capacity": "max", "max_amperage": "max_amperage"}.get(column, column)
        effective.append(f"coalesce(k.{column}, {spec}) AS eff_{name}")
        params += sp
    sql = f"""
        WITH conn AS (
            SELECT k.*, i.cp_id AS cp_id, i.custom_name AS charger_name,
                {parent} AS eff_parent, {", ".join(effective)},
                x.status AS ocpp_status, x.updated_at AS status_at,
                EXISTS (SELECT 1 FROM sessions s WHERE s.cp_id = i.cp_id
                        AND s.connector_id = k.connector_id AND s.stopped_at IS NULL) AS active
            FROM inventory_connectors k JOIN inventory_charge_points i ON i.uuid = k.cp_uuid
            LEFT JOIN connectors x ON x.cp_id = i.cp_id AND x.connector_id = k.connector_id
        )"""
    return sql, params


def _order(sorts: Mapping[str, str], key: str, descending: bool, tie: str) -> str:
    # Ties in the sort key are broken by a unique column, so pages never overlap.
    return f"ORDER BY {sorts[key]} {'DESC' if descending else 'ASC'}, {tie} ASC"


def _facts(cp_row: Mapping[str, Any], connectors: Iterable[Mapping[str, Any]]) -> ChargerFacts:
    conns = {}
    for k in connectors:
        conns[int(k["connector_id"])] = ConnectorFacts(
            current_type=k["current_type"], voltage_v=k["voltage"],
            power_factor=k["power_factor"], max_power_kw=k["max_capacity"],
            max_current_a=k["max_amperage"], priority=k["priority"],
            phases=None if k["phases"] is None else tuple(json.loads(k["phases"])))
    return ChargerFacts(parent_id=cp_row["parent_id"], max_power_kw=cp_row["max_capacity"],
                        connectors=conns)


class InventoryMixin(SqliteBase):
    """Charge points and connectors of the HTTP API beside the OCPP tables."""

    # -- discovery -------------------------------------------------------------------------

    async def sync_inventory(self, now: datetime) -> None:
        """Give every charger and connector OCPP reported (and the API has no record of) a
        record with its UUID, so lists, filters and lookups by UUID run in SQL."""
        chargers = await self._all(
            "SELECT cp_id, booted_at FROM charge_points c WHERE NOT EXISTS"
            " (SELECT 1 FROM inventory_charge_points i WHERE i.cp_id = c.cp_id)")
        connectors = await self._all(
            "SELECT c.cp_id, c.connector_id FROM connectors c WHERE c.connector_id > 0"
            " AND NOT EXISTS (SELECT 1 FROM inventory_charge_points i"
            " JOIN inventory_connectors k ON k.cp_uuid = i.uuid"
            " WHERE i.cp_id = c.cp_id AND k.connector_id = c.connector_id)")
        if chargers or connectors:
            await self._discover([(r["cp_id"], r["booted_at"]) for r in chargers],
                                 [(r["cp_id"], r["connector_id"]) for r in connectors], now)

    @_writes
    def _discover(self, db: Db, chargers: list[tuple[str, str | None]],
                  connectors: list[tuple[str, int]], now: datetime) -> None:
        # OR IGNORE: another request may have found (or a client created) them meanwhile.
        db.executemany(
            "INSERT OR IGNORE INTO inventory_charge_points (uuid, cp_id, origin, created,"
            " updated) VALUES (?,?,'ocpp',?,?)",
            [(str(charge_point_uuid(cp_id)), cp_id, booted or _ts(now), _ts(now))
             for cp_id, booted in chargers])
        for cp_id, n in connectors:
            row = _one(db, "SELECT uuid FROM inventory_charge_points WHERE cp_id=?", (cp_id,))
            if row is not None:
                db.execute(
                    "INSERT OR IGNORE INTO inventory_connectors (uuid, cp_uuid, connector_id,"
                    " origin, created, updated) VALUES (?,?,?,'ocpp',?,?)",
                    (str(connector_uuid(cp_id, n)), row["uuid"], n, _ts(now), _ts(now)))

    # -- charge points ---------------------------------------------------------------------

    async def list_inventory_charge_points(self, directory: SiteDirectory,
                                           query: ChargePointQuery
                                           ) -> tuple[list[dict[str, Any]], int]:
        """One page of charge points (dicts of columns) and how many match in all."""
        base, params = _charge_points_sql(directory, query.live_kw)
        parts: list[Sql] = []
        if query.nodes is not None:
            parts.append(_in("eff_parent", query.nodes))
        if query.online is not None:
            parts.append(("coalesce(online, 0) = ?", [int(query.online)]))
        if query.vendor is not None:
            parts.append(("vendor = ? COLLATE NOCASE", [query.vendor]))
        if query.custom_name is not None:
            parts.append(("custom_name LIKE ? ESCAPE '\\'", [_like(query.custom_name)]))
        if query.allow_all_id_tags is not None:
            parts.append(("coalesce(allow_all_id_tags, 0) = ?", [int(query.allow_all_id_tags)]))
        if query.power_split is not None:
            parts.append(("coalesce(power_split, 0) = ?", [int(query.power_split)]))
        if query.current is not None:
            parts.append(("current = ?", [query.current]))
        if query.active is not None:
            parts.append(("active = ?", [int(query.active)]))
        if query.updated_after is not None:
            parts.append(("updated > ?", [_ts(query.updated_after)]))
        if query.search:
            like = _like(query.search)
            parts.append((" OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in (
                "custom_name", "coalesce(serial_number, ocpp_serial)", "cp_id", "vendor",
                "firmware", "uuid")), [like] * 6))
        where, wp = _where(parts)
        total_row = await self._one(f"{base} SELECT count(*) AS n FROM cp {where}",
                                    (*params, *wp))
        rows = await self._all(
            f"{base} SELECT * FROM cp {where}"
            f" {_order(CP_SORTS, query.sort, query.descending, 'cp_id')} LIMIT ? OFFSET ?",
            (*params, *wp, query.limit, query.offset))
        return [dict(r) for r in rows], int(total_row["n"]) if total_row else 0

    async def get_inventory_charge_point(self, directory: SiteDirectory,
                                         uuid: str) -> dict[str, Any] | None:
        base, params = _charge_points_sql(directory, {})
        row = await self._one(f"{base} SELECT * FROM cp WHERE uuid = ?", (*params, uuid))
        return None if row is None else dict(row)

    async def find_inventory_uuid(self, cp_id: str) -> str | None:
        """The UUID of the charge point with OCPP id `cp_id`, if it has a record."""
        row = await self._one("SELECT uuid FROM inventory_charge_points WHERE cp_id=?",
                              (cp_id,))
        return None if row is None else str(row["uuid"])

    async def connector_statuses(self, cp_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The OCPP status rows (connector 0 too) of each of `cp_ids` (one page's chargers)."""
        ids = list(cp_ids)
        out: dict[str, list[dict[str, Any]]] = {cp_id: [] for cp_id in ids}
        if not ids:
            return out
        cond, params = _in("cp_id", ids)
        for r in await self._all(f"SELECT cp_id, connector_id, status, updated_at FROM"
                                 f" connectors WHERE {cond} ORDER BY connector_id",
                                 tuple(params)):
            out[r["cp_id"]].append(dict(r))
        return out

    @_writes
    def create_inventory_charge_point(self, db: Db, uuid: str, cp_id: str,
                                      values: dict[str, Any], now: datetime) -> str:
        """A client's charge point; a record OCPP made for `cp_id` is adopted (its UUID kept).

        Raises InventoryConflict if a client already created one with this OCPP id.
        """
        _check(values, CP_COLUMNS)
        found = _one(db, "SELECT uuid, origin FROM inventory_charge_points WHERE cp_id=?",
                     (cp_id,))
        if found is not None and found["origin"] == "api":
            raise InventoryConflict("ocppId", f"a charge point with ocppId {cp_id!r} exists")
        if found is not None:
            _update(db, "inventory_charge_points", found["uuid"],
                    {**values, "origin": "api"}, now)
            return str(found["uuid"])
        cols = ["uuid", "cp_id", "origin", "created", "updated", *values]
        db.execute(f"INSERT INTO inventory_charge_points ({','.join(cols)})"
                   f" VALUES ({','.join('?' * len(cols))})",
                   (uuid, cp_id, "api", _ts(now), _ts(now), *values.values()))
        return uuid

    @_writes
    def update_inventory_charge_point(self, db: Db, uuid: str, cp_id: str | None,
                                      values: dict[str, Any], now: datetime) -> str:
        """Change a charge point; with `cp_id`, bind it to that OCPP id. Returns its old id.

        A record OCPP made for the new id is absorbed (its connectors join this charge point
        where the numbers are free); one a client created is a conflict. Raises KeyError for
        an unknown `uuid`.
        """
        _check(values, CP_COLUMNS)
        row = _one(db, "SELECT cp_id FROM inventory_charge_points WHERE uuid=?", (uuid,))
        if row is None:
            raise KeyError(uuid)
        old = str(row["cp_id"])
        changes = dict(values)
        if cp_id is not None and cp_id != old:
            if uuid == str(charge_point_uuid(old)):
                raise InventoryConflict(
                    "ocppId", f"this charge point's id is derived from its ocppId {old!r},"
                    " which cannot change; create a charge point for the new one")
            other = _one(db, "SELECT uuid, origin FROM inventory_charge_points WHERE cp_id=?",
                         (cp_id,))
            if other is not None and other["origin"] == "api":
                raise InventoryConflict("ocppId",
                                        f"ocppId {cp_id!r} belongs to another charge point")
            if other is not None:
                db.execute("UPDATE OR IGNORE inventory_connectors SET cp_uuid=? WHERE cp_uuid=?",
                           (uuid, other["uuid"]))
                db.execute("DELETE FROM inventory_connectors WHERE cp_uuid=?", (other["uuid"],))
                db.execute("DELETE FROM inventory_charge_points WHERE uuid=?", (other["uuid"],))
            changes["cp_id"] = cp_id
        _update(db, "inventory_charge_points", uuid, {**changes, "origin": "api"}, now)
        return old

    @_writes
    def delete_inventory_charge_point(self, db: Db, uuid: str) -> bool:
        """Forget a charge point's record and its connectors'; False if there is none."""
        db.execute("DELETE FROM inventory_connectors WHERE cp_uuid=?", (uuid,))
        return db.execute("DELETE FROM inventory_charge_points WHERE uuid=?",
                          (uuid,)).rowcount > 0

    # -- connectors ------------------------------------------------------------------------

    async def list_inventory_connectors(self, directory: SiteDirectory, query: ConnectorQuery
                                        ) -> tuple[list[dict[str, Any]], int]:
        """One page of connectors (dicts of columns) and how many match in all."""
        base, params = _connectors_sql(directory)
        parts: list[Sql] = []
        if query.nodes is not None:
            parts.append(_in("eff_parent", query.nodes))
        if query.cp_uuids:
            parts.append(_in("cp_uuid", query.cp_uuids))
        if query.connector_ids:
            parts.append(_in("connector_id", query.connector_ids))
        if query.ocpp_status:
            parts.append(_in("ocpp_status", query.ocpp_status))
        if query.priorities:
            parts.append(_in("eff_priority", query.priorities))
        if query.current == "DC":
            parts.append(("eff_current_type = 'DC'", []))
        elif query.current == "AC":
            parts.append(("eff_current_type != 'DC'", []))
        if query.plug_types:
            parts.append(_in("plug_type", query.plug_types))
        if query.search:
            like = _like(query.search)
            parts.append((" OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in (
                "name", "uuid", "charger_name", "cp_uuid")), [like] * 4))
        where, wp = _where(parts)
        total_row = await self._one(f"{base} SELECT count(*) AS n FROM conn {where}",
                                    (*params, *wp))
        rows = await self._all(
            f"{base} SELECT * FROM conn {where}"
            f" {_order(CONNECTOR_SORTS, query.sort, query.descending, 'cp_id, connector_id')}"
            " LIMIT ? OFFSET ?", (*params, *wp, query.limit, query.offset))
        return [dict(r) for r in rows], int(total_row["n"]) if total_row else 0

    async def get_inventory_connector(self, directory: SiteDirectory,
                                      uuid: str) -> dict[str, Any] | None:
        base, params = _connectors_sql(directory)
        row = await self._one(f"{base} SELECT * FROM conn WHERE uuid = ?", (*params, uuid))
        return None if row is None else dict(row)

    @_writes
    def create_inventory_connector(self, db: Db, cp_uuid: str, connector_id: int,
                                   values: dict[str, Any], now: datetime) -> str:
        """A client's connector; one OCPP reported with that number is adopted (UUID kept).

        Raises KeyError for an unknown charge point, InventoryConflict if a client created
        this connector already.
        """
        _check(values, CONNECTOR_COLUMNS)
        cp = _one(db, "SELECT cp_id FROM inventory_charge_points WHERE uuid=?", (cp_uuid,))
        if cp is None:
            raise KeyError(cp_uuid)
        found = _one(db, "SELECT uuid, origin FROM inventory_connectors"
                         " WHERE cp_uuid=? AND connector_id=?", (cp_uuid, connector_id))
        if found is not None and found["origin"] == "api":
            raise InventoryConflict("connectorId",
                                    f"connector {connector_id} of this charge point exists")
        if found is not None:
            _update(db, "inventory_connectors", found["uuid"], {**values, "origin": "api"}, now)
            return str(found["uuid"])
        uuid = str(connector_uuid(cp["cp_id"], connector_id))
        cols = ["uuid", "cp_uuid", "connector_id", "origin", "created", "updated", *values]
        db.execute(f"INSERT INTO inventory_connectors ({','.join(cols)})"
                   f" VALUES ({','.join('?' * len(cols))})",
                   (uuid, cp_uuid, connector_id, "api", _ts(now), _ts(now), *values.values()))
        return uuid

    @_writes
    def update_inventory_connector(self, db: Db, uuid: str, values: dict[str, Any],
                                   now: datetime) -> bool:
        """Change a connector's record; False if there is none."""
        _check(values, CONNECTOR_COLUMNS)
        return _update(db, "inventory_connectors", uuid, {**values, "origin": "api"}, now)

    @_writes
    def delete_inventory_connector(self, db: Db, uuid: str) -> bool:
        return db.execute("DELETE FROM inventory_connectors WHERE uuid=?",
                          (uuid,)).rowcount > 0

    # -- what the allocator uses -----------------------------------------------------------

    async def charger_facts(self, cp_id: str) -> ChargerFacts | None:
        """The facts of `cp_id`'s own record (None: it has none)."""
        row = await self._one("SELECT * FROM inventory_charge_points WHERE cp_id=?", (cp_id,))
        if row is None:
            return None
        conns = await self._all("SELECT * FROM inventory_connectors WHERE cp_uuid=?",
                                (row["uuid"],))
        return _facts(row, conns)

    async def list_charger_facts(self) -> dict[str, ChargerFacts]:
        """Facts of every charger a client described (read once, at start)."""
        cps = await self._all("SELECT * FROM inventory_charge_points WHERE origin='api'"
                              " OR uuid IN (SELECT cp_uuid FROM inventory_connectors"
                              " WHERE origin='api')")
        conns: dict[str, list[Any]] = {}
        for k in await self._all("SELECT * FROM inventory_connectors WHERE origin='api'"):
            conns.setdefault(k["cp_uuid"], []).append(k)
        return {r["cp_id"]: _facts(r, conns.get(r["uuid"], ())) for r in cps}


def _check(values: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """Column names reach SQL text: only our own constants may."""
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"not inventory columns: {sorted(unknown)}")


def _update(db: Db, table: str, uuid: str, values: Mapping[str, Any], now: datetime) -> bool:
    sets = ", ".join(f"{c}=?" for c in values)
    cur = db.execute(f"UPDATE {table} SET {sets}{', ' if sets else ''}updated=? WHERE uuid=?",
                     (*values.values(), _ts(now), uuid))
    return cur.rowcount > 0
