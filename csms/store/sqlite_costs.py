"""SqliteStore's session costs: the energy readings a cost is computed from, and the cost kept."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.clock import parse_iso
from csms.store.base import StoredCost
from csms.store.sqlite_base import Db, SqliteBase, _one, _writes
from csms.store.sqlite_sessions import ENERGY_REGISTER


class CostsMixin(SqliteBase):
    """Inputs and results of csms.tariffs for one session."""

    async def energy_readings(self, session_id: int) -> list[tuple[datetime, float]]:
        """The session's energy register readings (whole connector, outlet side) in Wh."""
        rows = await self._all(
            "SELECT ts, unit, value FROM meter_values WHERE session_id=? AND measurand=?"
            " AND phase IS NULL AND coalesce(location, 'Outlet')='Outlet' ORDER BY ts",
            (session_id, ENERGY_REGISTER))
        return [(parse_iso(r["ts"]), r["value"] * 1000.0 if r["unit"] == "kWh" else r["value"])
                for r in rows]

    async def variable_reports(self, cp_id: str, component: str) -> list[dict[str, Any]]:
        """What the station reported of `component`'s variables (NotifyReport entries)."""
        rows = await self._all(
            "SELECT DISTINCT raw FROM variables WHERE cp_id=? AND component=?", (cp_id, component))
        return [json.loads(r["raw"]) for r in rows]

    @_writes
    def save_session_cost(self, db: Db, session_id: int, total: Decimal, currency: str,
                          final: bool) -> StoredCost | None:
        """Keep a session's cost unless a final one is kept already; the cost now kept."""
        db.execute(
            "UPDATE sessions SET total_cost=?, cost_currency=?, cost_final=?"
            " WHERE id=? AND cost_final=0",
            (str(total), currency, int(final), session_id))
        row = _one(db, "SELECT total_cost, cost_currency, cost_final FROM sessions WHERE id=?",
                   (session_id,))
        if row is None or row["total_cost"] is None:
            return None
        return StoredCost(Decimal(row["total_cost"]), row["cost_currency"],
                          bool(row["cost_final"]))
