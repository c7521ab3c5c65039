"""Model hosts on real processes: many models in one host within its memory budget, dedicated hosts, and
concurrent calls batched per model with each caller's answer and errors its own."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import ToolbridgeProcess, admin_headers, tools_by_name, wait_for
from tests.integration.test_lifecycle import HEADLINE, call, host_groups, register
from tool_server.demo import CREDIT_FEATURES, DATA_DIR, SENSOR_FEATURES

pytestmark = pytest.mark.integration


def hosts(url: str) -> dict[str, dict[str, Any]]:
    status = httpx.get(f"{url}/status", headers=admin_headers(url), timeout=30).json()
    return {host["name"]: host for host in status["hosts"]}


def test_twenty_models_share_one_host_within_its_memory_budget(
    toolbridge: ToolbridgeProcess, mlflow_server: str
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    template = register("fleet_template", mlflow_server)
    names = [f"fleet_{i:02d}" for i in range(20)]

    def approve(name: str) -> None:
        client.create_registered_model(name, description="One of twenty sentiment tools.")
        version = client.create_model_version(name, source=f"models:/fleet_template/{template}")
        client.set_registered_model_alias(name, "champion", version.version)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(approve, names))
    wait_for(lambda: set(names) <= tools_by_name(toolbridge.url).keys(), 180, f"20 tools\n{toolbridge.log()}")
    assert all(call(toolbridge.url, name).status_code == 200 for name in names)
    shared = hosts(toolbridge.url)["shared-0"]
    loaded = {model["key"].split("/")[0] for model in shared["models"]}
    assert set(names) <= loaded
    assert shared["memory_budget_bytes"] == 2048 * 2**20
    assert shared["memory_bytes"] <= shared["memory_budget_bytes"]
    assert shared["evictions"] == 0
    assert all(model["memory_bytes"] >= 0 and model["load_seconds"] > 0 for model in shared["models"])


def test_dedicated_model_gets_its_own_host_and_its_crash_touches_no_other_tool(
    toolbridge: ToolbridgeProcess, mlflow_server: str, demo_tools: dict[str, Any]
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    version = register("isolated_probe", mlflow_server)
    client.set_registered_model_tag("isolated_probe", "toolbridge.isolation", "dedicated")
    wait_for(lambda: spares(toolbridge.url), 180, f"a spare host ready\n{toolbridge.log()}")
    spare_pids = spares(toolbridge.url)
    client.set_registered_model_alias("isolated_probe", "champion", version)
    wait_for(lambda: call(toolbridge.url, "isolated_probe").status_code == 200, 180,
             f"isolated_probe live\n{toolbridge.log()}")
    by_name = hosts(toolbridge.url)
    dedicated = by_name["dedicated-isolated_probe"]
    # Taken from the spare (same process), and another spare started in its place.
    assert dedicated["role"] == "dedicated" and dedicated["pid"] in spare_pids
    wait_for(lambda: spares(toolbridge.url) - {dedicated["pid"]}, 180, f"a new spare\n{toolbridge.log()}")
    assert [m["key"] for m in dedicated["models"]] == [f"isolated_probe/{version}"]
    assert not any(m["key"].startswith("isolated_probe/") for m in by_name["shared-0"]["models"])

    shared_groups = set(host_groups(toolbridge.log_path.parent))
    assert httpx.get(dedicated["url"] + "/livez", timeout=5).status_code == 200
    dedicated_groups = {os.getpgid(p) for p in pids_listening(dedicated["url"])} - {os.getpgid(os.getpid())}
    for group in dedicated_groups:
        os.killpg(group, signal.SIGKILL)
    # The other tools never notice: same host processes, every call answered.
    assert all(call(toolbridge.url, tool).status_code == 200 for tool in ("fin_sentiment",) * 20)
    assert shared_groups - dedicated_groups <= set(host_groups(toolbridge.log_path.parent))
    wait_for(lambda: call(toolbridge.url, "isolated_probe").status_code == 200, 180,
             "dedicated host restarted")

    client.delete_registered_model_alias("isolated_probe", "champion")
    wait_for(lambda: "dedicated-isolated_probe" not in hosts(toolbridge.url), 60, "dedicated host retired")
    assert httpx.post(f"{toolbridge.url}/tools/isolated_probe/invoke", headers=admin_headers(toolbridge.url),
                      json=HEADLINE, timeout=10).status_code == 404


def spares(url: str) -> set[int]:
    """The pids of the ready spare hosts (idle, serving nothing)."""
    return {h["pid"] for h in hosts(url).values()
            if h["role"] == "spare" and h["alive"] and h.get("models") == []}


def pids_listening(url: str) -> list[int]:
    """Processes with a listening socket on the URL's port (the host's arbiter and workers)."""
    import psutil

    port = int(url.rsplit(":", 1)[1])
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            found.append(conn.pid)
    return found


def demo_payloads(count: int) -> dict[str, list[dict[str, Any]]]:
    """`count` real rows per demo model, as the tool server sends them to the host (one row per call)."""
    credit = pd.read_csv(DATA_DIR / "credit_applicants.csv")[CREDIT_FEATURES].dropna().head(count)
    sensors = pd.read_csv(DATA_DIR / "sensor_readings.csv")[SENSOR_FEATURES].head(count)
    integers = {"age", "late_payments_12m"}
    return {
        "credit_risk": [{"kind": "records", "params": {}, "records": [
            {k: int(v) if k in integers else float(v) for k, v in row.items()}]}
            for row in credit.to_dict(orient="records")],
        "machine_failure": [{"kind": "tensor", "dtype": "float64", "params": {}, "data": [row]}
                            for row in sensors.to_numpy().tolist()],
    }


def burst(host_url: str, calls: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[httpx.Response]:
    """Every (model, payload) call to the host's /v1/predict from its own thread, released at once."""
    start = threading.Barrier(len(calls) + 1)

    def caller(model: dict[str, Any], payload: dict[str, Any]) -> httpx.Response:
        with httpx.Client(timeout=60) as http:
            start.wait(timeout=60)
            return http.post(f"{host_url}/v1/predict",
                             json={"key": model["key"], "uri": model["uri"], "payload": payload})

    with ThreadPoolExecutor(len(calls)) as pool:
        answers = [pool.submit(caller, model, payload) for model, payload in calls]
        start.wait(timeout=60)
        return [answer.result() for answer in answers]


def test_concurrent_calls_are_batched_per_model_and_each_caller_gets_its_own_answer_or_error(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    host = next(h for h in hosts(toolbridge.url).values()
                if any(m["key"].startswith("machine_failure/") for m in h.get("models", [])))
    models = {m["key"].split("/")[0]: m for m in host["models"]}
    payloads = demo_payloads(15)
    calls = [(models[tool], payload) for tool in payloads for payload in payloads[tool]]
    bad_row = {**payloads["credit_risk"][0]["records"][0], "age": "forty"}
    bad = (models["credit_risk"], {"kind": "records", "params": {}, "records": [bad_row]})

    def batching() -> dict[str, int]:
        listing = httpx.post(f"{host['url']}/v1/models/list", json={}, timeout=30).json()
        return dict(listing["batching"])

    # One call at a time, nothing to batch with: the reference answers (every row differs, so do they).
    expected = [answer.json()["outputs"] for call in calls for answer in burst(host["url"], [call])]
    before = batching()
    assert before["enabled"]
    bursts = 0
    for _ in range(5):  # until the host merged some calls (on any machine, the first burst does)
        bursts += 1
        *good, refused = burst(host["url"], [*calls, bad])
        assert [a.status_code for a in good] == [200] * len(calls), [a.text for a in good]
        for answer, reference in zip(good, expected, strict=True):
            ((row,), (ref,)) = answer.json()["outputs"], reference
            assert row["label"] == ref["label"]  # a batch's matrix maths rounds the last digit its own way:
            assert row["probabilities"] == pytest.approx(ref["probabilities"])
        assert refused.status_code == 400
        assert "field `age`: expected integer, got string 'forty'" in refused.text
        after = batching()
        if after["merged_batches"] > before["merged_batches"]:
            break
    made, batches = after["calls"] - before["calls"], after["batches"] - before["batches"]
    assert made >= bursts * (len(calls) + 1)
    assert 0 < batches < made
    assert after["largest_batch"] > 1
