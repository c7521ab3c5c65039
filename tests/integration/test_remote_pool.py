"""Remote host pools on real processes: two `bentoml serve` model hosts started outside Toolbridge's control
(as Kubernetes would run them), and `toolbridge up` with TOOLBRIDGE_HOST_POOLS naming both URLs (and, while
both replicas are up, `toolbridge up --workers 2` with the pools in TOOLBRIDGE_HOST_POOLS_FILE).

Toolbridge routes, smoke-tests and balances through the pool and reports its health, but never starts,
restarts or stops a replica: a replica killed here stays dead, and calls go to the other one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from bridge.hosts import HostProcess
from bridge.process_group import marked_processes
from tests.conftest import FAST_SYNC, ToolbridgeProcess, wait_for
from tool_server.demo import register_trained_model, train_fin_sentiment
from tool_server.workers.worker import WORKER_HEADER

pytestmark = pytest.mark.integration

MODEL = "pool_sentiment"
SCOPE_TAG = {"toolbridge.test": "remote-pool"}  # this module's Toolbridge takes only its own models
HEADLINE = {"headline": "Initech shares rise after record quarterly revenue"}


def register(name: str, tracking_uri: str, tags: dict[str, str] | None = None) -> str:
    trained = train_fin_sentiment()
    trained = dataclasses.replace(trained, name=name, tags={**trained.tags, **SCOPE_TAG, **(tags or {})})
    return str(register_trained_model(trained, tracking_uri=tracking_uri, aliases=("champion",)).version)


@dataclasses.dataclass
class Pool:
    replicas: list[HostProcess]
    server: ToolbridgeProcess

    def call(self) -> httpx.Response:
        return invoke(self.server)

    def status(self) -> dict[str, Any]:
        return status(self.server)

    def answering_version(self) -> str | None:
        answer = self.call()
        return str(answer.json()["model"]["version"]) if answer.status_code == 200 else None


def invoke(server: ToolbridgeProcess) -> httpx.Response:
    # The client timeout is the "never a hang" bound: a call that hangs fails the test.
    return httpx.post(f"{server.url}/tools/{MODEL}/invoke", json=HEADLINE, headers=server.headers, timeout=20)


def status(server: ToolbridgeProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/status", headers=server.headers, timeout=20).json()
    return body


def host_info(replica: HostProcess) -> dict[str, Any]:
    info: dict[str, Any] = httpx.post(f"{replica.base_url}/v1/models/list", json={}, timeout=10).json()
    return info


def model_calls(replica: HostProcess) -> int:
    return int(host_info(replica)["batching"]["model_calls"])


def kill(replica: HostProcess) -> None:
    """As a crashed pod: SIGKILL to every process of it (BentoML's arbiter and its workers, which hold the
    listening socket too), no goodbye; the fixture's `stop` still reaps them."""
    for process in marked_processes(replica.pgid_file):
        with contextlib.suppress(psutil.Error):
            process.kill()
    wait_for(lambda: not replica.alive and not marked_processes(replica.pgid_file), 10,
             f"{replica.name} gone")


async def _start_all(replicas: list[HostProcess]) -> None:
    for replica in replicas:
        replica.spawn()  # both boot at once
    await asyncio.gather(*(replica.wait_ready(120) for replica in replicas))


@pytest.fixture(scope="module")
def pool(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    logs = tmp_path_factory.mktemp("remote-pool-hosts")
    # The generic model host, as its image runs it: it knows MLflow, nothing of Toolbridge.
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "MLFLOW_REGISTRY_URI": mlflow_server}
    replicas = [HostProcess(f"replica-{letter}", logs, env) for letter in "ab"]
    server: ToolbridgeProcess | None = None
    try:
        asyncio.run(_start_all(replicas))
        pools = {"shared": ",".join(replica.base_url for replica in replicas)}
        server = ToolbridgeProcess(["--mlflow-uri", mlflow_server], tmp_path_factory.mktemp("pooled"),
                                   {**FAST_SYNC, "TOOLBRIDGE_HOST_POOLS": json.dumps(pools),
                                    "TOOLBRIDGE_SPARE_HOSTS": "0",
                                    "TOOLBRIDGE_REQUIRED_TAGS": json.dumps(SCOPE_TAG)})
        server.wait_healthy()
        yield Pool(replicas, server)
    finally:
        if server is not None:
            server.stop()
        for replica in replicas:
            replica.stop()


@pytest.fixture(scope="module")
def first_version(pool: Pool, mlflow_server: str) -> str:
    version = register(MODEL, mlflow_server)
    wait_for(lambda: pool.answering_version() == version, 90,
             f"{MODEL} v{version} live through the pool\n{pool.server.log()}")
    return version


def test_both_replicas_answer_calls_of_the_same_version(pool: Pool, first_version: str) -> None:
    status = pool.status()
    row = next(r for r in status["versions"] if r["model"] == MODEL and r["version"] == first_version)
    assert (row["state"], row["host"]) == ("live", "pool:shared")
    # Toolbridge started no model host of its own: every host it reports is a replica of the pool.
    assert [(h["role"], h["url"], h["alive"]) for h in status["hosts"]] == [
        ("remote pool shared", replica.base_url, True) for replica in pool.replicas]
    before = [model_calls(replica) for replica in pool.replicas]
    for _ in range(8):
        answer = pool.call()
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["version"] == first_version
    after = [model_calls(replica) for replica in pool.replicas]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    key = f"{MODEL}/{first_version}"
    for replica in pool.replicas:  # each loaded the version itself, on its first call for it
        assert key in [m["key"] for m in host_info(replica)["models"]]


def test_two_workers_answer_through_a_pool_read_from_a_file(
        pool: Pool, first_version: str, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """As the Kubernetes manifests run it: `--workers 2`, the pools in a file (a mounted ConfigMap key). Runs
    while both replicas are up (the tests below kill them)."""
    pools_file = tmp_path_factory.mktemp("config") / "host-pools.json"
    pools_file.write_text(json.dumps({"shared": [replica.base_url for replica in pool.replicas]}))
    server = ToolbridgeProcess(["--mlflow-uri", mlflow_server, "--workers", "2"],
                               tmp_path_factory.mktemp("pooled-workers"),
                               {**FAST_SYNC, "TOOLBRIDGE_HOST_POOLS_FILE": str(pools_file),
                                "TOOLBRIDGE_SPARE_HOSTS": "0",
                                "TOOLBRIDGE_REQUIRED_TAGS": json.dumps(SCOPE_TAG)})
    try:
        server.wait_healthy()
        answered: dict[int, str] = {}  # worker pid → version it answered

        def both_workers_answered() -> bool:
            answer = invoke(server)
            if answer.status_code == 200:
                answered[int(answer.headers[WORKER_HEADER])] = str(answer.json()["model"]["version"])
            return len(answered) == 2

        wait_for(both_workers_answered, 90, f"{MODEL} answered by both workers through the pool")
        assert set(answered.values()) == {first_version}
        body = status(server)
        assert {worker["pid"] for worker in body["workers"]} == set(answered)
        row = next(r for r in body["versions"] if r["model"] == MODEL and r["version"] == first_version)
        assert (row["state"], row["host"]) == ("live", "pool:shared")
        # The pool's health, from the file's URLs; no model host started by this server.
        assert [(h["role"], h["url"], h["alive"]) for h in body["hosts"]] == [
            ("remote pool shared", replica.base_url, True) for replica in pool.replicas]
        key = f"{MODEL}/{first_version}"
        assert all(key in [m["key"] for m in h["models"]] for h in body["hosts"]), body["hosts"]
    finally:
        assert server.stop() == 0, server.log()


def test_calls_keep_succeeding_when_one_replica_is_killed(pool: Pool, first_version: str) -> None:
    gone, left = pool.replicas[1], pool.replicas[0]
    kill(gone)
    for _ in range(8):
        answer = pool.call()
        assert answer.status_code == 200, answer.text
    hosts = {h["url"]: h for h in pool.status()["hosts"]}
    assert hosts[gone.base_url]["alive"] is False and "readyz" in hosts[gone.base_url]["error"]
    assert hosts[left.base_url]["alive"] is True
    assert not gone.alive  # and Toolbridge did not bring it back: Kubernetes would


def test_alias_moved_the_new_version_answers_through_the_pool(pool: Pool, first_version: str,
                                                              mlflow_server: str) -> None:
    second = register(MODEL, mlflow_server)
    assert second != first_version
    wait_for(lambda: pool.answering_version() == second, 90, f"{MODEL} v{second} answering through the pool")
    assert f"{MODEL}/{second}" in [m["key"] for m in host_info(pool.replicas[0])["models"]]


def test_an_unknown_pool_fails_only_its_version(pool: Pool, first_version: str, mlflow_server: str) -> None:
    version = register("pool_nowhere", mlflow_server, tags={"toolbridge.pool": "nowhere"})

    def failed_row() -> dict[str, Any] | None:
        return next((r for r in pool.status()["versions"] if r["model"] == "pool_nowhere"
                     and r["version"] == version and r["state"] == "failed"), None)

    row = wait_for(failed_row, 60, "pool_nowhere failed in /status")
    assert "host pool 'nowhere'" in row["reason"] and "TOOLBRIDGE_HOST_POOLS" in row["reason"]
    assert "did not start" not in row["reason"]
    assert pool.call().status_code == 200  # the others are unaffected


def test_pool_down_answers_503_with_retry_after_never_a_hang(pool: Pool, first_version: str) -> None:
    for replica in pool.replicas:
        kill(replica)
    answer = pool.call()
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert "host pool 'shared' is unreachable" in answer.json()["message"]
    assert [h["alive"] for h in pool.status()["hosts"]] == [False, False]
    # The tool stays listed: the pool may come back (fail-static), and the route with it.
    assert MODEL in [t["name"] for t in httpx.get(f"{pool.server.url}/tools", headers=pool.server.headers,
                                                  timeout=10).json()]
