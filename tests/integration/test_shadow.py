"""Shadow traffic on real servers: a shadow version answers the champion's calls in the background, the
agreement MLflow shows equals the share computed offline, callers only ever get the champion, a failing
shadow is counted and harmless, and deleting the alias stops the mirroring.

Its own tool server on the shared MLflow, approving only the aliases `shadow_test_champion` and
`shadow_test_shadow` (so the shared server never loads this model), with windows of 100 calls written to
MLflow every second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from registry_sync.shadow import EXPERIMENT, TAG_RUN_ID, TAG_SUMMARY
from tests.conftest import FAST_SYNC, ToolbridgeProcess, wait_for
from tests.integration.models.shadow_classifier import label, raises

pytestmark = pytest.mark.integration

MODEL = "shadow_probe"
CHAMPION, SHADOW = "shadow_test_champion", "shadow_test_shadow"
MODEL_FILE = Path(__file__).parent / "models" / "shadow_classifier.py"
INPUTS = [(i * 37) % 100 for i in range(50)]  # a fixed set of 50 distinct inputs, called in turn


def log_version(tracking_uri: str, variant: str) -> str:
    import mlflow
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment("shadow-tests")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(MODEL_FILE), model_config={"variant": variant},
            signature=ModelSignature(inputs=Schema([ColSpec("long", "x")]),
                                     outputs=Schema([ColSpec("string")])),
            input_example=pd.DataFrame({"x": [1]}), registered_model_name=MODEL, pip_requirements=["pandas"])
    return str(info.registered_model_version)


@pytest.fixture(scope="module")
def versions(mlflow_server: str) -> dict[str, str]:
    return {variant: log_version(mlflow_server, variant) for variant in ("champion", "challenger", "raising")}


@pytest.fixture(scope="module")
def server(mlflow_server: str, versions: dict[str, str], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ToolbridgeProcess]:
    client = MlflowClient(mlflow_server, mlflow_server)
    client.set_registered_model_alias(MODEL, CHAMPION, versions["champion"])
    client.set_registered_model_alias(MODEL, SHADOW, versions["challenger"])
    process = ToolbridgeProcess(["--mlflow-uri", mlflow_server], tmp_path_factory.mktemp("shadow"),
                                {**FAST_SYNC, "TOOLBRIDGE_APPROVAL_ALIASES": CHAMPION,
                                 "TOOLBRIDGE_SHADOW_ALIAS": SHADOW, "TOOLBRIDGE_SHADOW_WINDOW_CALLS": "100",
                                 "TOOLBRIDGE_SHADOW_WINDOW_SECONDS": "3",
                                 "TOOLBRIDGE_SHADOW_WRITEBACK_SECONDS": "1"})
    try:
        process.wait_healthy()
        yield process
    finally:
        assert process.stop() == 0, process.log()


def shadows(server: ToolbridgeProcess) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{server.url}/shadow", params={"model": MODEL}, headers=server.headers, timeout=10)
    assert body.status_code == 200, body.text
    return {row["shadow_version"]: row for row in body.json()["shadows"]}


def mirroring(server: ToolbridgeProcess, version: str) -> bool:
    row = shadows(server).get(version)
    return bool(row and row["mirroring"])


def seen(row: dict[str, Any]) -> dict[str, int]:
    """Calls compared, shadow errors and drops, closed windows and the open one together."""
    totals, open_window = row["totals"], row["open_window"] or {}
    return {"compared": totals["calls_compared"] + open_window.get("compared", 0),
            "errors": totals["shadow_errors"] + open_window.get("shadow_errors", 0),
            "dropped": totals["dropped"] + open_window.get("dropped", 0)}


def added(tables: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Confusion tables (champion label → shadow label → calls) summed cell by cell."""
    total: dict[str, dict[str, int]] = {}
    for table in tables:
        for mine, cells in table.items():
            for theirs, n in cells.items():
                total.setdefault(mine, {})[theirs] = total.get(mine, {}).get(theirs, 0) + n
    return total


def call_all(server: ToolbridgeProcess, calls: int) -> list[tuple[int, dict[str, Any]]]:
    answers = []
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
        for n in range(calls):
            x = INPUTS[n % len(INPUTS)]
            response = http.post(f"/tools/{MODEL}/invoke", json={"x": x})
            assert response.status_code == 200, response.text
            answers.append((x, response.json()))
    return answers


def test_the_agreement_mlflow_shows_equals_the_share_computed_offline_and_callers_get_the_champion(
        server: ToolbridgeProcess, versions: dict[str, str], mlflow_server: str, tmp_path: Path) -> None:
    champion, shadow = versions["champion"], versions["challenger"]
    wait_for(lambda: mirroring(server, shadow), 180, f"shadow version {shadow} mirrored\n{server.log()}")
    tools = httpx.get(f"{server.url}/tools", headers=server.headers, timeout=10).json()
    assert [t["model"]["version"] for t in tools if t["name"] == MODEL] == [champion]  # no tool of its own
    pinned = httpx.post(f"{server.url}/tools/{MODEL}/versions/{shadow}/invoke", json={"x": 1},
                        headers=server.headers, timeout=10)
    assert pinned.status_code == 404  # a shadow answers no caller, even asked by version

    answers = call_all(server, 500)
    assert all(a["model"]["version"] == champion for _, a in answers)
    assert all(a["prediction"] == label("champion", x) for x, a in answers)
    expected = sum(label("champion", x) == label("challenger", x) for x, _ in answers) / len(answers)
    assert 0 < expected < 1

    client = MlflowClient(mlflow_server, mlflow_server)

    def summary() -> dict[str, Any] | None:
        tags = client.get_model_version(MODEL, shadow).tags
        found = json.loads(tags.get(TAG_SUMMARY, "{}"))
        return found if found.get("calls_compared") == 500 else None

    totals = wait_for(summary, 60, f"the summary tag of version {shadow} counting 500 calls\n{server.log()}")
    run = client.get_run(client.get_model_version(MODEL, shadow).tags[TAG_RUN_ID])
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.tags["toolbridge.shadow.model"] == MODEL
    assert run.data.tags["toolbridge.shadow.version"] == shadow
    compared = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "calls_compared")}
    agreement = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "agreement")}
    assert sum(compared.values()) == 500 and len(compared) >= 5  # one step a window
    assert sum(agreement[step] * compared[step] for step in agreement) / 500 == pytest.approx(expected)
    assert totals["agreement"] == pytest.approx(expected) and totals["dropped"] == 0
    assert totals["confusion"]["low"]["high"] == round((1 - expected) * 500)

    row = shadows(server)[shadow]
    assert row["run_id"] == run.info.run_id and row["champion_version"] == champion
    # Each window's confusion table: in GET /shadow's window list and as a JSON artifact at the window's step.
    listed = [*row["windows"], *([row["open_window"]] if row["open_window"] else [])]
    assert added([w["confusion"] for w in listed]) == totals["confusion"]
    for window in row["windows"]:
        cells = [n for row_cells in window["confusion"].values() for n in row_cells.values()]
        assert sum(cells) == window["calls_compared"]
    files = sorted(a.path for a in client.list_artifacts(run.info.run_id, "confusion"))
    assert files == [f"confusion/window-{step:05d}.json" for step in sorted(compared)]
    logged = [json.loads(Path(client.download_artifacts(run.info.run_id, path, str(tmp_path))).read_text())
              for path in files]
    assert [t["step"] for t in logged] == sorted(compared)
    assert {t["champion_version"] for t in logged} == {champion}
    assert added([t["confusion"] for t in logged]) == totals["confusion"]
    example = row["examples"][0]
    assert example["champion_output"]["prediction"] == "low"
    assert example["shadow_output"]["prediction"] == "high"
    assert len(example["input_sha256"]) == 64 and example["inputs"] is None  # TOOLBRIDGE_AUDIT_INPUTS is off
    metrics = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    series = f'{{model="{MODEL}",shadow_version="{shadow}",tool="{MODEL}"}}'
    assert f"toolbridge_shadow_calls_compared_total{series} 500.0" in metrics
    assert f"toolbridge_shadow_dropped_total{series} 0.0" in metrics

    command = [sys.executable, "-m", "tool_server", "shadow", "report", MODEL, "--url", server.url]
    report = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "TOOLBRIDGE_API_KEY": server.admin_key, "COLUMNS": "110"})
    assert report.returncode == 0, report.stderr
    assert f"{expected * 100:.1f}%" in report.stdout and "agreement per window" in report.stdout


def test_a_shadow_that_raises_on_some_rows_never_reaches_callers_and_its_errors_are_counted(
        server: ToolbridgeProcess, versions: dict[str, str], mlflow_server: str) -> None:
    champion, shadow = versions["champion"], versions["raising"]
    MlflowClient(mlflow_server, mlflow_server).set_registered_model_alias(MODEL, SHADOW, shadow)
    wait_for(lambda: mirroring(server, shadow), 120, f"shadow version {shadow} mirrored\n{server.log()}")
    answers = call_all(server, 200)
    assert all(a["model"]["version"] == champion for _, a in answers)
    assert all(a["prediction"] == label("champion", x) for x, a in answers)
    failing = sum(raises("raising", x) for x, _ in answers)
    assert failing > 0
    counted = {"compared": 200 - failing, "errors": failing, "dropped": 0}
    wait_for(lambda: seen(shadows(server)[shadow]) == counted, 30,
             f"{failing} shadow errors counted\n{server.log()}")


def test_deleting_the_shadow_alias_stops_the_mirroring(server: ToolbridgeProcess, versions: dict[str, str],
                                                        mlflow_server: str) -> None:
    """Stands alone: sets the alias itself, waits for calls to be mirrored, then deletes it."""
    shadow = versions["challenger"]
    client = MlflowClient(mlflow_server, mlflow_server)
    client.set_registered_model_alias(MODEL, SHADOW, shadow)
    wait_for(lambda: mirroring(server, shadow), 120, f"shadow version {shadow} mirrored\n{server.log()}")
    start = seen(shadows(server)[shadow])["compared"]
    call_all(server, 20)
    wait_for(lambda: seen(shadows(server)[shadow])["compared"] >= start + 20, 30,
             f"20 more calls of version {shadow} compared\n{server.log()}")

    client.delete_registered_model_alias(MODEL, SHADOW)
    wait_for(lambda: not mirroring(server, shadow), 60,
             f"mirroring of version {shadow} stopped\n{server.log()}")
    before = seen(shadows(server)[shadow])
    call_all(server, 50)
    body = httpx.get(f"{server.url}/shadow", params={"model": MODEL}, headers=server.headers,
                     timeout=10).json()
    assert body["queued"] == 0 and seen(shadows(server)[shadow]) == before


def test_only_admin_keys_read_the_shadow_comparison(server: ToolbridgeProcess) -> None:
    done = subprocess.run([sys.executable, "-m", "tool_server", "keys", "create", "--name", "shadow-reader",
                           "--scopes", MODEL, "--state-dir", str(server.state_dir)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert httpx.get(f"{server.url}/shadow", timeout=10).status_code == 401
    refused = httpx.get(f"{server.url}/shadow", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
