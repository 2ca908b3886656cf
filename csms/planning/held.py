"""What a connector holds from us: the accepted limits in force and the profiles behind them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from csms.live import ConnectorState
from loadmgmt.model import Connector
from loadmgmt.profiles import ChargingProfile


@dataclass(slots=True)
class Held:
    """What a connector holds beyond ConnectorState: the profile objects and retry times."""

    tx: ChargingProfile | None = None
    floor: ChargingProfile | None = None
    retry_at: datetime | None = None
    refusals: int = 0  # profiles refused or unanswered in a row (the retry backs off)


def held_w(c: ConnectorState, at: datetime) -> float | None:
    """The accepted limit in force at `at`: the session's TxProfile while valid, else the
    floor (None: the charger took nothing from us)."""
    if c.tx_id is not None and c.held_tx_w is not None and (
            c.held_tx_valid_to is None or c.held_tx_valid_to > at):
        return c.held_tx_w
    return c.held_floor_w


def current_w(c: ConnectorState, conn: Connector, now: datetime) -> float:
    """What the connector may draw on its own right now, as far as we know."""
    held = held_w(c, now)
    return conn.max_w() if held is None else held
