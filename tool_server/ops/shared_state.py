"""What replicas share through Redis besides rate limits: one object the composition root builds.

    SharedState        built from TOOLBRIDGE_REDIS_URL (or not: then every piece is per process, as before)
    RedisReplayStore   webhook delivery ids (registry_sync.webhooks.ReplayStore), so a replay to another
                       replica is refused too
    SyncFanout         a webhook delivered to one replica makes every replica run a registry pass now:
                       `publish()` on the channel, each replica's subscriber calls its watcher's trigger
    RedisWriterLock    one usage write-back to MLflow at a time across replicas (a lock with expiry)

Redis down: limits and replay ids fall back to the process's own, the fan-out publishes nothing (each replica
still polls), the usage counts wait in memory for the lock; all resume when Redis answers (redis_link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

import redis
import redis.asyncio

from tool_server.access.limits import RateLimiter
from tool_server.access.redis_link import FIRST_BACKOFF, MAX_BACKOFF, DegradedHook, RedisDown, RedisLink
from tool_server.access.shared_limits import SharedRateLimiter
from tool_server.settings import SharedStateSettings

__all__ = ["SYNC_CHANNEL", "RedisReplayStore", "RedisWriterLock", "SharedState", "SyncFanout"]

log = logging.getLogger(__name__)

SYNC_CHANNEL = "toolbridge:sync"
REPLAY_PREFIX = "toolbridge:webhook-delivery:"
USAGE_LOCK = "toolbridge:lock:usage-writeback"
# Compare and delete: a writer whose lock expired never frees the next writer's.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisReplayStore:
    def __init__(self, link: RedisLink) -> None:
        self.link = link

    def first_time(self, delivery_id: str, keep_seconds: int) -> bool | None:
        name = REPLAY_PREFIX + delivery_id
        try:
            return bool(self.link.call(lambda c: c.set(name, 1, nx=True, ex=keep_seconds)))
        except RedisDown:
            return None


class RedisWriterLock:
    """`acquire()` → True when this process may write now (until `release()`, or `ttl_seconds` at most)."""

    def __init__(self, link: RedisLink, name: str = USAGE_LOCK, ttl_seconds: float = 300.0) -> None:
        self.link, self.name, self.ttl_ms = link, name, int(ttl_seconds * 1000)
        self._token: str | None = None

    def acquire(self) -> bool:
        token = secrets.token_hex(8)
        try:
            held = bool(self.link.call(lambda c: c.set(self.name, token, nx=True, px=self.ttl_ms)))
        except RedisDown:
            return False
        self._token = token if held else None
        return held

    def release(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            with contextlib.suppress(RedisDown):
                self.link.call(lambda c: c.eval(_RELEASE, 1, self.name, token))


class SyncFanout:
    """Publishes "sync now" to every replica; `run()` listens and calls `on_sync` for the others' messages."""

    def __init__(self, link: RedisLink, on_sync: Callable[[], None]) -> None:
        self.link, self.on_sync = link, on_sync
        self.replica = secrets.token_hex(8)  # our own messages are skipped: the webhook triggered us already

    def publish(self) -> None:
        with contextlib.suppress(RedisDown):
            self.link.call(lambda c: c.publish(SYNC_CHANNEL, self.replica))

    async def run(self) -> None:
        backoff, missed = FIRST_BACKOFF, False
        while True:
            client = redis.asyncio.Redis.from_url(self.link.url, socket_connect_timeout=self.link.timeout)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(SYNC_CHANNEL)
                    self.link.succeeded()
                    backoff = FIRST_BACKOFF
                    if missed:  # a webhook may have reached another replica while we were not listening
                        self.on_sync()
                        missed = False
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("data") != self.replica.encode():
                            self.on_sync()
            except (redis.RedisError, OSError) as exc:
                self.link.failed(exc)
                missed = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                await client.aclose()


class SharedState:
    """The Redis-backed pieces when TOOLBRIDGE_REDIS_URL is set; per-process stand-ins (None) when not."""

    def __init__(self, settings: SharedStateSettings, on_sync: Callable[[], None],
                 on_degraded: DegradedHook | None = None) -> None:
        self.link: RedisLink | None = None
        self.replays: RedisReplayStore | None = None
        self.fanout: SyncFanout | None = None
        self.usage_lock: RedisWriterLock | None = None
        if settings.redis_url is not None:
            self.link = RedisLink(settings.redis_url.get_secret_value(), settings.redis_timeout_seconds,
                                  on_degraded)
            self.replays = RedisReplayStore(self.link)
            self.fanout = SyncFanout(self.link, on_sync)
            self.usage_lock = RedisWriterLock(self.link)
        self._task: asyncio.Task[None] | None = None

    def limiter(self, default_per_minute: float) -> RateLimiter:
        if self.link is None:
            return RateLimiter(default_per_minute)
        return SharedRateLimiter(default_per_minute, self.link)

    def publish_sync(self) -> None:
        """Ask the other replicas for a registry pass (nothing without Redis: they poll)."""
        if self.fanout is not None:
            self.fanout.publish()

    async def start(self, listen: bool = True) -> None:
        """`listen`: subscribe to the fan-out (the process whose watcher a "sync now" must reach)."""
        if self.fanout is not None and listen:
            log.info("shared state in Redis: rate limits, webhook replay ids, webhook fan-out, usage lock")
            self._task = asyncio.create_task(self.fanout.run(), name="sync-fanout")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.link is not None:
            await self.link.aclose()
