"""Charge points and connectors as clients describe them (document 002's digital twin), joined
with what OCPP and the live state report, and applied to load management.

A charger is known by its OCPP id (`cp_id`). A client's record of it (name, network, ratings)
is stored beside the OCPP tables (csms.store.sqlite_inventory); its placement and ratings
override the config patterns in the planner's SiteDirectory, and each change re-plans.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from http import HTTPStatus
from typing import Any

from csms.clock import Clock, parse_iso
from csms.identity import charge_point_uuid, network_uuid
from csms.live import ChargerState, LiveState
from csms.planner import Planner
from csms.server import id_problem
from csms.sites import SiteDirectory
from csms.store import Store
from csms.store.base import ChargePointQuery, ConnectorQuery, InventoryConflict

STATION_STATUSES = ("Available", "Faulted", "Unavailable")
# Sort fields of document 002 (each store maps them to its own columns).
CP_SORTS = ("active", "allowAllIdTags", "current", "current_charging_load", "custom_name",
            "firmwareVersion", "last_session_started", "max_capacity", "name",
            "numberOfConnectors", "ocppId", "online_status", "powerSplit", "vendor")
CP_SORTS_DEPRECATED = ("custom_name", "name", "active", "max_capacity", "current_charging_load",
                       "last_session_started")
CONNECTOR_SORTS = ("active", "chargerName", "connectorId", "currentType", "maxCapacity", "name",
                   "ocppStatus", "plugType", "powerFactor", "priority", "voltage")


class InventoryError(Exception):
    """A request the inventory refuses: an HTTP status and the field at fault."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(status, field, message)
        self.status, self.field, self.message = status, field, message


def not_found(field: str, what: str) -> InventoryError:
    return InventoryError(HTTPStatus.NOT_FOUND, field, f"no such {what}")


@dataclass(frozen=True, slots=True)
class ChargePointInfo:
    """One charge point: the client's record, its OCPP facts and its live state."""

    uuid: str
    cp_id: str
    created: datetime
    updated: datetime
    custom_name: str | None
    max_capacity_kw: float
    network: uuidlib.UUID
    location: str | None
    latitude: float | None
    longitude: float | None
    orientation: float | None
    position: dict[str, Any] | None
    vendor: str | None
    model_name: str | None
    serial_number: str | None
    meter_type: str | None
    firmware: str | None
    protocol: str | None
    ocpp_status: str | None
    ocpp_status_at: datetime | None
    online: bool
    online_at: datetime | None
    active: bool
    current: str
    load_kw: float
    limit_kw: float | None
    allow_all_id_tags: bool | None
    power_split: bool | None
    payment_terminal_id: str | None
    source: str | None
    connectors: int
    last_session: datetime | None


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    """One connector: the client's record, its effective ratings and its OCPP status."""

    uuid: str
    charge_point: str  # its charge point's UUID
    cp_id: str
    connector_id: int
    created: datetime
    updated: datetime
    name: str | None
    current_type: str
    voltage: float
    power_factor: float
    max_capacity_kw: float
    max_amperage: float | None
    priority: int
    phases: tuple[int, ...]
    plug_type: str | None
    plug_power_level: str | None
    ocpi_status: str | None
    ocpp_status: str | None
    ocpp_status_at: datetime | None
    active: bool
    load_kw: float | None
    limit_kw: float | None


def parse_sort(text: str | None, allowed: Iterable[str], *, field: str = "sort"
               ) -> tuple[str, bool] | None:
    """`field:asc|desc` as (field, descending); None when not given; 400 when malformed."""
    if text is None:
        return None
    name, _, order = text.partition(":")
    allowed = list(allowed)
    if name not in allowed or order not in ("asc", "desc", ""):
        raise InventoryError(HTTPStatus.BAD_REQUEST, field,
                             f"expected <field>:asc|desc with a field of {', '.join(allowed)}")
    return name, order != "asc"


def _dt(text: str | None) -> datetime | None:
    return None if text is None else parse_iso(text)


def _kw(watts: float | None) -> float | None:
    return None if watts is None else round(watts / 1000.0, 3)


class Inventory:
    """Lists, reads and changes charge points and connectors; see the module docstring."""

    def __init__(self, store: Store, planner: Planner | None, sites: SiteDirectory,
                 clock: Clock) -> None:
        self.store, self.planner, self.clock = store, planner, clock
        self._sites = sites

    @property
    def directory(self) -> SiteDirectory:
        """The live directory (the planner's, with every change applied)."""
        return self.planner.directory if self.planner is not None else self._sites

    @property
    def live(self) -> LiveState | None:
        return self.planner.live if self.planner is not None else None

    # -- networks --------------------------------------------------------------------------

    def node_of(self, network: uuidlib.UUID) -> str | None:
        """The site or group whose network UUID is `network` (a scan of the few sites)."""
        for spec in self.directory.specs.values():
            if network_uuid(spec.id) == network:
                return spec.id
            for g in spec.groups:
                if network_uuid(g.id) == network:
                    return g.id
        return None

    def _subtree(self, node: str) -> tuple[str, ...]:
        """`node` and every group below it: where a charger "in" that network may hang."""
        d = self.directory
        spec = d.specs[d.site_of_node[node]]
        parents = {g.id: g.parent or spec.id for g in spec.groups}
        out = [node]
        for g in spec.groups:
            at: str | None = g.id
            while at is not None and at != node and at in parents:
                at = parents[at]
            if at == node and g.id != node:
                out.append(g.id)
        return tuple(out)

    def _nodes(self, network: uuidlib.UUID | None) -> tuple[str, ...] | None:
        if network is None:
            return None
        node = self.node_of(network)
        # An unknown network matches nothing (a filter, not a lookup).
        return () if node is None else self._subtree(node)

    # -- charge points ---------------------------------------------------------------------

    async def list_charge_points(self, query: ChargePointQuery, network: uuidlib.UUID | None
                                 ) -> tuple[list[ChargePointInfo], int]:
        await self.store.sync_inventory(self.clock.now())
        live_kw = self._loads() if query.sort == "current_charging_load" else {}
        q = replace(query, nodes=self._nodes(network), live_kw=live_kw)
        rows, total = await self.store.list_inventory_charge_points(self.directory, q)
        return await self._charge_points(rows), total

    async def get_charge_point(self, uuid: uuidlib.UUID) -> ChargePointInfo:
        await self.store.sync_inventory(self.clock.now())
        row = await self.store.get_inventory_charge_point(self.directory, str(uuid))
        if row is None:
            raise not_found("id", "charge point")
        return (await self._charge_points([row]))[0]

    async def create_charge_point(self, ocpp_id: str | None, network: uuidlib.UUID,
                                  values: dict[str, Any]) -> ChargePointInfo:
        """A client's charge point; with `ocpp_id` its UUID is that charger's (uuid5)."""
        if ocpp_id is not None:
            _check_ocpp_id(ocpp_id)
            uuid = str(charge_point_uuid(ocpp_id))
        else:
            uuid = str(uuidlib.uuid4())
        cp_id = ocpp_id or uuid  # a UUID is itself a valid OCPP id until one is bound
        values = {**values, "parent_id": self._node(network)}
        try:
            uuid = await self.store.create_inventory_charge_point(uuid, cp_id, values,
                                                                  self.clock.now())
        except InventoryConflict as e:
            raise InventoryError(HTTPStatus.CONFLICT, e.field, e.message) from None
        await self._apply(cp_id)
        return await self.get_charge_point(uuidlib.UUID(uuid))

    async def update_charge_point(self, uuid: uuidlib.UUID, values: dict[str, Any], *,
                                  network: uuidlib.UUID | None = None,
                                  bind: tuple[str | None] | None = None) -> ChargePointInfo:
        """Change a charge point; `bind=(ocpp_id,)` binds it to that OCPP id (None: to none)."""
        if network is not None:
            values = {**values, "parent_id": self._node(network)}
        cp_id: str | None = None
        if bind is not None:
            if bind[0] is not None:
                _check_ocpp_id(bind[0])
            cp_id = bind[0] or str(uuid)
        try:
            old = await self.store.update_inventory_charge_point(str(uuid), cp_id, values,
                                                                 self.clock.now())
        except KeyError:
            raise not_found("id", "charge point") from None
        except InventoryConflict as e:
            raise InventoryError(HTTPStatus.CONFLICT, e.field, e.message) from None
        if cp_id is not None and cp_id != old:
            await self._apply(old)
        await self._apply(cp_id or old)
        return await self.get_charge_point(uuid)

    async def delete_charge_point(self, uuid: uuidlib.UUID) -> ChargePointInfo:
        """Forget a client's record of a charge point (a charger OCPP knows is listed again,
        with the config's facts); returns it as it was."""
        info = await self.get_charge_point(uuid)
        await self.store.delete_inventory_charge_point(str(uuid))
        await self._apply(info.cp_id)
        return info

    def _node(self, network: uuidlib.UUID) -> str:
        node = self.node_of(network)
        if node is None:
            raise not_found("networkId", "network")
        return node

    async def _apply(self, cp_id: str) -> None:
        """Hand the charger's stored facts to the planner, which re-plans where it matters."""
        if self.planner is not None:
            self.planner.apply_charger(cp_id, await self.store.charger_facts(cp_id))

    def _loads(self) -> dict[str, float]:
        """kW drawn now by each charger drawing (for sorting by load)."""
        out = {}
        for cp in (self.live.chargers.values() if self.live is not None else ()):
            kw = _load(cp)
            if kw:
                out[cp.cp_id] = kw
        return out

    async def _charge_points(self, rows: list[dict[str, Any]]) -> list[ChargePointInfo]:
        statuses = await self.store.connector_statuses(r["cp_id"] for r in rows)
        now = self.clock.now()
        out = []
        for r in rows:
            cp = self.live.chargers.get(r["cp_id"]) if self.live is not None else None
            status, status_at = _station_status(statuses.get(r["cp_id"], []))
            limits = [_limit_w(c, now) for c in cp.connectors.values()] if cp else []
            known = [w for w in limits if w is not None]
            out.append(ChargePointInfo(
                uuid=r["uuid"], cp_id=r["cp_id"], created=parse_iso(r["created"]),
                updated=parse_iso(r["updated"]), custom_name=r["custom_name"],
                max_capacity_kw=float(r["eff_max"]), network=network_uuid(r["eff_parent"]),
                location=r["location"], latitude=r["latitude"], longitude=r["longitude"],
                orientation=r["orientation"],
                position=None if r["position"] is None else json.loads(r["position"]),
                vendor=r["vendor"], model_name=r["model_name"] or r["ocpp_model"],
                serial_number=r["serial_number"] or r["ocpp_serial"],
                meter_type=r["meter_type"], firmware=r["firmware"], protocol=r["protocol"],
                ocpp_status=status, ocpp_status_at=status_at, online=bool(r["online"]),
                online_at=_dt(r["last_seen"]), active=bool(r["active"]), current=r["current"],
                load_kw=(_load(cp) if cp else 0.0),
                limit_kw=_kw(sum(known)) if known else None,
                allow_all_id_tags=_bool(r["allow_all_id_tags"]),
                power_split=_bool(r["power_split"]),
                payment_terminal_id=r["payment_terminal_id"], source=r["source"],
                connectors=int(r["n_conn"]), last_session=_dt(r["last_session"])))
        return out

    # -- connectors ------------------------------------------------------------------------

    async def list_connectors(self, query: ConnectorQuery, network: uuidlib.UUID | None
                              ) -> tuple[list[ConnectorInfo], int]:
        await self.store.sync_inventory(self.clock.now())
        q = replace(query, nodes=self._nodes(network))
        rows, total = await self.store.list_inventory_connectors(self.directory, q)
        return [self._connector(r) for r in rows], total

    async def get_connector(self, uuid: uuidlib.UUID) -> ConnectorInfo:
        await self.store.sync_inventory(self.clock.now())
        row = await self.store.get_inventory_connector(self.directory, str(uuid))
        if row is None:
            raise not_found("id", "connector")
        return self._connector(row)

    async def create_connector(self, charge_point: uuidlib.UUID, connector_id: int,
                               values: dict[str, Any]) -> ConnectorInfo:
        await self.store.sync_inventory(self.clock.now())
        try:
            uuid = await self.store.create_inventory_connector(
                str(charge_point), connector_id, _encode(values), self.clock.now())
        except KeyError:
            raise not_found("chargePointId", "charge point") from None
        except InventoryConflict as e:
            raise InventoryError(HTTPStatus.CONFLICT, e.field, e.message) from None
        info = await self.get_connector(uuidlib.UUID(uuid))
        await self._apply(info.cp_id)
        return info

    async def update_connector(self, uuid: uuidlib.UUID, values: dict[str, Any], *,
                               charge_point: uuidlib.UUID | None = None,
                               connector_id: int | None = None) -> ConnectorInfo:
        """Change a connector; naming another charge point or number is refused (400)."""
        info = await self.get_connector(uuid)
        if charge_point is not None and str(charge_point) != info.charge_point:
            raise InventoryError(HTTPStatus.BAD_REQUEST, "chargePointId",
                                 "a connector cannot move to another charge point")
        if connector_id is not None and connector_id != info.connector_id:
            raise InventoryError(HTTPStatus.BAD_REQUEST, "connectorId",
                                 "a connector cannot be renumbered")
        await self.store.update_inventory_connector(str(uuid), _encode(values),
                                                    self.clock.now())
        await self._apply(info.cp_id)
        return await self.get_connector(uuid)

    async def delete_connector(self, uuid: uuidlib.UUID) -> ConnectorInfo:
        """Forget a connector's record (one its charger reports is listed again, with the
        config's facts); returns it as it was."""
        info = await self.get_connector(uuid)
        await self.store.delete_inventory_connector(str(uuid))
        await self._apply(info.cp_id)
        return info

    def _connector(self, r: Mapping[str, Any]) -> ConnectorInfo:
        cp = self.live.chargers.get(r["cp_id"]) if self.live is not None else None
        c = cp.connectors.get(r["connector_id"]) if cp is not None else None
        if r["phases"] is not None:
            phases = tuple(json.loads(r["phases"]))
        else:
            phases = tuple(self.directory.charger_spec(r["cp_id"]).phases)
            if r["current_type"] == "AC_phase1":
                phases = phases[:1]
        return ConnectorInfo(
            uuid=r["uuid"], charge_point=r["cp_uuid"], cp_id=r["cp_id"],
            connector_id=int(r["connector_id"]), created=parse_iso(r["created"]),
            updated=parse_iso(r["updated"]), name=r["name"],
            current_type=r["eff_current_type"], voltage=float(r["eff_voltage"]),
            power_factor=float(r["eff_power_factor"]), max_capacity_kw=float(r["eff_max"]),
            max_amperage=r["eff_max_amperage"], priority=int(r["eff_priority"]), phases=phases,
            plug_type=r["plug_type"], plug_power_level=r["plug_power_level"],
            ocpi_status=r["ocpi_status"], ocpp_status=r["ocpp_status"],
            ocpp_status_at=_dt(r["status_at"]), active=bool(r["active"]),
            load_kw=_kw(c.measured_w) if c is not None else None,
            limit_kw=_kw(_limit_w(c, self.clock.now())) if c is not None else None)


def _check_ocpp_id(ocpp_id: str) -> None:
    problem = id_problem(ocpp_id)
    if problem is not None:
        raise InventoryError(HTTPStatus.BAD_REQUEST, "ocppId", problem)


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    """Connector values as columns: phases as JSON."""
    out = dict(values)
    if out.get("phases") is not None:
        out["phases"] = json.dumps(list(out["phases"]))
    return out


def _load(cp: ChargerState) -> float:
    """kW the charger's cars draw now (measured)."""
    return round(sum(c.measured_w or 0.0 for c in cp.connectors.values()) / 1000.0, 3)


def _limit_w(c: Any, now: datetime) -> float | None:
    """What the connector may draw by the profiles it holds: its TxProfile while valid, else
    its floor (None: nothing we know of)."""
    if c.held_tx_w is not None and (c.held_tx_valid_to is None or c.held_tx_valid_to > now):
        return float(c.held_tx_w)
    return None if c.held_floor_w is None else float(c.held_floor_w)


def _station_status(rows: list[dict[str, Any]]) -> tuple[str | None, datetime | None]:
    """The charge point's OCPP status: connector 0's when it reports one, else what its
    connectors' statuses add up to (any Faulted, all Unavailable, else Available)."""
    at = max((_dt(r["updated_at"]) for r in rows if r["updated_at"]), default=None)
    station = next((r["status"] for r in rows if r["connector_id"] == 0), None)
    if station in STATION_STATUSES:
        return station, at
    statuses = [r["status"] for r in rows if r["connector_id"] > 0 and r["status"]]
    if not statuses:
        return None, at
    if "Faulted" in statuses:
        return "Faulted", at
    if all(s == "Unavailable" for s in statuses):
        return "Unavailable", at
    return "Available", at
