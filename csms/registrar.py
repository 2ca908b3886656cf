"""The operator's registration of chargers: Accepted, Pending or Rejected (csms.registration
holds the rules). A connected charger told otherwise by its last boot is asked to boot again
(TriggerMessage BootNotification), so that it learns its new state from the answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from csms.commands import Commands
from csms.registration import STATUSES
from csms.server import Registry
from csms.store import Store

log = structlog.get_logger("csms.registrar")


@dataclass(frozen=True, slots=True)
class Registration:
    """One charger's registration as the operator sees it."""

    cp_id: str
    status: str | None  # the operator's word; None: the config decides at its boot
    boot_status: str | None  # what its last BootNotification was answered
    online: bool
    boot_requested: bool = False  # a TriggerMessage BootNotification went out for this change


class Registrar:
    """Reads and sets registrations; asks connected chargers to boot again when needed."""

    def __init__(self, store: Store, registry: Registry, commands: Commands) -> None:
        self.store = store
        self.registry = registry
        self.commands = commands
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, cp_id: str) -> Registration | None:
        """The registration of `cp_id`; None when there is no record of it."""
        record = await self.store.get_charge_point(cp_id)
        if record is None:
            return None
        conn = self.registry.get(cp_id)
        booted = conn.boot_answer if conn is not None else None
        return Registration(cp_id, record.registration, booted or record.boot_status,
                            conn is not None)

    async def set(self, cp_id: str, status: str) -> Registration:
        """Register `cp_id` as `status`; applies to what it sends from now on, and to the
        answer of its next boot, which a connected charger is asked for when its last boot
        was answered otherwise."""
        if status not in STATUSES:
            raise ValueError(f"registration status must be one of {', '.join(STATUSES)}")
        await self.store.set_registration(cp_id, status)
        conn = self.registry.get(cp_id)
        found = await self.get(cp_id)
        assert found is not None  # just written
        if conn is not None:
            conn.registration_changed(status)
        log.info("registration_set", cp_id=cp_id, status=status, boot_status=found.boot_status,
                 online=found.online)
        if conn is None or found.boot_status == status:
            return found
        # Not awaited: a Rejected charger may not answer at all (1.6 section 4.2), and the
        # command is recorded with how it ended either way.
        task = asyncio.create_task(self._ask_boot(cp_id), name=f"trigger-boot-{cp_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Registration(found.cp_id, found.status, found.boot_status, found.online, True)

    async def _ask_boot(self, cp_id: str) -> None:
        result = await self.commands.trigger_message(cp_id, "BootNotification")
        log.info("boot_requested", cp_id=cp_id, status=result.status,
                 command_id=result.command_id)

    async def drain(self) -> None:
        """Wait for the boot requests under way (used at shutdown and by tests)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
