"""API keys in the database: issued once, stored only as a hash. Every write moves the change counter
(`access_state.key_version`) in the same transaction, so each server's key cache (`key_cache.py`) reloads.

A key is `tb_` + 43 url-safe characters (256 random bits). A random key needs no slow hash: sha256 of it is
as hard to invert as guessing the key, and a lookup by hash is one indexed query.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tool_server.access.db import access_state, api_keys
from tool_server.access.scopes import ADMIN, KEY_PREFIX, RESTRICTED, Principal, Unauthenticated

__all__ = ["INVALID_KEY", "KEY_PREFIX", "NO_KEY", "KeyInfo", "KeyStore", "ensure_admin_key", "hash_key",
           "key_info", "new_key"]

TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per key: reads stay reads
ADMIN_SCOPES = frozenset({ADMIN, RESTRICTED, "*"})
NO_KEY = ("an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`; an operator "
          "issues keys with `toolbridge keys create`")
INVALID_KEY = "the API key is unknown, expired or revoked; ask an operator for a valid key"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; we only ever store UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    scopes: frozenset[str]
    rate_limit_per_minute: float | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"


def key_info(row: sa.Row[tuple[object, ...]]) -> KeyInfo:
    m = row._mapping
    return KeyInfo(id=m["id"], name=m["name"], scopes=frozenset(m["scopes"].split()),
                   rate_limit_per_minute=m["rate_limit_per_minute"], created_at=_utc(m["created_at"]) or
                   datetime.now(UTC), expires_at=_utc(m["expires_at"]), last_used_at=_utc(m["last_used_at"]),
                   revoked_at=_utc(m["revoked_at"]))


class KeyStore:
    """Create, list, revoke and check keys. Blocking calls: run them in a thread from async code."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, scopes: Iterable[str], expires_in: timedelta | None = None,
               rate_limit_per_minute: float | None = None) -> tuple[str, KeyInfo]:
        """A new key (returned once, never stored) and its record; a name is unique among active keys."""
        if not 1 <= len(name) <= 64:
            raise ValueError("a key name has 1 to 64 characters")
        if any(k.name == name and k.state == "active" for k in self.list()):
            raise ValueError(f"an active key named {name!r} exists; revoke it first or pick another name")
        key, now, key_id = new_key(), datetime.now(UTC), secrets.token_hex(6)
        row = {"id": key_id, "name": name, "key_hash": hash_key(key),
               "scopes": " ".join(sorted(set(scopes))), "rate_limit_per_minute": rate_limit_per_minute,
               "created_at": now, "expires_at": now + expires_in if expires_in else None,
               "last_used_at": None, "revoked_at": None}
        with self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(**row))
            _bump_key_version(conn)
        return key, self.get(key_id)

    def get(self, key_id: str) -> KeyInfo:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()
        return key_info(row)

    def list(self) -> builtins.list[KeyInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).all()
        return [key_info(row) for row in rows]

    def revoke(self, name_or_id: str) -> builtins.list[KeyInfo]:
        """Revoke the active key with this id, or every active key with this name; the revoked ones."""
        now = datetime.now(UTC)
        targets = [k for k in self.list() if k.revoked_at is None and name_or_id in (k.id, k.name)]
        if targets:
            with self.engine.begin() as conn:
                conn.execute(api_keys.update().where(api_keys.c.id.in_([k.id for k in targets]))
                             .values(revoked_at=now))
                _bump_key_version(conn)
        return [self.get(k.id) for k in targets]

    async def authenticate_async(self, key: str | None) -> Principal:
        """`authenticate` off the event loop; the server's `CachedKeyStore` answers from memory instead."""
        return await asyncio.to_thread(self.authenticate, key)

    def authenticate(self, key: str | None) -> Principal:
        """The principal of a valid key, read from the database; Unauthenticated otherwise (the message
        never echoes the key)."""
        if not key:
            raise Unauthenticated(NO_KEY)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == hash_key(key))).one_or_none()
        info = key_info(row) if row is not None else None
        if info is None or info.state != "active":
            raise Unauthenticated(INVALID_KEY)
        now = datetime.now(UTC)
        if info.last_used_at is None or now - info.last_used_at > TOUCH_EVERY:
            with self.engine.begin() as conn:
                conn.execute(api_keys.update().where(api_keys.c.id == info.id).values(last_used_at=now))
        return Principal(key_id=info.id, name=info.name, scopes=info.scopes,
                         rate_limit_per_minute=info.rate_limit_per_minute)


def _bump_key_version(conn: sa.Connection) -> None:
    conn.execute(access_state.update().where(access_state.c.id == 1)
                 .values(key_version=access_state.c.key_version + 1))


def ensure_admin_key(store: KeyStore, path: Path) -> KeyInfo | None:
    """On first start, an admin key (all tools, restricted, admin) written to `path` with mode 0600.

    None when `path` exists already: deleting the file is how an operator asks for a new admin key.
    """
    if path.exists():
        return None
    active = {k.name for k in store.list() if k.state == "active"}
    name = "admin" if "admin" not in active else f"admin-{secrets.token_hex(3)}"
    key, info = store.create(name, ADMIN_SCOPES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, even briefly
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return info
