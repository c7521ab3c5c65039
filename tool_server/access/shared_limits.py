"""Per-key rate limits shared by every replica and worker: one token bucket per key in Redis.

The bucket is the same as `limits.TokenBucket` (a minute's worth as burst, refilled evenly), computed by one
Lua script so that read, refill, take and write are atomic across replicas; the clock is Redis's own (TIME),
so replicas' clocks never disagree about it. The take is awaited on the asyncio client, so a slow or stalled
Redis holds up only the calls waiting on it, never the worker's event loop. When Redis does not answer the
call is limited by this process's own bucket (`RateLimiter`) until Redis returns (see redis_link.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import redis

from tool_server.access.limits import RateLimiter
from tool_server.access.redis_link import RedisDown, RedisLink

__all__ = ["BUCKET_PREFIX", "SharedRateLimiter", "take_token"]

BUCKET_PREFIX = "toolbridge:bucket:"

# KEYS[1] bucket; ARGV capacity, rate (tokens a second), [now in seconds: tests only, else Redis TIME].
# Returns the seconds to wait as a string (a Lua number would reach us truncated to an integer); "0" = taken.
TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""


def take_token(client: redis.Redis, bucket: str, per_minute: float, now: float | None = None) -> float:
    """Take one token from the bucket in Redis: 0.0 when taken, else the seconds until one is there."""
    args: list[float] = [per_minute, per_minute / 60.0] + ([now] if now is not None else [])
    answer = client.eval(TOKEN_BUCKET, 1, bucket, *args)
    return float(answer.decode() if isinstance(answer, bytes) else answer)


class SharedRateLimiter(RateLimiter):
    """`RateLimiter.take_async` against the Redis bucket; this process's own buckets (the inherited sync
    `take`) while Redis is down."""

    def __init__(self, default_per_minute: float, link: RedisLink,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(default_per_minute, clock)
        self.link = link
        # Registered once: EVALSHA, loading the script only when Redis does not know it (e.g. restarted).
        self._script = link.async_client.register_script(TOKEN_BUCKET)

    async def take_async(self, key_id: str, per_minute: float | None = None) -> int:
        limit = per_minute or self.default_per_minute
        # Keyed by limit too: changing a key's limit starts a fresh bucket, as in the per-process limiter.
        bucket = f"{BUCKET_PREFIX}{key_id}:{limit:g}"
        try:
            answer = await self.link.call_async(
                lambda _: self._script(keys=[bucket], args=[limit, limit / 60.0]))
        except RedisDown:
            return self.take(key_id, per_minute)
        wait = float(answer.decode() if isinstance(answer, bytes) else answer)
        return 0 if wait == 0 else max(1, math.ceil(wait))
