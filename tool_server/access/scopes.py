"""Who is calling and what they may do (pure): principals, scopes, and the access errors.

Scopes are tool names or fnmatch globs (`credit_*`, `*`), toolsets (`toolset:finance`: every tool whose model
is tagged `toolbridge.toolsets=finance,...`), plus two roles:

    admin        status, audit and other operator endpoints (not tools by itself)
    restricted   tools whose registered model is tagged `toolbridge.sensitivity=restricted`

Access errors, one tree (mapped to HTTP in tool_server/errors.py):

    AccessError          root
    ├── Unauthenticated  no key, an unknown, expired or revoked key (401)
    ├── Forbidden        the key lacks a scope; for tools, worded the same whether the tool exists (403)
    └── RateLimited      the key used up its calls for now; `retry_after` seconds (429)
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from bridge.toolspec import RESTRICTED, ToolSpec

__all__ = ["ADMIN", "RESTRICTED", "TOOLSET_PREFIX", "AccessError", "Forbidden", "Principal", "RateLimited",
           "Unauthenticated", "may_call", "parse_scopes", "presented_key", "tool_forbidden"]

ADMIN = "admin"
KEY_PREFIX = "tb_"  # every API key starts so (keys.new_key)
ROLES = frozenset({ADMIN, RESTRICTED})
TOOLSET_PREFIX = "toolset:"
_SCOPE = re.compile(r"^[A-Za-z0-9_*?\[\]!-]{1,64}$")
_TOOLSET_SCOPE = re.compile(r"^toolset:[a-z0-9][a-z0-9_-]{0,63}$")


class AccessError(Exception):
    """Root of the access errors. Messages never contain a key."""


class Unauthenticated(AccessError):
    pass


class Forbidden(AccessError):
    pass


class RateLimited(AccessError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    """An authenticated key: its public id and name, never the key."""

    key_id: str
    name: str
    scopes: frozenset[str]
    rate_limit_per_minute: float | None = None

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def matches(self, tool: str) -> bool:
        """The key's tool scopes cover this name (existence and sensitivity aside)."""
        return any(fnmatch.fnmatchcase(tool, scope) for scope in self.scopes - ROLES
                   if not scope.startswith(TOOLSET_PREFIX))

    @cached_property
    def toolsets(self) -> frozenset[str]:
        """The toolsets this key's `toolset:NAME` scopes name."""
        return frozenset(s.removeprefix(TOOLSET_PREFIX) for s in self.scopes if s.startswith(TOOLSET_PREFIX))

    def sees_any_tool_named(self, tool: str) -> bool:
        """Would see a tool of this name whatever its sensitivity: telling it "no such tool" leaks nothing."""
        return self.matches(tool) and RESTRICTED in self.scopes


def may_call(principal: Principal, spec: ToolSpec) -> bool:
    if spec.sensitivity == RESTRICTED and RESTRICTED not in principal.scopes:
        return False
    return principal.matches(spec.name) or not principal.toolsets.isdisjoint(spec.toolsets)


def tool_forbidden(tool: str) -> Forbidden:
    """One message for "not allowed" and "does not exist", so a key cannot probe for tools it may not see."""
    return Forbidden(f"this API key may not call a tool named {tool!r}; GET /tools lists the tools it may "
                     "call")


def parse_scopes(raw: Iterable[str]) -> frozenset[str]:
    """Scopes from CLI input (comma or space separated); raises ValueError naming a bad one."""
    scopes = {part for item in raw for part in re.split(r"[,\s]+", item) if part}
    if not scopes:
        raise ValueError("a key needs at least one scope: tool names, globs like credit_*, toolset:NAME, "
                         "admin, restricted")
    for scope in scopes:
        if not (_SCOPE.match(scope) or _TOOLSET_SCOPE.match(scope)):
            raise ValueError(f"scope {scope!r} is not a tool name, a glob like credit_*, toolset:NAME (lower "
                             "case, e.g. toolset:finance), admin or restricted")
    return frozenset(scopes)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from `X-API-Key` or `Authorization` (header names lower-case).

    `Authorization` takes `Bearer <key>`, `Basic <key>` (Dify's custom-tool form prefixes the raw key with
    `Basic`) and `Basic base64(user:key)` (a standard Basic pair; the password is the key, or the user name
    when the password is empty). A prefix sent twice (`Bearer Bearer <key>`: Dify writes the prefix back into
    its credentials and adds it again on the next call of an agent run) is read once.
    """
    key = headers.get("x-api-key")
    if key:
        return key.strip() or None
    words = headers.get("authorization", "").split()
    scheme = words[0].lower() if words else ""
    while len(words) > 2 and words[1].lower() == scheme:
        words.pop(1)
    if len(words) != 2 or scheme not in ("bearer", "basic"):
        return None
    token = words[1]
    if scheme == "bearer" or token.startswith(KEY_PREFIX):
        return token
    try:
        user, colon, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (password or user or None) if colon else None
