"""Allocator benchmark (run by hand): `python -m bench.allocator [--reps N]`.

Prints solve time p50/p95 for load sharing on a three-level tree (site -> groups -> charge
points -> connectors) at 10, 100, 1,000 and 5,000 connectors, and for a fleet plan of 200
sessions x 96 slots; plus delivered power/energy against the LP relaxation's upper bound
(scipy linprog / HiGHS: same rows, floors and caps, no 0-or-minimum rule, no step).

Both LPs see the same per-session caps as the allocator: connector and vehicle maxima, and the
lending cap of a car that has drawn well below its limit for a while.

For load sharing that bound maximises throughput alone, so it includes the price of the
objective (needs first, priority weights, max-min fairness: a one-phase car uses a phase three
times faster per kW than a three-phase car, and the bound starves it). "/LP keeping" keeps every
session at least at what the allocator gave it: near 1 means no power was left that could go
anywhere without lowering someone. "/continuous" is the allocator's own objective without
integrality (no 0-or-minimum rule, 1 W steps): what the minimum and the step cost.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from loadmgmt.allocator import allocate
from loadmgmt.model import (
    OPT_OUT,
    ChargePoint,
    Connector,
    Demand,
    Group,
    Site,
    Snapshot,
)
from loadmgmt.network import Network, build_network, compute_floors
from loadmgmt.units import CurrentType

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def make_snapshot(n_connectors: int, seed: int, *, fleet_sessions: int = 0) -> Snapshot:
    """A site with ~sqrt(n)/2 groups, two-connector charge points, mixed AC/DC connectors."""
    rng = random.Random(seed)
    n_cps = max(1, n_connectors // 2)
    n_groups = max(1, int(round(n_cps**0.5 / 2)))
    conns: list[Connector] = []
    cps: list[ChargePoint] = []
    for c in range(n_cps):
        gid = f"G{c % n_groups}"
        dc = rng.random() < 0.1
        cps.append(ChargePoint(f"CP{c}", gid, max_power_kw=100.0 if dc else 22.0))
        for n in (1, 2):
            if len(conns) >= n_connectors:
                break
            cid = f"CP{c}/{n}"
            if dc:
                conns.append(
                    Connector(
                        cid,
                        f"CP{c}",
                        gid,
                        CurrentType.DC,
                        400,
                        1.0,
                        (1, 2, 3),
                        100.0,
                        min_current_a=0,
                    )
                )
            elif rng.random() < 0.15:
                ph = (rng.randint(1, 3),)
                conns.append(
                    Connector(cid, f"CP{c}", gid, CurrentType.AC_PHASE1, 230, 1.0, ph, 7.4)
                )
            else:
                rot = rng.choice([(1, 2, 3), (2, 3, 1), (3, 1, 2)])
                conns.append(
                    Connector(cid, f"CP{c}", gid, CurrentType.AC_PHASE3_LN, 230, 1.0, rot, 22.0)
                )
    total_kw = sum(c.max_power_kw for c in conns)
    groups = []
    for g in range(n_groups):
        members = [c for c in conns if c.parent_id == f"G{g}"]
        gkw = sum(c.max_power_kw for c in members)
        groups.append(
            Group(
                f"G{g}",
                "S",
                max_power_kw=0.6 * gkw,
                max_current_a=max(32.0, 0.6 * gkw * 1000 / 690),
            )
        )
    site = Site(
        "S",
        max_power_kw=0.35 * total_kw,
        max_current_a=0.35 * total_kw * 1000 / 690,
        power_step_kw=0.1,
        fallback_power_kw=None,
    )
    sessions = []
    pool = conns if not fleet_sessions else rng.sample(conns, min(fleet_sessions, len(conns)))
    for c in pool:
        if not fleet_sessions and rng.random() > 0.7:
            continue
        dep = (
            NOW + timedelta(minutes=rng.randint(30, 24 * 60))
            if (fleet_sessions or rng.random() < 0.3)
            else None
        )
        energy = rng.uniform(5, 60) if dep else None
        sessions.append(
            Demand(
                c.id,
                priority=rng.choice([1, 2, 3, 3, 3, 4, 5]) if rng.random() > 0.02 else 0,
                vehicle_max_kw=rng.choice([None, 7.4, 11.0, 50.0, 150.0]),
                energy_to_charge_kwh=energy,
                departure=dep,
                measured_w=rng.uniform(0, 3000) if rng.random() < 0.05 else None,
                below_limit_for_s=600.0,
                pinned_w=rng.uniform(0, 4000) if rng.random() < 0.01 else None,
            )
        )
    snap = Snapshot(
        site,
        tuple(conns),
        tuple(sessions),
        tuple(groups),
        tuple(cps),
        now=NOW,
        objective="fleet" if fleet_sessions else "load_sharing",
    )
    # Planner behaviour: floors are what chargers hold, computed once, not per plan.
    return Snapshot(**{**snap.__dict__, "floors": compute_floors(snap)})


def session_cap(snap: Snapshot, net: Network, d: Demand) -> float:
    """What a session can draw: connector and vehicle maxima, and for a car that has drawn well
    below its limit for a while, its measured draw plus the lending margin (the snapshot's own
    evidence of what it takes; the allocator lends the rest to others)."""
    i = net.index[d.connector_id]
    hi = net.connectors[i].max_w()
    if d.vehicle_max_kw is not None:
        hi = min(hi, d.vehicle_max_kw * 1000)
    lends = d.priority != OPT_OUT and d.measured_w is not None \
        and (d.fell_from_limit or d.below_limit_for_s >= snap.site.lend_after_s)
    if lends:
        assert d.measured_w is not None
        hi = min(hi, max(net.min_w(i), d.measured_w + snap.site.lend_margin_kw * 1000))
    return hi


def lp_bound_load_sharing(snap: Snapshot, at_least: dict[str, float] | None = None) -> float:
    """Max total power (W) under the same rows, floors and caps, without integrality.

    With `at_least` (connector -> W) every session keeps at least that much: the bound then
    says how much more could be delivered without lowering anyone (Pareto slack).
    """
    at_least = at_least or {}
    net = build_network(snap)
    n = len(net.connectors)
    floors = snap.floors or {}
    f = np.array([floors.get(c.id, 0.0) for c in net.connectors])
    cap = np.zeros(n)
    fixed = np.zeros(n)
    for d in snap.sessions:
        i = net.index[d.connector_id]
        if d.pinned_w is not None:
            fixed[i] = d.pinned_w
            continue
        cap[i] = session_cap(snap, net, d)
    limits = np.array(net.row_limits(snap.limits))
    # variables: x (power) then y (counted = max(x, floor, pinned))
    rows, cols, vals = [], [], []
    for k, row in enumerate(net.rows):
        for i, c in row.members:
            rows.append(k)
            cols.append(n + i)
            vals.append(c)
    a_rows = coo_matrix((vals, (rows, cols)), shape=(len(net.rows), 2 * n))
    eye = [(i, i, 1.0) for i in range(n)] + [(i, n + i, -1.0) for i in range(n)]
    a_xy = coo_matrix(
        ([v for *_, v in eye], ([r for r, *_ in eye], [c for _, c, _ in eye])), shape=(n, 2 * n)
    )
    from scipy.sparse import vstack

    finite = np.isfinite(limits)
    a_ub = vstack([a_rows.tocsr()[finite], a_xy.tocsr()])
    b_ub = np.concatenate([limits[finite], np.zeros(n)])
    lo_y = np.maximum(f, fixed)
    lo_x = [min(cap[i], at_least.get(c.id, 0.0)) for i, c in enumerate(net.connectors)]
    bounds = [(lo_x[i], cap[i]) for i in range(n)] + [(lo_y[i], None) for i in range(n)]
    c = np.concatenate([-np.ones(n), np.zeros(n)])
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    return float(-res.fun + fixed.sum()) if res.status == 0 else float("nan")


def lp_bound_fleet(snap: Snapshot) -> float:
    """Max energy (kWh) over the horizon: same rows per slot, energy capped at each need."""
    net = build_network(snap)
    slots = snap.horizon_slots
    floors = snap.floors or {}
    limits = np.array(net.row_limits(snap.limits))
    base = np.array(net.loads([floors.get(c.id, 0.0) for c in net.connectors]))
    sess = [d for d in snap.sessions if d.pinned_w is None]
    for d in snap.sessions:
        if d.pinned_w is not None:
            i = net.index[d.connector_id]
            for k, c in net.col_rows[i]:
                base[k] += c * max(0.0, d.pinned_w - floors.get(d.connector_id, 0.0))
    m = len(sess)
    nv = m * slots

    def var(s: int, t: int) -> int:
        return s * slots + t

    rows, cols, vals, b = [], [], [], []
    r = 0
    for t in range(slots):
        for k, row in enumerate(net.rows):
            if not np.isfinite(limits[k]):
                continue
            members = dict(row.members)
            for s, d in enumerate(sess):
                i = net.index[d.connector_id]
                if i in members:
                    rows.append(r)
                    cols.append(var(s, t))
                    vals.append(members[i])
            # a session counts max(x, floor): its floor is in base, so x may use it again
            own = sum(
                members[net.index[d.connector_id]] * floors.get(d.connector_id, 0.0)
                for d in sess
                if net.index[d.connector_id] in members
            )
            b.append(limits[k] - base[k] + own)
            r += 1
    bounds = []
    for d in sess:
        hi = session_cap(snap, net, d)
        left = (d.departure - NOW).total_seconds() if d.departure else 1e12
        for t in range(slots):
            avail = max(0.0, min(snap.slot_s, left - t * snap.slot_s))
            bounds.append((0, hi if avail > 0 else 0))
    for s, d in enumerate(sess):
        left = (d.departure - NOW).total_seconds() if d.departure else 1e12
        for t in range(slots):
            avail = max(0.0, min(snap.slot_s, left - t * snap.slot_s))
            rows.append(r)
            cols.append(var(s, t))
            vals.append(avail / 3600.0)
        b.append((d.energy_to_charge_kwh or 1e6) * 1000)
        r += 1
    a_ub = coo_matrix((vals, (rows, cols)), shape=(r, nv)).tocsr()
    obj = np.zeros(nv)
    for s, d in enumerate(sess):
        left = (d.departure - NOW).total_seconds() if d.departure else 1e12
        for t in range(slots):
            obj[var(s, t)] = -max(0.0, min(snap.slot_s, left - t * snap.slot_s)) / 3600.0
    res = linprog(obj, A_ub=a_ub, b_ub=np.array(b), bounds=bounds, method="highs")
    return float(-res.fun / 1000) if res.status == 0 else float("nan")


def continuous(snap: Snapshot) -> Snapshot:
    """The same snapshot without integrality: no 0-or-minimum rule, 1 W steps, same floors."""
    conns = tuple(replace(c, min_current_a=0.0) for c in snap.connectors)
    site = replace(snap.site, power_step_kw=0.001)
    return replace(snap, connectors=conns, site=site)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    # As `loadstar serve` does after start: long-lived objects (ortools, scipy, numpy) are kept
    # out of the cyclic collector, so a full pass over them does not land inside a solve.
    gc.freeze()
    print(f"{'case':<28}{'p50 ms':>9}{'p95 ms':>9}{'status':>20}{'delivered/LP':>14}"
          f"{'/LP keeping':>13}{'/continuous':>13}")
    cases = [("load_sharing", n, 0) for n in (10, 100, 1000, 5000)] + [("fleet", 200, 200)]
    for name, n, fleet in cases:
        reps = args.reps if n <= 1000 and not fleet else max(3, args.reps // 4)
        times: list[float] = []
        statuses: dict[str, int] = {}
        ratios: list[float] = []
        kept: list[float] = []
        same: list[float] = []
        for r in range(reps):
            snap = make_snapshot(n if not fleet else 400, seed=r, fleet_sessions=fleet)
            # The fleet solver uses its whole budget; 1.6 s leaves room for building the model.
            limit = 1.6 if fleet else 1.0
            t0 = time.perf_counter()
            alloc = allocate(snap, time_limit_s=limit, workers=args.workers, seed=0)
            times.append(time.perf_counter() - t0)
            statuses[alloc.status] = statuses.get(alloc.status, 0) + 1
            if r < 3:  # the LP bound is slow at 5,000: a few samples are enough
                if fleet:
                    ub = lp_bound_fleet(snap)
                    ratios.append(alloc.objective["delivered_kwh"] / ub)
                else:
                    ub = lp_bound_load_sharing(snap)
                    got = sum(c.power_w for c in alloc.connectors)
                    ratios.append(got / ub)
                    keep = {c.connector_id: c.power_w for c in alloc.connectors if c.active}
                    kept.append(got / lp_bound_load_sharing(snap, at_least=keep))
                    relaxed = allocate(continuous(snap), time_limit_s=limit, workers=args.workers)
                    same.append(got / sum(c.power_w for c in relaxed.connectors))
        label = f"{name} {n}" + (" x 96 slots" if fleet else " conn")
        st = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
        print(
            f"{label:<28}{1000 * statistics.median(times):>9.1f}"
            f"{1000 * _pct(times, 0.95):>9.1f}{st:>20}{statistics.mean(ratios):>14.4f}"
            f"{statistics.mean(kept) if kept else float('nan'):>13.4f}"
            f"{statistics.mean(same) if same else float('nan'):>13.4f}"
        )


if __name__ == "__main__":
    main()
