"""Catalog URLs for clients that send no headers: a read-only token bound to one API key.

Dify's "Import from URL" fetches the OpenAPI document with no header at all, so the key must ride in the URL.
The key itself never does: `?token=tbc_<key id>.<mac>` where the MAC is an HMAC-SHA256 of a fixed label
keyed with the key's stored hash. Nothing new is stored; the token shows the tools its key may see, is
accepted only by the catalog documents (never by invoke, status or audit), and dies with the key's revocation
or expiry. Logs redact it (`ops/logs.py`) and the audit never sees it (catalog reads are not calls).
"""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tool_server.access.db import api_keys
from tool_server.access.keys import KeyInfo, KeyStore
from tool_server.access.scopes import Principal, Unauthenticated

__all__ = ["TOKEN_PREFIX", "CatalogTokens"]

TOKEN_PREFIX = "tbc_"
_LABEL = b"toolbridge catalog-url v1"
_INVALID = ("the catalog token is unknown, or its API key was revoked or expired; print a new catalog URL "
            "with `toolbridge keys schema-url NAME`")


def _mac(key_hash: str) -> str:
    return hmac.new(key_hash.encode(), _LABEL, hashlib.sha256).hexdigest()[:32]


class CatalogTokens:
    """Mint and check catalog tokens. Blocking calls: run them in a thread from async code."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _hash_of(self, key_id: str) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(api_keys.c.key_hash).where(api_keys.c.id == key_id)).scalar()
        return str(found) if found is not None else None

    def mint(self, name_or_id: str) -> tuple[str, KeyInfo]:
        """The token of the active key with this id or name; ValueError if there is none (or several)."""
        active = [k for k in KeyStore(self.engine).list()
                  if k.state == "active" and name_or_id in (k.id, k.name)]
        if len(active) != 1:
            raise ValueError(f"no active API key named {name_or_id!r}; `toolbridge keys list` shows them"
                             if not active else f"several active keys match {name_or_id!r}; give its id")
        key_hash = self._hash_of(active[0].id)
        assert key_hash is not None  # just listed
        return f"{TOKEN_PREFIX}{active[0].id}.{_mac(key_hash)}", active[0]

    def principal(self, token: str) -> Principal:
        """Whom the token reads the catalog for; Unauthenticated when it is forged, revoked or expired."""
        key_id, _, mac = token.removeprefix(TOKEN_PREFIX).partition(".")
        key_hash = self._hash_of(key_id) if token.startswith(TOKEN_PREFIX) and key_id else None
        if key_hash is None or not hmac.compare_digest(mac, _mac(key_hash)):
            raise Unauthenticated(_INVALID)
        info = KeyStore(self.engine).get(key_id)
        if info.state != "active":
            raise Unauthenticated(_INVALID)
        return Principal(key_id=info.id, name=info.name, scopes=info.scopes,
                         rate_limit_per_minute=info.rate_limit_per_minute)
