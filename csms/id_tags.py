"""Id tags (seed 002 "Id tags"): who may charge and at which priority.

The tags live in the table `Central.authorize` reads, so a tag created here is what Authorize,
StartTransaction and TransactionEvent answer when `authorize_all` is off (and a Blocked or
expired one is refused even when it is on). A tag's priority beats its connector's for the
sessions it starts: the planner asks `priority_for` on every plan.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from csms.clock import Clock
from csms.store import Store
from csms.store.catalog import IdTagQuery, IdTagRecord

# Seed 002: "Should not exceed a length of 20 characters" (the OCPP 1.6 IdToken length).
MAX_VALUE_LENGTH = 20
GROUPS = ("RFID", "credit card reader", "VID or MAC address")
# What Authorize may answer for a known tag (OCPP 1.6 AuthorizationStatus, less ConcurrentTx,
# which is about a transaction, not the tag).
STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")
DEFAULT_PRIORITY = 3
SORTS = ("customGroup", "group", "priority", "value", "vehicleName")

Replan = Callable[[str], None]


class IdTagTaken(Exception):
    """Another tag already has this value (values are what chargers send: unique)."""


class UnknownVehicle(Exception):
    """The tag names a vehicle that does not exist."""


class IdTags:
    """Create, change and list id tags; keep value -> priority in memory for the planner."""

    def __init__(self, store: Store, clock: Clock, replan: Replan | None = None) -> None:
        self._store = store
        self._clock = clock
        self._replan = replan or (lambda trigger: None)
        self._priorities: dict[str, int] = {}
        # Called after any tag is created, changed or deleted (local lists follow the tags).
        self.on_change: list[Callable[[], None]] = []

    async def load(self) -> None:
        """Read every tag's priority (once, at start; changes here keep it current)."""
        self._priorities = await self._store.id_tag_priorities()

    def priority_for(self, id_tag: str | None) -> int | None:
        """The priority (0..5) a session started with `id_tag` gets, or None: the tag is
        unknown or has no priority of its own, so the connector's applies."""
        return None if id_tag is None else self._priorities.get(id_tag)

    async def get(self, tag_uuid: str) -> IdTagRecord | None:
        return await self._store.find_id_tag(tag_uuid)

    async def list(self, query: IdTagQuery, limit: int,
                   offset: int) -> tuple[list[IdTagRecord], int]:
        """One page of the matching tags, and how many match."""
        return await self._store.list_id_tags(query, limit, offset)

    async def custom_groups(self) -> list[str]:
        return await self._store.id_tag_custom_groups()

    async def create(self, fields: dict[str, Any]) -> IdTagRecord:
        """A new tag from `fields` (IdTagRecord names; `value` required).

        Raises IdTagTaken or UnknownVehicle."""
        now = self._clock.now()
        tag = IdTagRecord(uuid=str(uuid.uuid4()), created_at=now, updated_at=now,
                          **{"priority": DEFAULT_PRIORITY, **fields})
        await self._check_vehicle(tag)
        try:
            await self._store.add_id_tag(tag)
        except sqlite3.IntegrityError as e:
            raise IdTagTaken(tag.value) from e
        self._remember(None, tag)
        return tag

    async def update(self, tag_uuid: str, changes: dict[str, Any]) -> IdTagRecord | None:
        """The tag with `changes` applied, or None if there is no such tag.

        Raises IdTagTaken or UnknownVehicle."""
        old = await self._store.find_id_tag(tag_uuid)
        if old is None:
            return None
        tag = replace(old, **changes, updated_at=self._clock.now())
        await self._check_vehicle(tag)
        try:
            if not await self._store.update_id_tag(tag):
                return None  # deleted meanwhile
        except sqlite3.IntegrityError as e:
            raise IdTagTaken(tag.value) from e
        self._remember(old, tag)
        return tag

    async def delete(self, tag_uuid: str) -> IdTagRecord | None:
        """Delete the tag; it is returned (None if there was none)."""
        old = await self._store.find_id_tag(tag_uuid)
        if old is None or not await self._store.delete_id_tag(tag_uuid):
            return None
        self._remember(old, None)
        return old

    async def _check_vehicle(self, tag: IdTagRecord) -> None:
        if tag.vehicle_id is not None and await self._store.get_vehicle(tag.vehicle_id) is None:
            raise UnknownVehicle(tag.vehicle_id)

    def _remember(self, old: IdTagRecord | None, new: IdTagRecord | None) -> None:
        """Keep the in-memory priorities; re-plan when a running session's may have changed."""
        for listener in self.on_change:
            listener()
        before = None if old is None else (old.value, old.priority)
        after = None if new is None else (new.value, new.priority)
        if before == after:
            return
        if old is not None:
            self._priorities.pop(old.value, None)
        if new is not None and new.priority is not None:
            self._priorities[new.value] = new.priority
        self._replan("id_tag_change")
