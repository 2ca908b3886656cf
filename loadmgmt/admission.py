"""Admission of cars on connectors we cannot limit (pure).

A car on such a connector draws what it can from its first second. Where that could put a node
over its limit even with every controllable session at zero, the connector must be kept from
starting one: this module says which, given what the uncontrollable part of a site draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from loadmgmt.model import Snapshot
from loadmgmt.network import build_network, greedy_admit


@dataclass(frozen=True, slots=True)
class Uncontrolled:
    """A connector we cannot limit: in a session (counted at `counted_w`, its draw or the
    most it can draw) or idle (a car could start drawing up to `counted_w`)."""

    connector_id: str
    counted_w: float
    active: bool
    is_open: bool = True  # idle: whether it can start a car now (not made unavailable)
    priority: int = 3


def to_close(snapshot: Snapshot, uncontrolled: Iterable[Uncontrolled]) -> frozenset[str]:
    """The idle uncontrollable connectors whose next car would put a node of the snapshot over
    its limit (after the site buffer), counting the sessions under way at their draw and every
    idle one left open at the most it can draw, as if their cars all came at once.

    Connectors open now keep their place before closed ones (no flapping), then the higher
    priority (lower number), then the id."""
    net = build_network(snapshot)
    # The site and its groups: a charger's own rating row (less the buffer) is no grid limit,
    # and a connector at its full rating would never "fit" it.
    grid = {snapshot.site.id, *(g.id for g in snapshot.groups)}
    limits = [lim if row.node in grid else math.inf
              for row, lim in zip(net.rows, net.row_limits(snapshot.limits), strict=True)]
    consumption = [0.0] * len(net.connectors)
    idle: list[Uncontrolled] = []
    for u in uncontrolled:
        i = net.index.get(u.connector_id)
        if i is None:
            continue
        if u.active:
            consumption[i] = u.counted_w
        else:
            idle.append(u)
    base = net.loads(consumption)
    idle.sort(key=lambda u: (not u.is_open, u.priority, u.connector_id))
    order = [net.index[u.connector_id] for u in idle]
    extra: Mapping[int, float] = {net.index[u.connector_id]: u.counted_w for u in idle}
    admitted = set(greedy_admit(net, limits, base, order, extra))
    return frozenset(u.connector_id for u in idle if net.index[u.connector_id] not in admitted)
