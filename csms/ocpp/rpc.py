"""Outbound call correlation for one charger: one CALL in flight, late replies dropped.

Pure state: it is told the time and the frames, and says what happened.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from csms.ocpp.framing import CallError, CallResult, call_frame


@dataclass(slots=True)
class PendingCall:
    unique_id: str
    action: str
    payload: dict[str, Any]
    sent_at: datetime
    deadline: datetime


class CallCorrelator:
    """Tracks the single outstanding CALL of one direction of one connection."""

    def __init__(self) -> None:
        self.pending: PendingCall | None = None

    def begin(self, action: str, payload: dict[str, Any], now: datetime,
              timeout_s: float) -> tuple[PendingCall, str]:
        """Start a call; the caller must not begin another until this one ends."""
        if self.pending is not None:
            raise RuntimeError("a CALL is already in flight")
        unique_id = uuid.uuid4().hex[:32]
        self.pending = PendingCall(unique_id, action, payload, now,
                                   now + timedelta(seconds=timeout_s))
        return self.pending, call_frame(unique_id, action, payload)

    def match(self, reply: CallResult | CallError) -> PendingCall | None:
        """The call this reply answers, or None for a reply to nothing we wait for."""
        if self.pending is None or reply.unique_id != self.pending.unique_id:
            return None
        call, self.pending = self.pending, None
        return call

    def abandon(self) -> PendingCall | None:
        """Give up on the outstanding call (timeout or closed connection)."""
        call, self.pending = self.pending, None
        return call
