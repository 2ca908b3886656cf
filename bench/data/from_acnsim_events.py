"""Rebuild `caltech_2019-03.json` from an ACN-Sim event-queue dump (how the sample was made).

Usage: python bench/data/from_acnsim_events.py EVENTS.json[.gz] OUT.json
See README.md beside this file for the source and what each field means.
"""

from __future__ import annotations

import gzip
import json
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

# The dump counts 5-minute periods from midnight 2019-03-01 at the site (Pasadena).
START = datetime(2019, 3, 1, tzinfo=ZoneInfo("America/Los_Angeles")).astimezone(UTC)
PERIOD = timedelta(minutes=5)


def _http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def convert(raw: dict) -> dict:
    """ACN-Data API shape (`_items` of sessions) from the dump's EV records."""
    items = []
    for obj in raw["context_dict"].values():
        if not obj["class"].endswith(".ev.EV"):
            continue
        ev = obj["attributes"]
        # The session id ends with the exact connection time (UTC); the dump only keeps the
        # departure as a period number.
        connected = datetime.fromisoformat(ev["_session_id"].rsplit("_", 1)[1]).replace(tzinfo=UTC)
        # (the dump rounds to the period: a few arrivals sit a second before theirs)
        offset = (connected - START) / PERIOD - ev["_arrival"]
        assert -0.01 < offset < 1, ev["_session_id"]
        items.append({
            "sessionID": ev["_session_id"],
            "siteID": "caltech",
            "stationID": ev["_station_id"],
            "connectionTime": _http_date(connected),
            "disconnectTime": _http_date(START + ev["_departure"] * PERIOD),
            "kWhDelivered": round(ev["_requested_energy"], 3),
        })
    items.sort(key=lambda s: datetime.strptime(s["connectionTime"], "%a, %d %b %Y %H:%M:%S %Z"))
    return {"_meta": {"site": "caltech", "start": _http_date(START), "total": len(items)},
            "_items": items}


def main() -> None:
    """Read the dump named on the command line and write the sample."""
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    text = gzip.open(src, "rt").read() if src.suffix == ".gz" else src.read_text()
    raw = json.loads(text)
    if isinstance(raw, str):  # the dump is a JSON string holding JSON
        raw = json.loads(raw)
    out.write_text(json.dumps(convert(raw), indent=0) + "\n")


if __name__ == "__main__":
    main()
