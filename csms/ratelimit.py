"""Token buckets: how many messages or attempts one charger or address may make, and when.

Pure: the caller passes the time in (monotonic seconds), so these are tested without a clock.
"""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; each event takes one."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, now: float) -> float:
        """Take a token; return 0, or how many seconds to wait before the event may go on."""
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self, now: float) -> bool:
        """Take a token only if one is there now."""
        self._refill(now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def available(self, now: float) -> float:
        """Tokens there now."""
        self._refill(now)
        return self._tokens


class BucketsByKey:
    """One bucket per key (e.g. a source address), keeping at most `max_keys` of them."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            # Forget the oldest key: a full bucket forgotten is the same as a new one, and a
            # flood of new addresses cannot grow memory.
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def try_take(self, key: str, now: float) -> bool:
        """Whether `key` may make one more attempt now (and count it)."""
        return self._bucket(key, now).try_take(now)

    def allows(self, key: str, now: float) -> bool:
        """Whether `key` has a token left, without taking it."""
        return self._bucket(key, now).available(now) >= 1.0

    def take(self, key: str, now: float) -> None:
        """Count one event against `key`, even past empty (failures always count)."""
        self._bucket(key, now).take(now)
