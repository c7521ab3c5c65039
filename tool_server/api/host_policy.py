"""Which Host and Origin headers a request may carry: the policy behind the DNS-rebinding guard
(docs/security.md), pure; `middleware.HostGuard` applies it to every request."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from tool_server.settings import ANY, ServerSettings, host_name, web_origin

__all__ = ["LOOPBACK_NAME", "UNCHECKED_PATHS", "HostPolicy", "Refusal", "shown"]

log = logging.getLogger(__name__)


class Refusal(NamedTuple):
    status: int
    error: str
    message: str


LOOPBACK_NAME = "localhost"  # browsers resolve it to loopback themselves: no DNS answer can rebind it
UNCHECKED_PATHS = frozenset({"/healthz"})  # probes send the pod's IP or a service name; it tells nothing


def shown(value: str) -> str:
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
                       f"Host {shown(host)} is not a name this server answers to ({known}, or an IP "
                       "address). A browser sends such a Host after a DNS-rebinding attack, so the request "
                       f"was refused. If clients reach Toolbridge under this name, {fix} or set "
                       "TOOLBRIDGE_PUBLIC_URL to the URL they use.")

    def _bad_origin(self, origin: str, sent: str | None) -> Refusal:
        fix = f"add {sent} to TOOLBRIDGE_ALLOWED_ORIGINS (comma-separated)" if sent else (
            "serve it from an http(s) origin listed in TOOLBRIDGE_ALLOWED_ORIGINS")
        return Refusal(403, "origin_not_allowed",
                       f"Origin {shown(origin)} may not call this server: the request comes from a web page "
                       f"of another site, sent by a visitor's browser. If that page is yours, {fix}. Clients "
                       "that are not browsers send no Origin and are not affected.")
