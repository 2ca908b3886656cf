"""A small in-process bus: domain events go out after they are committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from csms.domain import DomainEvent

Listener = Callable[[DomainEvent], None]

log = structlog.get_logger("csms.events")


class EventBus:
    """Fan-out of committed domain events to listeners (the planner) and to test subscribers."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._queues: list[asyncio.Queue[DomainEvent]] = []

    def listen(self, listener: Listener) -> None:
        """Call `listener` synchronously for every event; it must not block."""
        self._listeners.append(listener)

    def subscribe(self) -> asyncio.Queue[DomainEvent]:
        """A queue that receives every event from now on."""
        q: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._queues.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[DomainEvent]) -> None:
        """Stop delivering to `q`."""
        if q in self._queues:
            self._queues.remove(q)

    def publish(self, event: DomainEvent) -> None:
        """Deliver `event` to every listener and subscriber."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # The event is committed and its message answered after this: a listener's
                # fault (the planner's) must neither fail that answer nor starve other listeners.
                log.exception("listener_failed", event_type=type(event).__name__,
                              cp_id=getattr(event, "cp_id", None))
        for q in self._queues:
            q.put_nowait(event)
