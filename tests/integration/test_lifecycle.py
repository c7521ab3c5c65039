"""Serving lifecycle on real servers: canary split, pinned versions, swaps under load, broken versions,
a killed model host."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from mlflow import MlflowClient

from bridge.process_group import marked_processes
from tests.conftest import ToolbridgeProcess, admin_headers, wait_for
from tool_server.demo import register_trained_model, train_fin_sentiment
from tool_server.ops.embedded_mlflow import EmbeddedMlflow

pytestmark = pytest.mark.integration

HEADLINE = {"headline": "Initech shares rise after record quarterly revenue"}


def register(name: str, tracking_uri: str, aliases: tuple[str, ...] = ()) -> str:
    trained = dataclasses.replace(train_fin_sentiment(), name=name)
    return str(register_trained_model(trained, tracking_uri=tracking_uri, aliases=aliases).version)


def call(url: str, tool: str, version: str | None = None) -> httpx.Response:
    path = f"/tools/{tool}/invoke" if version is None else f"/tools/{tool}/versions/{version}/invoke"
    return httpx.post(f"{url}{path}", json=HEADLINE, headers=admin_headers(url), timeout=30)


def answering_version(url: str, tool: str) -> str | None:
    answer = call(url, tool)
    return str(answer.json()["model"]["version"]) if answer.status_code == 200 else None


def statuses(url: str, model: str) -> dict[str, dict[str, Any]]:
    rows = httpx.get(f"{url}/status", headers=admin_headers(url), timeout=10).json()["versions"]
    return {row["version"]: row for row in rows if row["model"] == model}


@pytest.fixture(scope="module")
def probe(toolbridge: ToolbridgeProcess, mlflow_server: str) -> tuple[str, str]:
    """`swap_probe` with version 1 as champion and version 2 registered but not approved."""
    first = register("swap_probe", mlflow_server, aliases=("champion",))
    second = register("swap_probe", mlflow_server)
    wait_for(lambda: answering_version(toolbridge.url, "swap_probe") == first, 60, "swap_probe live")
    return first, second


def test_canary_takes_its_weight_of_calls_within_five_points(
    toolbridge: ToolbridgeProcess, mlflow_server: str, probe: tuple[str, str]
) -> None:
    first, second = probe
    client = MlflowClient(tracking_uri=mlflow_server)
    client.set_registered_model_tag("swap_probe", "toolbridge.canary_weight", "0.3")
    client.set_registered_model_alias("swap_probe", "challenger", second)
    wait_for(lambda: statuses(toolbridge.url, "swap_probe").get(second, {}).get("state") == "live", 60,
             "canary live")
    assert statuses(toolbridge.url, "swap_probe")[second]["role"] == "canary"
    with httpx.Client(base_url=toolbridge.url, headers=admin_headers(toolbridge.url), timeout=30) as http:
        served = Counter(http.post("/tools/swap_probe/invoke", json=HEADLINE).json()["model"]["version"]
                         for _ in range(1000))
    assert served.keys() == {first, second}
    assert abs(served[second] / 1000 - 0.3) <= 0.05, served

    pinned = call(toolbridge.url, "swap_probe", version=second)
    assert pinned.status_code == 200 and pinned.json()["model"]["version"] == second
    assert pinned.headers["X-Toolbridge-Model-Version"] == second
    not_served = call(toolbridge.url, "swap_probe", version="999")
    assert not_served.status_code == 404 and "served now" in not_served.json()["message"]

    client.delete_registered_model_alias("swap_probe", "challenger")
    wait_for(lambda: second not in statuses(toolbridge.url, "swap_probe")
             or statuses(toolbridge.url, "swap_probe")[second]["state"] == "warm", 60, "canary withdrawn")
    assert {answering_version(toolbridge.url, "swap_probe") for _ in range(50)} == {first}


def test_alias_flips_under_eight_concurrent_clients_fail_no_call(
    toolbridge: ToolbridgeProcess, mlflow_server: str, probe: tuple[str, str]
) -> None:
    first, second = probe
    client = MlflowClient(tracking_uri=mlflow_server)
    stop = threading.Event()
    answers: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def caller() -> None:
        with httpx.Client(base_url=toolbridge.url, headers=admin_headers(toolbridge.url), timeout=30) as http:
            while not stop.is_set():
                response = http.post("/tools/swap_probe/invoke", json=HEADLINE)
                with lock:
                    if response.status_code == 200:
                        answers[response.json()["model"]["version"]] += 1
                    else:
                        failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for flip in range(20):
            target = second if flip % 2 == 0 else first
            client.set_registered_model_alias("swap_probe", "champion", target)
            wait_for(lambda t=target: answering_version(toolbridge.url, "swap_probe") == t, 60,
                     f"flip {flip} to version {target}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert failures == []
    assert answers.keys() == {first, second}
    assert sum(answers.values()) > 100


def test_broken_versions_are_never_exposed_and_others_keep_serving(
    toolbridge: ToolbridgeProcess, mlflow_embedded: EmbeddedMlflow, demo_tools: dict[str, Any]
) -> None:
    uri = mlflow_embedded.uri
    client = MlflowClient(tracking_uri=uri)
    version = register("broken_probe", uri)
    artifacts = client.get_model_version_download_uri("broken_probe", version)
    local = mlflow_embedded.root / "artifacts" / artifacts.removeprefix("mlflow-artifacts:/")
    for weights in Path(local).glob("model.*"):
        weights.write_bytes(b"not a model")  # the artifact now fails to load in the model host
    client.set_registered_model_alias("broken_probe", "champion", version)

    row = wait_for(lambda: statuses(toolbridge.url, "broken_probe").get(version, {}).get("state") == "failed"
                   and statuses(toolbridge.url, "broken_probe")[version], 90, "broken_probe failed")
    assert "could not load" in row["reason"]
    assert call(toolbridge.url, "broken_probe").status_code == 404
    listed = httpx.get(f"{toolbridge.url}/tools", headers=admin_headers(toolbridge.url), timeout=10).json()
    assert "broken_probe" not in {t["name"] for t in listed}
    assert call(toolbridge.url, "fin_sentiment").status_code == 200


def host_groups(state_dir: Path) -> list[int]:
    """Process groups of the model hosts started by the toolbridge under `state_dir`."""
    groups = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(state_dir).encode() in (proc / "environ").read_bytes():
                groups.add(os.getpgid(int(proc.name)))
        except OSError:
            continue
    return sorted(groups)


def host_processes(state_dir: Path, host: str) -> list[psutil.Process]:
    """Every process of one model host (arbiter and workers, whatever their session), by its group marker."""
    return marked_processes(state_dir / f"host-{host}.pgid")


def hosts(url: str) -> dict[str, dict[str, Any]]:
    return {host["name"]: host for host in
            httpx.get(f"{url}/status", headers=admin_headers(url), timeout=10).json()["hosts"]}


@dataclasses.dataclass
class CallRecord:
    tool: str
    status: int
    seconds: float
    retry_after: str | None


def test_model_host_killed_under_load_answers_503_then_recovers_and_other_hosts_never_notice(
    toolbridge: ToolbridgeProcess, mlflow_server: str, demo_tools: dict[str, Any]
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    version = register("steady_probe", mlflow_server)
    client.set_registered_model_tag("steady_probe", "toolbridge.isolation", "dedicated")
    client.set_registered_model_alias("steady_probe", "champion", version)
    wait_for(lambda: call(toolbridge.url, "steady_probe").status_code == 200, 180,
             f"steady_probe live on its dedicated host\n{toolbridge.log()}")
    state_dir = toolbridge.state_dir
    doomed = host_processes(state_dir / "logs", "shared-0")
    assert len(doomed) >= 2, "the shared host should have an arbiter and a worker"
    survivors = host_processes(state_dir / "logs", "dedicated-steady_probe")
    assert survivors

    records: list[CallRecord] = []
    lock = threading.Lock()
    stop = threading.Event()

    def caller(tool: str) -> None:
        with httpx.Client(base_url=toolbridge.url, headers=admin_headers(toolbridge.url), timeout=60) as http:
            while not stop.is_set():
                started = time.monotonic()
                response = http.post(f"/tools/{tool}/invoke", json=HEADLINE)
                with lock:
                    records.append(CallRecord(tool, response.status_code, time.monotonic() - started,
                                              response.headers.get("Retry-After")))
                if response.status_code != 200:
                    time.sleep(0.05)

    tools = ("fin_sentiment", "steady_probe") * 4
    threads = [threading.Thread(target=caller, args=(tool,)) for tool in tools]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        for proc in doomed:  # a crash of the whole host: arbiter and worker at once
            with contextlib.suppress(psutil.Error):
                proc.kill()
        killed_at = len(records)

        def recovered() -> bool:
            with lock:
                after = [r for r in records[killed_at:] if r.tool == "fin_sentiment"]
            return any(r.status == 503 for r in after) and after[-1].status == 200

        wait_for(recovered, 180, f"fin_sentiment answering again after the host restart\n{toolbridge.log()}")
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(90)

    shared = [r for r in records if r.tool == "fin_sentiment"]
    isolated = [r for r in records if r.tool == "steady_probe"]
    assert {r.status for r in shared} == {200, 503}, Counter(r.status for r in shared)
    assert all(r.retry_after is not None and int(r.retry_after) >= 1 for r in shared if r.status == 503)
    assert max(r.seconds for r in shared) < 35, "a call during the outage must end by the call timeout (30 s)"
    assert isolated and all(r.status == 200 for r in isolated), Counter(r.status for r in isolated)
    assert all(call(toolbridge.url, tool).status_code in (200, 422) for tool in demo_tools)
    assert not any(proc.is_running() for proc in doomed)
    still = host_processes(state_dir / "logs", "dedicated-steady_probe")
    assert {p.pid for p in still} == {p.pid for p in survivors}
    assert hosts(toolbridge.url)["shared-0"]["restarts"] >= 1
    print(f"host kill under load: {len(shared)} shared-host calls "
          f"({sum(r.status == 503 for r in shared)} × 503), {len(isolated)} dedicated-host calls, all 200")
    client.delete_registered_model_alias("steady_probe", "champion")
    wait_for(lambda: "dedicated-steady_probe" not in hosts(toolbridge.url), 60, "dedicated host retired")


def test_version_failing_its_smoke_test_is_never_exposed(
    toolbridge: ToolbridgeProcess, mlflow_server: str, demo_tools: dict[str, Any]
) -> None:
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from sklearn.linear_model import LogisticRegression

    # A numeric model whose signature and input example claim a text column: it loads, but cannot answer.
    model = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1])
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    with mlflow.start_run(run_name="smoke-probe"):
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="smoke_probe",
                                        signature=ModelSignature(inputs=Schema([ColSpec("string", "text")])),
                                        input_example=pd.DataFrame({"text": ["hello"]}))
    version = str(info.registered_model_version)
    MlflowClient(tracking_uri=mlflow_server).set_registered_model_alias("smoke_probe", "champion", version)

    row = wait_for(lambda: statuses(toolbridge.url, "smoke_probe").get(version, {}).get("state") == "failed"
                   and statuses(toolbridge.url, "smoke_probe")[version], 90, "smoke_probe failed")
    assert "smoke test" in row["reason"]
    assert call(toolbridge.url, "smoke_probe").status_code == 404
    assert call(toolbridge.url, "fin_sentiment").status_code == 200
