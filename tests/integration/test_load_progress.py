"""`GET /status` says how far the approved versions are (a cold start at registry scale loads hundreds):
loading, live, failed and their total, the same counts as the versions it lists."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from tests.conftest import ToolbridgeProcess, admin_headers


def test_status_counts_the_approved_versions_by_state_as_its_version_list_does(
        toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]) -> None:
    status = httpx.get(f"{toolbridge.url}/status", headers=admin_headers(toolbridge.url), timeout=10).json()
    states = Counter(row["state"] for row in status["versions"])
    sync = status["sync"]
    assert {k: sync[k] for k in ("loading", "live", "failed")} == {
        "loading": states["loading"], "live": states["live"], "failed": states["failed"]}
    assert sync["total"] == states["loading"] + states["live"] + states["failed"]  # warm: no longer approved
    live = {(row["model"], row["state"]) for row in status["versions"]}
    assert {(name, "live") for name in demo_tools} <= live and sync["live"] >= len(demo_tools)
