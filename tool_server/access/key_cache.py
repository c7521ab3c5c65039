"""The server's key cache: every active key by hash, in memory, so a call makes no database round trip.

    KeySnapshot      pure: keys by hash with their expiry, checked at each call against an injected clock
    CachedKeyStore   a KeyStore that authenticates from a KeySnapshot and keeps it fresh

Freshness: a background task reads the change counter (`access_state.key_version`, one row) every
`refresh_seconds` (0.5 s) and reloads all keys only when it moved, so a revocation or a new key made on
another replica, worker or by the CLI is seen within a second. Keys created or revoked through this store
change the snapshot at once. A key the snapshot does not know triggers one refresh before it is refused
(concurrent misses share it), so a key made a moment ago by the CLI works on its first call. While the
database is down the snapshot keeps serving: active keys still work, revoked ones stay refused, expiry
needs no database. `last_used_at` is written in one batch a minute, off the call path.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tool_server.access.db import access_state, api_keys
from tool_server.access.keys import (
    INVALID_KEY,
    NO_KEY,
    TOUCH_EVERY,
    KeyInfo,
    KeyStore,
    hash_key,
    key_info,
)
from tool_server.access.scopes import Principal, Unauthenticated

__all__ = ["CachedKey", "CachedKeyStore", "KeySnapshot"]

log = logging.getLogger(__name__)

# (component, degraded) when the database stops or starts answering: the metric's hook.
DegradedHook = Callable[[str, bool], None]


@dataclass(frozen=True)
class CachedKey:
    principal: Principal
    expires_at: float | None  # unix seconds


def _cached(info: KeyInfo) -> CachedKey:
    return CachedKey(Principal(key_id=info.id, name=info.name, scopes=info.scopes,
                               rate_limit_per_minute=info.rate_limit_per_minute),
                     info.expires_at.timestamp() if info.expires_at is not None else None)


class KeySnapshot:
    """Active keys by hash. Replaced whole (copy on write): readers on the event loop never see a half."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_hash: dict[str, CachedKey] = {}
        self.version: int | None = None  # the change counter the snapshot was read at; None = never read

    def __len__(self) -> int:
        return len(self._by_hash)

    def replace(self, version: int, keys: Iterable[tuple[str, KeyInfo]]) -> None:
        """All keys as read at `version` (revoked ones are left out: unknown and revoked answer alike)."""
        self._by_hash = {key_hash: _cached(info) for key_hash, info in keys if info.revoked_at is None}
        self.version = version

    def add(self, key_hash: str, info: KeyInfo) -> None:
        self._by_hash = {**self._by_hash, key_hash: _cached(info)}

    def remove(self, key_ids: Iterable[str]) -> None:
        gone = set(key_ids)
        self._by_hash = {h: c for h, c in self._by_hash.items() if c.principal.key_id not in gone}

    def lookup(self, key: str) -> Principal | None:
        """The key's principal; None when it is unknown, revoked or expired (expiry read from the clock)."""
        found = self._by_hash.get(hash_key(key))
        if found is None or (found.expires_at is not None and found.expires_at <= self._clock()):
            return None
        return found.principal


class CachedKeyStore(KeyStore):
    """KeyStore whose `authenticate_async` answers from memory; `start()` begins the refresh task."""

    def __init__(self, engine: Engine, refresh_seconds: float = 0.5, clock: Callable[[], float] = time.time,
                 on_degraded: DegradedHook | None = None) -> None:
        super().__init__(engine)
        self.refresh_seconds = refresh_seconds
        self.snapshot = KeySnapshot(clock)
        self._on_degraded = on_degraded
        self._degraded = False
        self._used: dict[str, datetime] = {}  # key id -> last call, for last_used_at
        self._touched_at = time.monotonic()
        self._refresh_lock = asyncio.Lock()
        self._refreshes_started = 0
        self._last_refresh_done = 0
        self._task: asyncio.Task[None] | None = None

    # -- writes through this store reach the snapshot at once ------------------------------------------

    def create(self, name: str, scopes: Iterable[str], expires_in: timedelta | None = None,
               rate_limit_per_minute: float | None = None) -> tuple[str, KeyInfo]:
        key, info = super().create(name, scopes, expires_in, rate_limit_per_minute)
        self.snapshot.add(hash_key(key), info)
        return key, info

    def revoke(self, name_or_id: str) -> builtins.list[KeyInfo]:
        revoked = super().revoke(name_or_id)
        self.snapshot.remove(k.id for k in revoked)
        return revoked

    # -- the call path -----------------------------------------------------------------------------------

    async def authenticate_async(self, key: str | None) -> Principal:
        """From memory; a key the snapshot lacks gets one refresh before it is refused."""
        if not key:
            raise Unauthenticated(NO_KEY)
        principal = self.snapshot.lookup(key)
        if principal is None:
            await self._refresh_after_now()
            principal = self.snapshot.lookup(key)
            if principal is None:
                raise Unauthenticated(INVALID_KEY)
        self._used[principal.key_id] = datetime.now(UTC)
        return principal

    async def _refresh_after_now(self) -> None:
        """Wait for a refresh that began after this call: one in flight may have read before the key existed.
        Concurrent misses share the refreshes (a flood of bad keys costs one query at a time)."""
        ticket = self._refreshes_started
        async with self._refresh_lock:
            if self._last_refresh_done > ticket:
                return
            self._refreshes_started += 1
            started = self._refreshes_started
            await asyncio.to_thread(self.refresh)
            self._last_refresh_done = started

    # -- keeping fresh -----------------------------------------------------------------------------------

    def load_if_changed(self) -> bool:
        """Reload every key when the change counter moved (blocking); whether it did. Raises on DB errors."""
        with self.engine.connect() as conn:
            version = int(conn.execute(sa.select(access_state.c.key_version)
                                       .where(access_state.c.id == 1)).scalar_one())
            if version == self.snapshot.version:
                return False
            # The counter is read first: a write landing in between only makes the next poll reload again.
            rows = conn.execute(sa.select(api_keys)).all()
        self.snapshot.replace(version, ((row._mapping["key_hash"], key_info(row)) for row in rows))
        return True

    def refresh(self) -> None:
        """`load_if_changed` that never raises: while the database is down the snapshot keeps serving."""
        try:
            if self.load_if_changed():
                log.debug("key cache reloaded: %d active keys", len(self.snapshot))
            self._write_last_used()
        except sa.exc.SQLAlchemyError as exc:
            self._set_degraded(True, exc)
            return
        self._set_degraded(False)

    def _write_last_used(self) -> None:
        if time.monotonic() - self._touched_at < TOUCH_EVERY.total_seconds() or not self._used:
            return
        used, self._used = self._used, {}
        try:
            with self.engine.begin() as conn:
                for key_id, moment in used.items():
                    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=moment))
        except sa.exc.SQLAlchemyError:
            self._used = {**used, **self._used}  # next time
            raise
        self._touched_at = time.monotonic()

    def _set_degraded(self, degraded: bool, error: Exception | None = None) -> None:
        if degraded and not self._degraded:
            log.warning("key cache: the database cannot be read (%s); serving the keys known so far until it "
                        "answers", type(error).__name__)
        elif not degraded and self._degraded:
            log.warning("key cache: the database answers again; keys refreshed")
        if degraded != self._degraded and self._on_degraded is not None:
            self._on_degraded("database", degraded)
        self._degraded = degraded

    async def start(self) -> None:
        """Load every key (the database must answer at start), then refresh in the background."""
        await asyncio.to_thread(self.load_if_changed)
        self._task = asyncio.create_task(self._refresh_forever(), name="key-cache-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._touched_at = 0.0  # a last write of last_used_at
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            await asyncio.to_thread(self._write_last_used)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            async with self._refresh_lock:
                await asyncio.to_thread(self.refresh)
