"""How typed helpers (local lists, reservations) reach a charger: a version and a send.

In the server they go through `Commands` (recorded, schema-checked, one call in flight); the
CLI reaches a running server's chargers through its HTTP relay with the same helpers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from csms.commands import CommandResult, Commands
from csms.store import Store

Payload = dict[str, Any]
PROTOCOL_VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
# Run a job on a charger's connection once the answer being made is on the wire (a CALL to
# the charger must not overtake our answer to its BootNotification); False when it is away.
AfterReply = Callable[[str, Callable[[], Awaitable[None]]], bool]


class Channel(Protocol):
    """A way to send CALLs to chargers and learn which OCPP version each speaks."""

    async def version(self, cp_id: str) -> str | None: ...
    async def send(self, cp_id: str, action: str, payload: Payload) -> CommandResult: ...


async def stored_version(store: Store, cp_id: str) -> str | None:
    """The version `cp_id` last connected with, from its record (None: never connected)."""
    record = await store.get_charge_point(cp_id)
    return None if record is None else PROTOCOL_VERSIONS.get(record.protocol or "")


class CommandsChannel:
    """The server's channel: the live connection's version, `Commands.send` (recorded)."""

    def __init__(self, commands: Commands, store: Store) -> None:
        self.commands = commands
        self.store = store

    async def version(self, cp_id: str) -> str | None:
        return self.commands.version_of(cp_id) or await stored_version(self.store, cp_id)

    async def send(self, cp_id: str, action: str, payload: Payload) -> CommandResult:
        return await self.commands.send(cp_id, action, payload)
