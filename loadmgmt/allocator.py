"""The allocator: one entry point, `allocate(snapshot, *, time_limit_s) -> Allocation`.

How it works, and why:

* Hard constraints are linear rows over connector powers (see `loadmgmt.network`): every
  node's kW limit and per-phase A limit minus the site buffer; connector and vehicle maxima;
  each session 0 or at least max(site minimum, 6 A equivalent); limits on the power step;
  pinned sessions fixed. Every connector also counts at least its standing floor (its
  TxDefaultProfile share): an idle connector's floor is held in reserve (seed 002
  reservedPower) so a car that plugs in while we are away still fits; see DESIGN section 3,
  "Safe without us". A session counts max(grant, floor).

* `load_sharing` (the present slot only). The objective is lexicographic: (1) opt-out
  (priority 0) sessions at their maximum, (2) the rate each session needs to get its energy
  before departure, higher priority first, (3) weighted max-min fair shares (weight
  6 - priority), (4) sessions measured well below their limit for a while are capped near
  their draw so the rest is lent to others (the cap goes when they ramp up and the planner
  re-plans). Without the 0-or-minimum rule each step is a weighted max-min problem over a
  polytope, which exact progressive filling solves in O(n log n) per step: far faster than
  CP-SAT and exactly lexicographic. The 0-or-minimum rule is the combinatorial part: which
  sessions to admit when not every minimum fits. A greedy pass (priority order) admits
  sessions; only when it has to turn one away does CP-SAT choose the admitted set, tier by
  tier from opt-out down (maximise the number admitted per priority). Results are rounded down
  to the power step and the slack handed out a step at a time to the poorest weighted share
  that can still rise, until none can. Rounding can leave room in a row that only a session
  blocked by another row could use; such a session then takes a step from a session that
  stays richer in that row (never from what objectives 1 and 2 gave). The result: no session
  can rise by a step without lowering one whose weighted share would not stay above its own.
  Guards (`Snapshot.guards`) are reserved after admission and before objective 2, as far as
  they fit: a charger not yet seen following a limit keeps room for what its car may draw.

* `fleet` plans `horizon_slots` slots of `slot_s` with CP-SAT: integer steps per session and
  slot, 0-or-minimum, all rows per slot, minimise priority-weighted energy shortfall at
  departure (opt-out weighted highest), then prefer energy early. An earliest-departure-first
  greedy plan is the hint and the fallback when CP-SAT proves nothing better in time.

Deterministic: fixed seed, sorted inputs; with `workers` > 1 CP-SAT runs interleaved search so
the answer does not depend on thread timing.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from loadmgmt.model import (
    OPT_OUT,
    Allocation,
    ConnectorAllocation,
    Demand,
    NodeLimit,
    Snapshot,
    SolverStatus,
    priority_weight,
    round_down,
)
from loadmgmt.network import (
    INF,
    Network,
    build_network,
    compute_floors,
    greedy_admit,
    overloaded_nodes,
    progressive_fill,
)

_A_SCALE = 1000.0  # CP-SAT works in mA for phase rows


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


def allocate(
    snapshot: Snapshot, *, time_limit_s: float, workers: int = 1, seed: int = 0
) -> Allocation:
    """Compute every connector's limit for the snapshot's site (see the module docstring)."""
    t0 = time.perf_counter()
    if snapshot.now is None or snapshot.now.tzinfo is None:
        raise ValueError("snapshot.now must be a tz-aware datetime")
    prep = _prepare(snapshot)
    objective = snapshot.effective_objective
    if objective == "off":
        return _unmanaged(snapshot, prep, t0)
    if objective == "fleet":
        return _fleet(snapshot, prep, t0, time_limit_s, workers, seed)
    shares: dict[str, float] = {}
    if any(prep.net.index.get(cid) in prep.demand for cid in snapshot.guards):
        # What a guarded session is sent: its share were it not guarded (the guard fills its
        # own charger's rows, so a fill with it would leave the session at its minimum).
        plain = _load_sharing(replace(snapshot, guards={}), _prepare(snapshot), t0,
                              time_limit_s / 2, workers, seed)
        shares = {c.connector_id: c.power_w for c in plain.connectors}
    return _load_sharing(snapshot, prep, t0, time_limit_s, workers, seed, shares)


# --------------------------------------------------------------------------- preparation


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
            and d.below_limit_for_s >= site.lend_after_s
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


# --------------------------------------------------------------------------- load sharing


def _admit(
    prep: _Prep,
    subset: Sequence[int],
    base: Sequence[float],
    time_limit_s: float,
    workers: int,
    seed: int,
) -> tuple[list[int], SolverStatus]:
    """Choose sessions that get at least their minimum; CP-SAT only if greedy turns one away."""
    extra = {i: max(prep.mins[i], prep.floor[i]) - prep.floor[i] for i in subset}
    order = sorted(
        subset,
        key=lambda i: (
            _tier(prep.demand[i]),
            -prep.need_w.get(i, 0.0),
            prep.net.connectors[i].id,
        ),
    )
    admitted = greedy_admit(prep.net, prep.limits, base, order, extra)
    if len(admitted) == len(order):
        return admitted, "optimal"
    chosen, status = _cpsat_admit(prep, base, order, extra, admitted, time_limit_s, workers, seed)
    return chosen, status


def _solver(time_limit_s: float, workers: int, seed: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit_s)
    solver.parameters.num_workers = max(1, workers)
    solver.parameters.random_seed = seed
    if workers > 1:
        solver.parameters.interleave_search = True
    return solver


def _cpsat_admit(
    prep: _Prep,
    base: Sequence[float],
    order: list[int],
    extra: Mapping[int, float],
    greedy: list[int],
    time_limit_s: float,
    workers: int,
    seed: int,
) -> tuple[list[int], SolverStatus]:
    net = prep.net
    cand = [i for i in order if extra[i] > 0]
    always = [i for i in order if extra[i] <= 0]
    model = cp_model.CpModel()
    x = {i: model.new_bool_var(f"a{i}") for i in cand}
    rows: dict[int, list[tuple[int, int]]] = {}
    for i in cand:
        for k, c in net.col_rows[i]:
            if prep.limits[k] < INF:
                rows.setdefault(k, []).append((i, _scaled(net, k, c * extra[i], up=True)))
    for k, terms in rows.items():
        room = _scaled(net, k, prep.limits[k] - base[k], up=False)
        model.add(sum(coef * x[i] for i, coef in terms) <= max(room, 0))
    greedy_set = set(greedy)
    for i in cand:
        model.add_hint(x[i], i in greedy_set)
    deadline = time.perf_counter() + time_limit_s
    tiers = sorted({_tier(prep.demand[i]) for i in cand})
    status: SolverStatus = "optimal"
    solution: dict[int, int] | None = None
    for tier in tiers:
        left = deadline - time.perf_counter()
        if left <= 0:
            status = "greedy" if solution is None else "feasible"
            break
        members = [x[i] for i in cand if _tier(prep.demand[i]) == tier]
        model.maximize(sum(members))
        solver = _solver(left, workers, seed)
        res = solver.solve(model)
        if res not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            status = "greedy" if solution is None else "feasible"
            break
        solution = {i: int(solver.value(x[i])) for i in cand}
        best = int(round(solver.objective_value))
        model.add(sum(members) >= best)  # lexicographic: keep this tier's count
        model.clear_hints()
        for i in cand:
            model.add_hint(x[i], solution[i])
        if res != cp_model.OPTIMAL:
            status = "feasible"
            break
    if solution is None:
        return greedy, "greedy"
    chosen = set(always) | {i for i, v in solution.items() if v}
    if _tier_counts(prep, chosen) < _tier_counts(prep, greedy_set):
        return greedy, "greedy"
    return [i for i in order if i in chosen], status


def _tier_counts(prep: _Prep, chosen: set[int]) -> tuple[int, ...]:
    counts = [0] * 6
    for i in chosen:
        counts[_tier(prep.demand[i])] += 1
    return tuple(counts)


def _scaled(net: Network, k: int, value: float, *, up: bool) -> int:
    scale = 1.0 if net.rows[k].kind == "kW" else _A_SCALE
    v = value * scale
    return math.ceil(v - 1e-9) if up else math.floor(v + 1e-9)


def _load_sharing(
    snapshot: Snapshot, prep: _Prep, t0: float, time_limit_s: float, workers: int, seed: int,
    shares: Mapping[str, float] | None = None,
) -> Allocation:
    net = prep.net
    step = net.site.step_w
    deadline = time.perf_counter() + time_limit_s
    base = list(prep.base)
    alloc: dict[int, float] = {}

    def admit(group: list[int]) -> tuple[list[int], SolverStatus]:
        left = max(0.0, deadline - time.perf_counter())
        chosen, st = _admit(prep, group, base, left, workers, seed)
        for i in chosen:
            alloc[i] = prep.mins[i]
            delta = max(alloc[i], prep.floor[i]) - prep.floor[i]
            for k, c in net.col_rows[i]:
                base[k] += c * delta
        return chosen, st

    def fill(group: list[int], caps: Mapping[int, float], weights: Mapping[int, float]) -> None:
        if not group:
            return
        lbs = {i: alloc[i] for i in group}
        hi = {i: max(lbs[i], caps[i]) for i in group}
        got, _ = progressive_fill(net, prep.limits, base, group, lbs, hi, weights, prep.floor)
        for i in group:
            old = max(alloc[i], prep.floor[i])
            alloc[i] = got[i]
            new = max(got[i], prep.floor[i])
            if new != old:
                for k, c in net.col_rows[i]:
                    base[k] += c * (new - old)

    given_floor = dict(prep.floor)
    # (1) opt-out sessions first: admitted, then raised to their maximum, before anyone else
    optout, st1 = admit([i for i in prep.free if prep.demand[i].priority == OPT_OUT])
    fill(optout, prep.cap, {i: 1.0 for i in optout})
    rest, st2 = admit([i for i in prep.free if prep.demand[i].priority != OPT_OUT])
    admitted = optout + rest
    guarded = _reserve_guards(prep, snapshot.guards, alloc, base)
    order_ = ("optimal", "feasible", "greedy")
    status: SolverStatus = max(st1, st2, key=order_.index)  # type: ignore[assignment]
    # (2) the rate needed before departure, tier by tier (higher priority first)
    for tier in range(1, 6):
        group = [i for i in rest if prep.demand[i].priority == tier and i in prep.need_w]
        fill(group, prep.need_w, {i: max(prep.need_w[i], 1.0) for i in group})
    # (3) + (4): weighted max-min on the rest (lending already lowered caps)
    fill(rest, prep.cap, {i: priority_weight(prep.demand[i].priority) for i in rest})

    # Power below the standing floor is already reserved: hand it out (not a guard's).
    for i in admitted:
        alloc[i] = max(alloc[i], min(given_floor[i], prep.cap[i]))
    _fix_guarded(prep, guarded, alloc, shares or {})
    final = _round_and_top_up(prep, admitted, alloc, step)
    plan = {i: (p,) for i, p in final.items()}
    objective = _objective_values(prep, final)
    return _result(snapshot, prep, final, plan, status, t0, objective)


def _guard_extras(prep: _Prep, guards: Mapping[str, float], counted: Mapping[int, float],
                  room: list[float]) -> dict[int, float]:
    """What each guard adds above what its connector already counts, as far as every row's
    `room` (W or A, INF: no row) allows; `room` is used up as guards are placed, in id order."""
    net = prep.net
    extras: dict[int, float] = {}
    for cid, want in sorted(guards.items()):
        i = net.index.get(cid)
        if i is None or i in prep.pinned:
            continue
        extra = want - max(counted.get(i, 0.0), prep.floor[i])
        for k, c in net.col_rows[i]:
            if room[k] < INF and c > 0:
                extra = min(extra, room[k] / c)
        if extra <= 0:
            continue
        for k, c in net.col_rows[i]:
            room[k] -= c * extra
        extras[i] = extra
    return extras


def _reserve_guards(prep: _Prep, guards: Mapping[str, float], alloc: Mapping[int, float],
                    base: list[float]) -> list[int]:
    """Count guarded connectors toward their guard, as far as every row allows.

    Returns the guarded sessions: `_fix_guarded` keeps each at its fair share once the fill
    is done, so the charger is sent that (its next reading shows whether it follows it), not
    the guard that is free to grant because it is already counted.
    """
    net = prep.net
    room = [prep.limits[k] - base[k] for k in range(len(net.rows))]
    extras = _guard_extras(prep, guards, alloc, room)
    for i, extra in extras.items():
        for k, c in net.col_rows[i]:
            base[k] += c * extra
        prep.floor[i] = max(alloc.get(i, 0.0), prep.floor[i]) + extra
    return [i for i in extras if i in alloc]


def _fix_guarded(prep: _Prep, sessions: Sequence[int], alloc: dict[int, float],
                 shares: Mapping[str, float]) -> None:
    """A guarded session is sent its unguarded share, within what it is counted at, and kept
    there: rising within its guard would cost no row, so nothing else would stop it."""
    for i in sessions:
        share = shares.get(prep.net.connectors[i].id, alloc[i])
        alloc[i] = max(round_down(min(share, prep.floor[i]), prep.net.site.step_w),
                       prep.mins[i])
        prep.cap[i] = alloc[i]


def _round_and_top_up(
    prep: _Prep, admitted: Sequence[int], alloc: Mapping[int, float], step: float
) -> dict[int, float]:
    """Round down to the step, then hand out the slack a step at a time, poorest first.

    See `_top_up` and `_trade_steps`; the result is weighted max-min fair in whole steps.
    """
    net = prep.net
    final = {i: max(prep.mins[i], round_down(alloc[i], step)) for i in admitted}
    consumption = [prep.floor[i] for i in range(len(net.connectors))]
    for i, p in prep.pinned.items():
        consumption[i] = max(p, prep.floor[i])
    for i, p in final.items():
        consumption[i] = max(p, prep.floor[i])
    loads = net.loads(consumption)
    # Float noise in the fill must never put us over a limit: shed from the richest first.
    for k, row in enumerate(net.rows):
        if loads[k] <= prep.limits[k] + 1e-6:
            continue
        users = sorted(
            (i for i, _ in row.members if i in final),
            key=lambda i: -final[i] / _w(prep, i),
        )
        for i in users:
            while loads[k] > prep.limits[k] + 1e-6 and final[i] > 0:
                new = final[i] - step if final[i] - step >= prep.mins[i] else 0.0
                _shift(net, loads, consumption, i, max(new, prep.floor[i]))
                final[i] = new
            if loads[k] <= prep.limits[k] + 1e-6:
                break
    _top_up(prep, final, loads, consumption, step)
    # Rounding can leave a row with room that only a session blocked elsewhere could use, by
    # a step taken from a richer session (the exact fill had no such trade; rounded, it may).
    # Each trade strictly raises the sorted shares, so this ends; the bound is a safety net.
    for _ in range(2 * len(final) + 8):
        if not _trade_steps(prep, final, loads, consumption, step):
            break
        _top_up(prep, final, loads, consumption, step)
    return final


def _top_up(
    prep: _Prep,
    final: dict[int, float],
    loads: list[float],
    consumption: list[float],
    step: float,
) -> None:
    """Raise the poorest weighted share that can still rise, until none can (in place).

    Every raise only adds load, so a session that is blocked once stays blocked and leaves
    the queue. A session rises in one go by as many steps as one-at-a-time raising would
    give it before it passes the next poorest share (so the outcome is the one-step greedy,
    in O(n log n) rather than one heap operation per step). With this order nobody ends
    more than one step above a session that a shared row blocks, which is the discrete form
    of weighted max-min fairness.
    """
    net = prep.net
    limits = prep.limits
    tol = _ROW_TOL
    heap: list[tuple[float, str, int]] = []
    for i, p in final.items():
        if p > 0 and p + step <= prep.cap[i] + tol:
            heap.append((p / _w(prep, i), net.connectors[i].id, i))
    heapq.heapify(heap)

    while heap:
        _share, cid, i = heapq.heappop(heap)
        cur = final[i]
        # Most steps the cap and every row allow (checked exactly below).
        n = math.floor((prep.cap[i] - cur) / step + 1e-9)
        for k, c in net.col_rows[i]:
            if n <= 0:
                break
            if limits[k] < INF and c > 0:
                room_w = consumption[i] + (limits[k] + tol - loads[k]) / c
                n = min(n, math.floor((room_w - cur) / step + 1e-9))
        if heap and n > 1:
            w = _w(prep, i)
            nxt_share, nxt_id = heap[0][0], heap[0][1]
            # one-at-a-time would keep raising i while (its share, id) stays the smallest
            gap = (nxt_share * w - cur) / step
            m = math.floor(gap + 1e-9)
            if not (abs(gap - m) <= 1e-9 and cid > nxt_id):
                m += 1
            n = min(n, max(1, m))
        while n > 0 and _rows_over(prep, loads, consumption, i, cur + n * step)[1]:
            n -= 1  # float noise in the room estimate
        if n <= 0:
            continue  # blocked: loads only grow from here, so for good
        new = cur + n * step
        _shift(net, loads, consumption, i, max(new, prep.floor[i]))
        final[i] = new
        if new + step <= prep.cap[i] + tol:
            heapq.heappush(heap, (new / _w(prep, i), cid, i))


def _trade_steps(
    prep: _Prep,
    final: dict[int, float],
    loads: list[float],
    consumption: list[float],
    step: float,
) -> bool:
    """Raise a session blocked by rows by a step taken from richer sessions in those rows.

    A trade is made only when, in every row that blocks session c, some session would still
    have a larger weighted share than c's after giving up enough steps, and keeps its
    minimum, its floor and what the earlier objectives gave it (opt-out sessions never
    give). Poorest first; returns whether any trade was made.
    """
    net = prep.net
    limits = prep.limits
    tol = _ROW_TOL
    neg = -math.inf
    # What a giver keeps: its minimum and floor, and what objectives (1) and (2) gave it
    # before fair sharing (an opt-out session's maximum, the rate needed before departure).
    keep = {
        j: math.inf
        if prep.demand[j].priority == OPT_OUT
        else max(prep.mins[j], prep.floor[j], prep.need_w.get(j, 0.0))
        for j in final
    }
    w = {j: _w(prep, j) for j in final}
    # Per row: the largest share any member keeps after giving one step (a cheap filter).
    best = [neg] * len(net.rows)
    for j, p in final.items():
        if p > 0 and p - step >= keep[j] - tol:
            s = (p - step) / w[j]
            for k, _c in net.col_rows[j]:
                if s > best[k]:
                    best[k] = s

    def blocked_rows(i: int) -> tuple[float, list[tuple[int, float]]]:
        """(extra consumption of one more step, the rows it does not fit) for session i."""
        cur = final[i]
        if cur <= 0 or cur + step > prep.cap[i] + tol:
            return 0.0, []
        return _rows_over(prep, loads, consumption, i, cur + step)

    cands = []
    for i, p in final.items():
        _d, blocked = blocked_rows(i)
        target = (p + step) / w[i] + tol
        if blocked and all(best[k] > target for k, _c in blocked):
            cands.append(i)
    traded = False
    for i in sorted(cands, key=lambda i: (final[i] / w[i], net.connectors[i].id)):
        delta, blocked = blocked_rows(i)  # earlier trades may have changed the rows
        if not blocked:
            continue
        new = final[i] + step
        target = new / w[i]
        undo: list[tuple[int, float]] = []
        for k, c in blocked:
            need = loads[k] + c * delta - limits[k] - tol
            if need <= 0:
                continue  # an earlier give in this trade freed this row too
            pick: tuple[float, int, float] | None = None
            for j, cj in net.rows[k].members:
                if j == i or j not in final or cj <= 0 or final[j] <= 0:
                    continue
                left = final[j] - math.ceil(need / cj / step - 1e-9) * step
                if left < keep[j] - tol:
                    continue
                s = left / w[j]
                if s > target + tol and (pick is None or s > pick[0]):
                    pick = (s, j, left)
            if pick is None:
                break
            _s, j, left = pick
            undo.append((j, final[j]))
            _shift(net, loads, consumption, j, max(left, prep.floor[j]))
            final[j] = left
        else:
            if not _rows_over(prep, loads, consumption, i, new)[1]:
                _shift(net, loads, consumption, i, max(new, prep.floor[i]))
                final[i] = new
                traded = True
                continue
        for j, old in reversed(undo):
            _shift(net, loads, consumption, j, max(old, prep.floor[j]))
            final[j] = old
    return traded


def _w(prep: _Prep, i: int) -> float:
    return priority_weight(prep.demand[i].priority)


# Float noise allowed on a row's limit when stepping sessions up after rounding.
_ROW_TOL = 1e-6


def _rows_over(prep: _Prep, loads: Sequence[float], consumption: Sequence[float], i: int,
               new: float) -> tuple[float, list[tuple[int, float]]]:
    """Session i's extra consumption at `new` (beyond its floor), and the rows it overloads."""
    delta = max(new, prep.floor[i]) - consumption[i]
    if delta <= 0:
        return delta, []
    return delta, [(k, c) for k, c in prep.net.col_rows[i]
                   if loads[k] + c * delta > prep.limits[k] + _ROW_TOL]


def _shift(net: Network, loads: list[float], consumption: list[float], i: int, new: float) -> None:
    delta = new - consumption[i]
    for k, c in net.col_rows[i]:
        loads[k] += c * delta
    consumption[i] = new


def _objective_values(prep: _Prep, final: Mapping[int, float]) -> dict[str, float]:
    optout_short = sum(
        prep.cap[i] - final.get(i, 0.0) for i in prep.free if prep.demand[i].priority == OPT_OUT
    )
    need_short = sum(max(0.0, r - final.get(i, 0.0)) for i, r in prep.need_w.items())
    shares = [final[i] / _w(prep, i) for i in final if final[i] > 0]
    return {
        "optout_shortfall_w": optout_short,
        "departure_rate_shortfall_w": need_short,
        "min_weighted_share_w": min(shares) if shares else 0.0,
        "total_w": sum(final.values()) + sum(prep.pinned.values()),
        "sessions_at_zero": float(sum(1 for i in prep.free if final.get(i, 0.0) <= 0)),
    }


# --------------------------------------------------------------------------- results


def _result(
    snapshot: Snapshot,
    prep: _Prep,
    final: Mapping[int, float],
    plan: Mapping[int, tuple[float, ...]],
    status: SolverStatus,
    t0: float,
    objective: Mapping[str, float],
    *,
    managed: bool = True,
) -> Allocation:
    net = prep.net
    consumption = [prep.floor[i] for i in range(len(net.connectors))]
    out: list[ConnectorAllocation] = []
    for i, c in enumerate(net.connectors):
        d = prep.demand.get(i)
        if i in prep.pinned:
            power = prep.pinned[i]
        else:
            power = final.get(i, 0.0)
        consumption[i] = max(power, prep.floor[i])
        out.append(
            ConnectorAllocation(
                connector_id=c.id,
                power_w=power,
                current_a=net.phase_currents(i, power),
                floor_w=prep.floor[i],
                plan_w=plan.get(i, (power,)),
                active=d is not None,
                pinned=i in prep.pinned,
                transaction_id=d.transaction_id if d else None,
            )
        )
    over = overloaded_nodes(net, prep.limits, net.loads(consumption))
    return Allocation(
        site_id=snapshot.site.id,
        connectors=tuple(out),
        status=status,
        solve_time_s=time.perf_counter() - t0,
        objective=dict(objective),
        start=snapshot.now,
        slot_s=snapshot.slot_s,
        managed=managed,
        overloaded=tuple(over),
    )


def _unmanaged(snapshot: Snapshot, prep: _Prep, t0: float) -> Allocation:
    final = {i: prep.cap[i] for i in prep.free}
    return _result(snapshot, prep, final, {}, "optimal", t0, {}, managed=False)


# --------------------------------------------------------------------------- fleet


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


_NO_ROW = 1 << 60


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


def _reserve_fleet_guards(prep: _Prep, guards: Mapping[str, float], room: list[int]) -> None:
    """Guards hold room in the present slot only (a charger proves itself within seconds)."""
    net = prep.net
    scales = [1.0 if row.kind == "kW" else _A_SCALE for row in net.rows]
    room_w = [r / scales[k] if r < _NO_ROW else INF for k, r in enumerate(room)]
    for i, extra in _guard_extras(prep, guards, {}, room_w).items():
        for k, c in net.col_rows[i]:
            if room[k] < _NO_ROW:
                room[k] -= _scaled(net, k, c * extra, up=True)


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


__all__ = ["allocate"]
