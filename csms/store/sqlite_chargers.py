"""SqliteStore's charge points, connectors, variables, capabilities and charger events."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from csms.domain import Booted, StatusChanged
from csms.registration import Standing
from csms.store.base import ChargePointRecord, ConnectorRecord
from csms.store.sqlite_base import Db, SqliteBase, _dt, _one, _ts, _writes


class ChargePointsMixin(SqliteBase):
    """Charge points (boot, registration, online), connectors, variables and capabilities."""

    async def record_boot(self, event: Booted, now: datetime) -> None:
        await self._record_boot(event, now)
        self._known(event.cp_id)

    @_writes
    def _record_boot(self, db: Db, event: Booted, now: datetime) -> None:
        db.execute(
            "INSERT INTO charge_points (cp_id, protocol, vendor, model, serial, firmware,"
            " online, last_seen, booted_at, boot_status) VALUES (?,?,?,?,?,?,1,?,?,'Accepted')"
            " ON CONFLICT (cp_id) DO UPDATE SET protocol=excluded.protocol,"
            " vendor=excluded.vendor, model=excluded.model, serial=excluded.serial,"
            " firmware=excluded.firmware, online=1, last_seen=excluded.last_seen,"
            " booted_at=excluded.booted_at, boot_status='Accepted'",
            (event.cp_id, event.protocol, event.vendor, event.model, event.serial,
             event.firmware, _ts(now), _ts(now)),
        )

    @_writes
    def record_refused_boot(self, db: Db, event: Booted, status: str, now: datetime,
                            create: bool) -> None:
        # What it said of itself is kept (the operator decides on it); `booted_at` stays that
        # of its last Accepted boot. Without `create`, a charger with no record gets none.
        if create:
            db.execute("INSERT OR IGNORE INTO charge_points (cp_id) VALUES (?)", (event.cp_id,))
        db.execute(
            "UPDATE charge_points SET protocol=?, vendor=?, model=?, serial=?, firmware=?,"
            " online=1, last_seen=?, boot_status=? WHERE cp_id=?",
            (event.protocol, event.vendor, event.model, event.serial, event.firmware,
             _ts(now), status, event.cp_id),
        )

    @_writes
    def set_online(self, db: Db, cp_id: str, online: bool, protocol: str | None,
                   now: datetime) -> None:
        # Only chargers that booted or were registered have a row: a bare connection adds none.
        db.execute(
            "UPDATE charge_points SET online=?, last_seen=?,"
            " protocol=coalesce(?, protocol) WHERE cp_id=?",
            (int(online), _ts(now), protocol, cp_id),
        )

    @_writes
    def mark_all_offline(self, db: Db) -> None:
        db.execute("UPDATE charge_points SET online=0")

    async def register_charge_point(self, cp_id: str, password_hash: str | None = None) -> None:
        await self._register_charge_point(cp_id, password_hash)
        self._known(cp_id)

    def _known(self, cp_id: str) -> None:
        if cp_id not in self._capabilities:
            self._capabilities[cp_id] = {}
            self.chargers_changed += 1

    @_writes
    def _register_charge_point(self, db: Db, cp_id: str,
                              password_hash: str | None = None) -> None:
        # Registered without a word on its state: Accepted, unless the operator said otherwise.
        db.execute(
            "INSERT INTO charge_points (cp_id, registered, password_hash, registration)"
            " VALUES (?,1,?,'Accepted')"
            " ON CONFLICT (cp_id) DO UPDATE SET registered=1,"
            " password_hash=coalesce(excluded.password_hash, charge_points.password_hash),"
            " registration=coalesce(charge_points.registration, 'Accepted')",
            (cp_id, password_hash),
        )

    async def set_registration(self, cp_id: str, status: str) -> None:
        await self._set_registration(cp_id, status)
        self._known(cp_id)

    @_writes
    def _set_registration(self, db: Db, cp_id: str, status: str) -> None:
        db.execute(
            "INSERT INTO charge_points (cp_id, registered, registration) VALUES (?,1,?)"
            " ON CONFLICT (cp_id) DO UPDATE SET registered=1, registration=excluded.registration",
            (cp_id, status),
        )

    async def standing(self, cp_id: str) -> Standing:
        row = await self._one(
            "SELECT registration, boot_status FROM charge_points WHERE cp_id=?", (cp_id,))
        return Standing() if row is None else Standing(row["registration"], row["boot_status"])

    async def get_password_hash(self, cp_id: str) -> str | None:
        row = await self._one("SELECT password_hash FROM charge_points WHERE cp_id=?", (cp_id,))
        return None if row is None else row["password_hash"]

    async def is_known(self, cp_id: str) -> bool:
        return (await self.standing(cp_id)).accepted

    async def get_charge_point(self, cp_id: str) -> ChargePointRecord | None:
        rows = await self._charge_points("WHERE cp_id=?", (cp_id,))
        return rows[0] if rows else None

    async def list_charge_points(self) -> list[ChargePointRecord]:
        return await self._charge_points("", ())

    async def _charge_points(self, where: str, params: tuple[Any, ...]) -> list[ChargePointRecord]:
        cps = await self._all(f"SELECT * FROM charge_points {where} ORDER BY cp_id", params)
        conns = await self._all(
            f"SELECT * FROM connectors {where} ORDER BY cp_id, connector_id", params
        )
        by_cp: dict[str, list[ConnectorRecord]] = {}
        for c in conns:
            by_cp.setdefault(c["cp_id"], []).append(
                ConnectorRecord(c["connector_id"], c["status"], c["error_code"],
                                _dt(c["updated_at"]))
            )
        return [
            ChargePointRecord(
                cp_id=r["cp_id"], protocol=r["protocol"], vendor=r["vendor"], model=r["model"],
                serial=r["serial"], firmware=r["firmware"], online=bool(r["online"]),
                last_seen=_dt(r["last_seen"]), registered=bool(r["registered"]),
                registration=r["registration"], boot_status=r["boot_status"],
                capabilities=json.loads(r["capabilities"] or "{}"),
                connectors=tuple(by_cp.get(r["cp_id"], ())),
            )
            for r in cps
        ]

    async def save_capabilities(self, cp_id: str, capabilities: dict[str, Any]) -> None:
        merged = await self._save_capabilities(cp_id, capabilities)
        if merged is not None:
            self._capabilities[cp_id] = merged

    @_writes
    def _save_capabilities(self, db: Db, cp_id: str,
                           capabilities: dict[str, Any]) -> dict[str, Any] | None:
        row = _one(db, "SELECT capabilities FROM charge_points WHERE cp_id=?", (cp_id,))
        if row is None:
            return None
        merged = json.loads(row["capabilities"] or "{}")
        merged.update(capabilities)
        db.execute(
            "UPDATE charge_points SET capabilities=? WHERE cp_id=?",
            (json.dumps(merged, sort_keys=True), cp_id),
        )
        return merged

    def capabilities(self, cp_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """What each known charger reported it can do (kept in memory: read on every plan)."""
        return {cp_id: self._capabilities[cp_id] for cp_id in cp_ids
                if cp_id in self._capabilities}

    @_writes
    def save_variables(self, db: Db, cp_id: str, variables: list[dict[str, Any]],
                       now: datetime) -> None:
        rows = []
        for v in variables:
            comp = v.get("component", {})
            var = v.get("variable", {})
            evse = comp.get("evse", {}).get("id", 0)
            for attr in v.get("variableAttribute", [{"type": "Actual", "value": None}]):
                rows.append((
                    cp_id, comp.get("name", ""), evse, var.get("name", ""),
                    var.get("instance") or "", attr.get("type", "Actual"), attr.get("value"),
                    json.dumps(v), _ts(now),
                ))
        db.executemany(
            "INSERT OR REPLACE INTO variables (cp_id, component, evse_id, variable, instance,"
            " attribute, value, raw, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )

    async def get_variables(self, cp_id: str) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT component, evse_id, variable, attribute, value FROM variables"
            " WHERE cp_id=? ORDER BY component, evse_id, variable, instance, attribute",
            (cp_id,),
        )
        return [dict(r) for r in rows]

    async def variable_instances(self, cp_id: str, component: str,
                                 variable: str) -> dict[str, str | None]:
        """The Actual value of each instance ('' for none) of a station-wide variable, as
        the station reported it (NotifyReport)."""
        rows = await self._all(
            "SELECT instance, value FROM variables WHERE cp_id=? AND component=? AND evse_id=0"
            " AND variable=? AND attribute='Actual'", (cp_id, component, variable))
        return {r["instance"]: r["value"] for r in rows}

    async def record_status(self, event: StatusChanged) -> None:
        await self._record_status(event)
        if event.connector_id > 0:
            numbers = self._connector_numbers.setdefault(event.cp_id, set())
            if event.connector_id not in numbers:
                numbers.add(event.connector_id)
                self.chargers_changed += 1

    def charger_connectors(self) -> dict[str, frozenset[int]]:
        """Every charger with a record and the connector numbers (> 0) it has reported, from
        memory; `chargers_changed` counts the changes, so callers may keep what they derive."""
        return {cp_id: frozenset(self._connector_numbers.get(cp_id, ()))
                for cp_id in self._capabilities}

    @_writes
    def _record_status(self, db: Db, event: StatusChanged) -> None:
        db.execute(
            "INSERT INTO connectors (cp_id, connector_id, evse_connector_id, status,"
            " error_code, info, updated_at) VALUES (?,?,?,?,?,?,?)"
            " ON CONFLICT (cp_id, connector_id) DO UPDATE SET status=excluded.status,"
            " error_code=excluded.error_code, info=excluded.info,"
            " evse_connector_id=coalesce(excluded.evse_connector_id,"
            " connectors.evse_connector_id), updated_at=excluded.updated_at",
            (event.cp_id, event.connector_id, event.evse_connector_id, event.status,
             event.error_code, event.info, _ts(event.timestamp)),
        )
        db.execute(
            "INSERT INTO status_history (cp_id, connector_id, status, error_code, info, ts)"
            " VALUES (?,?,?,?,?,?)",
            (event.cp_id, event.connector_id, event.status, event.error_code, event.info,
             _ts(event.timestamp)),
        )

    @_writes
    def record_charger_event(self, db: Db, cp_id: str, kind: str, payload: dict[str, Any],
                             now: datetime) -> None:
        db.execute(
            "INSERT INTO charger_events (cp_id, kind, payload, ts) VALUES (?,?,?,?)",
            (cp_id, kind, json.dumps(payload), _ts(now)),
        )
