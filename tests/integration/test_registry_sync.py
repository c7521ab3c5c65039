"""Registry transitions reach the catalog by polling alone, and MLflow outages leave live tools live."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from bridge.hosts import free_port
from tests.conftest import ToolbridgeProcess, admin_headers, tools_by_name, wait_for
from tests.integration.test_lifecycle import HEADLINE, register
from tool_server.demo import register_demo_models
from tool_server.ops.embedded_mlflow import EmbeddedMlflow

pytestmark = pytest.mark.integration


def test_each_registry_edit_reaches_the_catalog_by_polling(
    toolbridge: ToolbridgeProcess, mlflow_server: str
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    first = register("poll_probe", mlflow_server, aliases=("champion",))
    wait_for(lambda: "poll_probe" in tools_by_name(toolbridge.url), 60, "new approval")

    client.update_registered_model("poll_probe", description="Sentiment of a headline, for polling tests.")
    wait_for(lambda: "for polling tests" in tools_by_name(toolbridge.url)["poll_probe"]["description"], 60,
             "description edit")

    client.set_registered_model_tag("poll_probe", "toolbridge.tool_name", "headline_mood")
    wait_for(lambda: "headline_mood" in (tools := tools_by_name(toolbridge.url))
             and "poll_probe" not in tools, 60, "rename by tag")
    answer = httpx.post(f"{toolbridge.url}/tools/headline_mood/invoke", headers=admin_headers(toolbridge.url),
                        json=HEADLINE, timeout=30)
    assert answer.status_code == 200 and answer.json()["model"] == {"name": "poll_probe", "version": first}

    client.set_registered_model_tag("poll_probe", "toolbridge.enabled", "false")
    wait_for(lambda: "headline_mood" not in tools_by_name(toolbridge.url), 60, "opt-out tag")
    client.delete_registered_model_tag("poll_probe", "toolbridge.enabled")
    wait_for(lambda: "headline_mood" in tools_by_name(toolbridge.url), 60, "opt back in")

    client.delete_registered_model_alias("poll_probe", "champion")
    wait_for(lambda: "headline_mood" not in tools_by_name(toolbridge.url), 60, "alias deleted")


OUTAGE_SECONDS = 60  # issue #8: the tracking server stopped for a minute


def test_mlflow_outage_keeps_tools_live_reports_degraded_and_recovers(tmp_path: Path) -> None:
    mlflow = EmbeddedMlflow(tmp_path / "mlflow-state", free_port())
    mlflow.start()
    server = ToolbridgeProcess(["--mlflow-uri", mlflow.uri], tmp_path / "toolbridge",
                               {"TOOLBRIDGE_POLL_INTERVAL": "1"})
    try:
        register_demo_models(mlflow.uri, models=["fin_sentiment"])
        server.wait_healthy()
        wait_for(lambda: "fin_sentiment" in tools_by_name(server.url), 120, f"tool live\n{server.log()}")

        mlflow.stop()
        outage_started = time.monotonic()
        answers: list[int] = []
        with httpx.Client(base_url=server.url, headers=admin_headers(server.url), timeout=30) as http:
            while time.monotonic() - outage_started < OUTAGE_SECONDS:
                answers.append(http.post("/tools/fin_sentiment/invoke", json=HEADLINE).status_code)
                time.sleep(0.5)
            sync: dict[str, Any] = http.get("/status").json()["sync"]
        assert set(answers) == {200}, answers
        print(f"MLflow down {OUTAGE_SECONDS} s: {len(answers)} calls, all answered")
        assert sync["state"] == "degraded"
        assert sync["last_error"] and sync["error_since"] is not None
        assert list(tools_by_name(server.url)) == ["fin_sentiment"]

        mlflow.start()
        def sync_state() -> str:
            status = httpx.get(f"{server.url}/status", headers=admin_headers(server.url), timeout=5).json()
            return str(status["sync"]["state"])

        wait_for(lambda: sync_state() == "ok", 120, "sync recovered")
        status = httpx.get(f"{server.url}/status", headers=admin_headers(server.url), timeout=5).json()
        # Nothing withdrawn, nothing duplicated: the same one version, live, on the same host.
        assert [(v["model"], v["state"]) for v in status["versions"]] == [("fin_sentiment", "live")]
        assert [m["key"] for h in status["hosts"] for m in h["models"]] == ["fin_sentiment/1"]
    finally:
        server.stop()
        mlflow.stop()
