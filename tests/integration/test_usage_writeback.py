"""Usage counts written back to the real MLflow as tags, no reload of the model; JSON logs with request ids.

Its own tool server (write-back every second, JSON logs) on the shared MLflow. It approves only the alias
`usage_champion`, so it loads this test's model alone, and the shared server never loads that model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from registry_sync.usage import TAG_CALLS, TAG_ERRORS, TAG_LAST_CALL
from tests.conftest import FAST_SYNC, ToolbridgeProcess, wait_for

pytestmark = pytest.mark.integration

MODEL = "usage_probe"
ALIAS = "usage_champion"
HEADLINE = {"headline": "Zyxcorp quarterly revenue beats every forecast"}


def json_lines(server: ToolbridgeProcess) -> list[dict[str, Any]]:
    """The log's JSON lines (stderr); stdout's human messages share the file and are skipped."""
    lines = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # a line that starts like JSON must be JSON
    return lines


def call(server: ToolbridgeProcess, request_id: str, body: dict[str, Any] = HEADLINE) -> httpx.Response:
    return httpx.post(f"{server.url}/tools/{MODEL}/invoke", json=body,
                      headers={**server.headers, "X-Request-ID": request_id}, timeout=30)


def sync_passes(server: ToolbridgeProcess) -> int:
    return int(httpx.get(f"{server.url}/status", headers=server.headers, timeout=10).json()["sync"]["passes"])


def test_usage_reaches_mlflow_tags_without_a_reload_and_every_log_line_is_json_with_the_request_id(
        mlflow_server: str, demo_tools: dict[str, Any], tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    # A new model on the demo's logged artifact: three REST calls instead of logging a model again.
    client.create_registered_model(MODEL)
    demo = f"models:/fin_sentiment/{demo_tools['fin_sentiment']['model']['version']}"
    version = str(client.create_model_version(MODEL, demo).version)
    client.set_registered_model_alias(MODEL, ALIAS, version)
    server = ToolbridgeProcess(["--mlflow-uri", mlflow_server], tmp_path / "state",
                               {**FAST_SYNC, "TOOLBRIDGE_APPROVAL_ALIASES": ALIAS,
                                "TOOLBRIDGE_USAGE_WRITEBACK_SECONDS": "1", "TOOLBRIDGE_LOG_FORMAT": "json"})
    try:
        server.wait_healthy()
        wait_for(lambda: call(server, "warm-up").status_code == 200, 120, f"{MODEL} live\n{server.log()}")
        answers = [call(server, f"usage-call-{i}") for i in range(3)]
        bad = call(server, "usage-call-bad", {"headline": 7})
        assert [a.status_code for a in answers] == [200] * 3 and bad.status_code == 422
        # warm-up + 3 answered + 1 invalid = 5 calls; the writes every second add them up in MLflow, the
        # model's tags first, then the version's (4 calls: the invalid one reached no version).
        wait_for(lambda: client.get_registered_model(MODEL).tags.get(TAG_CALLS) == "5"
                 and client.get_model_version(MODEL, version).tags.get(TAG_CALLS) == "4", 60,
                 f"{TAG_CALLS}=5 on {MODEL} and 4 on its version {version}\n{server.log()}")
        tags = client.get_registered_model(MODEL).tags
        assert tags[TAG_ERRORS] == "1" and tags[TAG_LAST_CALL].endswith("Z")
        assert client.get_model_version(MODEL, version).tags[TAG_LAST_CALL].endswith("Z")
        # Registry passes that read the new tags must find nothing changed.
        seen = sync_passes(server)
        wait_for(lambda: sync_passes(server) >= seen + 3, 60, "three registry passes after the write")
        assert call(server, "before-stop").status_code == 200
    finally:
        assert server.stop() == 0, server.log()
    # The call just before the stop is written too (by the timer or by the last write on stop).
    assert client.get_registered_model(MODEL).tags[TAG_CALLS] == "6"

    lines = json_lines(server)
    assert {"time", "level", "logger", "message"} <= lines[0].keys()
    brought_up = [line for line in lines if line["message"] == f"{MODEL}/{version} is live as tool {MODEL}"]
    assert len(brought_up) == 1, brought_up  # loaded and smoke-tested once: the tag writes reloaded nothing
    assert not [line for line in lines if line["message"].startswith(f"registry: {MODEL}/")
                and "changed:" in line["message"]]
    access = {line["request_id"]: line for line in lines if line["logger"] == "tool_server.access"}
    assert {k: access["usage-call-1"][k] for k in ("tool", "version", "channel", "outcome", "status")} == {
        "tool": MODEL, "version": version, "channel": "http", "outcome": "ok", "status": 200}
    assert access["usage-call-1"]["key_id"] and access["usage-call-1"]["latency_ms"] > 0
    assert (access["usage-call-bad"]["outcome"], access["usage-call-bad"]["status"]) == ("invalid", 422)
    # One access line a call (uvicorn's own is off): ours names the request too.
    assert [line["message"].split(" in ")[0] for line in lines if line.get("request_id") == "usage-call-2"
            and line["logger"] in ("tool_server.access", "uvicorn.access")
            ] == [f"POST /tools/{MODEL}/invoke 200 ok"]
    text = server.log_path.read_text(errors="replace")
    assert server.admin_key not in text and "Zyxcorp" not in text  # neither the key nor the inputs
