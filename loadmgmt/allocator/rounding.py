"""Load sharing in whole power steps: round down, top up the poorest share, trade steps."""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence

from loadmgmt.allocator.prepare import _Prep, _w
from loadmgmt.model import OPT_OUT, round_down
from loadmgmt.network import INF, Network


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
