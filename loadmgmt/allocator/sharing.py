"""The `load_sharing` objective (present slot only): admission (greedy, else CP-SAT per
priority tier), then the lexicographic fill; see the package docstring."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ortools.sat.python import cp_model

from loadmgmt.allocator.guards import _fix_guarded, _reserve_guards
from loadmgmt.allocator.prepare import _Prep, _scaled, _solver, _tier, _w
from loadmgmt.allocator.result import _result
from loadmgmt.allocator.rounding import _round_and_top_up
from loadmgmt.model import OPT_OUT, Allocation, Snapshot, SolverStatus, priority_weight
from loadmgmt.network import INF, greedy_admit, progressive_fill


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
