"""Site webhooks (document 002's network `webhook` + `webhookSecret`): configure, clear, read.

Every plan of a site with a webhook is POSTed there as optimizations (see
`csms.webhook_delivery`): the outbox row is written with the plan itself. The secret is
stored sealed (csms.secrets) and kept in memory only as sealed text; it is never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import structlog

from csms.clock import Clock
from csms.secrets import SecretBox
from csms.store import Store
from csms.store.base import WebhookRecord

log = structlog.get_logger("csms.webhooks")

MAX_URL_LENGTH = 2048
MAX_SECRET_LENGTH = 1024
Plan = dict[str, Any]
Optimization = dict[str, Any]
# Turns a plan record into the optimizations a webhook receives, in the document's shape
# (csms.api_optimizations.Optimizations.of_plan: the same objects GET /v2/optimizations/ shows).
Shaper = Callable[[Plan], Awaitable[list[Optimization]]]
# Told which connectors' sessions a webhook's 404 ended: (site_id, [(cp_id, connector)]).
GoneHook = Callable[[str, list[tuple[str, int]]], Awaitable[None]]


class WebhookError(ValueError):
    """A webhook setting is not acceptable; `field` is document 002's name for it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def check_url(url: str) -> None:
    """WebhookError unless `url` is an absolute http(s) URL."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise WebhookError("webhook", f"an http(s) URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise WebhookError("webhook", f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("webhook", "an absolute http:// or https:// URL with a host")


async def _log_gone(site_id: str, connectors: list[tuple[str, int]]) -> None:
    log.info("webhook_gone_sessions", site_id=site_id,
             connectors=[f"{cp}/{n}" for cp, n in connectors])


class Webhooks:
    """Webhook settings by site; the delivery worker reads them from here."""

    def __init__(self, store: Store, clock: Clock, box: SecretBox, shape: Shaper) -> None:
        self.store = store
        self.clock = clock
        self.box = box
        # Replaceable by the sessions view: build richer optimizations, end its sessions.
        self.shape: Shaper = shape
        self.on_webhook_gone: GoneHook = _log_gone
        self._hooks: dict[str, WebhookRecord] = {}

    async def load(self) -> None:
        """Read the configured webhooks (a few per site at most: kept in memory)."""
        self._hooks = {h.site_id: h for h in await self.store.list_webhooks()}

    async def configure(self, site_id: str, url: str, secret: str) -> None:
        """Set the webhook of `site_id` (WebhookError naming `webhook` or `webhookSecret`)."""
        check_url(url)
        if not isinstance(secret, str) or not secret:
            raise WebhookError("webhookSecret", "required with a webhook")
        if len(secret) > MAX_SECRET_LENGTH:
            raise WebhookError("webhookSecret", f"at most {MAX_SECRET_LENGTH} characters")
        now = self.clock.now()
        sealed = self.box.seal(secret)
        await self.store.put_webhook(site_id, url, sealed, now)
        self._hooks[site_id] = WebhookRecord(site_id, url, sealed, now)
        log.info("webhook_configured", site_id=site_id, host=urlsplit(url).hostname)

    async def clear(self, site_id: str) -> bool:
        """Remove the webhook of `site_id` (and cancel its pending deliveries)."""
        removed = await self.store.delete_webhook(site_id)
        self._hooks.pop(site_id, None)
        if removed:
            log.info("webhook_cleared", site_id=site_id)
        return removed

    def url_of(self, site_id: str) -> str | None:
        """The webhook URL of `site_id`, if it has one (the secret is never given back)."""
        hook = self._hooks.get(site_id)
        return None if hook is None else hook.url

    def target(self, site_id: str) -> tuple[str, str] | None:
        """(url, secret) to deliver to, for the delivery worker only."""
        hook = self._hooks.get(site_id)
        return None if hook is None else (hook.url, self.box.open(hook.sealed_secret))
