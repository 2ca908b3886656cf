"""The site tree as linear constraints, plus exact weighted progressive filling on it.

Every node (site, group, charge point) contributes one constraint for its kW limit and one per
grid phase for its A limit. A connector's consumption enters each constraint with a positive
coefficient per watt (1 for kW rows, amperes per watt for phase rows), so all limits are linear
in the connectors' powers. `progressive_fill` computes the weighted max-min fair point of that
polytope exactly (event-driven water filling), which is what the allocator needs for load
sharing; CP-SAT is kept for the combinatorial parts (see `loadmgmt.allocator`).

A site with `wiring = "phasor"` gets, instead of one arithmetic row per node and phase, the
phasor rows of `loadmgmt.phasors` (a few chords per line, and its transformer's primary lines):
their coefficients are never negative either, so everything below holds for both.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loadmgmt.model import (
    PHASES,
    Connector,
    NodeLimit,
    Site,
    Snapshot,
    round_down,
    round_up,
)
from loadmgmt.phasors import (
    connector_phasors,
    facet_rows,
    lag,
    primary_phasors,
    transformer_ratio,
)

INF = math.inf
# Relative slack kept below every limit so float noise can never put us over it.
_EPS_REL = 1e-9
_EPS_ABS = 1e-6


@dataclass(frozen=True, slots=True)
class Row:
    """One linear constraint: sum(coef * consumption_w) <= scale * limit, for `node`, `kind`."""

    node: str
    # "kW", "L1" / "L2" / "L3"; phasor sites: "L1@+7.5" (a chord's normal, degrees) and the
    # transformer's primary lines "P12" / "P23" / "P31" (limit: the primary amps)
    kind: str
    members: tuple[tuple[int, float], ...]  # (connector index, coefficient per W, > 0)
    scale: float = 1.0  # the fraction of the node's limit this row may use (a chord's)


@dataclass(frozen=True)
class Network:
    """A snapshot's tree flattened into rows over connector indices."""

    site: Site
    connectors: tuple[Connector, ...]
    index: Mapping[str, int]
    rows: tuple[Row, ...]
    col_rows: tuple[tuple[tuple[int, float], ...], ...]  # per connector: (row, coef)
    node_static: Mapping[str, NodeLimit]
    node_of_rows: Mapping[str, tuple[int, ...]]
    node_members: Mapping[str, tuple[int, ...]]  # connectors under each node

    def row_limits(
        self, limits: Mapping[str, NodeLimit], *, buffer: float | None = None
    ) -> list[float]:
        """Each row's limit in its own unit (W or A), after the site buffer."""
        keep = 1.0 - (self.site.buffer if buffer is None else buffer)
        out: list[float] = []
        for row in self.rows:
            static = self.node_static[row.node]
            dyn = limits.get(row.node)
            if row.kind == "kW":
                vals = [static.power_kw, dyn.power_kw if dyn else None]
                lim = min((v for v in vals if v is not None), default=None)
                out.append(INF if lim is None else max(0.0, lim * 1000.0 * keep))
            elif row.kind.startswith("P"):  # a transformer's primary: its own static limit
                lim = self.site.transformer_primary_a
                out.append(INF if lim is None else max(0.0, lim * keep * row.scale))
            else:
                vals = [static.current_a, dyn.current_a if dyn else None]
                lim = min((v for v in vals if v is not None), default=None)
                out.append(INF if lim is None else max(0.0, lim * keep * row.scale))
        return out

    def loads(self, consumption_w: Sequence[float]) -> list[float]:
        """Each row's load for the given per-connector consumption."""
        return [sum(coef * consumption_w[i] for i, coef in row.members) for row in self.rows]

    def cap_w(self, i: int) -> float:
        """Connector i's maximum, rounded down to the site's step."""
        return round_down(self.connectors[i].max_w(), self.site.step_w)

    def min_w(self, i: int) -> float:
        """Connector i's least non-zero limit: max(site minimum, 6 A equivalent), step-aligned."""
        c = self.connectors[i]
        return round_up(max(c.min_w(), self.site.min_power_kw * 1000.0), self.site.step_w)

    def phase_currents(self, i: int, power_w: float) -> tuple[float, float, float]:
        """Grid current on phases 1..3 for connector i at `power_w`."""
        per = self.connectors[i].amps_per_w(self.site.grid_voltage_v)
        return tuple(per.get(p, 0.0) * power_w for p in PHASES)  # type: ignore[return-value]


def _chain(
    start: str, parents: Mapping[str, str | None], site_id: str, cache: dict[str, list[str]]
) -> list[str]:
    """Node ids from `start` up to the site, memoised per start node."""
    if start in cache:
        return cache[start]
    chain: list[str] = []
    node: str | None = start
    seen: set[str] = set()
    while node is not None:
        if node not in parents:
            raise ValueError(f"unknown parent node {node!r}")
        if node in seen:
            raise ValueError(f"cycle in the node tree at {node!r}")
        seen.add(node)
        chain.append(node)
        node = parents[node]
    if chain[-1] != site_id:
        raise ValueError(f"tree does not end at site {site_id!r}")
    cache[start] = chain
    return chain


def build_network(snapshot: Snapshot) -> Network:
    """Flatten the snapshot's tree into rows (one per node and per kW/phase limit)."""
    site = snapshot.site
    static: dict[str, NodeLimit] = {site.id: NodeLimit(site.max_power_kw, site.max_current_a)}
    for g in snapshot.groups:
        static[g.id] = NodeLimit(g.max_power_kw, g.max_current_a)
    for cp in snapshot.charge_points:
        static[cp.id] = NodeLimit(cp.max_power_kw, cp.max_current_a)

    conns = tuple(snapshot.connectors)
    index = {c.id: i for i, c in enumerate(conns)}
    if len(index) != len(conns):
        raise ValueError("duplicate connector ids")
    members: dict[tuple[str, str], list[tuple[int, float]]] = {}
    # Phasor sites: per node and line, the terms the line's chord rows are made of.
    line_terms: dict[tuple[str, str], list[tuple[int, complex, float]]] = {}
    order: list[tuple[str, str]] = []
    parents: dict[str, str | None] = {site.id: None}
    for g in snapshot.groups:
        parents[g.id] = g.parent_id
    cps = {cp.id: cp for cp in snapshot.charge_points}
    cache: dict[str, list[str]] = {}
    # Thousands of connectors share a handful of electrical shapes: one row-term list each.
    shapes: dict[tuple[object, ...], _Shape] = {}
    volts = site.grid_voltage_v
    phasor = site.wiring == "phasor"
    ratio = None
    if site.transformer is not None:
        assert site.transformer_primary_v and site.transformer_secondary_v
        ratio = transformer_ratio(site.transformer_primary_v, site.transformer_secondary_v)
    node_members: dict[str, list[int]] = {}
    for i, c in enumerate(conns):
        shape = (c.current_type, c.phases, c.voltage_v, c.power_factor)
        found = shapes.get(shape)
        if found is None:
            found = shapes[shape] = _shape(c, volts, phasor, ratio)
        terms, lines, primary, lag_rad = found
        on_cp = c.charge_point_id in cps
        up = _chain(cps[c.charge_point_id].parent_id if on_cp else c.parent_id,
                    parents, site.id, cache)
        for node in ([c.charge_point_id, *up] if on_cp else up):
            node_members.setdefault(node, []).append(i)
            for kind, coef in terms:
                key = (node, kind)
                bucket = members.get(key)
                if bucket is None:
                    bucket = members[key] = []
                    order.append(key)
                bucket.append((i, coef))
            for kind, z in (*lines, *(primary if node == site.id else ())):
                key = (node, kind)
                terms_ = line_terms.get(key)
                if terms_ is None:
                    terms_ = line_terms[key] = []
                    order.append(key)
                terms_.append((i, z, lag_rad))
    rows: list[Row] = []
    col_rows: list[list[tuple[int, float]]] = [[] for _ in conns]
    node_rows: dict[str, list[int]] = {}

    def add(row: Row) -> None:
        k = len(rows)
        rows.append(row)
        node_rows.setdefault(row.node, []).append(k)
        for i, coef in row.members:
            col_rows[i].append((k, coef))

    for key in order:
        node, kind = key
        lim = static[node]
        if kind.startswith("P"):  # a transformer's primary always has its limit
            possible = True
        else:
            # Rows without any possible limit are dropped unless a dynamic limit may target
            # them.
            dynamic = node in snapshot.limits or node in snapshot.slot_limits
            possible = dynamic or (lim.power_kw if kind == "kW" else lim.current_a) is not None
        if not possible:
            continue  # no limit can ever bind here
        if key not in line_terms:
            add(Row(node, kind, tuple(members[key])))
            continue
        for facet, row_members in facet_rows(line_terms[key]):
            label = kind if facet.angle is None else f"{kind}@{math.degrees(facet.angle):+.1f}"
            add(Row(node, label, row_members, facet.scale))
    return Network(
        site=site,
        connectors=conns,
        index=index,
        rows=tuple(rows),
        col_rows=tuple(tuple(r) for r in col_rows),
        node_static=static,
        node_of_rows={n: tuple(ks) for n, ks in node_rows.items()},
        node_members={n: tuple(ms) for n, ms in node_members.items()},
    )


# A connector shape's rows: arithmetic (kind, coefficient) terms, phasor line terms, the
# transformer primary's line terms, and how far its current may lag.
_Shape = tuple[list[tuple[str, float]], list[tuple[str, complex]], list[tuple[str, complex]],
               float]


def _shape(c: Connector, volts: float, phasor: bool, ratio: float | None) -> _Shape:
    """The row terms of one electrical shape of connector (see `_Shape`)."""
    if not phasor:
        per = c.amps_per_w(volts)
        return [("kW", 1.0)] + [(f"L{p}", a) for p, a in sorted(per.items())], [], [], 0.0
    by_phase = connector_phasors(c, volts)
    lines = [(f"L{p}", z) for p, z in sorted(by_phase.items())]
    primary = [] if ratio is None else sorted(primary_phasors(by_phase, ratio).items())
    return [("kW", 1.0)], lines, primary, lag(c)


def progressive_fill(
    net: Network,
    limits: Sequence[float],
    base: Sequence[float],
    grow: Sequence[int],
    lb: Mapping[int, float],
    cap: Mapping[int, float],
    weight: Mapping[int, float],
    floor: Mapping[int, float] | None = None,
) -> tuple[dict[int, float], set[int]]:
    """Exact weighted max-min fill of `grow` sessions on top of the fixed row loads `base`.

    Session i gets a_i(t) = max(lb_i, min(cap_i, weight_i * t)) for a common water level t,
    and stops (freezes) when a row it loads saturates. It consumes max(a_i, floor_i): power
    under its standing floor is already reserved in `base` and costs nothing. `base` must
    include max(lb_i, floor_i) for the growing sessions. Returns the allocation and the set of
    rows that saturated.
    """
    floor = floor or {}
    nrows = len(net.rows)
    load = list(base)
    t_ref = [0.0] * nrows
    slope = [0.0] * nrows
    version = [0] * nrows
    heap: list[tuple[float, int, int, int]] = []
    saturated: set[int] = set()
    # Only rows the growing sessions load can change or stop anyone; a fill of a few sessions
    # (one priority tier) must not pay for every row of a large site.
    touched = {k for i in grow for k, _c in net.col_rows[i]}
    tol = [0.0] * nrows
    for k in touched:
        lim = limits[k]
        tol[k] = max(_EPS_ABS, _EPS_REL * (lim if lim < INF else 0.0))

    # state: 0 waiting (below its growth start), 1 growing, 2 done (capped or frozen)
    state: dict[int, int] = {}
    result: dict[int, float] = {}
    for i in grow:
        w = weight[i]
        lo = lb[i]
        hi = cap[i]
        start = max(lo, floor.get(i, 0.0))
        if hi <= start:
            state[i] = 0  # never consumes more: grows freely up to cap unless frozen
            continue
        state[i] = 0
        heapq.heappush(heap, (start / w, 2, i, 0))
        heapq.heappush(heap, (hi / w, 1, i, 0))
    for k in touched:
        if limits[k] - load[k] <= tol[k]:
            heapq.heappush(heap, (0.0, 0, k, 0))

    def advance(k: int, t: float) -> None:
        if slope[k]:
            load[k] += slope[k] * (t - t_ref[k])
        t_ref[k] = t

    def push_row(k: int, t: float) -> None:
        version[k] += 1
        room = limits[k] - load[k]
        if room <= tol[k]:
            heapq.heappush(heap, (t, 0, k, version[k]))
        elif slope[k] > 0 and limits[k] < INF:
            heapq.heappush(heap, (t + room / slope[k], 0, k, version[k]))

    def alloc_at(i: int, t: float) -> float:
        return max(lb[i], min(cap[i], weight[i] * t))

    while heap:
        t, kind, idx, ver = heapq.heappop(heap)
        if kind == 0:  # row saturates
            if ver != version[idx] or idx in saturated:
                continue
            saturated.add(idx)
            for i, _coef in net.rows[idx].members:
                st = state.get(i)
                if st is None or st == 2:
                    continue
                result[i] = alloc_at(i, t)
                state[i] = 2
                if st == 1:
                    w = weight[i]
                    for k, c in net.col_rows[i]:
                        advance(k, t)
                        slope[k] -= w * c
                        if slope[k] < 1e-12:
                            slope[k] = 0.0
                        push_row(k, t)
        elif kind == 2:  # starts consuming
            if state.get(idx) != 0:
                continue
            state[idx] = 1
            w = weight[idx]
            for k, c in net.col_rows[idx]:
                advance(k, t)
                slope[k] += w * c
                push_row(k, t)
        else:  # reaches its cap
            if state.get(idx) != 1:
                continue
            state[idx] = 2
            result[idx] = cap[idx]
            w = weight[idx]
            for k, c in net.col_rows[idx]:
                advance(k, t)
                slope[k] -= w * c
                if slope[k] < 1e-12:
                    slope[k] = 0.0
                push_row(k, t)
    for i in grow:
        if state[i] != 2:
            result[i] = cap[i]
    return result, saturated


def greedy_admit(
    net: Network,
    limits: Sequence[float],
    base: Sequence[float],
    order: Sequence[int],
    extra: Mapping[int, float],
) -> list[int]:
    """Admit sessions in `order` while their extra consumption `extra[i]` fits every row."""
    load = list(base)
    admitted: list[int] = []
    for i in order:
        e = extra[i]
        if e > 0 and any(load[k] + c * e > limits[k] + _EPS_ABS for k, c in net.col_rows[i]):
            continue
        for k, c in net.col_rows[i]:
            load[k] += c * e
        admitted.append(i)
    return admitted


def overloaded_nodes(net: Network, limits: Sequence[float], loads: Sequence[float]) -> list[str]:
    """Nodes with a row above its limit (beyond float noise)."""
    out: list[str] = []
    for k, row in enumerate(net.rows):
        if loads[k] > limits[k] + max(_EPS_ABS, _EPS_REL * limits[k]) and row.node not in out:
            out.append(row.node)
    return out


def compute_floors(snapshot: Snapshot,
                   fixed_w: Mapping[str, float] | None = None) -> dict[str, float]:
    """Standing floors (W) so that the floors under every node fit its limit minus buffer.

    `fixed_w`: connectors that cannot be limited (they take no floor) and what they count at;
    the floors of the others fit in the room those leave.

    Each connector's target is the site's `fallback_power_kw` (or, when unset, its own
    minimum), capped by its maximum. Connectors are admitted in priority then id order while
    their minimum fits everywhere; the admitted ones then share the rest max-min fairly up to
    their targets. A floor is 0 or at least the connector's minimum (a lower limit cannot
    charge a car anyway). Pass the lowest limits the site may see while Loadstar is away.
    """
    net = build_network(snapshot)
    n = len(net.connectors)
    if snapshot.site.floors == "zero" or n == 0:
        return {c.id: 0.0 for c in net.connectors}
    step = net.site.step_w
    limits = net.row_limits(snapshot.limits)
    fallback = snapshot.site.fallback_power_kw
    target: dict[int, float] = {}
    mins: dict[int, float] = {}
    for i in range(n):
        mins[i] = net.min_w(i)
        want = fallback * 1000.0 if fallback is not None else mins[i]
        target[i] = round_down(min(want, net.cap_w(i)), step)
    fixed = fixed_w or {}
    base = [0.0] * len(net.rows)
    for cid, w in fixed.items():
        i = net.index.get(cid)
        if i is not None:
            for k, c in net.col_rows[i]:
                base[k] += c * w
    cand = [i for i in range(n) if target[i] >= mins[i] and target[i] > 0
            and net.connectors[i].id not in fixed]
    cand.sort(key=lambda i: (net.connectors[i].priority, net.connectors[i].id))
    admitted = greedy_admit(net, limits, base, cand, mins)
    for i in admitted:
        for k, c in net.col_rows[i]:
            base[k] += c * mins[i]
    lbs = {i: mins[i] for i in admitted}
    ones = {i: 1.0 for i in admitted}
    alloc, _ = progressive_fill(net, limits, base, admitted, lbs, target, ones)
    out = {c.id: 0.0 for c in net.connectors}
    for i in admitted:
        out[net.connectors[i].id] = max(mins[i], round_down(alloc[i], step))
    return out


def standing_floors(snapshot: Snapshot) -> dict[str, float]:
    """Each connector's standing floor (TxDefaultProfile share) in W, fitting under every node.

    See `compute_floors` for the rule.
    """
    return compute_floors(snapshot)
