"""Random site trees for property tests, and an independent limit checker."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

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
from loadmgmt.units import CurrentType

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

KINDS = [
    (CurrentType.AC_PHASE3_LN, 230.0, (1, 2, 3)),
    (CurrentType.AC_PHASE3_LN, 230.0, (2, 3, 1)),
    (CurrentType.AC_PHASE3_LL, 400.0, (1, 2, 3)),
    (CurrentType.AC_PHASE1, 230.0, (1,)),
    (CurrentType.AC_PHASE1, 230.0, (3,)),
    (CurrentType.AC_PHASE1, 208.0, (1, 2)),
    (CurrentType.DC, 400.0, (1, 2, 3)),
]


@st.composite
def snapshots(
    draw: st.DrawFn,
    *,
    floors: str | None = None,
    allow_pinned: bool = True,
    allow_optout: bool = True,
    allow_departure: bool = True,
    allow_lending: bool = True,
    max_cps: int = 6,
) -> Snapshot:
    """A site with nested groups, charge points, mixed connectors and sessions."""
    step = draw(st.sampled_from([None, 0.1, 0.5, 1.0]))
    site = Site(
        id="S",
        max_power_kw=draw(st.floats(10, 200)),
        max_current_a=draw(st.one_of(st.none(), st.floats(32, 250))),
        buffer=draw(st.sampled_from([0.0, 0.02, 0.05])),
        min_power_kw=draw(st.sampled_from([0.5, 1.0, 1.4])),
        power_step_kw=step,
        fallback_power_kw=draw(st.sampled_from([None, 1.4, 4.2])),
        floors=floors or draw(st.sampled_from(["fit", "zero"])),  # type: ignore[arg-type]
    )
    nodes = ["S"]
    groups = []
    for g in range(draw(st.integers(0, 3))):
        gid = f"G{g}"
        groups.append(
            Group(
                gid,
                draw(st.sampled_from(nodes)),
                max_power_kw=draw(st.one_of(st.none(), st.floats(5, 100))),
                max_current_a=draw(st.one_of(st.none(), st.floats(16, 125))),
            )
        )
        nodes.append(gid)
    cps = []
    conns = []
    sessions = []
    for c in range(draw(st.integers(1, max_cps))):
        cpid = f"CP{c}"
        parent = draw(st.sampled_from(nodes))
        cps.append(
            ChargePoint(cpid, parent, max_power_kw=draw(st.one_of(st.none(), st.floats(7, 50))))
        )
        for n in range(1, draw(st.integers(1, 2)) + 1):
            kind, volt, phases = draw(st.sampled_from(KINDS))
            dc = kind is CurrentType.DC
            conn = Connector(
                id=f"{cpid}/{n}",
                charge_point_id=cpid,
                parent_id=parent,
                current_type=kind,
                voltage_v=volt,
                power_factor=draw(st.sampled_from([1.0, 0.95])),
                phases=phases,
                max_power_kw=draw(st.floats(50, 150)) if dc else draw(st.floats(3.7, 22)),
                max_current_a=None if dc else draw(st.one_of(st.none(), st.floats(10, 32))),
                min_current_a=0.0 if dc else 6.0,
            )
            conns.append(conn)
            if draw(st.booleans()):
                prio = draw(st.integers(0 if allow_optout else 1, 5))
                pinned = (
                    draw(st.floats(0, 3000))
                    if allow_pinned and draw(st.integers(0, 9)) == 0
                    else None
                )
                dep = None
                energy = None
                if allow_departure and draw(st.booleans()):
                    dep = NOW.replace(hour=draw(st.integers(13, 20)))
                    energy = draw(st.floats(1, 60))
                lending = allow_lending and draw(st.integers(0, 4)) == 0
                sessions.append(
                    Demand(
                        connector_id=conn.id,
                        priority=prio,
                        vehicle_max_kw=draw(st.one_of(st.none(), st.floats(2, 150))),
                        energy_to_charge_kwh=energy,
                        departure=dep,
                        measured_w=draw(st.floats(0, 5000)) if lending else None,
                        below_limit_for_s=600.0 if lending else 0.0,
                        pinned_w=pinned,
                        transaction_id=f"tx-{conn.id}",
                    )
                )
    limits = {}
    if draw(st.booleans()):
        limits["S"] = NodeLimit(power_kw=draw(st.floats(5, 200)), source="external")
    return Snapshot(
        site=site,
        connectors=tuple(conns),
        sessions=tuple(sessions),
        groups=tuple(groups),
        charge_points=tuple(cps),
        limits=limits,
        now=NOW,
    )


def ancestors(snap: Snapshot, conn: Connector) -> list[str]:
    """Node ids above a connector, nearest first (independent of loadmgmt.network)."""
    parent = {g.id: g.parent_id for g in snap.groups}
    out = (
        [conn.charge_point_id]
        if any(cp.id == conn.charge_point_id for cp in snap.charge_points)
        else []
    )
    node: str | None = conn.parent_id
    while node is not None:
        out.append(node)
        node = parent.get(node)
    return out


def node_limits(snap: Snapshot) -> dict[str, tuple[float, float]]:
    """Per node: (W limit, A limit) after buffer; inf if none."""
    keep = 1 - snap.site.buffer
    raw: dict[str, tuple[float | None, float | None]] = {
        snap.site.id: (snap.site.max_power_kw, snap.site.max_current_a)
    }
    for g in snap.groups:
        raw[g.id] = (g.max_power_kw, g.max_current_a)
    for cp in snap.charge_points:
        raw[cp.id] = (cp.max_power_kw, cp.max_current_a)
    out = {}
    for node, (kw, a) in raw.items():
        dyn = snap.limits.get(node)
        if dyn is not None:
            kw = (
                min(x for x in (kw, dyn.power_kw) if x is not None)
                if (kw or dyn.power_kw)
                else None
            )
            if dyn.current_a is not None:
                a = dyn.current_a if a is None else min(a, dyn.current_a)
        out[node] = (
            float("inf") if kw is None else kw * 1000 * keep,
            float("inf") if a is None else a * keep,
        )
    return out


def node_loads(
    snap: Snapshot, alloc: Allocation, slot: int = 0
) -> dict[str, tuple[float, list[float]]]:
    """Per node: counted W and A per phase, each connector at max(grant, floor)."""
    conns = {c.id: c for c in snap.connectors}
    loads: dict[str, tuple[float, list[float]]] = defaultdict(lambda: (0.0, [0.0, 0.0, 0.0]))
    for ca in alloc.connectors:
        conn = conns[ca.connector_id]
        grant = ca.plan_w[slot] if slot < len(ca.plan_w) else 0.0
        if slot == 0:
            grant = ca.power_w
        counted = max(grant, ca.floor_w)
        per = conn.amps_per_w(snap.site.grid_voltage_v)
        for node in ancestors(snap, conn):
            w, amps = loads[node]
            amps = list(amps)
            for p, coef in per.items():
                amps[p - 1] += coef * counted
            loads[node] = (w + counted, amps)
    return dict(loads)


def violations(snap: Snapshot, alloc: Allocation, slot: int = 0) -> list[str]:
    """Human-readable list of node/phase limits exceeded."""
    lim = node_limits(snap)
    out = []
    for node, (w, amps) in node_loads(snap, alloc, slot).items():
        lw, la = lim[node]
        if w > lw + 1e-3:
            out.append(f"{node} kW {w:.1f} > {lw:.1f}")
        for p, a in enumerate(amps, 1):
            if a > la + 1e-6:
                out.append(f"{node} L{p} {a:.3f} > {la:.3f}")
    return out


def fleet_site() -> Snapshot:
    """Two cars needing 20 kWh each on 22 kW, leaving after 4 h and after 1.5 h."""
    site = Site("S", max_power_kw=22, buffer=0.0, floors="zero", power_step_kw=0.5)
    grp = Group("G", "S", max_power_kw=22)
    cps = (ChargePoint("A", "G", 22), ChargePoint("B", "G", 22))
    conns = (Connector("A/1", "A", "G"), Connector("B/1", "B", "G"))
    sessions = (
        Demand("A/1", energy_to_charge_kwh=20, departure=NOW + timedelta(hours=4)),
        Demand("B/1", energy_to_charge_kwh=20, departure=NOW + timedelta(hours=1, minutes=30)),
    )
    return Snapshot(
        site, conns, sessions, (grp,), cps, now=NOW, objective="fleet", horizon_slots=16
    )
