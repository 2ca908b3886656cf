"""The webhook worker: delivers the outbox (csms.webhooks), each site's plans in order.

A delivery is a POST of the plan's optimizations, signed `X-Webhook-Signature: <lowercase hex
HMAC-SHA256(secret, raw body)>` with `User-Agent: Ampcontrol Delivery Service`. 2xx: delivered.
404: the receiver no longer knows those sessions (document 002: they end) - recorded, and the
sessions helper is told. 408/425/429/5xx and network errors: retried with exponential backoff
up to a cap, for `max_age_s` after the plan. Any other answer: rejected (retrying the same body
would not change it). Rows stay in the store until settled, so a restart loses nothing: the
first pass after a start retries at once whatever was waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from csms.clock import Clock
from csms.identity import connector_uuid
from csms.secrets import SecretError
from csms.sites import split_key
from csms.store import Store
from csms.store.base import OutboxRecord
from csms.webhooks import Webhooks

log = structlog.get_logger("csms.webhook_delivery")

USER_AGENT = "Ampcontrol Delivery Service"
RETRY_STATUSES = frozenset({408, 425, 429})


def signature(secret: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the raw body with the secret (UTF-8), as document 002."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def body_of(optimizations: list[dict[str, Any]]) -> bytes:
    """The POST body: the optimizations in the API's envelope, as GET /v2/optimizations/."""
    return json.dumps({"status": "success", "data": optimizations,
                       "total": len(optimizations)}, separators=(",", ":")).encode("utf-8")


def connectors_of(optimizations: list[dict[str, Any]],
                  plan: dict[str, Any]) -> list[tuple[str, int]]:
    """The (cp_id, connector) of each optimization sent (the plan's connectors with one)."""
    ids = {o["connector"] for o in optimizations}
    found = []
    for key in sorted(plan["result"]):
        cp_id, number = split_key(key)
        if str(connector_uuid(cp_id, number)) in ids:
            found.append((cp_id, number))
    return found


class WebhookDelivery:
    """One task delivering the outbox; `attempts` counts finished attempts (tests await it)."""

    def __init__(self, store: Store, webhooks: Webhooks, clock: Clock, *,
                 timeout_s: float = 10.0, backoff_base_s: float = 1.0,
                 backoff_cap_s: float = 300.0, max_age_s: float = 86400.0,
                 poll_s: float = 0.5, concurrency: int = 4) -> None:
        self.store = store
        self.webhooks = webhooks
        self.clock = clock
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_age_s = max_age_s
        # New plans are found by looking: the plan's writer (the planner) need not know us.
        self.poll_s = poll_s
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        # Outbox rows whose attempt ended since the outbox was last read (see _start_due).
        self._finished: set[int] = set()
        self.attempts = 0
        self.changed = asyncio.Condition()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False,
                                         trust_env=False)
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        """Stop delivering; an attempt under way is abandoned (its row stays pending)."""
        tasks = [t for t in (self._task, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        """Look at the outbox now (a webhook was configured, a plan recorded)."""
        self._wake.set()

    async def wait_attempts(self, count: int) -> None:
        """Until `count` attempts have finished since start (for tests and the CLI)."""
        async with self.changed:
            await self.changed.wait_for(lambda: self.attempts >= count)

    async def _run(self) -> None:
        retry_all = True  # after a start, what waited is retried at once
        failures = 0
        while True:
            self._wake.clear()
            try:
                next_due = await self._start_due(retry_all)
            except Exception as exc:  # a store that cannot read now: try again next round
                failures += 1
                if failures % 60 == 1:
                    log.error("webhook_outbox_unreadable", error=str(exc), consecutive=failures)
                next_due = None
            else:
                failures, retry_all = 0, False
            wait = self.poll_s
            if next_due is not None:
                wait = min(wait, max(0.0, (next_due - self.clock.now()).total_seconds()))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _start_due(self, retry_all: bool) -> datetime | None:
        """Start an attempt for each site whose oldest pending delivery is due; return when
        the next one that is not yet due will be."""
        now = self.clock.now()
        next_due: datetime | None = None
        finished_before = set(self._finished)
        heads = await self.store.pending_outbox_heads()
        # An attempt that ended while the outbox was read is read here as it was before: it
        # must not start again (delivered twice, or retried before its backoff).
        stale = self._finished - finished_before
        self._finished = stale
        for row in heads:
            if row.site_id in self._in_flight or row.id in stale:
                continue
            if retry_all or row.next_attempt_at <= now:
                task = asyncio.create_task(self._attempt(row), name=f"webhook-{row.site_id}")
                self._in_flight[row.site_id] = task
                task.add_done_callback(lambda _, s=row.site_id, i=row.id: self._done(s, i))
            elif next_due is None or row.next_attempt_at < next_due:
                next_due = row.next_attempt_at
        return next_due

    def _done(self, site_id: str, row_id: int) -> None:
        self._in_flight.pop(site_id, None)
        self._finished.add(row_id)
        self._wake.set()  # the site's next plan may go now

    async def _attempt(self, row: OutboxRecord) -> None:
        async with self._slots:
            try:
                await self._deliver(row)
            except Exception:  # the edge of a delivery task: the row stays, retried later
                log.exception("webhook_attempt_crashed", site_id=row.site_id,
                              plan_id=row.plan_id)
                await self._retry(row, None, "internal error")
        async with self.changed:
            self.attempts += 1
            self.changed.notify_all()

    async def _deliver(self, row: OutboxRecord) -> None:
        now = self.clock.now()
        if row.body is not None:  # an alert (csms.alerts): its body was made when it changed
            await self._deliver_alert(row, row.body.encode("utf-8"), now)
            return
        plan = await self.store.get_plan(row.plan_id)
        if plan is None:
            await self._finish(row, "expired", None, "the plan was pruned before delivery")
            return
        target = await self._target(row)
        if target is None:
            return
        optimizations = await self.webhooks.shape(plan)
        if not optimizations:
            await self._finish(row, "skipped", None, None, attempted=False)
            return
        code = await self._post(row, target, body_of(optimizations), now)
        if code is None:
            return
        if code == 404:
            gone = connectors_of(optimizations, plan)
            await self._finish(row, "gone", code, None, gone=[[cp, n] for cp, n in gone])
            log.info("webhook_gone", site_id=row.site_id, plan_id=row.plan_id,
                     connectors=len(gone))
            await self.webhooks.on_webhook_gone(row.site_id, gone)
            return
        await self._settle(row, code, now)

    async def _deliver_alert(self, row: OutboxRecord, body: bytes, now: datetime) -> None:
        """POST an alert's body, signed as plans are; a 404 means nothing more than any other
        refusal here (there are no sessions to end)."""
        target = await self._target(row)
        if target is None:
            return
        code = await self._post(row, target, body, now)
        if code is None:
            return
        await self._settle(row, code, now)

    async def _settle(self, row: OutboxRecord, code: int, now: datetime) -> None:
        """After an answer: 2xx delivered, a passing refusal (408/425/429/5xx) retried, any
        other rejected (retrying the same body would not change it)."""
        what, about = ("webhook", {"plan_id": row.plan_id}) if row.body is None \
            else ("webhook_alert", {"outbox_id": row.id})
        if 200 <= code < 300:
            await self._finish(row, "delivered", code, None)
            log.info(f"{what}_delivered", site_id=row.site_id, status=code,
                     attempts=row.attempts + 1, **about)
        elif code >= 500 or code in RETRY_STATUSES:
            await self._retry(row, code, f"HTTP {code}", now)
        else:
            await self._finish(row, "rejected", code, f"HTTP {code}")
            log.warning(f"{what}_rejected", site_id=row.site_id, status=code, **about)

    async def _target(self, row: OutboxRecord) -> tuple[str, str] | None:
        """The site's webhook (url, secret); None when there is none to use (row settled)."""
        try:
            target = self.webhooks.target(row.site_id)
        except SecretError:
            await self._finish(row, "rejected", None, "the stored secret cannot be decrypted")
            log.error("webhook_secret_unreadable", site_id=row.site_id)
            return None
        if target is None:
            await self._finish(row, "cancelled", None, "the site has no webhook now")
        return target

    async def _post(self, row: OutboxRecord, target: tuple[str, str], body: bytes,
                    now: datetime) -> int | None:
        """POST `body` signed with the site's secret; the answer's status, or None when it
        did not get there (the row is then retried)."""
        url, secret = target
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Webhook-Signature": signature(secret, body)}
        assert self._client is not None
        try:
            answer = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            await self._retry(row, None, f"{type(exc).__name__}: {exc}"[:200], now)
            return None
        return answer.status_code

    async def _finish(self, row: OutboxRecord, status: str, code: int | None,
                      error: str | None, *, gone: list[list[Any]] | None = None,
                      attempted: bool = True) -> None:
        await self.store.finish_outbox(row.id, status, code, error, gone, self.clock.now(),
                                       attempted=attempted)

    async def _retry(self, row: OutboxRecord, code: int | None, error: str,
                     now: datetime | None = None) -> None:
        now = now or self.clock.now()
        if (now - row.created_at).total_seconds() > self.max_age_s:
            await self._finish(row, "expired", code, error)
            log.warning("webhook_expired", site_id=row.site_id, plan_id=row.plan_id,
                        attempts=row.attempts + 1)
            return
        delay = min(self.backoff_cap_s, self.backoff_base_s * 2 ** min(row.attempts, 30))
        await self.store.retry_outbox(row.id, now + timedelta(seconds=delay), code, error)
        log.info("webhook_retry", site_id=row.site_id, plan_id=row.plan_id, status=code,
                 attempts=row.attempts + 1, retry_in_s=delay)
