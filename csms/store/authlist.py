"""Records of the local authorization lists we keep in chargers and of reservations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# A reservation's life: `requested` while ReserveNow travels, then `reserved` (Accepted) or
# `rejected` (the charger's status in `charger_status`) or `failed` (no answer); a reserved one
# ends `cancelled`, `expired`, `removed` (2.0.1 ReservationStatusUpdate) or `used` (a
# transaction started with it).
OPEN_RESERVATION = ("requested", "reserved")
# 2.0.1 ReservationUpdateStatusEnumType -> the reservation's ending.
RESERVATION_UPDATES = {"Expired": "expired", "Removed": "removed"}


@dataclass(frozen=True, slots=True)
class LocalListRecord:
    """What a charger's local list holds as far as we know: the version it last accepted from
    us, its entries (id tag -> idTagInfo-like dict), and whether the id tags changed since."""

    cp_id: str
    version: int
    entries: dict[str, dict[str, Any]]
    out_of_date: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReservationRecord:
    id: int
    cp_id: str
    connector_id: int | None  # 1.6 connectorId / 2.0.1 evseId; None or 0: any
    id_tag: str
    parent_id_tag: str | None
    expiry: datetime
    status: str
    charger_status: str | None
    transaction_id: str | None
    created_at: datetime
    updated_at: datetime
