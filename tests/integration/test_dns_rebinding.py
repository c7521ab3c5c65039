"""DNS-rebinding protection on the real tool server: requests a rebound or cross-site browser would send
(a foreign Host, a foreign Origin) are refused on every route, /mcp included, before the API key is read;
our own clients (no Origin, loopback names, same-origin pages) and /healthz probes are not affected."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ToolbridgeProcess

pytestmark = pytest.mark.integration

EVIL = "evil.example.com"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "dns-rebinding-test", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
# Every kind of route: catalog, exports, a tool call, admin, the webhook, the API docs, MCP.
ROUTES = [("GET", "/tools"), ("GET", "/openapi.json"), ("GET", "/openai/tools"),
          ("POST", "/tools/fin_sentiment/invoke"), ("GET", "/status"), ("GET", "/metrics"),
          ("POST", "/hooks/mlflow"), ("GET", "/api/docs"), ("POST", "/mcp")]


@pytest.fixture
def http(toolbridge: ToolbridgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=toolbridge.url, headers=toolbridge.headers, timeout=30) as client:
        yield client


def send(http: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = INITIALIZE if path == "/mcp" else {}
    return http.request(method, path, json=body if method == "POST" else None,
                        headers={**MCP_HEADERS, **headers})


def initialize(http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    """An MCP initialize; the session it opens is closed again."""
    answer = send(http, "POST", "/mcp", headers)
    if session := answer.headers.get("mcp-session-id"):
        http.delete("/mcp", headers={"mcp-session-id": session})
    return answer


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_rebound_request_gets_421_on_every_route_with_or_without_a_key(http: httpx.Client, method: str,
                                                                         path: str) -> None:
    """What a browser sends once evil.example.com resolves to us: its own name as Host, its page as Origin."""
    rebound = {"Host": f"{EVIL}:{http.base_url.port}", "Origin": f"http://{EVIL}:{http.base_url.port}"}
    with_key = send(http, method, path, rebound)
    without_key = send(http, method, path, {**rebound, "Authorization": ""})
    for answer in (with_key, without_key):
        assert answer.status_code == 421, answer.text
        body = answer.json()
        assert body["error"] == "host_not_allowed" and body["problems"] == []
        assert "TOOLBRIDGE_ALLOWED_HOSTS" in body["message"] and answer.headers["X-Request-ID"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_cross_site_page_gets_403_on_every_route(http: httpx.Client, method: str, path: str) -> None:
    """A page of another site calling 127.0.0.1 directly (no rebinding): the Host is ours, the Origin not."""
    answer = send(http, method, path, {"Origin": "http://localhost:3000"})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "origin_not_allowed"
    assert "add http://localhost:3000 to TOOLBRIDGE_ALLOWED_ORIGINS" in answer.json()["message"]


def test_mcp_answers_clients_without_origin_and_pages_of_our_own_origin(http: httpx.Client) -> None:
    port = http.base_url.port
    for headers in ({}, {"Origin": f"http://127.0.0.1:{port}"}, {"Host": f"localhost:{port}"},
                    {"Host": f"localhost:{port}", "Origin": f"http://[::1]:{port}"}):
        answer = initialize(http, headers)
        assert answer.status_code == 200, (headers, answer.text)
        assert '"serverInfo"' in answer.text


def test_healthz_answers_probes_whatever_their_host(toolbridge: ToolbridgeProcess) -> None:
    for host in ("10.42.0.17:8000", "toolbridge.default.svc.cluster.local:8000", EVIL):
        answer = httpx.get(f"{toolbridge.url}/healthz", headers={"Host": host}, timeout=10)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}, (host, answer.text)
