"""Pure-ASGI guards in front of every route: request ids, the body size limit, and the API-key gate of /mcp.

Pure ASGI rather than BaseHTTPMiddleware: that one buffers streamed (SSE) answers, which MCP relies on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tool_server.access.scopes import Principal, Unauthenticated, presented_key
from tool_server.ops.logs import REQUEST_ID

__all__ = ["REQUEST_ID_HEADER", "ApiKeyGate", "BodyLimit", "BodyTooLarge", "RequestId", "principal_of",
           "request_id_of"]

REQUEST_ID_HEADER = "X-Request-ID"
_CALLER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a caller's id goes into the audit: keep it tame


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes; send smaller arguments")
        self.limit = limit


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def request_id_of(scope: Scope) -> str:
    return str(_state(scope).get("request_id") or uuid.uuid4().hex)


def principal_of(scope: Scope) -> Principal | None:
    principal = _state(scope).get("principal")
    return principal if isinstance(principal, Principal) else None


class RequestId:
    """Every answer carries X-Request-ID: the caller's own (if sane) or a new one; the audit records it, and
    so does every log line written while the request is served (uvicorn's access line included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if _CALLER_ID.match(given) else uuid.uuid4().hex
        _state(scope)["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class BodyLimit:
    """Refuse bodies over `limit` bytes with a 413: at once by Content-Length, else while they stream in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            error = BodyTooLarge(self.limit)
            await JSONResponse({"error": "body_too_large", "message": str(error), "problems": []},
                               status_code=413)(scope, receive, send)
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
                answer = JSONResponse({"error": "unauthenticated", "message": str(exc), "problems": []},
                                      status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await answer(scope, receive, send)
                return
            _state(scope)["principal"] = principal
            # The key's public id, not the key: this object is visible to the SDK and its logs.
            scope["user"] = AuthenticatedUser(AccessToken(token=principal.key_id, client_id=principal.key_id,
                                                          scopes=sorted(principal.scopes)))
        await self.app(scope, receive, send)
