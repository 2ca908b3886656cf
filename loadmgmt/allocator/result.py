"""The Allocation for a site from per-session grants (and the unmanaged `off` objective)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from loadmgmt.allocator.prepare import _Prep
from loadmgmt.model import Allocation, ConnectorAllocation, Snapshot, SolverStatus
from loadmgmt.network import overloaded_nodes


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
