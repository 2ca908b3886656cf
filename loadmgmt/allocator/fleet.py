"""The `fleet` objective: a horizon of slots planned with CP-SAT, an earliest-departure-first
greedy plan as its hint and fallback; see the package docstring."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from loadmgmt.allocator.guards import _reserve_fleet_guards
from loadmgmt.allocator.prepare import _NO_ROW, _Prep, _scaled, _solver
from loadmgmt.allocator.result import _result
from loadmgmt.model import OPT_OUT, Allocation, NodeLimit, Snapshot, SolverStatus
from loadmgmt.network import INF


def _slot_limits(snapshot: Snapshot, prep: _Prep, slots: int) -> list[list[float]]:
    """Row limits per slot (a node's slot limit, else its present limit)."""
    if not snapshot.slot_limits:
        return [prep.limits] * slots
    out: list[list[float]] = []
    for t in range(slots):
        lim: dict[str, NodeLimit] = dict(snapshot.limits)
        for node, seq in snapshot.slot_limits.items():
            if seq:
                lim[node] = seq[min(t, len(seq) - 1)]
        out.append(prep.net.row_limits(lim))
    return out


@dataclass
class _FleetData:
    """The fleet problem in integers: power in steps, rows in W or mA, energy in permille."""

    sessions: list[int]
    slots: int
    hi: dict[int, int]
    lo: dict[int, int]
    fl: dict[int, int]
    coef: dict[int, list[tuple[int, int]]]  # per session: (row, units per step)
    room: list[list[int]]  # per slot, per row: room above floors, pinned draws (INF: no row)
    ecoef: dict[int, list[int]]  # per session, per slot: energy units per step (0: gone)
    need: dict[int, int]  # energy units to deliver
    step: float
    slot_s: int


def _fleet(
    snapshot: Snapshot, prep: _Prep, t0: float, time_limit_s: float, workers: int, seed: int
) -> Allocation:
    net = prep.net
    step = net.site.step_w
    slots = max(1, snapshot.horizon_slots)
    slot_s = snapshot.slot_s
    now = snapshot.now
    assert now is not None
    limits = _slot_limits(snapshot, prep, slots)
    sessions = sorted(prep.free, key=lambda i: net.connectors[i].id)
    data = _FleetData(sessions, slots, {}, {}, {}, {}, [], {}, {}, step, slot_s)
    for t in range(slots):
        data.room.append(
            [
                _scaled(net, k, limits[t][k] - prep.base[k], up=False)
                if limits[t][k] < INF
                else _NO_ROW
                for k in range(len(net.rows))
            ]
        )
    _reserve_fleet_guards(prep, snapshot.guards, data.room[0])
    for i in sessions:
        d = prep.demand[i]
        data.hi[i] = int(round(prep.cap[i] / step))
        data.lo[i] = math.ceil(prep.mins[i] / step - 1e-9)
        data.fl[i] = math.ceil(prep.floor[i] / step - 1e-9)
        data.coef[i] = [(k, _scaled(net, k, c * step, up=True)) for k, c in net.col_rows[i]]
        left = INF if d.departure is None else (d.departure - now).total_seconds()
        avail = [max(0.0, min(slot_s, left - t * slot_s)) for t in range(slots)]
        if avail[0] <= 0:  # past its departure: charge now rather than never
            avail[0] = float(slot_s)
        data.ecoef[i] = [int(round(1000 * a / slot_s)) for a in avail]
        if d.energy_to_charge_kwh is not None and d.energy_to_charge_kwh > 0:
            wh_units = d.energy_to_charge_kwh * 3.6e6 / (step * slot_s) * 1000
            data.need[i] = math.ceil(wh_units - 1e-9)
        else:
            data.need[i] = data.hi[i] * sum(data.ecoef[i])
    greedy = _fleet_greedy(prep, data)
    # Keep a little of the budget for reading the solution back.
    left_s = time_limit_s * 0.97 - 0.02 - (time.perf_counter() - t0)
    plan_steps, status = _fleet_cpsat(prep, data, greedy, left_s, workers, seed)
    plan = {i: [v * step for v in plan_steps[i]] for i in sessions}
    final = {i: plan[i][0] for i in sessions}
    delivered = 0.0
    short = 0.0
    for i in sessions:
        got = sum(v * e for v, e in zip(plan_steps[i], data.ecoef[i], strict=True))
        delivered += min(got, data.need[i])
        if prep.demand[i].energy_to_charge_kwh:
            short += max(0, data.need[i] - got)
    unit_kwh = step * slot_s / 1000 / 3.6e6
    objective = {
        "delivered_kwh": delivered * unit_kwh,
        "energy_shortfall_kwh": short * unit_kwh,
        "total_w": sum(final.values()) + sum(prep.pinned.values()),
    }
    return _result(
        snapshot, prep, final, {i: tuple(plan[i]) for i in sessions}, status, t0, objective
    )


# Departure-order buckets for the earliness tie-break (kept small: the shortfall weight is
# scaled above every earliness term, and CP-SAT coefficients must stay within int64).
_EARLY_BUCKETS = 8


def _fleet_order_key(prep: _Prep, i: int) -> tuple[int, float, int, str]:
    d = prep.demand[i]
    dep = d.departure.timestamp() if d.departure is not None else INF
    return (0 if d.priority == OPT_OUT else 1, dep, d.priority, prep.net.connectors[i].id)


def _fleet_greedy(prep: _Prep, data: _FleetData) -> dict[int, list[int]]:
    """Earliest departure first, each slot: as much as fits, 0 or at least the minimum.

    Works on the same integer rows as the CP-SAT model, so it is a feasible hint.
    """
    order = sorted(data.sessions, key=lambda i: _fleet_order_key(prep, i))
    left = dict(data.need)
    plan = {i: [0] * data.slots for i in data.sessions}
    for t in range(data.slots):
        room = list(data.room[t])
        for i in order:
            e = data.ecoef[i][t]
            if e <= 0 or left[i] <= 0:
                continue
            want = min(data.hi[i], -(-left[i] // e))
            fl = data.fl[i]
            give = want
            for k, c in data.coef[i]:
                if room[k] >= _NO_ROW or c <= 0:
                    continue
                # counted is max(x, floor); the floor is already in the room's base
                give = min(give, room[k] // c + fl)
            if give < max(data.lo[i], 1):
                continue
            for k, c in data.coef[i]:
                if room[k] < _NO_ROW:
                    room[k] -= c * (max(give, fl) - fl)
            plan[i][t] = give
            left[i] -= give * e
    return plan


def _fleet_cpsat(
    prep: _Prep,
    data: _FleetData,
    hint: Mapping[int, Sequence[int]],
    time_limit_s: float,
    workers: int,
    seed: int,
) -> tuple[dict[int, list[int]], SolverStatus]:
    if not data.sessions:
        return {}, "optimal"
    if time_limit_s <= 0.05:
        return {i: list(hint[i]) for i in data.sessions}, "greedy"
    build_start = time.perf_counter()
    model = cp_model.CpModel()
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    rows: dict[tuple[int, int], tuple[list[cp_model.IntVar], list[int]]] = {}
    short_vars: list[cp_model.IntVar] = []
    short_w: list[int] = []
    early_vars: list[cp_model.IntVar] = []
    early_w: list[int] = []
    slots = data.slots
    # Earlier power is worth more (a plan that waits may be overtaken by events), and within a
    # slot, power to a car that leaves sooner: without that tie-break two plans that meet every
    # need equally are both optimal and successive plans flip between them.
    by_departure = sorted(data.sessions, key=lambda i: _fleet_order_key(prep, i))
    bonus = {i: _EARLY_BUCKETS - 1 - r * _EARLY_BUCKETS // len(by_departure)
             for r, i in enumerate(by_departure)}
    for i in data.sessions:
        hi, lo, fl = data.hi[i], data.lo[i], data.fl[i]
        evars: list[cp_model.IntVar] = []
        ecoefs: list[int] = []
        for t in range(slots):
            e = data.ecoef[i][t]
            if e <= 0:
                continue
            v = model.new_int_var(0, hi, f"x{i}_{t}")
            if lo > 1:
                on = model.new_bool_var(f"o{i}_{t}")
                model.add(v >= lo).only_enforce_if(on)
                model.add(v == 0).only_enforce_if(~on)
                model.add_hint(on, hint[i][t] > 0)
            x[i, t] = v
            model.add_hint(v, hint[i][t])
            if fl > 0:
                # over = counted - floor = max(x - floor, 0): what the row sees beyond reserve
                over = model.new_int_var(0, max(hi - fl, 0), f"y{i}_{t}")
                model.add(over >= v - fl)
                model.add_hint(over, max(hint[i][t] - fl, 0))
            else:
                over = v
            for k, c in data.coef[i]:
                if data.room[t][k] < _NO_ROW:
                    entry = rows.setdefault((t, k), ([], []))
                    entry[0].append(over)
                    entry[1].append(c)
            evars.append(v)
            ecoefs.append(e)
            early_vars.append(v)
            # Multiplied, not added: a car's total is fixed by its need, so a per-car constant
            # would cancel out of every swap of energy between two cars and two slots.
            early_w.append((slots - t) * (_EARLY_BUCKETS + bonus[i]))
        got = cp_model.LinearExpr.weighted_sum(evars, ecoefs)
        need = data.need[i]
        s = model.new_int_var(0, max(need, 0), f"s{i}")
        model.add(s >= need - got)
        # A full car stops drawing: power past its need would only be withheld from others.
        model.add(got <= need + 1000)
        hinted = sum(h * e for h, e in zip(hint[i], data.ecoef[i], strict=True))
        model.add_hint(s, max(0, need - hinted))
        d = prep.demand[i]
        short_vars.append(s)
        short_w.append(64 if d.priority == OPT_OUT else 2 ** (6 - d.priority))
    for (t, k), (vs, cs) in rows.items():
        model.add(cp_model.LinearExpr.weighted_sum(vs, cs) <= max(data.room[t][k], 0))
    # Shortfall dominates: one unit of it outweighs any amount of earliness.
    big = sum(w * data.hi[i] for (i, _t), w in zip(x, early_w, strict=True)) + 1
    model.minimize(
        big * cp_model.LinearExpr.weighted_sum(short_vars, short_w)
        - cp_model.LinearExpr.weighted_sum(early_vars, early_w)
    )
    left = time_limit_s - (time.perf_counter() - build_start)
    if left <= 0.05:
        return {i: list(hint[i]) for i in data.sessions}, "greedy"
    solver = _solver(left, workers, seed)
    res = solver.solve(model)
    if res not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return {i: list(hint[i]) for i in data.sessions}, "greedy"
    plan = {i: [0] * slots for i in data.sessions}
    for (i, t), v in x.items():
        plan[i][t] = int(solver.value(v))
    return plan, "optimal" if res == cp_model.OPTIMAL else "feasible"
