"""Optional response cache for deterministic models: the same model version fed the same input answers once.

The key is the model name and version (never the tool name: a new version never sees the old answers), the
registry the version came from, and the SHA-256 of the canonical JSON (sorted keys) of what the model host is
fed, i.e. the arguments after coercion: `{"a": 1, "b": null}` and `{"a": 1}` share an entry when `b` is an
optional column. Two backends behind `CacheBackend`: an in-process LRU (`MemoryBackend`) and Redis
(`RedisBackend`, for replicas that share answers; redis-py is imported only when it is used).

`ResponseCache` is what the invoker talks to. A cache fault never fails a call: it logs a warning (at most one
a minute), skips the backend for FAULT_PAUSE seconds and lets the model answer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import orjson

from bridge.errors import BridgeError
from bridge.toolspec import RESTRICTED, ToolSpec

__all__ = ["CacheBackend", "CacheError", "MemoryBackend", "RedisBackend", "ResponseCache", "TAG_CACHE",
           "cache_allowed"]

log = logging.getLogger(__name__)

TAG_CACHE = "toolbridge.cache"  # registered-model tag; "false" = the model is not deterministic
KEY_PREFIX = "toolbridge:cache:v1"  # bump the version when the stored value's shape changes
FAULT_PAUSE = 5.0  # seconds: a down Redis must not cost every call a connection attempt
WARN_EVERY = 60.0  # seconds between two warnings about a faulty cache
_CACHE_ON = ("", "true", "1", "yes", "on")

# (event, tool) with event "hit", "miss" or "error": the metrics hook.
CacheObserver = Callable[[str, str], None]


class CacheError(BridgeError):
    """The response cache cannot be set up as configured (e.g. the redis client is not installed)."""


class CacheBackend(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def close(self) -> None: ...


def cache_allowed(spec: ToolSpec, model_tags: Mapping[str, str]) -> bool:
    """Never for restricted tools (their answers must not outlive the call) nor for models whose owners tagged
    `toolbridge.cache=false`; any value but a clear yes counts as no, so a typo fails closed."""
    if spec.sensitivity == RESTRICTED:
        return False
    return model_tags.get(TAG_CACHE, "").strip().lower() in _CACHE_ON


class MemoryBackend:
    """In-process LRU of at most `max_entries`, each expiring `ttl` seconds after it was stored."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self._entries[key] = (self._clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisBackend:
    """Redis through redis-py's asyncio client; the connection is made on first use, not here."""

    def __init__(self, url: str, timeout: float) -> None:
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:
            raise CacheError("TOOLBRIDGE_CACHE_URL is set but the redis client is not installed: "
                             "pip install 'toolbridge[redis]', or unset TOOLBRIDGE_CACHE_URL") from exc
        # One quick retry (a pooled connection gone stale after a Redis restart), never redis-py's default
        # ten with backoff: the cache is an optimisation, a call must not wait for it.
        self._redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                     retry=Retry(NoBackoff(), 1))

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(key)
        # redis-py types replies as bytes | str; without decode_responses (ours) they are always bytes.
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._redis.set(key, value, px=max(1, round(ttl * 1000)))

    async def close(self) -> None:
        await self._redis.aclose()


class ResponseCache:
    """Keys, lookups and stores for the invoker; turns every backend fault into a miss."""

    def __init__(self, backend: CacheBackend, ttl: float, registry: str = "",
                 observer: CacheObserver | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.ttl = ttl
        # Two registries may both hold "credit_risk" version 3; replicas of one deployment share the URI.
        self._registry = hashlib.sha256(registry.encode()).hexdigest()[:12]
        self._observer = observer
        self._clock = clock
        self._paused_until = float("-inf")
        self._warned_at = float("-inf")

    def key(self, spec: ToolSpec, model_input: Any) -> str | None:
        """The entry for this version and input; None when the input has no canonical JSON form."""
        try:
            canonical = orjson.dumps(model_input, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # e.g. an integer beyond 64 bits: just not cached
            return None
        digest = hashlib.sha256(canonical).hexdigest()
        model = quote(spec.model_name, safe="")
        return f"{KEY_PREFIX}:{self._registry}:{model}:{spec.model_version}:{digest}"

    async def lookup(self, tool: str, key: str) -> dict[str, Any] | None:
        """The stored answer (a hit), else None (a miss, also when the cache is faulty or paused)."""
        found: dict[str, Any] | None = None
        if self._clock() >= self._paused_until:
            try:
                raw = await self.backend.get(key)
                found = orjson.loads(raw) if raw is not None else None
            except Exception as exc:  # any fault at all: the model answers instead
                self._fault(tool, "read", exc)
        self._observe("hit" if found is not None else "miss", tool)
        return found

    async def store(self, tool: str, key: str, output: Mapping[str, Any]) -> None:
        if self._clock() < self._paused_until:
            return
        try:
            await self.backend.set(key, orjson.dumps(output), self.ttl)
        except Exception as exc:
            self._fault(tool, "write", exc)

    async def close(self) -> None:
        try:
            await self.backend.close()
        except Exception as exc:  # shutting down: nothing left to protect
            log.warning("response cache did not close cleanly: %s", exc)

    def _fault(self, tool: str, action: str, exc: Exception) -> None:
        now = self._clock()
        self._paused_until = now + FAULT_PAUSE
        self._observe("error", tool)
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("response cache %s failed (%s: %s); calls go to the models uncached, next try in "
                        "%.0fs", action, type(exc).__name__, exc, FAULT_PAUSE)

    def _observe(self, event: str, tool: str) -> None:
        if self._observer is not None:
            self._observer(event, tool)
