"""GET /stats/calls against the real server: admin only, every call counted in its minute with its outcome,
the Prometheus metrics still fed by the same calls (the two observers are chained)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ToolbridgeProcess

pytestmark = pytest.mark.integration

HEADLINE = {"headline": "Acme Corp beats quarterly earnings estimates and raises full-year guidance"}


def calls_of(server: ToolbridgeProcess, tool: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/stats/calls", headers=server.headers, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["window_minutes"] == 60 and isinstance(body["worker_pid"], int)
    entry: dict[str, Any] = next((t for t in body["tools"] if t["tool"] == tool),
                                 {"total": {"calls": 0, "errors": 0, "rejected": 0, "versions": {}}})
    return entry


def metric(server: ToolbridgeProcess, line_start: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def since(entry: dict[str, Any], minute: int, field: str) -> int:
    """`field` summed over the minutes from `minute` on (older minutes may leave the window meanwhile)."""
    return sum(m[field] for m in entry.get("minutes", []) if m["minute"] >= minute)


def test_each_call_is_counted_with_its_outcome_latency_and_version(toolbridge: ToolbridgeProcess,
                                                                   demo_tools: dict[str, Any]) -> None:
    start = int(time.time() // 60) * 60
    before = calls_of(toolbridge, "fin_sentiment")
    ok_metric = 'toolbridge_tool_calls_total{channel="http",outcome="ok",tool="fin_sentiment"'
    metric_before = metric(toolbridge, ok_metric)
    url = f"{toolbridge.url}/tools/fin_sentiment/invoke"
    for _ in range(3):
        assert httpx.post(url, json=HEADLINE, headers=toolbridge.headers, timeout=60).status_code == 200
    assert httpx.post(url, json={"headline": 7}, headers=toolbridge.headers, timeout=60).status_code == 422

    entry = calls_of(toolbridge, "fin_sentiment")
    for field, added in {"calls": 4, "rejected": 1, "errors": 0}.items():  # nothing else calls it meanwhile
        assert since(entry, start, field) - since(before, start, field) == added, field
    total = entry["total"]
    assert total["versions"][demo_tools["fin_sentiment"]["model"]["version"]] >= 3
    assert total["p50_ms"] > 0 and total["p99_ms"] >= total["p50_ms"]
    minutes = entry["minutes"]
    assert len(minutes) == 60 and minutes[-1]["minute"] - minutes[0]["minute"] == 59 * 60
    assert sum(m["calls"] for m in minutes) == total["calls"]
    assert metric(toolbridge, ok_metric) - metric_before == 3  # the metrics observer still sees every call


def test_the_routing_of_each_live_tool_is_reported(toolbridge: ToolbridgeProcess,
                                                   demo_tools: dict[str, Any]) -> None:
    body = httpx.get(f"{toolbridge.url}/stats/calls", headers=toolbridge.headers, timeout=30).json()
    assert body["routing"]["credit_risk"] == {"champion": demo_tools["credit_risk"]["model"]["version"],
                                              "canary": None, "canary_weight": 0.0}


def test_only_admin_keys_read_call_stats(toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]) -> None:
    done = subprocess.run([sys.executable, "-m", "tool_server", "keys", "create", "--name", "stats-reader",
                           "--scopes", "fin_sentiment", "--state-dir", str(toolbridge.state_dir)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    url = f"{toolbridge.url}/stats/calls"
    assert httpx.get(url, timeout=30).status_code == 401
    refused = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
