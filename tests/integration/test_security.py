"""Security against the real running server: keys, per-caller catalog, audit under load, limits,
log hygiene."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from tests.conftest import FAST_SYNC, ToolbridgeProcess, wait_for
from tool_server.demo import register_trained_model, train_fin_sentiment

pytestmark = pytest.mark.integration

HEADLINE = {"headline": "Acme Corp beats quarterly earnings estimates and raises full-year guidance"}
RESTRICTED_TOOL = "restricted_probe"
ISSUED: list[str] = []  # every key this module used: none may appear in any log


def toolbridge_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tool_server", *args, "--state-dir", str(state_dir)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "250"})  # rich tables: no truncated cells


def issue(server: ToolbridgeProcess, name: str, scopes: str, *extra: str) -> str:
    """`toolbridge keys create` as an operator runs it; the key is the last line it prints."""
    done = toolbridge_cli(server.state_dir, "keys", "create", "--name", name, "--scopes", scopes, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("tb_")
    ISSUED.append(key)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def names(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {tool["name"] for tool in response.json()}


@pytest.fixture(scope="module")
def restricted_tool(toolbridge: ToolbridgeProcess, mlflow_server: str, demo_tools: dict[str, Any]) -> str:
    """A model tagged toolbridge.sensitivity=restricted, live (the admin key holds `restricted`)."""
    trained = dataclasses.replace(train_fin_sentiment(), name=RESTRICTED_TOOL,
                                  tags={"toolbridge.sensitivity": "restricted"})
    register_trained_model(trained, tracking_uri=mlflow_server, aliases=["champion"])
    wait_for(lambda: RESTRICTED_TOOL in names(httpx.get(f"{toolbridge.url}/tools", headers=toolbridge.headers,
                                                        timeout=10)), 120, f"{RESTRICTED_TOOL} live")
    yield RESTRICTED_TOOL
    MlflowClient(mlflow_server).delete_registered_model_alias(RESTRICTED_TOOL, "champion")


def test_without_a_valid_key_every_route_but_healthz_answers_401(toolbridge: ToolbridgeProcess,
                                                                  demo_tools: dict[str, Any]) -> None:
    gets = ["/tools", "/tools/fin_sentiment", "/openapi.json", "/openapi.yaml",
            "/tools/fin_sentiment/openapi.json", "/openai/tools", "/status", "/audit"]
    posts = ["/tools/fin_sentiment/invoke", f"/tools/fin_sentiment/versions/"
             f"{demo_tools['fin_sentiment']['model']['version']}/invoke", "/mcp"]
    with httpx.Client(base_url=toolbridge.url, timeout=10) as http:
        for headers in ({}, bearer("tb_not_a_key"), {"X-API-Key": "tb_not_a_key"},
                        {"Authorization": "Basic eA=="}):
            answers = [http.get(p, headers=headers) for p in gets]
            answers += [http.post(p, json=HEADLINE, headers={**headers, "Accept": "application/json, "
                                                              "text/event-stream"}) for p in posts]
            assert [a.status_code for a in answers] == [401] * len(answers), [a.text for a in answers]
            assert all(a.headers["WWW-Authenticate"] == "Bearer" for a in answers)
            assert "tb_not_a_key" not in "".join(a.text for a in answers)
        assert http.get("/healthz").status_code == 200


def test_a_scoped_key_sees_and_calls_only_its_tools(toolbridge: ToolbridgeProcess,
                                                    demo_tools: dict[str, Any]) -> None:
    key = issue(toolbridge, "credit-agent", "credit_*")
    with httpx.Client(base_url=toolbridge.url, headers={"X-API-Key": key}, timeout=30) as http:
        assert names(http.get("/tools")) == {"credit_risk"}
        assert set(http.get("/openapi.json").json()["paths"]) == {"/tools/credit_risk/invoke"}
        assert "fin_sentiment" not in http.get("/openapi.yaml").text
        assert [t["function"]["name"] for t in http.get("/openai/tools").json()] == ["credit_risk"]
        assert http.get("/tools/credit_risk/openapi.json").status_code == 200
        applicant = {"age": 41, "annual_income": 72000.0, "debt_to_income": 0.22, "late_payments_12m": 0}
        assert http.post("/tools/credit_risk/invoke", json=applicant).status_code == 200
        denied = [http.post("/tools/fin_sentiment/invoke", json=HEADLINE),
                  http.post("/tools/no_such_tool/invoke", json=HEADLINE),
                  http.get("/tools/fin_sentiment"), http.get("/tools/no_such_tool"),
                  http.get("/tools/fin_sentiment/openapi.json"), http.get("/tools/no_such_tool/openapi.json")]
        assert [d.status_code for d in denied] == [403] * 6
        texts = {d.json()["message"].replace("'fin_sentiment'", "X").replace("'no_such_tool'", "X")
                 for d in denied}
        assert len(texts) == 1, texts  # the same words whether the tool exists or not
        assert http.get("/status").status_code == 403 and http.get("/audit").status_code == 403
    with httpx.Client(base_url=toolbridge.url, headers=bearer(key), timeout=30) as http:
        assert names(http.get("/tools")) == {"credit_risk"}  # Bearer works as well as X-API-Key


def test_a_revoked_key_stops_working_within_a_second(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    key = issue(toolbridge, "short-lived", "fin_*")
    assert httpx.post(f"{toolbridge.url}/tools/fin_sentiment/invoke", json=HEADLINE, headers=bearer(key),
                      timeout=30).status_code == 200
    done = toolbridge_cli(toolbridge.state_dir, "keys", "revoke", "short-lived")
    assert done.returncode == 0 and "revoked 'short-lived'" in done.stdout
    # The server's key cache sees the CLI's revocation at its next refresh (every 0.5 s).
    after = wait_for(lambda: (answer := httpx.post(f"{toolbridge.url}/tools/fin_sentiment/invoke",
                                                   json=HEADLINE, headers=bearer(key), timeout=30)
                              ).status_code == 401 and answer, 1.0, "the revoked key refused", interval=0.05)
    assert after.json()["error"] == "unauthenticated"
    listed = toolbridge_cli(toolbridge.state_dir, "keys", "list", "--json")
    states = {row["name"]: row["state"] for row in map(json.loads, listed.stdout.splitlines())}
    assert states["short-lived"] == "revoked" and states["admin"] == "active" and key not in listed.stdout


def test_restricted_tools_are_invisible_without_the_restricted_scope(toolbridge: ToolbridgeProcess,
                                                                     restricted_tool: str) -> None:
    everything = issue(toolbridge, "star", "*")
    cleared = issue(toolbridge, "star-restricted", "*,restricted")
    with httpx.Client(base_url=toolbridge.url, timeout=30) as http:
        assert restricted_tool not in names(http.get("/tools", headers=bearer(everything)))
        assert restricted_tool not in http.get("/openapi.json", headers=bearer(everything)).text
        hidden = http.post(f"/tools/{restricted_tool}/invoke", json=HEADLINE, headers=bearer(everything))
        missing = http.post("/tools/restricted_nothing/invoke", json=HEADLINE, headers=bearer(everything))
        assert hidden.status_code == missing.status_code == 403
        assert hidden.json()["message"].replace(restricted_tool, "X") == \
            missing.json()["message"].replace("restricted_nothing", "X")
        assert restricted_tool in names(http.get("/tools", headers=bearer(cleared)))
        answer = http.post(f"/tools/{restricted_tool}/invoke", json=HEADLINE, headers=bearer(cleared))
        assert answer.status_code == 200 and answer.json()["label"] == "positive"


def test_oversize_bodies_get_413_and_bad_bodies_422(toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
                                                    ) -> None:
    big = json.dumps({"headline": "x" * (1 << 20)}).encode()
    url = f"{toolbridge.url}/tools/fin_sentiment/invoke"
    sized = httpx.post(url, content=big, headers=toolbridge.headers, timeout=30)
    streamed = httpx.post(url, content=iter([big[:700_000], big[700_000:]]), headers=toolbridge.headers,
                          timeout=30)  # chunked: no Content-Length to judge by
    assert sized.status_code == streamed.status_code == 413, (sized.text, streamed.text)
    assert sized.json()["error"] == streamed.json()["error"] == "body_too_large"
    assert httpx.post(url, content=b"{nope", headers=toolbridge.headers, timeout=30).status_code == 422


def test_the_rate_limit_answers_429_with_retry_after(toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
                                                    ) -> None:
    key = issue(toolbridge, "slow-agent", "fin_sentiment", "--rate-limit", "3")
    with httpx.Client(base_url=toolbridge.url, headers=bearer(key), timeout=30) as http:
        codes = [http.post("/tools/fin_sentiment/invoke", json=HEADLINE) for _ in range(4)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429]
    assert int(codes[-1].headers["Retry-After"]) >= 1 and codes[-1].json()["error"] == "rate_limited"


def hammer(url: str, key: str, calls: int, clients: int) -> list[int]:
    """`calls` invocations spread over `clients` concurrent HTTP clients; their status codes."""
    def client_run(n: int) -> list[int]:
        with httpx.Client(base_url=url, headers=bearer(key), timeout=60) as http:
            return [http.post("/tools/fin_sentiment/invoke",
                              json={"headline": f"Acme news {n}-{i}"}).status_code
                    for i in range(calls // clients)]

    with ThreadPoolExecutor(clients) as pool:
        return [code for codes in pool.map(client_run, range(clients)) for code in codes]


def test_2000_concurrent_calls_leave_exactly_2000_audit_records(toolbridge: ToolbridgeProcess,
                                                                demo_tools: dict[str, Any]) -> None:
    key = issue(toolbridge, "load-agent", "fin_sentiment")
    started = time.monotonic()
    codes = hammer(toolbridge.url, key, 2000, 16)
    elapsed = time.monotonic() - started
    assert codes == [200] * 2000
    records = httpx.get(f"{toolbridge.url}/audit", params={"key_name": "load-agent", "limit": 5000},
                        headers=toolbridge.headers, timeout=60).json()
    assert len(records) == 2000 and len({r["request_id"] for r in records}) == 2000
    assert {(r["tool"], r["outcome"], r["status"], r["channel"]) for r in records} == \
        {("fin_sentiment", "ok", 200, "http")}
    assert all(r["inputs"] is None and len(r["input_sha256"]) == 64 for r in records)
    print(f"\n2000 calls from 16 clients in {elapsed:.1f}s ({2000 / elapsed:.0f}/s); "
          f"p50 latency in audit {sorted(r['latency_ms'] for r in records)[1000]:.1f} ms")


def test_the_request_id_is_returned_and_audited(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    before = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    answer = httpx.post(f"{toolbridge.url}/tools/fin_sentiment/invoke", json=HEADLINE,
                        headers={**toolbridge.headers, "X-Request-ID": "trace-42.a"}, timeout=30)
    assert answer.headers["X-Request-ID"] == "trace-42.a"
    generated = httpx.get(f"{toolbridge.url}/healthz", timeout=10).headers["X-Request-ID"]
    assert len(generated) == 32
    records = httpx.get(f"{toolbridge.url}/audit", params={"key_name": "admin", "since": before},
                        headers=toolbridge.headers, timeout=30).json()
    assert [r for r in records if r["request_id"] == "trace-42.a"][0]["tool"] == "fin_sentiment"


def test_a_clean_shutdown_loses_no_audit_record(mlflow_server: str, demo_tools: dict[str, Any],
                                                tmp_path: Path) -> None:
    """A dedicated server: 2,000 calls, Ctrl-C, then the exported log holds all 2,000
    (with inputs, as asked)."""
    server = ToolbridgeProcess(["--mlflow-uri", mlflow_server], tmp_path / "state",
                               {**FAST_SYNC, "TOOLBRIDGE_AUDIT_INPUTS": "true"})
    try:
        server.wait_healthy()
        key = issue(server, "shutdown-agent", "fin_sentiment")
        ISSUED.append(server.admin_key)
        wait_for(lambda: httpx.post(f"{server.url}/tools/fin_sentiment/invoke", json=HEADLINE,
                                    headers=server.headers, timeout=30).status_code == 200, 120,
                 f"fin_sentiment live\n{server.log()}")
        assert hammer(server.url, key, 2000, 16) == [200] * 2000
    finally:
        assert server.stop() == 0, server.log()
    out = tmp_path / "audit.jsonl"
    done = toolbridge_cli(server.state_dir, "audit", "export", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [r for r in records if r["key_name"] == "shutdown-agent"]
    assert len(mine) == 2000 and all(r["inputs"].startswith('{"headline":"Acme news') for r in mine)
    tail = toolbridge_cli(server.state_dir, "audit", "tail", "-n", "3")
    assert tail.returncode == 0 and "shutdown-agent" in tail.stdout
    log = server.log_path.read_text(errors="replace")
    assert not [k for k in ISSUED if k in log]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_over_mcp_a_scoped_key_lists_and_calls_only_its_tools_and_is_audited(
        toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any], restricted_tool: str,
        anyio_backend: str) -> None:
    import httpx2
    from mcp import Client, ClientSession
    from mcp.client.streamable_http import streamable_http_client

    key = issue(toolbridge, "mcp-agent", "fin_*,credit_*")
    http = httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=httpx2.Timeout(30, read=300))
    async with http, Client(streamable_http_client(f"{toolbridge.url}/mcp", http_client=http)) as client:
        assert {t.name for t in (await client.list_tools()).tools} == {"credit_risk", "fin_sentiment"}
        ok = await client.call_tool("fin_sentiment", HEADLINE)
        hidden = await client.call_tool(restricted_tool, HEADLINE)
        missing = await client.call_tool("no_such_tool", HEADLINE)
    assert not ok.is_error and ok.structured_content["label"] == "positive"
    texts = [r.content[0].text for r in (hidden, missing)]  # type: ignore[union-attr]
    assert hidden.is_error and missing.is_error
    assert texts[0].replace(restricted_tool, "X") == texts[1].replace("no_such_tool", "X")
    assert "may not call" in texts[0]
    legacy_http = httpx2.AsyncClient(headers=bearer(key), timeout=httpx2.Timeout(30, read=300))
    async with (
        legacy_http,
        streamable_http_client(f"{toolbridge.url}/mcp", http_client=legacy_http) as (r, w),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        assert {t.name for t in (await session.list_tools()).tools} == {"credit_risk", "fin_sentiment"}
        assert not (await session.call_tool("fin_sentiment", HEADLINE)).is_error
    records = httpx.get(f"{toolbridge.url}/audit", params={"key_name": "mcp-agent"},
                        headers=toolbridge.headers, timeout=30).json()
    assert [(r["tool"], r["channel"], r["outcome"], r["status"]) for r in records] == [
        ("fin_sentiment", "mcp", "ok", 200), (restricted_tool, "mcp", "denied", 403),
        ("no_such_tool", "mcp", "denied", 403), ("fin_sentiment", "mcp", "ok", 200)]


def test_no_key_appears_in_the_servers_log(toolbridge: ToolbridgeProcess) -> None:
    """Last in this module: every key issued above (and the admin key) is absent from the captured log."""
    log = toolbridge.log_path.read_text(errors="replace")
    assert ISSUED and not [k for k in [*ISSUED, toolbridge.admin_key] if k in log]
    assert "admin.key" in log  # `up` says where the admin key is, not what it is
