"""Pure-ASGI guards in front of every route: request ids and the one access line, Host/Origin checks (DNS
rebinding; the policy is api/host_policy.py), the body size limit, and the API-key gate of /mcp.

They run on every request, so they do no per-request work that can be done once: raw header lookups
instead of `Headers` objects, Host/Origin decisions cached per pair, no byte counting when Content-Length
already bounds the body.

Pure ASGI rather than BaseHTTPMiddleware: that one buffers streamed (SSE) answers, which MCP relies on.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tool_server.access.scopes import Principal, Unauthenticated, presented_key
from tool_server.api.encoding import PythonJSONResponse
from tool_server.api.host_policy import UNCHECKED_PATHS, HostPolicy, Refusal, shown
from tool_server.ops.logs import ACCESS_NOTE, REQUEST_ID, AccessNote, access_log

__all__ = ["REQUEST_ID_HEADER", "ApiKeyGate", "BodyLimit", "BodyTooLarge", "HostGuard", "HostPolicy",
           "Refusal", "RequestId", "fast_http", "principal_of", "request_id_of"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_CALLER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a caller's id goes into the audit: keep it tame


def fast_http() -> dict[str, str]:
    """uvicorn options: uvloop's event loop and the httptools parser (C) rather than asyncio's loop and h11
    (pure Python), named explicitly so a missing one is a warning, not a silent fallback."""
    options = {}
    for option, module, value in (("loop", "uvloop", "uvloop"), ("http", "httptools", "httptools")):
        try:
            __import__(module)
        except ImportError:
            log.warning("%s is not installed: the tool server runs slower without it (pip install "
                        "'uvicorn[standard]')", module)
        else:
            options[option] = value
    return options


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes; send smaller arguments")
        self.limit = limit


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def request_id_of(scope: Scope) -> str:
    return str(_state(scope).get("request_id") or _new_request_id())


def principal_of(scope: Scope) -> Principal | None:
    principal = _state(scope).get("principal")
    return principal if isinstance(principal, Principal) else None


class RequestId:
    """Every answer carries X-Request-ID: the caller's own (if sane) or a new one; the audit records it, and
    so does every log line written while the request is served. When the answer has gone, it writes the
    request's one access line (ops/logs.py), with the Gateway's fields for a tool call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given and _CALLER_ID.match(given) else _new_request_id()
        _state(scope)["request_id"] = request_id
        status = 500  # if the app fails before it answers, the server answers 500
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        note = AccessNote()
        token, note_token = REQUEST_ID.set(request_id), ACCESS_NOTE.set(note)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            ACCESS_NOTE.reset(note_token)
            _log_access(scope, request_id, status, time.perf_counter() - started, note.fields)
            REQUEST_ID.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    """One request header (`name` in lowercase, as ASGI servers give them), without building Headers."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _log_access(scope: Scope, request_id: str, status: int, seconds: float, call: dict[str, Any]) -> None:
    """The request's one access line: method, path (never the query: catalog tokens ride in it), status,
    latency; for a tool call, what the Gateway noted (tool, version, outcome, error, key id)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    latency_ms = round(seconds * 1000, 3)
    method, path = scope["method"], scope["path"][:300]
    outcome = f" {call['outcome']}" if "outcome" in call else ""
    access_log.info("%s %s %d%s in %.1f ms", method, path, status, outcome, latency_ms,
                    extra={**call, "request_id": request_id, "method": method, "path": path,
                           "status": status, "latency_ms": latency_ms})


# Request ids: a random prefix per process and a counter. uuid4 reads os.urandom on every call, which showed
# in the profile of a tool call (bench/README.md); unique across workers and replicas by the prefix.
_id_counter = itertools.count()
_id_prefix = secrets.token_hex(6)


def _new_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = secrets.token_hex(6), itertools.count()


os.register_at_fork(after_in_child=_new_prefix)  # a forked worker must not repeat its parent's ids


def _new_request_id() -> str:
    return f"{_id_prefix}{next(_id_counter):020x}"


class BodyLimit:
    """Refuse bodies over `limit` bytes with a 413: at once by Content-Length, else while they stream in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit():
            if int(length) > self.limit:
                error = BodyTooLarge(self.limit)
                await PythonJSONResponse({"error": "body_too_large", "message": str(error), "problems": []},
                                         status_code=413)(scope, receive, send)
                return
            # The server reads no more than Content-Length: nothing to count.
            await self.app(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # raised inside the route: errors.py answers 413
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counting_receive, send)


class ApiKeyGate:
    """401 before the wrapped app (MCP) sees a request without a valid key; else the principal in scope.

    It also sets `scope["user"]`, which makes the MCP session manager bind each session to the key that
    opened it: another key presenting the same Mcp-Session-Id gets a 404.
    """

    def __init__(self, app: ASGIApp, authenticate: Callable[[str | None], Awaitable[Principal]]) -> None:
        self.app, self.authenticate = app, authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                principal = await self.authenticate(presented_key(Headers(scope=scope)))
            except Unauthenticated as exc:
                answer = PythonJSONResponse({"error": "unauthenticated", "message": str(exc), "problems": []},
                                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await answer(scope, receive, send)
                return
            _state(scope)["principal"] = principal
            # The key's public id, not the key: this object is visible to the SDK and its logs.
            scope["user"] = AuthenticatedUser(AccessToken(token=principal.key_id, client_id=principal.key_id,
                                                          scopes=sorted(principal.scopes)))
        await self.app(scope, receive, send)


@functools.lru_cache(maxsize=1024)
def _refusal(policy: HostPolicy, host: str | None, origin: str | None) -> Refusal | None:
    # Clients send the same few Host/Origin pairs over and over: decide each pair once, not per request.
    return policy.refusal(host, origin)


class HostGuard:
    """Refuse requests whose Host or Origin the policy refuses (421 / 403), before anything else reads them:
    even a request without a key learns nothing but the refusal. /healthz is never checked."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNCHECKED_PATHS:
            host, origin = _header(scope, b"host"), _header(scope, b"origin")
            refusal = _refusal(self.policy, host, origin)
            if refusal is not None:
                log.warning("%s %s refused: %s (Host %s, Origin %s)", scope["method"], scope["path"],
                            refusal.error, shown(host or ""), shown(origin or ""))
                answer = PythonJSONResponse({"error": refusal.error, "message": refusal.message,
                                             "problems": []}, status_code=refusal.status)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
