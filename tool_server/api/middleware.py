"""Pure-ASGI guards in front of every route: request ids, Host/Origin checks (DNS rebinding), the body size
limit, and the API-key gate of /mcp.

Pure ASGI rather than BaseHTTPMiddleware: that one buffers streamed (SSE) answers, which MCP relies on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tool_server.access.scopes import Principal, Unauthenticated, presented_key
from tool_server.api.encoding import PythonJSONResponse
from tool_server.ops.logs import REQUEST_ID
from tool_server.settings import ANY, ServerSettings, host_name, web_origin

__all__ = ["REQUEST_ID_HEADER", "ApiKeyGate", "BodyLimit", "BodyTooLarge", "HostGuard", "HostPolicy",
           "Refusal", "RequestId", "principal_of", "request_id_of"]

log = logging.getLogger(__name__)

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
            await PythonJSONResponse({"error": "body_too_large", "message": str(error), "problems": []},
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
                answer = PythonJSONResponse({"error": "unauthenticated", "message": str(exc), "problems": []},
                                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await answer(scope, receive, send)
                return
            _state(scope)["principal"] = principal
            # The key's public id, not the key: this object is visible to the SDK and its logs.
            scope["user"] = AuthenticatedUser(AccessToken(token=principal.key_id, client_id=principal.key_id,
                                                          scopes=sorted(principal.scopes)))
        await self.app(scope, receive, send)


class Refusal(NamedTuple):
    status: int
    error: str
    message: str


LOOPBACK_NAME = "localhost"  # browsers resolve it to loopback themselves: no DNS answer can rebind it
UNCHECKED_PATHS = frozenset({"/healthz"})  # probes send the pod's IP or a service name; it tells nothing


def _shown(value: str) -> str:
    return repr(value[:100] + ("..." if len(value) > 100 else ""))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _same_origins(host: str) -> tuple[str, ...]:
    """The origins of pages served under this Host (by us, or by a TLS proxy in front of us)."""
    try:
        return web_origin(f"http://{host}"), web_origin(f"https://{host}")
    except ValueError:
        return ()


@dataclass(frozen=True)
class HostPolicy:
    """Which Host and Origin headers a request may carry: the guard against DNS rebinding (docs/security.md).

    A DNS-rebinding attack makes a visitor's browser send requests to Toolbridge from a page of another site,
    under that site's name: the Host is the attacker's name and a cross-site Origin is the attacker's page.
    So a Host is accepted when it is a name this server answers to (`names`, a domain in `domains`, or
    `localhost`, which no DNS answer can rebind) or an IP address (a browser sends an IP as Host only when its
    page was loaded from that address, i.e. from us; probes and scrapers use it too). Ports are not compared:
    the attacker picks the name, not the port. An Origin, when present, must be one of `origins` or the
    request's own Host (same origin, and only when the Host is one of ours, not merely allowed by `*`).
    Requests without Origin (servers, curl, the SDKs) or without Host pass: browsers always send Host.
    """

    names: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # ".example.com": it and its subdomains
    origins: frozenset[str] = frozenset()
    any_host: bool = False
    any_origin: bool = False

    @classmethod
    def of(cls, settings: ServerSettings) -> HostPolicy:
        """From TOOLBRIDGE_PUBLIC_URL, the listen address and TOOLBRIDGE_ALLOWED_HOSTS / _ORIGINS."""
        names, origins = set(settings.allowed_hosts), set(settings.allowed_origins)
        if settings.public_url:
            public = urlsplit(settings.public_url)
            try:
                origins.add(web_origin(f"{public.scheme}://{public.netloc}"))
                names.add(host_name(public.netloc))
            except ValueError:
                log.warning("TOOLBRIDGE_PUBLIC_URL=%r is not an http(s) URL: the Host and Origin checks "
                            "ignore it", settings.public_url)
        bind = settings.host.strip("[]").lower()
        if not _is_ip(bind) and bind not in ("", LOOPBACK_NAME):
            with contextlib.suppress(ValueError):  # not a name: uvicorn will say what is wrong with it
                names.add(host_name(bind))  # bound to a name: clients may use it
        everywhere = bind in ("", "0.0.0.0", "::")
        if settings.port and (everywhere or bind == LOOPBACK_NAME or _is_ip(bind)
                              and ipaddress.ip_address(bind).is_loopback):
            # Pages of ours loaded under another loopback name (localhost vs 127.0.0.1) are still ours.
            origins.update(f"http://{name}:{settings.port}" for name in ("localhost", "127.0.0.1", "[::1]"))
        return cls(names=frozenset(n for n in names if n != ANY and not n.startswith(".")),
                   domains=tuple(sorted(n for n in names if n.startswith("."))),
                   origins=frozenset(origins - {ANY}), any_host=ANY in names, any_origin=ANY in origins)

    def _ours(self, name: str) -> bool:
        return (name == LOOPBACK_NAME or name in self.names or _is_ip(name)
                or any(name == domain[1:] or name.endswith(domain) for domain in self.domains))

    def refusal(self, host: str | None, origin: str | None) -> Refusal | None:
        """None when a request with these headers may go on; else its status, error code and message."""
        ours = False
        if host is not None:
            try:
                ours = self._ours(host_name(host))
            except ValueError:
                ours = False
            if not ours and not self.any_host:
                return self._bad_host(host)
        if origin is None or self.any_origin:
            return None
        try:
            sent = web_origin(origin)
        except ValueError:
            sent = None  # "null" (sandboxed frames, file: pages) and anything that is no origin
        if sent is not None and (sent in self.origins or ours and host is not None
                                 and sent in _same_origins(host)):
            return None
        return self._bad_origin(origin, sent)

    def _bad_host(self, host: str) -> Refusal:
        known = ", ".join(sorted(self.names | {LOOPBACK_NAME} | set(self.domains)))
        try:
            fix = f"add {host_name(host)} to TOOLBRIDGE_ALLOWED_HOSTS (comma-separated)"
        except ValueError:
            fix = "add its host name to TOOLBRIDGE_ALLOWED_HOSTS (comma-separated)"
        return Refusal(421, "host_not_allowed",
                       f"Host {_shown(host)} is not a name this server answers to ({known}, or an IP "
                       "address). A browser sends such a Host after a DNS-rebinding attack, so the request "
                       f"was refused. If clients reach Toolbridge under this name, {fix} or set "
                       "TOOLBRIDGE_PUBLIC_URL to the URL they use.")

    def _bad_origin(self, origin: str, sent: str | None) -> Refusal:
        fix = f"add {sent} to TOOLBRIDGE_ALLOWED_ORIGINS (comma-separated)" if sent else (
            "serve it from an http(s) origin listed in TOOLBRIDGE_ALLOWED_ORIGINS")
        return Refusal(403, "origin_not_allowed",
                       f"Origin {_shown(origin)} may not call this server: the request comes from a web page "
                       f"of another site, sent by a visitor's browser. If that page is yours, {fix}. Clients "
                       "that are not browsers send no Origin and are not affected.")


class HostGuard:
    """Refuse requests whose Host or Origin the policy refuses (421 / 403), before anything else reads them:
    even a request without a key learns nothing but the refusal. /healthz is never checked."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNCHECKED_PATHS:
            headers = Headers(scope=scope)
            refusal = self.policy.refusal(headers.get("host"), headers.get("origin"))
            if refusal is not None:
                log.warning("%s %s refused: %s (Host %s, Origin %s)", scope["method"], scope["path"],
                            refusal.error, _shown(headers.get("host", "")), _shown(headers.get("origin", "")))
                answer = PythonJSONResponse({"error": refusal.error, "message": refusal.message,
                                             "problems": []}, status_code=refusal.status)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
