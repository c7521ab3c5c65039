"""Per-key rate limits: a token bucket per key (pure; the clock is injected).

In memory, per process: with several replicas each one limits separately (a shared Redis bucket is the
scale-out path), so the effective limit is the per-replica limit times the replicas.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "TokenBucket"]


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled at `rate` tokens a second; a call takes one."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    @classmethod
    def per_minute(cls, calls: float, now: float) -> TokenBucket:
        # A full minute's worth as burst: an agent may fire its calls at once, not only evenly spread.
        return cls(capacity=calls, rate=calls / 60.0, tokens=calls, updated=now)

    def take(self, now: float) -> float:
        """0 when a token was taken; else the seconds until one will be there (nothing taken)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, default_per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.default_per_minute = default_per_minute
        self._clock = clock
        self._buckets: dict[tuple[str, float], TokenBucket] = {}

    def take(self, key_id: str, per_minute: float | None = None) -> int:
        """0 when the call may go; else the whole seconds to wait (for Retry-After, at least 1)."""
        limit = per_minute or self.default_per_minute
        now = self._clock()
        bucket = self._buckets.get((key_id, limit))
        if bucket is None:  # keyed by limit too: changing a key's limit starts a fresh bucket
            bucket = self._buckets[(key_id, limit)] = TokenBucket.per_minute(limit, now)
        wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))

    async def take_async(self, key_id: str, per_minute: float | None = None) -> int:
        """`take`, as the call path awaits it (the shared limiter asks Redis here without blocking)."""
        return self.take(key_id, per_minute)
