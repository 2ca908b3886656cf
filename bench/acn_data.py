"""Charging sessions in the ACN-Data JSON shape (`_items` of sessions), for the benchmarks.

Reads what the ACN-Data API returns (`connectionTime`, `disconnectTime`, `kWhDelivered`, and
`userInputs[-1].kWhRequested` / `requestedDeparture` when a driver gave them) from a file such
as `bench/data/caltech_2019-03.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

DEFAULT_SAMPLE = Path(__file__).parent / "data" / "caltech_2019-03.json"


@dataclass(frozen=True, slots=True)
class Session:
    """One real charging session: when the car came and left, and what it asked for."""

    session_id: str
    station_id: str
    arrival: datetime
    departure: datetime
    kwh: float
    declared_departure: datetime | None = None  # what the driver said, when known


def _when(value: str) -> datetime:
    """An ACN-Data time: an HTTP date ("Fri, 01 Mar 2019 14:24:58 GMT") or ISO 8601."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _session(item: dict[str, Any], use_user_inputs: bool) -> Session | None:
    if not item.get("disconnectTime"):
        return None  # still plugged in when the data were taken
    kwh = float(item["kWhDelivered"])
    declared = None
    inputs = item.get("userInputs") or []
    if use_user_inputs and inputs:
        last = inputs[-1]
        kwh = float(last.get("kWhRequested", kwh))
        if last.get("requestedDeparture"):
            declared = _when(last["requestedDeparture"])
    arrival, departure = _when(item["connectionTime"]), _when(item["disconnectTime"])
    if departure <= arrival or kwh <= 0:
        return None
    return Session(str(item["sessionID"]), str(item["stationID"]), arrival, departure, kwh,
                   declared)


def load_sessions(path: Path = DEFAULT_SAMPLE, *, start: datetime | None = None,
                  end: datetime | None = None, use_user_inputs: bool = False) -> list[Session]:
    """Sessions that arrive in [start, end), sorted by arrival.

    By default the energy asked for is what the car took (`kWhDelivered`), as in ACN-Sim;
    `use_user_inputs` takes the driver's own request and departure where the data have them.
    """
    raw = json.loads(Path(path).read_text())
    items = raw["_items"] if isinstance(raw, dict) else raw
    out = []
    for item in items:
        s = _session(item, use_user_inputs)
        if s is None or (start and s.arrival < start) or (end and s.arrival >= end):
            continue
        out.append(s)
    out.sort(key=lambda s: (s.arrival, s.session_id))
    return out
