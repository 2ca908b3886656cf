"""Which connectors a charger declared, so that no other connector number enters a plan.

A 1.6 charger declares `NumberOfConnectors` (read after boot into its capabilities as
`connectors`); a 2.0.1 station its EVSE components, when it sends a device-model report
(NotifyReport, kept as `evses`: the highest EVSE id reported). Where nothing was declared
every connector number is taken, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("csms.plausible")


@dataclass(frozen=True, slots=True)
class ConnectorsDeclared:
    """A charger declared how many connectors (1.6) or EVSEs (2.0.1) it has: the planner's
    live state drops those above, unless a session runs on one."""

    cp_id: str
    connectors: int


def declared_connectors(capabilities: Mapping[str, Any]) -> int | None:
    """How many connectors/EVSEs the charger declared; None when it declared none we trust."""
    for key in ("connectors", "evses"):
        value = capabilities.get(key)
        if type(value) is int and value >= 1:
            return value
    return None


def is_declared(capabilities: Mapping[str, Any], connector_id: int) -> bool:
    """Whether `connector_id` may take part in a plan: within the declared count, or any
    number when none was declared (connector 0, the whole charger, is never a plan's)."""
    declared = declared_connectors(capabilities)
    return declared is None or connector_id <= declared


def reported_evses(report_data: list[dict[str, Any]]) -> int | None:
    """The highest EVSE id among the EVSE components of a NotifyReport part (None: none)."""
    ids = [(d.get("component") or {}).get("evse", {}).get("id") for d in report_data
           if (d.get("component") or {}).get("name") == "EVSE"]
    ids = [i for i in ids if type(i) is int and i >= 1]
    return max(ids) if ids else None
