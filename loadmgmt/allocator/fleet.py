"""The `fleet` objective: energy before each departure (priority-weighted), then fairness,
over a receding horizon; see the package docstring and `horizon` for the program.

Each call plans `horizon_slots` slots of `slot_s` from `now` and the caller sends slot 0 (and
the rest as a schedule); the next call re-plans from what happened. The plan carries over
(`Snapshot.fleet_carry` in, `Allocation.fleet_carry` out, kept by the caller so the allocator
stays a pure function): it anchors the default departure of sessions that declare none, and
when the program finds no optimum within the time budget, the carried plan (shifted to now,
cut to fit the rows as they are) is the fallback, topped up earliest departure first; with no
carried plan, earliest departure first alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from datetime import datetime, timedelta

from loadmgmt.allocator.fleet_slots import round_slot
from loadmgmt.allocator.guards import _guard_extras
from loadmgmt.allocator.horizon import HorizonProblem, solve
from loadmgmt.allocator.prepare import _Prep
from loadmgmt.allocator.result import _result
from loadmgmt.model import (
    OPT_OUT,
    Allocation,
    FleetCarry,
    NodeLimit,
    Snapshot,
    SolverStatus,
    session_key,
)
from loadmgmt.network import INF

# Rounding the answer into whole grants per epoch takes a share of the budget (about a fifth
# at 1,000 sessions).
_KEEP_S = 0.005
_KEEP_SHARE = 0.2


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


def _weight(prep: _Prep, i: int) -> float:
    """Shortfall weight: each priority level doubles it; opt-out above all."""
    p = prep.demand[i].priority
    return 64.0 if p == OPT_OUT else float(2 ** (6 - p))


def _problem(snapshot: Snapshot, prep: _Prep, first_seen: dict[str, datetime]
             ) -> tuple[HorizonProblem, dict[int, datetime]]:
    net = prep.net
    now = snapshot.now
    assert now is not None
    slots = max(1, snapshot.horizon_slots)
    slot_s = snapshot.slot_s
    dwell = timedelta(hours=net.site.default_dwell_h)
    limits = _slot_limits(snapshot, prep, slots)
    # Slots with the same limits share one room list (the usual case: no slot limits), so
    # the horizon compares and merges them at no cost.
    rooms: dict[int, list[float]] = {}
    room = [rooms.setdefault(id(lim), [lim[k] - prep.base[k] if lim[k] < INF else INF
                                       for k in range(len(net.rows))]) for lim in limits]
    room[0] = list(room[0])
    # Guards hold room in the present slot only (a charger proves itself within seconds);
    # _guard_extras takes what it reserves out of room[0].
    _guard_extras(prep, snapshot.guards, {}, room[0])
    sessions = sorted(prep.free, key=lambda i: net.connectors[i].id)
    departure: dict[int, datetime] = {}
    last_slot: dict[int, int] = {}
    share: dict[int, float] = {}
    need: dict[int, float] = {}
    for i in sessions:
        d = prep.demand[i]
        key = session_key(d)
        first_seen.setdefault(key, now)
        dep = d.departure or (d.started_at or first_seen[key]) + dwell
        departure[i] = dep
        left = (dep - now).total_seconds()
        if left <= 0:  # past its departure (or its default): charge now rather than never
            left = float(slot_s)
        last_slot[i] = max(1, min(slots, math.floor(left / slot_s)))
        share[i] = min(1.0, left / slot_s)
        if d.energy_to_charge_kwh is not None and d.energy_to_charge_kwh > 0:
            need[i] = d.energy_to_charge_kwh * 1000.0
        else:  # no request: as much as it can take before it leaves
            need[i] = prep.cap[i] * min(left, slots * slot_s) / 3600.0
    problem = HorizonProblem(
        slot_s=slot_s, slots=slots, sessions=sessions, cap=prep.cap, floor=prep.floor,
        weight={i: _weight(prep, i) for i in sessions}, need_wh=need, last_slot=last_slot,
        first_share=share, coef={i: net.col_rows[i] for i in sessions}, room=room)
    return problem, departure


def _carried(snapshot: Snapshot, prep: _Prep, slots: int) -> dict[int, list[float]]:
    """The previous plan shifted to now (sessions it did not know: nothing)."""
    carry = snapshot.fleet_carry
    out = {i: [0.0] * slots for i in prep.free}
    if carry is None or snapshot.now is None:
        return out
    shift = (snapshot.now - carry.made_at).total_seconds()
    for i in prep.free:
        old = carry.plans.get(session_key(prep.demand[i]))
        if not old:
            continue
        for t in range(slots):
            n = math.floor((shift + t * snapshot.slot_s) / carry.slot_s + 1e-9)
            if 0 <= n < len(old):
                out[i][t] = old[n]
    return out


def _fleet(
    snapshot: Snapshot, prep: _Prep, t0: float, time_limit_s: float, workers: int, seed: int
) -> Allocation:
    del workers, seed  # GLOP is deterministic and single-threaded
    now = snapshot.now
    assert now is not None
    carry = snapshot.fleet_carry
    first_seen = dict(carry.first_seen) if carry else {}
    problem, departure = _problem(snapshot, prep, first_seen)
    sessions = list(problem.sessions)
    far = datetime.max.replace(tzinfo=now.tzinfo)
    order = sorted(sessions, key=lambda i: (
        0 if prep.demand[i].priority == OPT_OUT else 1, departure.get(i, far),
        prep.demand[i].priority, prep.net.connectors[i].id))
    left_s = time_limit_s * (1 - _KEEP_SHARE) - _KEEP_S - (time.perf_counter() - t0)
    lp = solve(problem, left_s) if sessions and left_s > 0.005 else None
    status: SolverStatus = "optimal"
    if lp is not None:
        bounds, rooms, plan = lp.bounds, lp.room, lp.power
    else:
        # No optimum in time: the carried plan for the present slot (cut to fit, topped up
        # earliest departure first), or earliest departure first alone; one slot, re-planned
        # at the next call.
        status = "greedy" if sessions else "optimal"
        carried = _carried(snapshot, prep, 1)
        bounds, rooms, plan = [0, 1], [problem.room[0]], {i: carried[i][:1] for i in sessions}
    slot_h = snapshot.slot_s / 3600.0
    need_left = dict(problem.need_wh)
    planned = dict.fromkeys(sessions, 0.0)  # the program's energy so far, before rounding
    grants: dict[int, list[float]] = {i: [] for i in sessions}
    for j in range(len(bounds) - 1):
        span = bounds[j + 1] - bounds[j]
        present = [i for i in order if lp is None or j < lp.present[i]]
        hours = {i: span * slot_h * (problem.first_share[i] if j == 0 else 1.0) for i in present}
        for i in present:
            planned[i] += plan[i][j] * hours[i]
        if j == 0:
            # Whatever room the plan leaves now goes to whoever still needs energy: earlier is
            # never worse (cars may leave early, others may come).
            top_up = {i: need_left[i] / hours[i] for i in present}
        else:
            # Later epochs catch up what rounding earlier ones cost, where there is room.
            top_up = {i: min(need_left[i], max(0.0, planned[i] - problem.need_wh[i]
                                                + need_left[i])) / hours[i] for i in present}
        got = round_slot(prep, rooms[j], {i: plan[i][j] for i in present}, present, top_up,
                         trim=j == 0)
        for i in sessions:
            x = got.get(i, 0.0)
            grants[i].extend([x] * span)
            if i in got:
                need_left[i] = max(0.0, need_left[i] - x * hours[i])
        if lp is None:
            break
    final = {i: grants[i][0] for i in sessions}
    delivered = sum(problem.need_wh[i] - need_left[i] for i in sessions)
    short = sum(need_left[i] for i in sessions
                if (prep.demand[i].energy_to_charge_kwh or 0) > 0)
    objective = {
        "delivered_kwh": delivered / 1000.0,
        "energy_shortfall_kwh": short / 1000.0,
        "total_w": sum(final.values()) + sum(prep.pinned.values()),
        "carried": 1.0 if lp is None and carry is not None else 0.0,
    }
    alloc = _result(snapshot, prep, final, {i: tuple(grants[i]) for i in sessions}, status, t0,
                    objective)
    live = {session_key(prep.demand[i]) for i in prep.demand}
    out = FleetCarry(now, snapshot.slot_s,
                     {session_key(prep.demand[i]): tuple(grants[i]) for i in sessions},
                     {k: v for k, v in first_seen.items() if k in live})
    return replace(alloc, fleet_carry=out)
