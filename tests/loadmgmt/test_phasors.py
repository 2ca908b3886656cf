"""Phasor wiring: exact line currents, and plans that never exceed them (issue 13, point 1).

The line currents a plan implies are computed here from first principles (phase voltages at
0, -120, +120 degrees; a line-to-line load's current in phase with its line-to-line voltage,
+ on one line and - on the other), independently of loadmgmt.phasors.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from loadmgmt.allocator import allocate
from loadmgmt.model import (
    Allocation,
    ChargePoint,
    Connector,
    Demand,
    Group,
    NodeLimit,
    Site,
    Snapshot,
)
from loadmgmt.network import build_network, compute_floors
from loadmgmt.phasors import FACETS, facet_rows, line_currents, primary_currents
from loadmgmt.units import CurrentType
from tests.loadmgmt.helpers import NOW, ancestors, node_limits

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ANGLE = {1: 0.0, 2: -2 * math.pi / 3, 3: 2 * math.pi / 3}
_PAIRS = [(1, 2), (2, 3), (3, 1), (2, 1), (3, 2), (1, 3)]


def _v(p: int) -> complex:
    return cmath.rect(1.0, _ANGLE[p])


def exact_phasors(c: Connector, power_w: float, lag_fraction: float) -> dict[int, complex]:
    """Current phasor on each grid line of one connector drawing `power_w`."""
    mag = c.amps_per_w(230.0)
    shift = 0.0
    if c.current_type is not CurrentType.DC:
        shift = -math.acos(c.power_factor) * lag_fraction
    rot = cmath.rect(1.0, shift)
    if len(c.phases) == 2:
        p, q = c.phases
        u = (_v(p) - _v(q)) / abs(_v(p) - _v(q))  # I_pq in phase with V_pq
        return {p: mag[p] * power_w * u * rot, q: -mag[q] * power_w * u * rot}
    return {p: mag[p] * power_w * _v(p) * rot for p in c.phases}


def node_currents(snap: Snapshot, draws: dict[str, float], lag_fraction: float = 1.0
                  ) -> dict[str, list[complex]]:
    """Per node, the phasor current on lines 1..3 for these per-connector draws."""
    out: dict[str, list[complex]] = {}
    for c in snap.connectors:
        for node in ancestors(snap, c):
            acc = out.setdefault(node, [0j, 0j, 0j])
            for p, z in exact_phasors(c, draws.get(c.id, 0.0), lag_fraction).items():
                acc[p - 1] += z
    return out


def counted(snap: Snapshot, alloc: Allocation) -> dict[str, float]:
    """What each connector may draw on its own: max(grant, floor)."""
    return {ca.connector_id: max(ca.power_w, ca.floor_w) for ca in alloc.connectors}


def phasor_violations(snap: Snapshot, draws: dict[str, float], lag_fraction: float = 1.0
                      ) -> list[str]:
    """Node lines (and transformer primary lines) over their limit after the buffer."""
    lim = node_limits(snap)
    out: list[str] = []
    currents = node_currents(snap, draws, lag_fraction)
    for node, amps in currents.items():
        for p, z in enumerate(amps, 1):
            if abs(z) > lim[node][1] + 1e-6:
                out.append(f"{node} L{p} {abs(z):.3f} > {lim[node][1]:.3f}")
    site = snap.site
    if site.transformer is not None:
        assert site.transformer_primary_a and site.transformer_primary_v
        assert site.transformer_secondary_v
        ia, ib, ic = currents.get(site.id, [0j, 0j, 0j])
        ratio = site.transformer_secondary_v / (math.sqrt(3) * site.transformer_primary_v)
        limit = site.transformer_primary_a * (1 - site.buffer)
        for name, z in (("P12", ia - ib), ("P23", ib - ic), ("P31", ic - ia)):
            if abs(z) * ratio > limit + 1e-6:
                out.append(f"primary {name} {abs(z) * ratio:.3f} > {limit:.3f}")
    return out


# --- physics -------------------------------------------------------------------------------


def _ll(cid: str, phases: tuple[int, ...], kw: float = 19.2) -> Connector:
    return Connector(cid, cid.split("/")[0], "S", current_type=CurrentType.AC_PHASE1,
                     voltage_v=208.0, phases=phases, max_power_kw=kw, max_current_a=80.0)


def test_two_equal_balanced_line_to_line_loads_add_to_sqrt3_on_their_shared_line() -> None:
    site = Site("S", max_power_kw=100, max_current_a=100, wiring="phasor")
    conns = (_ll("AB/1", (1, 2)), _ll("CA/1", (3, 1)))
    net = build_network(Snapshot(site, conns, now=NOW))
    ia, ib, ic = line_currents(net, [208.0 * 10, 208.0 * 10])["S"]  # 10 A each
    assert ia == pytest.approx(10 * math.sqrt(3))
    assert ib == pytest.approx(10) and ic == pytest.approx(10)


def test_line_currents_match_first_principles_for_every_wiring_and_lag() -> None:
    kinds = [(CurrentType.AC_PHASE1, 230.0, (p,)) for p in (1, 2, 3)]
    kinds += [(CurrentType.AC_PHASE1, 208.0, pq) for pq in _PAIRS]
    kinds += [(CurrentType.AC_PHASE3_LN, 230.0, (2, 3, 1)), (CurrentType.AC_PHASE3_LL, 400.0,
              (1, 3, 2)), (CurrentType.DC, 400.0, (1, 2, 3))]
    conns = tuple(Connector(f"C{n}/1", f"C{n}", "S", current_type=t, voltage_v=v, phases=ph,
                            power_factor=0.9) for n, (t, v, ph) in enumerate(kinds))
    snap = Snapshot(Site("S", 500, 400, wiring="phasor"), conns, now=NOW)
    draws = [1000.0 + 700.0 * n for n in range(len(conns))]
    net = build_network(snap)
    for frac in (0.0, 1.0):
        got = line_currents(net, draws, lag_fraction=frac)["S"]
        want = node_currents(snap, {c.id: w for c, w in zip(conns, draws, strict=True)}, frac)
        assert got == pytest.approx([abs(z) for z in want["S"]])


def test_sites_of_only_line_to_neutral_and_three_phase_loads_keep_the_arithmetic_rows() -> None:
    conns = (
        Connector("A/1", "A", "S", current_type=CurrentType.AC_PHASE1, phases=(2,)),
        Connector("B/1", "B", "S", current_type=CurrentType.AC_PHASE3_LN, phases=(3, 1, 2)),
        Connector("C/1", "C", "S", current_type=CurrentType.AC_PHASE3_LN, phases=(1, 2, 3),
                  power_factor=0.95),
        Connector("D/1", "D", "S", current_type=CurrentType.AC_PHASE3_LN, phases=(1, 2, 3),
                  power_factor=0.95),
    )
    plain = Snapshot(Site("S", 100, 63), conns[:2], now=NOW)
    phasor = replace(plain, site=replace(plain.site, wiring="phasor"))
    assert build_network(phasor).rows == build_network(plain).rows
    # one shape with a lagging power factor: the sum of magnitudes is exact, one row per line
    same = Snapshot(Site("S", 100, 63, wiring="phasor"), conns[2:], now=NOW)
    assert [r.kind for r in build_network(same).rows] == ["kW", "L1", "L2", "L3"]


@given(
    angles=st.lists(st.floats(-math.pi, math.pi), min_size=1, max_size=6),
    lags=st.lists(st.sampled_from([0.0, 0.2, 0.45]), min_size=6, max_size=6),
    probe=st.floats(0, 1),
)
@settings(max_examples=200, deadline=None)
def test_facets_stay_inside_the_circle_and_reach_cos_pi_over_k_of_it(
    angles: list[float], lags: list[float], probe: float
) -> None:
    """A unit term alone, at any angle its interval allows, is never allowed more than the
    limit and always at least cos(pi/K) of it; in between every pair of terms likewise."""
    terms = [(n, cmath.rect(1.0, a), lags[n]) for n, a in enumerate(angles)]
    rows = facet_rows(terms)
    for n in range(len(angles)):
        # the most term n alone may draw: its own coefficient in each row
        coefs = [dict(m).get(n, 0.0) for _f, m in rows]
        allowed = min((f.scale / c for (f, _m), c in zip(rows, coefs, strict=True) if c > 0),
                      default=math.inf)
        assert allowed >= math.cos(math.pi / FACETS) - 1e-9
        # ... and at that draw, at any angle of its interval, stays within the circle
        assert allowed <= 1.0 + 1e-9
    # two terms in a fixed proportion: the exact magnitude at the allowed draw is <= 1
    if len(angles) >= 2:
        x = [probe, 1.0 - probe]
        loads = [(f.scale, sum(x[i] * c for i, c in m if i < 2)) for f, m in rows]
        allowed = min((s / load for s, load in loads if load > 0), default=math.inf)
        for frac in (0.0, 1.0):
            z = sum(x[i] * cmath.rect(1.0, angles[i] - frac * lags[i]) for i in range(2))
            assert abs(z) * allowed <= 1.0 + 1e-9


@given(
    angles=st.lists(st.floats(-math.pi, math.pi), min_size=2, max_size=6),
    lags=st.lists(st.sampled_from([0.0, 0.0, 0.3]), min_size=6, max_size=6),
    grants=st.lists(st.floats(0.05, 1.0), min_size=6, max_size=6),
)
@settings(max_examples=300, deadline=None)
def test_grants_that_fit_the_facets_keep_every_lower_draw_within_the_circle(
    angles: list[float], lags: list[float], grants: list[float]
) -> None:
    """Scale random grants up until a facet binds: then every corner of the box of draws
    below them (each term at 0 or its grant, at either end of its angle interval) is within
    the limit. A row that let a balancing term count negatively would fail here."""
    n = len(angles)
    terms = [(i, cmath.rect(1.0, angles[i]), lags[i]) for i in range(n)]
    rows = facet_rows(terms)
    loads = [(f.scale, sum(grants[i] * c for i, c in m)) for f, m in rows]
    t = min((sc / load for sc, load in loads if load > 0), default=math.inf)
    assert t < math.inf
    for mask in range(1 << n):
        for frac in (0.0, 1.0):
            z = sum(t * grants[i] * cmath.rect(1.0, angles[i] - frac * lags[i])
                    for i in range(n) if mask >> i & 1)
            assert abs(z) <= 1.0 + 1e-9


# --- plans ---------------------------------------------------------------------------------


@st.composite
def wired_sites(draw: st.DrawFn, *, objective: str = "load_sharing") -> Snapshot:
    """A phasor site with groups, random wirings (LN, LL, three-phase in any rotation, DC),
    random A limits, maybe a delta-wye transformer, and random sessions."""
    transformer = draw(st.booleans())
    site = Site(
        "S", max_power_kw=draw(st.floats(20, 400)), max_current_a=draw(st.floats(40, 300)),
        buffer=draw(st.sampled_from([0.0, 0.02, 0.05])),
        power_step_kw=draw(st.sampled_from([None, 0.1, 0.5])),
        min_power_kw=draw(st.sampled_from([0.5, 1.0])),
        fallback_power_kw=draw(st.sampled_from([None, 1.4])),
        floors=draw(st.sampled_from(["fit", "zero"])), wiring="phasor",
        objective=objective,  # type: ignore[arg-type]
        transformer="delta_wye" if transformer else None,
        transformer_primary_a=draw(st.floats(10, 120)) if transformer else None,
        transformer_primary_v=480.0 if transformer else None,
        transformer_secondary_v=208.0 if transformer else None,
    )
    nodes = ["S"]
    groups = []
    for g in range(draw(st.integers(0, 2))):
        groups.append(Group(f"G{g}", draw(st.sampled_from(nodes)),
                            max_current_a=draw(st.one_of(st.none(), st.floats(16, 125)))))
        nodes.append(f"G{g}")
    cps, conns, sessions = [], [], []
    for n in range(draw(st.integers(1, 9))):
        cpid = f"CP{n}"
        parent = draw(st.sampled_from(nodes))
        cps.append(ChargePoint(cpid, parent,
                               max_current_a=draw(st.one_of(st.none(), st.floats(16, 80)))))
        wiring = draw(st.sampled_from(["ll", "ll", "ln", "three", "dc"]))
        if wiring == "ll":
            kind, volts, phases = CurrentType.AC_PHASE1, 208.0, draw(st.sampled_from(_PAIRS))
        elif wiring == "ln":
            kind, volts, phases = CurrentType.AC_PHASE1, 230.0, (draw(st.integers(1, 3)),)
        elif wiring == "three":
            kind = draw(st.sampled_from([CurrentType.AC_PHASE3_LN, CurrentType.AC_PHASE3_LL]))
            volts = 230.0 if kind is CurrentType.AC_PHASE3_LN else 400.0
            phases = draw(st.permutations([1, 2, 3]))
        else:
            kind, volts, phases = CurrentType.DC, 400.0, (1, 2, 3)
        dc = kind is CurrentType.DC
        conn = Connector(
            f"{cpid}/1", cpid, parent, current_type=kind, voltage_v=volts, phases=tuple(phases),
            power_factor=draw(st.sampled_from([1.0, 1.0, 0.98, 0.9])),
            max_power_kw=draw(st.floats(20, 60)) if dc else draw(st.floats(3.7, 22)),
            max_current_a=None if dc else draw(st.one_of(st.none(), st.floats(16, 80))),
            min_current_a=0.0 if dc else 6.0,
        )
        conns.append(conn)
        if draw(st.integers(0, 3)) > 0:
            pinned = draw(st.floats(0, 2000)) if draw(st.integers(0, 9)) == 0 else None
            dep = NOW.replace(hour=draw(st.integers(13, 16))) if draw(st.booleans()) else None
            sessions.append(Demand(conn.id, priority=draw(st.integers(0, 5)),
                                   vehicle_max_kw=draw(st.one_of(st.none(), st.floats(2, 60))),
                                   energy_to_charge_kwh=draw(st.floats(1, 40)) if dep else None,
                                   departure=dep, pinned_w=pinned))
    limits = {}
    if draw(st.booleans()):
        limits["S"] = NodeLimit(current_a=draw(st.floats(20, 300)), source="external")
    return Snapshot(site, tuple(conns), tuple(sessions), tuple(groups), tuple(cps),
                    limits=limits, now=NOW, horizon_slots=4)


def _check_plan(snap: Snapshot, alloc: Allocation, draw_fraction: list[float]) -> None:
    if alloc.overloaded:
        assert any(d.pinned_w for d in snap.sessions), alloc.overloaded
        return
    full = counted(snap, alloc)
    for frac in (0.0, 1.0):
        assert phasor_violations(snap, full, frac) == []
        # Cars draw anything below their limit: a balancing load that stops must not put a
        # line over either. The worst case is a corner (each at 0 or its limit): all of them.
        for stopped in _corners(sorted(cid for cid, w in full.items() if w > 0)):
            less = {cid: 0.0 if cid in stopped else w for cid, w in full.items()}
            assert phasor_violations(snap, less, frac) == [], stopped
        less = {cid: w * draw_fraction[n % len(draw_fraction)]
                for n, (cid, w) in enumerate(sorted(full.items()))}
        assert phasor_violations(snap, less, frac) == []


def _corners(ids: list[str]) -> list[set[str]]:
    """Every subset of `ids` (up to 2^8 of them)."""
    ids = ids[:8]
    return [{cid for b, cid in enumerate(ids) if mask >> b & 1} for mask in range(1 << len(ids))]


@PROPS
@given(wired_sites(), st.lists(st.sampled_from([0.0, 0.3, 1.0]), min_size=1, max_size=9))
def test_load_sharing_plans_never_exceed_any_line_limit_as_phasors(
    snap: Snapshot, draw_fraction: list[float]
) -> None:
    _check_plan(snap, allocate(snap, time_limit_s=0.5), draw_fraction)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wired_sites(objective="fleet"), st.lists(st.sampled_from([0.0, 1.0]), min_size=1,
                                                max_size=9))
def test_fleet_plans_never_exceed_any_line_limit_as_phasors_in_any_slot(
    snap: Snapshot, draw_fraction: list[float]
) -> None:
    alloc = allocate(snap, time_limit_s=0.5)
    _check_plan(snap, alloc, draw_fraction)
    if alloc.overloaded:
        return
    for slot in range(1, snap.horizon_slots):
        draws = {ca.connector_id: max(ca.plan_w[slot] if slot < len(ca.plan_w) else 0.0,
                                      ca.floor_w) for ca in alloc.connectors}
        pinned = {d.connector_id for d in snap.sessions if d.pinned_w is not None}
        draws.update({cid: w for cid, w in counted(snap, alloc).items() if cid in pinned})
        assert phasor_violations(snap, draws) == []


@PROPS
@given(wired_sites())
def test_standing_floors_alone_never_exceed_any_line_limit_as_phasors(snap: Snapshot) -> None:
    floors = compute_floors(snap)
    assert phasor_violations(snap, floors) == []


@PROPS
@given(
    per_pair=st.integers(1, 8),
    limit_a=st.floats(40, 400),
    buffer=st.sampled_from([0.0, 0.02, 0.05]),
    step=st.sampled_from([None, 0.1, 0.5]),
    kw=st.floats(6.6, 19.2),
    rotation=st.sampled_from([((1, 2), (2, 3), (3, 1)), ((2, 1), (3, 2), (1, 3))]),
)
def test_balanced_line_to_line_site_uses_at_least_95_percent_of_the_exact_limit(
    per_pair: int, limit_a: float, buffer: float, step: float | None, kw: float,
    rotation: tuple[tuple[int, int], ...],
) -> None:
    """Equal line-to-line chargers on the three pairs: the exact constraint allows
    sqrt(3) * L * V in total (each line carries sqrt(3) times a pair's current; by symmetry
    and convexity an optimum splits it equally). Every car's share is kept well above its
    minimum so that only the physics is measured, not which cars fit at 6 A; rounding to
    whole power steps may cost each car up to one step."""
    site = Site("S", max_power_kw=10_000, max_current_a=limit_a, buffer=buffer,
                power_step_kw=step, floors="zero", wiring="phasor")
    conns = tuple(_ll(f"P{n}/1", rotation[n % 3], kw) for n in range(3 * per_pair))
    exact = math.sqrt(3) * limit_a * (1 - buffer) * 208.0
    possible = min(exact, sum(c.max_w() for c in conns))
    assume(possible / len(conns) >= 1.5 * 6.0 * 208.0)
    snap = Snapshot(site, conns, tuple(Demand(c.id) for c in conns), now=NOW)
    alloc = allocate(snap, time_limit_s=0.5)
    granted = sum(ca.power_w for ca in alloc.connectors)
    assert granted + len(conns) * site.step_w >= 0.99 * possible
    if step is None:  # 10 W resolution
        assert granted >= 0.95 * possible
    assert phasor_violations(snap, counted(snap, alloc)) == []
    arithmetic = allocate(replace(snap, site=replace(site, wiring="arithmetic")),
                          time_limit_s=0.5)
    assert granted >= sum(ca.power_w for ca in arithmetic.connectors)


def test_a_delta_wye_primary_never_relies_on_a_balancing_load_that_may_stop() -> None:
    """On the primary, line-to-line loads on different pairs partly cancel; a plan that
    counted on that would go over when one car stops. Every corner stays within."""
    site = Site("S", max_power_kw=1000, max_current_a=400, buffer=0.0, floors="zero",
                wiring="phasor", transformer="delta_wye", transformer_primary_a=30.0,
                transformer_primary_v=480.0, transformer_secondary_v=208.0)
    conns = (_ll("AB/1", (1, 2), 19.2), _ll("BC/1", (2, 3), 19.2), _ll("CA/1", (3, 1), 5.0),
             _ll("CA/2", (3, 1), 19.2))
    snap = Snapshot(site, conns, tuple(Demand(c.id, priority=1 + n) for n, c in
                                        enumerate(conns)), now=NOW)
    alloc = allocate(snap, time_limit_s=0.5)
    assert not alloc.overloaded
    _check_plan(snap, alloc, [1.0])


def test_a_delta_wye_primary_limit_binds_on_primary_amps() -> None:
    """Balanced three-phase load P on a 480/208 V transformer draws P / (sqrt(3) 480) on each
    primary line: a 20 A primary limit allows 16.6 kW, whatever the secondary allows."""
    site = Site("S", max_power_kw=1000, max_current_a=400, buffer=0.0, floors="zero",
                wiring="phasor", transformer="delta_wye", transformer_primary_a=20.0,
                transformer_primary_v=480.0, transformer_secondary_v=208.0)
    conns = tuple(_ll(f"P{n}/1", ((1, 2), (2, 3), (3, 1))[n % 3], 19.2) for n in range(6))
    snap = Snapshot(site, conns, tuple(Demand(c.id) for c in conns), now=NOW)
    alloc = allocate(snap, time_limit_s=0.5)
    draws = [ca.power_w for ca in alloc.connectors]
    primary = primary_currents(build_network(snap), draws)
    assert primary is not None and max(primary) <= 20.0 + 1e-6
    assert sum(draws) >= 0.95 * math.sqrt(3) * 480.0 * 20.0
    assert phasor_violations(snap, counted(snap, alloc)) == []
