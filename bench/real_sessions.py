"""Replay real charging sessions through the allocator (run by hand, prints a table).

    python -m bench.real_sessions [--data FILE] [--start 2019-03-01] [--days 7]
        [--kw 30 20] [--wiring arithmetic|phasor] [--step-min 5] [--algos ...]

Sessions (ACN-Data shape, default `bench/data/caltech_2019-03.json`: real Caltech sessions)
arrive on the Caltech ACN site model (`bench.acn_site`: 54 line-to-line EVSEs, 208 V, pods of
80 A, a transformer of `--kw`). Every `--step-min` the chosen algorithm sets each car's limit;
a car takes its limit up to its maximum (6.6 kW) and stops when its kWh are delivered or at
its departure. The algorithms: `load_sharing` and `fleet` (`loadmgmt.allocator.allocate`,
fleet carrying its plan from call to call), and `edf`, an earliest-deadline-first baseline on
the same rows (kept here: it is a yardstick, not a Loadstar objective). `--offline` adds the
offline optimum on the same rows (`bench.offline_bound`), an upper bound.

Columns: delivered % of the energy requested, sessions fully served, peak site kW and the
peak exact (phasor) secondary and primary line currents against their limits, allocator time
per call p50/p95. `--wiring phasor` plans on the exact rows (with the transformer's primary);
arithmetic rows cannot express the primary, so there only the kW row bounds it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.acn_data import DEFAULT_SAMPLE, Session, load_sessions
from bench.acn_site import (
    exact_line_currents,
    exact_primary_currents,
    line_limit_a,
    primary_limit_a,
    site_model,
)
from loadmgmt.allocator import allocate
from loadmgmt.model import Allocation, Demand, Snapshot, round_down
from loadmgmt.network import build_network

CAR_MAX_KW = 6.6
FLEET_HORIZON_H = 24.0  # no car in the data stays longer than a day or two; plans stop here


@dataclass
class Result:
    """What one run delivered and how fast it decided."""

    algo: str
    requested_kwh: float
    delivered_kwh: float
    served: int
    sessions: int
    peak_kw: float
    peak_line_a: float
    peak_primary_a: float
    call_ms: list[float]


def _edf(snapshot: Snapshot) -> dict[str, float]:
    """Earliest departure first: each car in turn gets all that fits, 0 or at least its minimum."""
    net = build_network(snapshot)
    limits = net.row_limits(snapshot.limits)
    load = [0.0] * len(net.rows)
    step = snapshot.site.step_w
    far = datetime.max.replace(tzinfo=UTC)
    out: dict[str, float] = {}
    for d in sorted(snapshot.sessions, key=lambda d: (d.departure or far, d.connector_id)):
        i = net.index[d.connector_id]
        want = net.cap_w(i)
        if d.vehicle_max_kw is not None:
            want = min(want, d.vehicle_max_kw * 1000.0)
        if d.energy_to_charge_kwh is not None:
            want = min(want, d.energy_to_charge_kwh * 3.6e6 / (snapshot.slot_s or 300))
        for k, c in net.col_rows[i]:
            want = min(want, (limits[k] - load[k]) / c)
        give = round_down(max(0.0, want), step)
        if give < net.min_w(i):
            continue
        for k, c in net.col_rows[i]:
            load[k] += c * give
        out[d.connector_id] = give
    return out


def replay(sessions: list[Session], transformer_kw: float, algo: str, *, wiring: str,
           step_s: int, time_limit_s: float) -> Result:
    """Step through the sessions' time span and return what `algo` delivered."""
    site, conns, groups = site_model(transformer_kw, wiring=wiring,
                                     objective="fleet" if algo == "fleet" else "load_sharing")
    t0 = min(s.arrival for s in sessions)
    t0 = t0.replace(minute=t0.minute - t0.minute % (step_s // 60 or 1), second=0, microsecond=0)
    end = max(s.departure for s in sessions)
    left = {s.session_id: s.kwh for s in sessions}
    # A car plugs in at the first step at or after its arrival and charges in every step that
    # starts before its departure (departures are on the data's 5-minute grid).
    def on(s: Session, now: datetime) -> bool:
        return s.arrival <= now < s.departure and left[s.session_id] > 1e-9

    calls: list[float] = []
    peak_kw = peak_a = peak_p = 0.0
    carry = None
    now = t0
    while now < end:
        active = [s for s in sessions if on(s, now)]
        if active:
            by_conn = {f"{s.station_id}/1": s for s in active}
            if len(by_conn) < len(active):  # two sessions on one EVSE: keep the later one
                by_conn = {f"{s.station_id}/1": s for s in sorted(active, key=lambda s: s.arrival)}
            demands = tuple(Demand(cid, vehicle_max_kw=CAR_MAX_KW,
                                   energy_to_charge_kwh=left[s.session_id],
                                   departure=s.departure, transaction_id=s.session_id)
                            for cid, s in sorted(by_conn.items()))
            last = max(s.departure for s in by_conn.values())
            horizon = min(math.ceil((last - now).total_seconds() / step_s),
                          int(FLEET_HORIZON_H * 3600 / step_s))
            snap = Snapshot(site, conns, demands, groups, now=now, slot_s=step_s,
                            horizon_slots=max(1, horizon), fleet_carry=carry)
            start = time.perf_counter()
            if algo == "edf":
                grant = _edf(snap)
            else:
                alloc: Allocation = allocate(snap, time_limit_s=time_limit_s)
                carry = alloc.fleet_carry
                grant = {c.connector_id: c.power_w for c in alloc.connectors if c.active}
            calls.append((time.perf_counter() - start) * 1000.0)
            drawn: dict[str, float] = {}
            for cid, s in by_conn.items():
                w = min(grant.get(cid, 0.0), CAR_MAX_KW * 1000.0,
                        left[s.session_id] * 3.6e6 / step_s)
                left[s.session_id] -= w * step_s / 3.6e6
                drawn[s.station_id] = w
            peak_kw = max(peak_kw, sum(drawn.values()) / 1000.0)
            peak_a = max(peak_a, *exact_line_currents(drawn))
            peak_p = max(peak_p, *exact_primary_currents(drawn))
        now += timedelta(seconds=step_s)
    requested = sum(s.kwh for s in sessions)
    delivered = sum(s.kwh - max(0.0, left[s.session_id]) for s in sessions)
    served = sum(1 for s in sessions if left[s.session_id] <= 0.01 * s.kwh + 1e-6)
    return Result(algo, requested, delivered, served, len(sessions), peak_kw, peak_a, peak_p,
                  calls)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    """Parse the command line, replay each algorithm at each transformer size, print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_SAMPLE))
    ap.add_argument("--start", default="2019-03-01", help="first day (site local date, UTC-8)")
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--kw", type=float, nargs="+", default=[30.0, 20.0])
    ap.add_argument("--wiring", choices=["arithmetic", "phasor"], default="arithmetic")
    ap.add_argument("--step-min", type=int, default=5)
    ap.add_argument("--time-limit", type=float, default=1.0, help="allocator budget per call (s)")
    ap.add_argument("--algos", nargs="*", default=["edf", "load_sharing", "fleet"])
    ap.add_argument("--offline", action="store_true",
                    help="also print the offline optimum (scipy LP over the whole period)")
    args = ap.parse_args()
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC) + timedelta(hours=8)
    sessions = load_sessions(args.data, start=start, end=start + timedelta(days=args.days))
    print(f"{len(sessions)} sessions, {sum(s.kwh for s in sessions):.1f} kWh requested, "
          f"{args.start} + {args.days:g} days, wiring {args.wiring}, step {args.step_min} min")
    print("| transformer | algorithm | delivered % | fully served | peak kW / limit "
          "| peak line A / limit | peak primary A / limit | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for kw in args.kw:
        if args.offline:
            # scipy comes with the bench extra only; the replay itself needs nothing of it
            from bench.offline_bound import offline_kwh

            best = offline_kwh(sessions, kw, wiring=args.wiring, step_s=args.step_min * 60,
                               car_max_kw=CAR_MAX_KW)
            total = sum(s.kwh for s in sessions)
            print(f"| {kw:g} kW | offline optimum (same rows, no minimum) "
                  f"| {100 * best / total:.2f} | - | - | - | - | - | - |", flush=True)
        for algo in args.algos:
            r = replay(sessions, kw, algo, wiring=args.wiring, step_s=args.step_min * 60,
                       time_limit_s=args.time_limit)
            print(f"| {kw:g} kW | {algo} | {100 * r.delivered_kwh / r.requested_kwh:.2f} "
                  f"| {r.served}/{r.sessions} | {r.peak_kw:.1f} / {kw:g} "
                  f"| {r.peak_line_a:.1f} / {line_limit_a(kw):.1f} "
                  f"| {r.peak_primary_a:.1f} / {primary_limit_a(kw):.1f} "
                  f"| {_pct(r.call_ms, 50):.1f} | {_pct(r.call_ms, 95):.1f} |", flush=True)


if __name__ == "__main__":
    main()
