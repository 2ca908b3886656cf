"""The CLI's way to a running server's chargers: its HTTP relay (`POST /v2/ocpp_messages/`).

The typed helpers (local lists, reservations) run in the CLI process against the shared store
and send each CALL through the server, which records it as a command and checks it against
the charger's schemas; only the connection lives in the server.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from csms.commands import CommandResult
from csms.connection import command_status
from csms.store import Store
from csms.typed_calls import Payload, stored_version

# Beyond the server's own wait for the charger (call timeout plus its margin).
HTTP_TIMEOUT_S = 60.0


class RelayRefused(Exception):
    """The server refused the message (no such charger, bad key, bad request): one line."""


def result_of(status_code: int, body: dict[str, Any]) -> CommandResult:
    """A relay answer as the CommandResult the helpers expect (command ids are the
    server's: 0 here). RelayRefused when the server did not send it at all."""
    if status_code == 200:
        frame = body["data"][0].get("response") or []
        if len(frame) == 3:
            return CommandResult(0, command_status(frame[2]), frame[2])
        if len(frame) == 5:
            return CommandResult(0, "failed", None, f"{frame[2]}: {frame[3]}", frame[2])
        return CommandResult(0, "failed", None, "no answer")
    if status_code == 409:
        return CommandResult(0, "failed", None, "charge point is not connected")
    if status_code == 504:
        return CommandResult(0, "timeout", None, body.get("message", "no answer in time"))
    if status_code == 502:
        return CommandResult(0, "failed", None, body.get("message", "connection lost"))
    detail = body.get("data") or body.get("message") or body
    raise RelayRefused(f"the server refused the message (HTTP {status_code}): {detail}")


class RelayChannel:
    """Versions from the store, CALLs through a running server's relay (never queued)."""

    def __init__(self, client: httpx.AsyncClient, store: Store) -> None:
        self.client = client
        self.store = store

    async def version(self, cp_id: str) -> str | None:
        return await stored_version(self.store, cp_id)

    async def send(self, cp_id: str, action: str, payload: Payload) -> CommandResult:
        frame = [2, uuid.uuid4().hex, action, payload]
        try:
            r = await self.client.post(f"/v2/ocpp_messages/{cp_id}", json=frame,
                                       params={"queue": "false"})
        except httpx.HTTPError as exc:
            raise RelayRefused(f"cannot reach the server at {self.client.base_url}: "
                               f"{exc}") from exc
        try:
            body = r.json()
        except ValueError:
            body = {"message": r.text}
        return result_of(r.status_code, body)


def relay_client(base_url: str, api_key: str) -> httpx.AsyncClient:
    """An HTTP client for the server at `base_url` with a write-scope API key."""
    return httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S,
                             headers={"Authorization": f"Bearer {api_key}"})
