"""The one Redis connection the shared-state pieces use (rate limits, replay cache, fan-out, usage lock), and
whether Redis answers.

A call path must never hang on Redis, nor block the event loop: the per-call rate limit goes through the
asyncio client (`call_async`), the rest (replay ids, fan-out, usage lock) through the blocking one (`call`).
Requests time out after `TOOLBRIDGE_REDIS_TIMEOUT_SECONDS` (0.2 s). When
one fails the link is *degraded*: callers fall back to their per-process behaviour at once (`RedisDown`), a
WARNING is logged and the `toolbridge_shared_state_degraded{component="redis"}` gauge reads 1. Redis is tried
again after a backoff (0.5 s doubling to 5 s, so a dead Redis costs one attempt per backoff, not one per
call); the first success logs it, zeroes the gauge, and state is shared again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
import redis.asyncio

__all__ = ["DegradedHook", "RedisDown", "RedisLink"]

log = logging.getLogger(__name__)

T = TypeVar("T")
# (component, degraded): called when a shared-state server stops or starts answering (the metric's hook).
DegradedHook = Callable[[str, bool], None]
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 5.0


class RedisDown(Exception):
    """Redis did not answer (or is in backoff): use this process's own state for now."""


class RedisLink:
    def __init__(self, url: str, timeout: float, on_degraded: DegradedHook | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.timeout = timeout
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        # Connections are opened on first use, in the loop that uses them (the worker's).
        self.async_client = redis.asyncio.Redis.from_url(url, socket_timeout=timeout,
                                                         socket_connect_timeout=timeout)
        self._on_degraded = on_degraded
        self._clock = clock
        self._lock = threading.Lock()  # the usage writer calls from a thread, the rest from the event loop
        self.degraded = False
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF

    def call(self, request: Callable[[redis.Redis], T]) -> T:
        """`request(client)`'s result; RedisDown when it fails or Redis is in its backoff."""
        if self.degraded and self._clock() < self._retry_at:
            raise RedisDown("redis is in backoff")
        try:
            result = request(self.client)
        except redis.RedisError as exc:
            self.failed(exc)
            raise RedisDown(str(exc)) from exc
        self.succeeded()
        return result

    async def call_async(self, request: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
        """`call` on the asyncio client: the event loop runs other calls while Redis answers (or not)."""
        if self.degraded and self._clock() < self._retry_at:
            raise RedisDown("redis is in backoff")
        try:
            result = await request(self.async_client)
        except (redis.RedisError, OSError) as exc:  # OSError: a refused connect can surface raw
            self.failed(exc)
            raise RedisDown(str(exc)) from exc
        self.succeeded()
        return result

    def failed(self, error: Exception) -> None:
        with self._lock:
            self._retry_at = self._clock() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            if self.degraded:
                return
            self.degraded = True
        log.warning("Redis cannot be reached (%s: %s): rate limits and the webhook replay cache are per "
                    "process, webhook fan-out and the usage write-back pause until it answers",
                    type(error).__name__, str(error)[:200])
        if self._on_degraded is not None:
            self._on_degraded("redis", True)

    def succeeded(self) -> None:
        if not self.degraded:
            return
        with self._lock:
            self.degraded, self._backoff = False, FIRST_BACKOFF
        log.warning("Redis answers again: rate limits, replay cache, fan-out and usage lock shared again")
        if self._on_degraded is not None:
            self._on_degraded("redis", False)

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        self.client.close()
        await self.async_client.aclose()
