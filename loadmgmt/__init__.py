"""loadmgmt: the pure load-management core (no I/O, no asyncio; time is passed in).

Entry points: `allocate` (snapshot -> allocation), `limits.resolve` / `limits.lookahead`
(effective limits over time), `build_profiles` (allocation -> charging profiles) and the
dispatch rules `should_send` / `ordered`.
"""

from loadmgmt.allocator import allocate
from loadmgmt.model import (
    Allocation,
    ChargePoint,
    Connector,
    ConnectorAllocation,
    Demand,
    Group,
    NodeLimit,
    Session,
    Site,
    Snapshot,
)
from loadmgmt.network import standing_floors
from loadmgmt.profiles import Capabilities, ChargingProfile, build_profiles, ordered, should_send
from loadmgmt.units import CurrentType

__all__ = [
    "Allocation",
    "Capabilities",
    "ChargePoint",
    "ChargingProfile",
    "Connector",
    "ConnectorAllocation",
    "CurrentType",
    "Demand",
    "Group",
    "NodeLimit",
    "Session",
    "Site",
    "Snapshot",
    "allocate",
    "build_profiles",
    "ordered",
    "should_send",
    "standing_floors",
]
