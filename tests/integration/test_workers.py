"""`toolbridge up --workers 2` on real servers: two worker processes answer on the one port, one registry
watcher and one model host serve them both, a webhook to either worker makes the one watcher sync and the
promotion reaches both, metrics and audit cover both, a killed worker is replaced, and Ctrl-C leaves no
process behind."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from bridge.process_group import GROUP_MARKER
from registry_sync.webhooks import sign
from tests.conftest import FAST_SYNC, ToolbridgeProcess, wait_for
from tool_server.demo import TrainedModel, register_trained_model, train_fin_sentiment

pytestmark = pytest.mark.integration

TOOL = "workers_probe"
HEADLINE = {"headline": "Globex shares fall after a profit warning"}
WORKER_MODULE = "tool_server.workers.worker"
# No poll during the module: the registry changes reach the controller only by the webhooks sent to workers.
NO_POLL = {**FAST_SYNC, "TOOLBRIDGE_POLL_INTERVAL": "3600", "TOOLBRIDGE_SPARE_HOSTS": "0"}


@dataclasses.dataclass
class Calls:
    """Every call this module made, by request id: the worker that answered and the version."""

    answered: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)

    def make(self, server: ToolbridgeProcess) -> tuple[int, str]:
        request_id = f"workers-{uuid.uuid4().hex}"
        # A new connection each call: the kernel hands it to whichever worker accepts first.
        answer = httpx.post(f"{server.url}/tools/{TOOL}/invoke", json=HEADLINE, timeout=30,
                            headers={**server.headers, "X-Request-ID": request_id})
        assert answer.status_code == 200, answer.text
        worker, version = int(answer.headers["X-Toolbridge-Worker"]), answer.json()["model"]["version"]
        self.answered[request_id] = (worker, version)
        return worker, version

    def until_each_worker_answered(self, server: ToolbridgeProcess, workers: set[int], version: str) -> None:
        seen: set[int] = set()

        def every_worker() -> bool:
            worker, answered = self.make(server)
            if answered == version:
                seen.add(worker)
            return seen >= workers

        wait_for(every_worker, 60, f"{version} answered by each of workers {workers} (seen: {seen})",
                 interval=0.05)


def register(trained: TrainedModel, tracking_uri: str, aliases: tuple[str, ...] = ()) -> str:
    return str(register_trained_model(trained, tracking_uri=tracking_uri, aliases=aliases).version)


def webhook(server: ToolbridgeProcess) -> None:
    """What MLflow sends when an alias moves, signed with the shared secret, to whichever worker accepts."""
    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "timestamp": "2026-01-01T00:00:00Z",
                       "data": {"name": TOOL, "alias": "champion", "version": "1"}}).encode()
    delivery, now = str(uuid.uuid4()), str(int(time.time()))
    answer = httpx.post(f"{server.url}/hooks/mlflow", content=body, timeout=10, headers={
        "Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign(NO_POLL["TOOLBRIDGE_WEBHOOK_SECRET"], delivery, now, body)})
    assert answer.status_code == 200, answer.text


def status(server: ToolbridgeProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/status", headers=server.headers, timeout=10).json()
    return body


def worker_pids(server: ToolbridgeProcess) -> set[int]:
    return {worker["pid"] for worker in status(server)["workers"] if worker["alive"]}


def descendants(server: ToolbridgeProcess) -> list[psutil.Process]:
    return psutil.Process(server.process.pid).children(recursive=True)


@pytest.fixture(scope="module")
def workers(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolbridgeProcess]:
    server = ToolbridgeProcess(["--mlflow-uri", mlflow_server, "--workers", "2"],
                               tmp_path_factory.mktemp("workers"), NO_POLL)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def versions(workers: ToolbridgeProcess, mlflow_server: str) -> tuple[str, str]:
    """`workers_probe` version 1 as champion, version 2 registered but not approved."""
    trained = dataclasses.replace(train_fin_sentiment(), name=TOOL)
    first = register(trained, mlflow_server, aliases=("champion",))
    second = register(trained, mlflow_server)
    webhook(workers)
    wait_for(lambda: any(row["model"] == TOOL and row["state"] == "live"
                         for row in status(workers)["versions"]), 90, f"{TOOL} live\n{workers.log()}")
    return first, second


@pytest.fixture(scope="module")
def calls() -> Calls:
    return Calls()


def test_one_watcher_and_one_host_serve_two_workers(workers: ToolbridgeProcess, mlflow_server: str) -> None:
    body = wait_for(lambda: (found := status(workers)) and len(worker_pids(workers)) == 2 and found, 60,
                    "two live workers in /status")
    processes = descendants(workers)
    worker_processes = {p.pid for p in processes if WORKER_MODULE in " ".join(p.cmdline())}
    assert worker_processes == {worker["pid"] for worker in body["workers"]}
    assert [host["name"] for host in body["hosts"]] == ["shared-0"]
    host_groups = {marker for p in processes
                   if (marker := p.environ().get(GROUP_MARKER, "")).endswith(".pgid")}
    assert len(host_groups) == 1, f"one model host process group, not one per worker: {host_groups}"

    # The registry is read by the controller alone: only it ever holds a connection to MLflow, even when the
    # webhook asking for the pass reached a worker.
    mlflow_port = urlsplit(mlflow_server).port
    readers: set[int] = set()

    def controller_polls() -> bool:
        webhook(workers)
        for process in [psutil.Process(workers.process.pid), *processes]:
            ours = process.pid == workers.process.pid or process.pid in worker_processes
            if ours and any(c.raddr and c.raddr.port == mlflow_port for c in process.net_connections("tcp")):
                readers.add(process.pid)
        return workers.process.pid in readers

    wait_for(controller_polls, 30, "the controller's connection to MLflow", interval=0.1)
    assert readers == {workers.process.pid}, "a worker read the registry"


def test_calls_are_answered_by_both_workers_and_a_webhooked_promotion_reaches_both(
        workers: ToolbridgeProcess, mlflow_server: str, versions: tuple[str, str], calls: Calls) -> None:
    first, second = versions
    pids = worker_pids(workers)
    calls.until_each_worker_answered(workers, pids, first)

    MlflowClient(tracking_uri=mlflow_server).set_registered_model_alias(TOOL, "champion", second)
    webhook(workers)
    calls.until_each_worker_answered(workers, pids, second)
    body = status(workers)
    assert {worker["table"] for worker in body["workers"]} == {body["table"]}, "both follow the latest table"
    assert [worker for worker, version in (calls.make(workers) for _ in range(20)) if version != second] == []


def test_metrics_sum_the_calls_of_every_worker(workers: ToolbridgeProcess, calls: Calls) -> None:
    assert len({worker for worker, _ in calls.answered.values()}) == 2
    scrape = httpx.get(f"{workers.url}/metrics", headers=workers.headers, timeout=10)
    families = {family.name: family for family in text_string_to_metric_families(scrape.text)}
    counted = sum(sample.value for sample in families["toolbridge_tool_calls"].samples
                  if sample.name.endswith("_total") and sample.labels["tool"] == TOOL)
    assert counted == len(calls.answered)
    assert families["toolbridge_sync_passes"].samples[0].value > 0, "the controller's series are in"
    assert [s.labels["host"] for s in families["toolbridge_host_up"].samples] == ["shared-0"]


def test_the_audit_has_the_calls_of_both_workers(workers: ToolbridgeProcess, calls: Calls) -> None:
    def audited() -> set[str]:
        rows = httpx.get(f"{workers.url}/audit", params={"limit": 100000}, headers=workers.headers,
                         timeout=10).json()
        return {row["request_id"] for row in rows} & set(calls.answered)

    wait_for(lambda: audited() == set(calls.answered), 30, "an audit record for every call")


def test_a_killed_worker_is_replaced(workers: ToolbridgeProcess, versions: tuple[str, str],
                                     calls: Calls) -> None:
    victim = min(worker_pids(workers))
    psutil.Process(victim).kill()
    replaced = wait_for(lambda: len(pids := worker_pids(workers)) == 2 and victim not in pids and pids, 90,
                        f"a new worker instead of {victim}\n{workers.log()}")
    assert sum(worker["restarts"] for worker in status(workers)["workers"]) == 1
    calls.until_each_worker_answered(workers, replaced, versions[1])


def test_ctrl_c_stops_every_process(workers: ToolbridgeProcess) -> None:
    processes = descendants(workers)
    assert len(processes) >= 3  # two workers and a model host at least
    assert workers.stop() == 0
    gone, alive = psutil.wait_procs(processes, timeout=5)
    assert alive == [], f"left running: {[(p.pid, p.cmdline()) for p in alive]}"
