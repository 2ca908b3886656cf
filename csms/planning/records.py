"""Plan records: every plan is stored with its trigger, limit and source, and its result."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from csms.store import Store
from loadmgmt.limits import Resolved
from loadmgmt.model import Allocation, Snapshot


def node_overloads(snapshot: Snapshot, resolved: dict[str, Resolved],
                   allocation: Allocation, idle_floors: Mapping[str, float] | None = None,
                   ) -> dict[str, dict[str, float]]:
    """Each node (the site, a group) whose connectors the plan lets draw more than the node's
    power limit (grants, draws it cannot steer, idle connectors' standing floors), by how much.

    `idle_floors`: what each idle connector is given to draw on its own (its TxDefaultProfile);
    an idle connector nobody can limit gets none and draws nothing until a car comes, which
    `site_unlimitable_can_exceed_limit` and admission deal with, not this."""
    parent = {g.id: g.parent_id for g in snapshot.groups}
    parent.update({cp.id: cp.parent_id for cp in snapshot.charge_points})
    hangs_from = {c.id: c.parent_id for c in snapshot.connectors}
    counted: dict[str, float] = {}
    for ca in allocation.connectors:
        idle_w = ca.floor_w if idle_floors is None else idle_floors.get(ca.connector_id, 0.0)
        w = ca.power_w if ca.active else max(ca.power_w, idle_w)
        node: str | None = hangs_from.get(ca.connector_id, snapshot.site.id)
        seen: set[str] = set()
        while node is not None and node not in seen:  # up to the site (a cycle cannot loop)
            seen.add(node)
            counted[node] = counted.get(node, 0.0) + w
            node = parent.get(node)
    out: dict[str, dict[str, float]] = {}
    for node, w in counted.items():
        limit = resolved.get(node)
        if limit is None or limit.value.power_kw is None:
            continue
        limit_w = limit.value.power_kw * 1000.0
        if w > limit_w + 1.0:  # 1 W: rounding, not load
            out[node] = {"limit_w": limit_w, "counted_w": round(w, 1),
                         "over_w": round(w - limit_w, 1)}
    return out


async def record_plan(store: Store, site_id: str, trigger: str, now: datetime,
                      resolved: dict[str, Resolved], snapshot: Snapshot,
                      allocation: Allocation, unlimitable_w: float = 0.0,
                      idle_floors: Mapping[str, float] | None = None,
                      ) -> dict[str, dict[str, float]]:
    """Store one plan of `site_id`: what went in (counts, pins, limits), each connector's
    result, and the nodes it overloads (returned; empty when none)."""
    site_limit = resolved.get(site_id)
    overload = node_overloads(snapshot, resolved, allocation, idle_floors)
    inputs = {
        "connectors": len(snapshot.connectors),
        "sessions": len(snapshot.sessions),
        "slot_s": allocation.slot_s,
        "pinned": [d.connector_id for d in snapshot.sessions if d.pinned_w is not None],
        "limits": {k: {"power_kw": v.power_kw, "current_a": v.current_a, "source": v.source}
                   for k, v in snapshot.limits.items()},
        "overloaded": overload or None,
        # What the connectors we cannot limit may draw at once (the operator's risk measure).
        "unlimitable_w": round(unlimitable_w, 1),
    }
    # transaction_id and plan_w: what an optimization (HTTP view, webhook) shows of a session.
    result = {ca.connector_id: {"power_w": ca.power_w, "floor_w": ca.floor_w,
                                "active": ca.active, "pinned": ca.pinned,
                                "transaction_id": ca.transaction_id,
                                "plan_w": list(ca.plan_w) if len(ca.plan_w) > 1 else None}
              for ca in allocation.connectors}
    await store.record_plan(
        site_id, now, trigger,
        site_limit.value.power_kw if site_limit else None,
        site_limit.value.current_a if site_limit else None,
        site_limit.source.value if site_limit else "default",
        allocation.status, allocation.solve_time_s, inputs, result,
    )
    return overload
