"""Plan records: every plan is stored with its trigger, limit and source, and its result."""

from __future__ import annotations

from datetime import datetime

from csms.store import Store
from loadmgmt.limits import Resolved
from loadmgmt.model import Allocation, Snapshot


def site_overload(site_id: str, resolved: dict[str, Resolved],
                  allocation: Allocation) -> dict[str, float] | None:
    """How far what the plan lets the site's connectors draw (grants, draws it cannot steer,
    idle connectors' floors) exceeds the site's power limit; None when it does not."""
    limit = resolved.get(site_id)
    if limit is None or limit.value.power_kw is None:
        return None
    limit_w = limit.value.power_kw * 1000.0
    counted_w = sum(ca.power_w if ca.active else max(ca.power_w, ca.floor_w)
                    for ca in allocation.connectors)
    if counted_w <= limit_w + 1.0:  # 1 W: rounding, not load
        return None
    return {"limit_w": limit_w, "counted_w": round(counted_w, 1),
            "over_w": round(counted_w - limit_w, 1)}


async def record_plan(store: Store, site_id: str, trigger: str, now: datetime,
                      resolved: dict[str, Resolved], snapshot: Snapshot,
                      allocation: Allocation) -> dict[str, float] | None:
    """Store one plan of `site_id`: what went in (counts, pins, limits), each connector's
    result, and the site's overload if there is one (returned)."""
    site_limit = resolved.get(site_id)
    overload = site_overload(site_id, resolved, allocation)
    inputs = {
        "connectors": len(snapshot.connectors),
        "sessions": len(snapshot.sessions),
        "slot_s": allocation.slot_s,
        "pinned": [d.connector_id for d in snapshot.sessions if d.pinned_w is not None],
        "limits": {k: {"power_kw": v.power_kw, "current_a": v.current_a, "source": v.source}
                   for k, v in snapshot.limits.items()},
        "overloaded": None if overload is None else {site_id: overload},
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
