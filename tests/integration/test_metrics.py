"""`GET /metrics` after real calls: Prometheus series for calls, latency, live tools, sync and hosts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ToolbridgeProcess

pytestmark = pytest.mark.integration


def samples(server: ToolbridgeProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10)
    assert response.status_code == 200, response.text
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(series: list[tuple[dict[str, str], float]], **labels: str) -> float:
    return sum(v for found, v in series if all(found.get(k) == w for k, w in labels.items()))


def test_metrics_count_calls_per_tool_version_channel_and_outcome(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    before = samples(toolbridge)
    url = f"{toolbridge.url}/tools/fin_sentiment/invoke"
    good = [httpx.post(url, json={"headline": "Profit jumps"}, headers=toolbridge.headers, timeout=30)
            for _ in range(3)]
    bad = httpx.post(url, json={"headline": 7}, headers=toolbridge.headers, timeout=30)
    assert [r.status_code for r in good] == [200] * 3 and bad.status_code == 422
    version = good[0].json()["model"]["version"]
    after = samples(toolbridge)

    def delta(name: str, **labels: str) -> float:
        return value(after.get(name, []), **labels) - value(before.get(name, []), **labels)

    assert delta("toolbridge_tool_calls_total", tool="fin_sentiment", version=version, channel="http",
                 outcome="ok") == 3
    assert delta("toolbridge_tool_calls_total", tool="fin_sentiment", channel="http", outcome="invalid") == 1
    assert delta("toolbridge_tool_call_seconds_count", tool="fin_sentiment", channel="http") == 4
    assert value(after["toolbridge_live_tools"]) >= 3
    assert value(after["toolbridge_sync_passes_total"]) > 0
    assert value(after["toolbridge_sync_degraded"]) == 0
    assert value(after["toolbridge_sync_last_success_age_seconds"]) < 60
    assert value(after["toolbridge_host_up"], host="shared-0") == 1
    assert "toolbridge_host_restarts_total" in after


def test_metrics_need_an_admin_key(toolbridge: ToolbridgeProcess) -> None:
    assert httpx.get(f"{toolbridge.url}/metrics", timeout=10).status_code == 401
