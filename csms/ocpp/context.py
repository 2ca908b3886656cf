"""What a per-version handler is given: the charger's id, the core, and its outbound calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from csms.central import Central

Payload = dict[str, Any]


class Sender(Protocol):
    """Send a CALL to this charger, record it as a command, return the CALLRESULT payload."""

    async def __call__(self, action: str, payload: Payload) -> Payload: ...


@dataclass(slots=True)
class HandlerContext:
    cp_id: str
    central: Central
    send: Sender
    # Run `coro` in the connection's task group once the current answer is on the wire.
    after_reply: Callable[[Callable[[], Awaitable[None]]], None]


Handler = Callable[[HandlerContext, Payload], Awaitable[Payload]]
