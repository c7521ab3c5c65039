"""DNS-rebinding protection: which Host and Origin headers pass (the pure policy), what the settings accept,
and what the guard answers in front of an app."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tool_server.api.middleware import HostGuard, HostPolicy
from tool_server.settings import ServerSettings, host_name, web_origin

EVIL = "evil.example.com"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def policy(**settings: object) -> HostPolicy:
    return HostPolicy.of(ServerSettings(**settings))


def status(p: HostPolicy, host: str | None, origin: str | None = None) -> int:
    refusal = p.refusal(host, origin)
    return 200 if refusal is None else refusal.status


# --- the pure decision -------------------------------------------------------------------------------------

def test_the_defaults_accept_loopback_names_and_addresses_and_refuse_any_other_name() -> None:
    default = policy()  # 127.0.0.1:8000, no public URL
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST", "localhost.:8000"):
        assert status(default, host) == 200, host
    for host in (EVIL, f"{EVIL}:8000", "localhost.evil.example.com", "127.0.0.1.nip.io:8000", "toolbridge"):
        assert status(default, host) == 421, host


def test_a_host_that_is_an_ip_address_passes_whatever_the_address_and_port() -> None:
    """Rebinding needs a name; an IP as Host means the page came from that address (or a probe typed it)."""
    for host in ("10.1.2.3:8000", "192.168.0.7", "[fe80::1]:9000", "127.0.0.1:1"):
        assert status(policy(), host) == 200, host


def test_a_request_without_origin_or_host_passes() -> None:
    assert policy().refusal("127.0.0.1:8000", None) is None
    assert policy().refusal(None, None) is None  # HTTP/1.0 without Host: never a browser


def test_a_foreign_origin_is_refused_with_403_even_under_a_good_host() -> None:
    default = policy()
    for origin in (f"http://{EVIL}", "http://localhost:3000", "https://127.0.0.1:8000.evil.example.com",
                   "null", "file://", "not an origin"):
        assert status(default, "127.0.0.1:8000", origin) == 403, origin


def test_our_own_pages_may_call_us_same_origin_or_another_loopback_name_of_our_port() -> None:
    default = policy(port=8765)
    assert status(default, "127.0.0.1:8765", "http://127.0.0.1:8765") == 200
    assert status(default, "127.0.0.1:8765", "http://localhost:8765") == 200
    assert status(default, "localhost:8765", "http://[::1]:8765") == 200
    assert status(default, "10.0.0.5:8765", "http://10.0.0.5:8765") == 200  # the page came from that address
    assert status(default, "127.0.0.1:8765", "http://localhost:8766") == 403  # another local server


def test_the_dns_rebinding_attack_is_refused_even_though_host_and_origin_agree() -> None:
    """What the MCP conformance suite sends: Host evil.example.com, Origin http://evil.example.com."""
    refusal = policy().refusal(EVIL, f"http://{EVIL}")
    assert refusal is not None and refusal.status == 421 and refusal.error == "host_not_allowed"
    assert "TOOLBRIDGE_ALLOWED_HOSTS" in refusal.message and "evil.example.com" in refusal.message


def test_the_public_url_names_its_host_and_its_origin() -> None:
    public = policy(host="0.0.0.0", public_url="https://Tools.Example.com/base/")
    assert status(public, "tools.example.com") == 200
    assert status(public, "tools.example.com:443", "https://tools.example.com") == 200
    assert status(public, "tb.internal:8000") == 421
    # Behind a TLS proxy that keeps the Host: the page's https origin is its own Host.
    assert status(public, "tools.example.com", "https://tools.example.com:443") == 200
    assert status(public, "127.0.0.1:8000", "https://tools.example.com") == 200  # a proxy that rewrites Host


def test_bound_to_a_name_that_name_is_ours() -> None:
    assert status(policy(host="tb.internal"), "tb.internal:8000") == 200


def test_allowed_hosts_extend_the_names_and_a_leading_dot_takes_the_subdomains() -> None:
    p = policy(allowed_hosts="host.docker.internal:8000, .corp.example")
    for host in ("host.docker.internal", "host.docker.internal:9999", "corp.example", "tb.eu.corp.example"):
        assert status(p, host) == 200, host
    assert status(p, "evilcorp.example") == 421


def test_allowed_origins_extend_the_origins() -> None:
    p = policy(allowed_origins="http://localhost:6274,https://App.Example.com/")
    assert status(p, "127.0.0.1:8000", "http://localhost:6274") == 200
    assert status(p, "127.0.0.1:8000", "https://app.example.com:443") == 200
    assert status(p, "127.0.0.1:8000", "http://app.example.com") == 403  # another scheme, another origin


def test_a_star_turns_one_check_off_but_never_makes_a_foreign_host_same_origin() -> None:
    any_host = policy(allowed_hosts="*")
    assert status(any_host, f"{EVIL}:8000") == 200
    # Behind a proxy that checks Host itself: a page of the allowed-by-star host is still not ours.
    assert status(any_host, f"{EVIL}:8000", f"http://{EVIL}:8000") == 403
    assert status(policy(allowed_origins="*"), "127.0.0.1:8000", f"http://{EVIL}") == 200
    assert status(policy(allowed_origins="*"), EVIL, f"http://{EVIL}") == 421


def test_refusals_say_which_setting_to_change() -> None:
    origin = policy().refusal("127.0.0.1:8000", "http://localhost:3000")
    assert origin is not None and origin.error == "origin_not_allowed"
    assert "add http://localhost:3000 to TOOLBRIDGE_ALLOWED_ORIGINS" in origin.message
    host = policy(public_url="http://tb.example.com:8000").refusal("dify-api:8000", None)
    assert host is not None and "add dify-api to TOOLBRIDGE_ALLOWED_HOSTS" in host.message
    assert "tb.example.com" in host.message and "TOOLBRIDGE_PUBLIC_URL" in host.message


def test_a_malformed_host_is_refused_and_not_echoed_whole() -> None:
    refusal = policy().refusal("a/b" + "x" * 500, None)
    assert refusal is not None and refusal.status == 421 and len(refusal.message) < 700


# --- the settings ------------------------------------------------------------------------------------------

def test_host_names_and_origins_are_normalised_as_browsers_send_them() -> None:
    assert host_name("Tb.Example.COM.:8000") == "tb.example.com"
    assert host_name("[::1]:8000") == "::1"
    assert web_origin("HTTP://LocalHost:80/") == "http://localhost"
    assert web_origin("http://[::1]:8000") == "http://[::1]:8000"


def test_the_settings_read_comma_separated_lists_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBRIDGE_ALLOWED_HOSTS", " tb.example.com:8000, .Example.org ,")
    monkeypatch.setenv("TOOLBRIDGE_ALLOWED_ORIGINS", "http://localhost:6274/")
    settings = ServerSettings()
    assert settings.allowed_hosts == ["tb.example.com", ".example.org"]
    assert settings.allowed_origins == ["http://localhost:6274"]


@pytest.mark.parametrize(("variable", "value", "said"), [
    ("TOOLBRIDGE_ALLOWED_HOSTS", "http://tb.example.com", "is a URL, not a host name"),
    ("TOOLBRIDGE_ALLOWED_HOSTS", "tb.example.com:http", "bad port"),
    ("TOOLBRIDGE_ALLOWED_HOSTS", "tb/example", "not a host name"),
    ("TOOLBRIDGE_ALLOWED_ORIGINS", "localhost:6274", "not a web origin"),
    ("TOOLBRIDGE_ALLOWED_ORIGINS", "https://app.example.com/login", "no path"),
])
def test_a_bad_entry_is_refused_at_start_with_the_setting_named(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        ServerSettings()
    assert variable in str(caught.value) and said in str(caught.value)


# --- the guard in front of an app --------------------------------------------------------------------------

async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.mark.anyio
async def test_the_guard_answers_refusals_as_our_json_error_and_leaves_healthz_open(
        anyio_backend: str, caplog: pytest.LogCaptureFixture) -> None:
    app = HostGuard(Starlette(routes=[Route("/tools", _ok), Route("/healthz", _ok)]), policy())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        fine = await client.get("/tools")
        with caplog.at_level(logging.WARNING, logger="tool_server.api.middleware"):
            rebound = await client.get("/tools", headers={"Host": EVIL})
        cross_site = await client.post("/tools", headers={"Origin": f"http://{EVIL}"})
        probe = await client.get("/healthz", headers={"Host": "toolbridge-7d9f.default.svc:8000"})
    assert fine.status_code == 200 and probe.status_code == 200
    assert rebound.status_code == 421 and cross_site.status_code == 403
    for answer, error in ((rebound, "host_not_allowed"), (cross_site, "origin_not_allowed")):
        body = answer.json()
        assert body["error"] == error and body["problems"] == [] and "TOOLBRIDGE_ALLOWED_" in body["message"]
    assert "host_not_allowed" in caplog.text and EVIL in caplog.text
