"""Admission control: connectors we cannot limit are made unavailable while their next car
would put the site (or a group) over its limit, and available again when room comes back.

The decision is `loadmgmt.admission.to_close`; this part gathers its inputs from a plan's
snapshot, sends ChangeAvailability (Inoperative / Operative) and remembers on the charger which
connectors it closed, so a restart reopens them when there is room. A connector in a session is
never touched: its car is never cut by surprise (the others are lowered, the overload alerted).
"""

from __future__ import annotations

import structlog

from csms.live import ChargerState, ConnectorState
from csms.planning.context import PlanContext
from csms.planning.snapshot import States, cannot_limit, learned_max_w
from loadmgmt.admission import Uncontrolled, to_close
from loadmgmt.model import Connector, Snapshot

log = structlog.get_logger("csms.planner")

# Kept on the charger's capabilities: the connectors Loadstar made unavailable for room.
CLOSED_KEY = "closed_for_room"


def uncontrolled(snapshot: Snapshot, states: States) -> list[Uncontrolled]:
    """The snapshot's connectors we cannot limit, each counted as admission counts it."""
    out: list[Uncontrolled] = []
    by_key: dict[str, Connector] = {x.id: x for x in snapshot.connectors}
    # A session's count is the allocator's own input: its pin (draw, or the most it can draw).
    pinned = {d.connector_id: d.pinned_w for d in snapshot.sessions}
    for key, (cp, c) in states.items():
        if not cannot_limit(cp, c):
            continue
        conn = by_key[key]
        if c.tx_id is not None:
            counted = pinned.get(key)
            out.append(Uncontrolled(key, learned_max_w(c, conn) if counted is None else counted,
                                    active=True, priority=conn.priority))
        else:
            out.append(Uncontrolled(key, learned_max_w(c, conn), active=False,
                                    is_open=not c.closed, priority=conn.priority))
    return out


def worst_case_w(snapshot: Snapshot, states: States) -> float:
    """What the site's connectors we cannot limit may draw at once, each at the most it can
    (whether or not admission keeps some closed): the operator's measure of the risk."""
    by_key = {x.id: x for x in snapshot.connectors}
    return sum(learned_max_w(c, by_key[key]) for key, (cp, c) in states.items()
               if cannot_limit(cp, c))


class Admission:
    """One per planner: after each plan, closes and reopens connectors of the site."""

    def __init__(self, ctx: PlanContext) -> None:
        self._ctx = ctx
        self._in_flight: set[str] = set()

    def review(self, site_id: str, snapshot: Snapshot, states: States) -> None:
        """Close what must not start a car now and reopen what may (sent in the background)."""
        spec = self._ctx.directory.specs.get(site_id)
        found = uncontrolled(snapshot, states)
        if not found and not any(c.closed for _, c in states.values()):
            return  # nothing here we cannot limit: the usual site costs nothing more
        closing = frozenset() if spec is None or spec.uncontrollable == "alert_only" \
            else to_close(snapshot, found)
        for key, (cp, c) in states.items():
            want_closed = key in closing
            if want_closed == c.closed or key in self._in_flight or not cp.online:
                continue
            if want_closed and c.tx_id is not None:
                continue  # never cut a car: it is counted, and the plan lowers the others
            if self._ctx.tasks is None:
                return
            self._in_flight.add(key)
            self._ctx.tasks.create_task(self._change(key, cp, c, close=want_closed))

    async def _change(self, key: str, cp: ChargerState, c: ConnectorState, *,
                      close: bool) -> None:
        try:
            result = await self._ctx.commands.change_availability(
                cp.cp_id, c.connector_id, operative=not close)
            status = str((result.response or {}).get("status", ""))
            if not result.ok and status != "Scheduled":
                log.warning("availability_not_changed", cp_id=cp.cp_id,
                            connector_id=c.connector_id, close=close, status=result.status,
                            code=result.code)
                return
            c.closed = close
            if close:
                log.warning("connector_closed_for_room", cp_id=cp.cp_id,
                            connector_id=c.connector_id,
                            reason="a car here could not be limited and would overload")
            else:
                log.info("connector_reopened", cp_id=cp.cp_id, connector_id=c.connector_id)
            closed = sorted(n for n, x in cp.connectors.items() if x.closed)
            await self._ctx.store.save_capabilities(cp.cp_id, {CLOSED_KEY: closed})
        except Exception:  # a child of the planner's task group: never end the site loops
            log.exception("availability_change_failed", cp_id=cp.cp_id,
                          connector_id=c.connector_id)
        finally:
            self._in_flight.discard(key)
