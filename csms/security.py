"""Charger passwords: salted scrypt hashes, compared in constant time; never logged."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """A self-describing salted scrypt hash of `password`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${_N}${_R}${_P}${salt_b64}${digest_b64}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored`; the comparison takes the same time either way."""
    if not stored:
        # Burn comparable time so unknown chargers cannot be told apart by timing.
        hashlib.scrypt(password.encode(), salt=b"0" * 16, n=_N, r=_R, p=_P, dklen=32)
        return False
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), n=int(n),
                            r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


class PasswordChecker:
    """Checks passwords on a small thread pool of its own, so hashing never starves the loop.

    A password already verified for a charger (and its unchanged stored hash) is recognised
    by a keyed digest, so a charger reconnecting does not pay for, or queue behind, scrypt.
    """

    def __init__(self, workers: int, max_pending: int) -> None:
        self._workers = workers
        self._max_pending = max_pending
        self._pending = 0
        self._pool: ThreadPoolExecutor | None = None
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, bytes]] = {}

    def _tag(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode(), hashlib.sha256).digest()

    async def verify(self, cp_id: str, password: str, stored: str | None) -> bool | None:
        """Whether `password` is right for `cp_id`; None when too many checks are waiting."""
        tag = self._tag(password)
        known = self._verified.get(cp_id)
        if known is not None and stored and hmac.compare_digest(known[0], stored) \
                and hmac.compare_digest(known[1], tag):
            return True
        if self._pending >= self._max_pending:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="auth")
        self._pending += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                self._pool, verify_password, password, stored)
        finally:
            self._pending -= 1
        if ok and stored:
            self._verified[cp_id] = (stored, tag)
        return ok

    def close(self) -> None:
        """Drop queued checks and let the threads end."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
