"""What both objectives start from: the site as rows, each session's cap, minimum and
needed rate, the loads already counted (floors, pinned draws); CP-SAT units and settings."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ortools.sat.python import cp_model

from loadmgmt.model import OPT_OUT, Demand, Snapshot, priority_weight, round_down
from loadmgmt.network import Network, build_network, compute_floors

_A_SCALE = 1000.0  # CP-SAT works in mA for phase rows
_NO_ROW = 1 << 60  # a scaled row room meaning "no such row" (the fleet model's INF)


@dataclass
class _Prep:
    net: Network
    limits: list[float]
    floor: dict[int, float]
    demand: dict[int, Demand]
    free: list[int]  # active, not pinned, can charge (cap >= min)
    pinned: dict[int, float]
    cap: dict[int, float]
    mins: dict[int, float]
    need_w: dict[int, float]  # rate needed to finish before departure (load sharing)
    base: list[float]  # row loads of floors, pinned draws


def _prepare(snapshot: Snapshot) -> _Prep:
    net = build_network(snapshot)
    site = snapshot.site
    step = site.step_w
    # Given floors are what must stay reserved (the planner also reserves a connector's maximum
    # while its charger has not taken a floor), whatever the site's floor policy; computed ones
    # follow it (all zero for floors = "zero").
    floors_by_id = snapshot.floors if snapshot.floors is not None else compute_floors(snapshot)
    floor = {i: float(floors_by_id.get(c.id, 0.0)) for i, c in enumerate(net.connectors)}
    demand: dict[int, Demand] = {}
    for d in sorted(snapshot.sessions, key=lambda d: d.connector_id):
        if d.connector_id not in net.index:
            raise ValueError(f"session on unknown connector {d.connector_id!r}")
        demand[net.index[d.connector_id]] = d
    now = snapshot.now
    assert now is not None
    pinned: dict[int, float] = {}
    free: list[int] = []
    cap: dict[int, float] = {}
    mins: dict[int, float] = {}
    need_w: dict[int, float] = {}
    for i, d in demand.items():
        if d.pinned_w is not None:
            pinned[i] = max(0.0, float(d.pinned_w))
            continue
        hi = net.connectors[i].max_w()
        if d.vehicle_max_kw is not None:
            hi = min(hi, d.vehicle_max_kw * 1000.0)
        lo = net.min_w(i)
        lent = (
            d.priority != OPT_OUT
            and d.measured_w is not None
            and (d.fell_from_limit or d.below_limit_for_s >= site.lend_after_s)
        )
        if lent:
            assert d.measured_w is not None
            hi = min(hi, max(lo, d.measured_w + site.lend_margin_kw * 1000.0))
        hi = round_down(hi, step)
        if hi < lo or hi <= 0:
            continue
        cap[i] = hi
        mins[i] = lo
        free.append(i)
        if d.energy_to_charge_kwh and d.energy_to_charge_kwh > 0 and d.departure is not None:
            left = (d.departure - now).total_seconds()
            need_w[i] = hi if left <= 0 else min(hi, d.energy_to_charge_kwh * 3.6e6 / left)
    consumption = [floor[i] for i in range(len(net.connectors))]
    for i, p in pinned.items():
        consumption[i] = max(p, floor[i])
    base = net.loads(consumption)
    limits = net.row_limits(snapshot.limits)
    return _Prep(net, limits, floor, demand, free, pinned, cap, mins, need_w, base)


def _tier(d: Demand) -> int:
    return d.priority


def _w(prep: _Prep, i: int) -> float:
    return priority_weight(prep.demand[i].priority)


def _solver(time_limit_s: float, workers: int, seed: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit_s)
    solver.parameters.num_workers = max(1, workers)
    solver.parameters.random_seed = seed
    if workers > 1:
        solver.parameters.interleave_search = True
    return solver


def _scaled(net: Network, k: int, value: float, *, up: bool) -> int:
    scale = 1.0 if net.rows[k].kind == "kW" else _A_SCALE
    v = value * scale
    return math.ceil(v - 1e-9) if up else math.floor(v + 1e-9)
