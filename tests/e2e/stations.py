"""Raw stations (tests/raw_client.py) that answer the CSMS's calls from a table, for the
typed-helper tests (firmware, logs, split variables, station queries)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csms.service import Loadstar
from tests.raw_client import RawClient, default_answer

Answers = dict[str, Callable[[dict[str, Any]], dict[str, Any]]]


def answering(answers: Answers) -> Callable[[str, dict[str, Any]], dict[str, Any] | None]:
    """An answerer: the table's answer for its actions, the default one for the rest."""

    def answer(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action in answers:
            return answers[action](payload)
        return default_answer(action, payload)

    return answer


async def station(url: Callable[[str], str], cp_id: str, protocol: str,
                  answers: Answers) -> RawClient:
    """A booted station of `protocol` answering from `answers`."""
    c = await RawClient.connect(url(cp_id), protocol, answering(answers))
    if protocol == "ocpp1.6":
        boot = await c.ok("BootNotification", {"chargePointVendor": "Acme",
                                               "chargePointModel": "X1"})
    else:
        boot = await c.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "vendorName": "Acme", "model": "X2"}})
    assert boot["status"] == "Accepted"
    return c


async def sent(c: RawClient, action: str) -> list[dict[str, Any]]:
    """The payloads of `action` the server has sent `c` so far (the queue is drained)."""
    found = []
    while not c.server_calls.empty():
        call = c.server_calls.get_nowait()
        if call[2] == action:
            found.append(call[3])
    return found


async def event_kinds(server: Loadstar, cp_id: str) -> list[str]:
    """The charger events kept for `cp_id`, oldest first."""
    async with server.store.db.execute(  # type: ignore[attr-defined]
            "SELECT kind FROM charger_events WHERE cp_id=? ORDER BY id", (cp_id,)) as cur:
        return [r[0] for r in await cur.fetchall()]
