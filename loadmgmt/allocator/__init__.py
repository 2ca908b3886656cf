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

* `fleet` plans `horizon_slots` slots of `slot_s`: a linear program (GLOP) over epochs cut
  at departures maximises priority-weighted energy delivered before each departure, then
  spreads any shortfall fairly, then prefers energy early (see `horizon`); `fleet_slots`
  turns it into whole grants (0 or at least the minimum, on the step, every row kept). The
  plan carries over between calls through `Snapshot.fleet_carry` / `Allocation.fleet_carry`;
  when the program finds no optimum in time, the carried plan (else earliest departure
  first) for the present slot is the fallback (see `fleet`).

Deterministic: fixed seed, sorted inputs; with `workers` > 1 CP-SAT runs interleaved search so
the answer does not depend on thread timing.

The parts: `prepare` (the problem both objectives start from: rows, caps, minimums, needed
rates; CP-SAT units and settings), `sharing` (load_sharing: admission and the fill),
`rounding` (whole steps: round down, top up, trades), `guards`, `fleet` (with `horizon` and
`fleet_slots`), `result` (the Allocation). Only `allocate` is public; the parts share
underscored names inside the package.
"""

from __future__ import annotations

import time
from dataclasses import replace

from loadmgmt.allocator.fleet import _fleet
from loadmgmt.allocator.prepare import _prepare
from loadmgmt.allocator.result import _unmanaged
from loadmgmt.allocator.sharing import _load_sharing
from loadmgmt.model import Allocation, Snapshot


def allocate(
    snapshot: Snapshot, *, time_limit_s: float, workers: int = 1, seed: int = 0
) -> Allocation:
    """Compute every connector's limit for the snapshot's site (see the package docstring)."""
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


__all__ = ["allocate"]
