"""Local authorization lists kept in step with the id tags (1.6 5.15/5.9, 2.0.1 D01/D02).

Per charger the store keeps the version the charger last accepted from us and its entries.
A sync asks the charger its version (GetLocalListVersion): when it matches ours, only what
changed goes out (Differential, version + 1); otherwise, or when the charger answers
VersionMismatch, the whole list (Full). Chargers that support a local list are synced after
each accepted boot and whenever an id tag changes, a bounded number at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

import structlog

from csms.clock import Clock
from csms.commands import CommandResult
from csms.domain import Booted, DomainEvent
from csms.local_list_plan import (
    V16,
    Entries,
    Limits,
    Part,
    capped,
    differential_update,
    full_update,
    limits_v16,
    limits_v201,
    payload,
)
from csms.store import Store
from csms.typed_calls import AfterReply, Channel

log = structlog.get_logger("csms.local_lists")

CAPABILITY = "local_list"
V16_KEYS = ["SupportedFeatureProfiles", "LocalAuthListEnabled", "LocalAuthListMaxLength",
            "SendLocalListMaxLength"]
V201_VARIABLES = ["Enabled", "Available", "ItemsPerMessage", "BytesPerMessage"]


@dataclass(frozen=True, slots=True)
class SyncResult:
    """How a sync ended: `up_to_date` (nothing to send), `sent`, `not_supported`, `rejected`
    (the charger's status in `charger_status`) or `failed` (no answer; `error` says why)."""

    cp_id: str
    status: str
    version: int | None = None
    parts: tuple[str, ...] = ()  # update types sent and accepted, in order
    charger_status: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("up_to_date", "sent")


class _Refused(Exception):
    def __init__(self, result: SyncResult) -> None:
        super().__init__(result.status)
        self.result = result


class LocalLists:
    """Typed helpers for SendLocalList, GetLocalListVersion and ClearCache, and the syncing."""

    def __init__(self, store: Store, channel: Channel, clock: Clock, concurrency: int,
                 online: Callable[[], Iterable[str]] = tuple,
                 after_reply: AfterReply | None = None) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock
        self._online = online
        self._after_reply = after_reply
        self._slots = asyncio.Semaphore(concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        # Bumped on every id-tag change: a sync that saw an older one is not up to date.
        self._generation = 0

    # -- single calls --------------------------------------------------------------------------

    async def get_version(self, cp_id: str) -> int | None:
        """The charger's list version (GetLocalListVersion), None when it gave none."""
        result = await self.channel.send(cp_id, "GetLocalListVersion", {})
        if result.response is None:
            return None
        key = "listVersion" if "listVersion" in result.response else "versionNumber"
        value = result.response.get(key)
        return value if isinstance(value, int) else None

    async def clear_cache(self, cp_id: str) -> CommandResult:
        """ClearCache (1.6 5.4, 2.0.1 C11): the charger forgets the tags it cached."""
        result = await self.channel.send(cp_id, "ClearCache", {})
        log.info("clear_cache", cp_id=cp_id, status=result.status)
        return result

    async def limits(self, cp_id: str, version: str, *, refresh: bool = False) -> Limits:
        """What the charger said about its list (kept in its capabilities); asked when not
        known or with `refresh`."""
        known = self.store.capabilities([cp_id]).get(cp_id, {}).get(CAPABILITY)
        if isinstance(known, dict) and not refresh:
            names = {f.name for f in fields(Limits)}
            return Limits(**{k: v for k, v in known.items() if k in names})
        if version == V16:
            result = await self.channel.send(cp_id, "GetConfiguration", {"key": V16_KEYS})
            if result.response is None:
                return Limits()
            keys = {k["key"]: k.get("value")
                    for k in result.response.get("configurationKey") or []}
            limits = limits_v16(keys)
        else:
            result = await self.channel.send(cp_id, "GetVariables", {"getVariableData": [
                {"component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": name}}
                for name in V201_VARIABLES]})
            if result.response is None:
                return Limits()
            answers = result.response.get("getVariableResult") or []
            values = {r["variable"]["name"]: r.get("attributeValue") for r in answers
                      if r.get("attributeStatus") == "Accepted"}
            limits = limits_v201(values)
            if not values and any(r.get("attributeStatus") == "UnknownComponent"
                                  for r in answers):
                limits = Limits(supported=False)
        await self.store.save_capabilities(cp_id, {CAPABILITY: asdict(limits)})
        return limits

    # -- sync ----------------------------------------------------------------------------------

    async def sync(self, cp_id: str, *, refresh_limits: bool = False,
                   only_if_supported: bool = False) -> SyncResult:
        """Bring `cp_id`'s local list in line with the id tags; see the module docstring.

        With `only_if_supported` (automatic syncs) nothing is sent to a charger that has not
        said it has a local list."""
        lock = self._locks.setdefault(cp_id, asyncio.Lock())
        async with lock:
            generation = self._generation
            try:
                result = await self._sync(cp_id, refresh_limits, only_if_supported)
            except _Refused as refused:
                result = refused.result
            if result.ok and generation != self._generation:
                # The tags changed while this one ran: what went out may already be old.
                record = await self.store.local_list(cp_id)
                if record is not None:
                    await self.store.save_local_list(cp_id, record.version, record.entries,
                                                     True, self.clock.now())
            log.info("local_list_sync", cp_id=cp_id, status=result.status,
                     version=result.version, parts=list(result.parts),
                     charger_status=result.charger_status, error=result.error)
            return result

    async def _sync(self, cp_id: str, refresh: bool, only_if_supported: bool) -> SyncResult:
        version = await self.channel.version(cp_id)
        if version is None:
            return SyncResult(cp_id, "failed", error="charge point has never connected")
        limits = await self.limits(cp_id, version, refresh=refresh)
        if limits.supported is False or only_if_supported and limits.supported is not True:
            return SyncResult(cp_id, "not_supported")
        tags = await self.store.all_id_tags()
        wanted = capped(tags, limits)
        if len(wanted) < len(tags):
            log.warning("local_list_truncated", cp_id=cp_id, tags=len(tags),
                        max_entries=limits.max_entries)
        ours = await self.store.local_list(cp_id)
        theirs = await self._their_version(cp_id)
        held_version = ours.version if ours is not None else 0
        if ours is not None and held_version > 0 and theirs == held_version:
            parts = differential_update(version, ours.entries, wanted, limits, held_version)
            if not parts:
                await self.store.save_local_list(cp_id, held_version, ours.entries, False,
                                                 self.clock.now())
                return SyncResult(cp_id, "up_to_date", held_version)
            sent = await self._send(cp_id, version, parts)
            if sent.charger_status != "VersionMismatch":
                return sent
            log.warning("local_list_version_mismatch", cp_id=cp_id, ours=held_version,
                        theirs=theirs)
            theirs = max(theirs, sent.version or 0)
        parts = full_update(version, wanted, limits, max(theirs, held_version) + 1)
        return await self._send(cp_id, version, parts)

    async def _their_version(self, cp_id: str) -> int:
        result = await self.channel.send(cp_id, "GetLocalListVersion", {})
        if result.response is None:
            raise _Refused(SyncResult(cp_id, "failed", error=result.error or result.status))
        value = result.response.get("listVersion", result.response.get("versionNumber"))
        return value if isinstance(value, int) and value > 0 else 0

    async def _send(self, cp_id: str, version: str, parts: list[Part]) -> SyncResult:
        """Send the parts in order, keeping each accepted one; stop at the first refused."""
        done: list[str] = []
        for i, part in enumerate(parts):
            result = await self.channel.send(cp_id, "SendLocalList", payload(version, part))
            if result.response is None:
                return SyncResult(cp_id, "failed", part.version, tuple(done),
                                  error=result.error or result.status)
            status = result.response.get("status")
            if status != "Accepted":
                if status == "NotSupported":
                    await self.store.save_capabilities(
                        cp_id, {CAPABILITY: asdict(Limits(supported=False))})
                return SyncResult(cp_id, "rejected", part.version, tuple(done), status)
            done.append(part.update_type)
            await self.store.save_local_list(cp_id, part.version, part.holds,
                                             i < len(parts) - 1, self.clock.now())
        return SyncResult(cp_id, "sent", parts[-1].version, tuple(done))

    async def held(self, cp_id: str) -> Entries:
        """The entries `cp_id` holds as far as we know."""
        record = await self.store.local_list(cp_id)
        return {} if record is None else record.entries

    # -- automatic syncs -----------------------------------------------------------------------

    def tags_changed(self) -> None:
        """An id tag was created, changed or deleted: every list is behind; sync the chargers
        that are connected (those known to have no list are skipped)."""
        self._generation += 1
        self._spawn(self._after_tags_changed())

    async def _after_tags_changed(self) -> None:
        await self.store.mark_local_lists_out_of_date(self.clock.now())
        known = self.store.capabilities(list(self._online()))
        for cp_id in self._online():
            limits = known.get(cp_id, {}).get(CAPABILITY)
            if not (isinstance(limits, dict) and limits.get("supported") is False):
                self.schedule(cp_id)

    def on_event(self, event: DomainEvent) -> None:
        """Bus listener: after an accepted boot (once it is answered) the charger's list may
        have been lost or replaced; check it, with its limits read again."""
        if not isinstance(event, Booted) or self._after_reply is None:
            return
        cp_id = event.cp_id

        async def due() -> None:
            tags = await self.store.all_id_tags()
            if tags or await self.store.local_list(cp_id) is not None:
                self.schedule(cp_id, refresh_limits=True)

        self._after_reply(cp_id, due)

    def schedule(self, cp_id: str, *, refresh_limits: bool = False) -> None:
        """Sync `cp_id` soon (once more after the one under way, if any)."""
        if cp_id in self._running:
            self._again.add(cp_id)
            return
        self._running.add(cp_id)
        self._spawn(self._auto(cp_id, refresh_limits))

    async def _auto(self, cp_id: str, refresh_limits: bool) -> None:
        try:
            while True:
                async with self._slots:
                    await self.sync(cp_id, refresh_limits=refresh_limits,
                                    only_if_supported=True)
                if cp_id not in self._again:
                    return
                self._again.discard(cp_id)
                refresh_limits = False
        finally:
            self._running.discard(cp_id)

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("local_list_sync_crashed", error=str(task.exception()))

    async def idle(self) -> None:
        """Wait until no automatic sync is under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def stop(self) -> None:
        """Cancel automatic syncs still under way (the sockets are closed by then)."""
        for task in list(self._tasks):
            task.cancel()
        await self.idle()


def describe(result: SyncResult) -> dict[str, Any]:
    """A sync's ending as plain data (CLI output)."""
    return asdict(result)
