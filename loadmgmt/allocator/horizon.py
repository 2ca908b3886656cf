"""The fleet horizon as a linear program: energy before each departure, then fairness.

Between two departures nothing changes for a plan with constant limits, so the horizon is cut
into epochs at the slots where cars leave (and where slot limits change), not into every slot:
one power variable per session and epoch, exact for the relaxation and far smaller than
slots x sessions. Departures further out are rounded down to a coarser grid (a car is planned
to leave a little early: never unsafe, only cautious). The program (GLOP):

    minimise  sum_i w_i * sum_k (1 + FAIR * k) * short_ik  -  tiny bonus for early energy
    s.t.      energy_i + sum_k short_ik >= need_i,  0 <= short_ik <= need_i / SEGMENTS
              energy_i <= need_i                      (a full car stops drawing)
              every row, every epoch: sum_i coef * max(P_ij - floor_i, 0) <= room
              0 <= P_ij <= cap_i

Shortfall costs more the larger its share of a car's need (convex segments): energy first,
then the shortfall spread so that no car is left far behind the others (fairness); the early
bonus, smaller than any fairness step, front-loads energy and gives the present to the car
that leaves first. No 0-or-minimum rule here: the caller rounds (see `fleet`).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ortools.linear_solver.python import model_builder as mb

from loadmgmt.network import INF

SEGMENTS = 4
FAIR = 0.01  # each further quarter of a car's need unmet costs 1 % more per Wh
EARLY = 1e-4  # below every fairness step: only breaks ties
VAR_BUDGET = 4_000  # session-epoch variables; beyond it the epochs are coarsened


@dataclass(frozen=True)
class HorizonProblem:
    """Sessions over `slots` slots of `slot_s`: caps, floors, needs, rows, room per slot."""

    slot_s: int
    slots: int
    sessions: Sequence[int]
    cap: Mapping[int, float]  # W
    floor: Mapping[int, float]  # W already counted in the rows' base
    weight: Mapping[int, float]
    need_wh: Mapping[int, float]
    last_slot: Mapping[int, int]  # present in slots [0, last_slot) (>= 1)
    first_share: Mapping[int, float]  # fraction of slot 0 the car is still there
    coef: Mapping[int, Sequence[tuple[int, float]]]  # per session: (row, per W)
    room: Sequence[Sequence[float]]  # per slot, per row: W or A left above base (INF: none)


def _grid(t: int, slot_s: int) -> int:
    """Round slot index `t` down to the epoch grid: slots in the first hour, then quarter
    hours up to 4 h, then hours."""
    secs = t * slot_s
    res = 1 if secs < 3600 else max(1, 900 // slot_s) if secs < 4 * 3600 else max(1, 3600 // slot_s)
    return max(1, t - t % res)


def epochs(p: HorizonProblem) -> tuple[list[int], dict[int, int]]:
    """Epoch boundaries (slot indices, first 0 and 1, last `slots`) and each session's
    departure boundary (a car is present in every epoch that ends at or before it)."""
    marks = {0, 1, p.slots}
    for t in range(1, p.slots):
        if p.room[t] is not p.room[t - 1] and p.room[t] != p.room[t - 1]:
            marks.add(t)  # a slot limit changes here
    dep = {i: min(p.slots, _grid(p.last_slot[i], p.slot_s)) for i in p.sessions}
    marks.update(dep.values())
    bounds = sorted(marks)

    def variables(bs: list[int]) -> int:
        return sum(bisect.bisect_right(bs, d) - 1 for d in dep.values())

    while variables(bounds) > VAR_BUDGET and len(bounds) > 4:
        # Every other far boundary goes: a car planned to leave at the kept boundary before
        # its own still fits every row (cautious, never unsafe). The near ones stay.
        head, rest = bounds[:3], bounds[3:-1]
        bounds = head + rest[1::2] + [p.slots]
    out_dep: dict[int, int] = {}
    for i, d in dep.items():
        out_dep[i] = max(b for b in bounds if b <= d)
    return bounds, out_dep


@dataclass(frozen=True)
class HorizonPlan:
    """The program's answer: epoch boundaries (slot indices), each epoch's least room per
    row, each session's power per epoch (W, unrounded; 0 after it leaves)."""

    bounds: list[int]
    room: list[list[float]]
    power: dict[int, list[float]]
    present: dict[int, int]  # epochs a session is planned to be there for


def solve(p: HorizonProblem, time_limit_s: float) -> HorizonPlan | None:
    """The plan, or None when GLOP gives no optimum in time."""
    started = time.perf_counter()
    bounds, dep = epochs(p)
    slot_h = p.slot_s / 3600.0
    horizon = float(p.slots)
    model = mb.Model()
    power: dict[tuple[int, int], mb.Variable] = {}
    row_terms: dict[tuple[int, int], tuple[list[mb.Variable], list[float]]] = {}
    row_most: dict[tuple[int, int], float] = {}  # the most a row could see in that epoch
    obj_vars: list[mb.Variable] = []
    obj_coefs: list[float] = []
    nrows = len(p.room[0])
    room: list[list[float]] = []
    for j in range(len(bounds) - 1):
        slots_j = range(bounds[j], bounds[j + 1])
        # Within an epoch the least room holds (slot limits only change at boundaries, but a
        # coarsened grid may merge some: the least is safe).
        distinct = {id(p.room[t]): p.room[t] for t in slots_j}
        room.append(next(iter(distinct.values())) if len(distinct) == 1 else
                    [min(r[k] for r in distinct.values()) for k in range(nrows)])
    last_dep = max(dep.values()) if dep else 1
    for n, i in enumerate(p.sessions):
        if n % 64 == 63 and time.perf_counter() - started > time_limit_s:
            return None  # building alone took the budget: the caller falls back
        energy_vars: list[mb.Variable] = []
        energy_coefs: list[float] = []
        fl = p.floor.get(i, 0.0)
        urgency = 1.0 - dep[i] / (2.0 * max(last_dep, 1))
        for j in range(len(bounds) - 1):
            if bounds[j + 1] > dep[i]:
                break
            e = (bounds[j + 1] - bounds[j]) * slot_h * (p.first_share[i] if j == 0 else 1.0)
            x = model.new_num_var(0.0, p.cap[i], f"p{i}_{j}")
            power[i, j] = x
            energy_vars.append(x)
            energy_coefs.append(e)
            obj_vars.append(x)
            obj_coefs.append(-EARLY * p.weight[i] * e * (1.0 - bounds[j] / horizon) * (1 + urgency))
            over = x
            if fl > 0:
                over = model.new_num_var(0.0, max(0.0, p.cap[i] - fl), f"o{i}_{j}")
                model.add(over - x >= -fl)
            most = max(0.0, p.cap[i] - fl)
            for k, c in p.coef[i]:
                if room[j][k] < INF:
                    vs, cs = row_terms.setdefault((j, k), ([], []))
                    vs.append(over)
                    cs.append(c)
                    row_most[j, k] = row_most.get((j, k), 0.0) + c * most
        need = p.need_wh[i]
        got = mb.LinearExpr.weighted_sum(energy_vars, energy_coefs)
        model.add(got <= need)
        shorts = [model.new_num_var(0.0, need / SEGMENTS, f"s{i}_{k}") for k in range(SEGMENTS)]
        model.add(got + mb.LinearExpr.sum(shorts) >= need)
        for k, s in enumerate(shorts):
            obj_vars.append(s)
            obj_coefs.append(p.weight[i] * (1.0 + FAIR * k))
    for (j, k), (vs, cs) in row_terms.items():
        # A hair below the limit: GLOP's tolerances must not put a row over it.
        limit = max(0.0, room[j][k])
        if row_most[j, k] <= limit * (1 - 1e-6):
            continue  # cannot bind: every car at its maximum still fits
        model.add(mb.LinearExpr.weighted_sum(vs, cs) <= limit - 1e-7 * max(1.0, limit))
    model.minimize(mb.LinearExpr.weighted_sum(obj_vars, obj_coefs))
    left = time_limit_s - (time.perf_counter() - started)
    if left <= 0.002:
        return None  # building took the budget: the caller falls back
    solver = mb.Solver("glop")
    solver.set_time_limit_in_seconds(left)
    status = solver.solve(model)
    if status != mb.SolveStatus.OPTIMAL:
        return None
    values = solver.values(list(power.values()))
    out = {i: [0.0] * (len(bounds) - 1) for i in p.sessions}
    present = dict.fromkeys(p.sessions, 0)
    for ((i, j), _x), v in zip(power.items(), values, strict=True):
        v = max(0.0, min(p.cap[i], float(v)))
        if not math.isfinite(v):
            return None
        out[i][j] = v
        present[i] = max(present[i], j + 1)
    return HorizonPlan(bounds, room, out, present)
