"""Two replicas on real shared state: two `toolbridge up` on two ports sharing one PostgreSQL (keys, audit),
one Redis (rate limits, webhook replay ids and fan-out) and one MLflow, as behind a load balancer.

The replicas approve only this module's model (an alias and a tag nobody else uses) and poll MLflow every
300 s: after the start-up pass, only the webhook fan-out can explain a change seen within a second. Version 2
waits as a canary with weight 0, loaded and smoke-tested on both, so moving the approval alias to it is a
routing change and its answer can be asked for within the second.

The fault tests stop PostgreSQL and Redis (the session's servers) and start them again: keep them last.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from registry_sync.webhooks import sign
from tests.conftest import FAST_SYNC, ToolbridgeProcess, wait_for
from tests.servers import PostgresServer, RedisServer
from tool_server.access.db import audit_log, make_engine
from tool_server.access.keys import KeyStore
from tool_server.demo import register_trained_model, train_fin_sentiment

pytestmark = pytest.mark.integration

TOOL = "replica_sentiment"
APPROVAL, CANARY = "replica_champion", "replica_challenger"
TEST_TAG = ("toolbridge_test", "replicas")
SECRET = "replica-webhook-secret-0123456789"
HEADLINE = {"headline": "Initech shares rise after record quarterly revenue"}


@dataclass
class Replicas:
    a: ToolbridgeProcess
    b: ToolbridgeProcess
    database_url: str
    engine: sa.Engine
    postgres: PostgresServer
    redis: RedisServer
    mlflow: MlflowClient
    versions: tuple[str, str]

    def key(self, name: str, rate_limit: float | None = None) -> str:
        """A fresh key in the shared database (what `toolbridge keys create` does)."""
        key, _ = KeyStore(self.engine).create(f"{name}-{uuid.uuid4().hex[:6]}", {"*"},
                                              rate_limit_per_minute=rate_limit)
        return key

    def audit_rows(self, key_name: str) -> tuple[int, int]:
        """(rows, distinct record ids) of one key's calls."""
        with self.engine.connect() as conn:
            rows, distinct = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(
                audit_log.c.record_id))).where(audit_log.c.key_name == key_name)).one()
        return int(rows), int(distinct)


def invoke(url: str, key: str, client: httpx.Client | None = None) -> httpx.Response:
    post = client.post if client is not None else httpx.post
    return post(f"{url}/tools/{TOOL}/invoke", json=HEADLINE, headers={"Authorization": f"Bearer {key}"},
                timeout=30)


def metric(server: ToolbridgeProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def live_states(server: ToolbridgeProcess) -> set[tuple[str, str]]:
    status = httpx.get(f"{server.url}/status", headers=server.headers, timeout=10).json()
    return {(row["version"], row["role"]) for row in status["versions"]
            if row["tool"] == TOOL and row["state"] == "live"}


def key_name_of(replicas: Replicas, key: str) -> str:
    return KeyStore(replicas.engine).authenticate(key).name


@pytest.fixture(scope="module")
def replicas(mlflow_server: str, postgres_server: PostgresServer, redis_server: RedisServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    database_url = postgres_server.create_database("replicas")
    trained = train_fin_sentiment()
    trained = dataclasses.replace(trained, name=TOOL, tags={**trained.tags, TEST_TAG[0]: TEST_TAG[1]})
    first = register_trained_model(trained, tracking_uri=mlflow_server, aliases=(APPROVAL,))
    mlflow = MlflowClient(tracking_uri=mlflow_server)
    second = mlflow.create_model_version(TOOL, f"models:/{TOOL}/{first.version}")  # v1's artifact
    mlflow.set_registered_model_tag(TOOL, "toolbridge.canary_weight", "0")
    mlflow.set_registered_model_alias(TOOL, CANARY, second.version)
    env = {**FAST_SYNC, "TOOLBRIDGE_POLL_INTERVAL": "300", "TOOLBRIDGE_DATABASE_URL": database_url,
           "TOOLBRIDGE_REDIS_URL": redis_server.url, "TOOLBRIDGE_WEBHOOK_SECRET": SECRET,
           "TOOLBRIDGE_APPROVAL_ALIASES": APPROVAL, "TOOLBRIDGE_CANARY_ALIAS": CANARY,
           "TOOLBRIDGE_REQUIRED_TAGS": json.dumps(dict([TEST_TAG]))}
    root = tmp_path_factory.mktemp("replicas")
    a = ToolbridgeProcess(["--mlflow-uri", mlflow_server], root / "a", env)
    b = ToolbridgeProcess(["--mlflow-uri", mlflow_server], root / "b", env)
    engine = make_engine(database_url)
    try:
        for server in (a, b):
            server.wait_healthy()
            wait_for(lambda s=server: live_states(s) == {(str(first.version), "champion"),  # type: ignore[misc]
                                                         (str(second.version), "canary")},
                     180, f"{TOOL} v1 live and v2 live as canary on {server.url}\n{server.log()}")
        yield Replicas(a, b, database_url, engine, postgres_server, redis_server, mlflow,
                       (str(first.version), str(second.version)))
    finally:
        for server in (a, b):
            server.stop()
        engine.dispose()


def test_a_key_created_through_a_works_on_b_and_revoked_on_b_is_refused_on_a_within_a_second(
        replicas: Replicas) -> None:
    name = f"replica-user-{uuid.uuid4().hex[:6]}"
    env = {"TOOLBRIDGE_DATABASE_URL": replicas.database_url}
    created = subprocess.run([sys.executable, "-m", "tool_server", "keys", "create", "--name", name,
                              "--scopes", TOOL, "--state-dir", str(replicas.a.state_dir)],
                             capture_output=True, text=True, env={**_environ(), **env}, check=True)
    key = created.stdout.strip().splitlines()[-1]
    assert invoke(replicas.b.url, key).status_code == 200  # at once: an unknown key refreshes B's cache
    assert invoke(replicas.a.url, key).status_code == 200
    subprocess.run([sys.executable, "-m", "tool_server", "keys", "revoke", name, "--state-dir",
                    str(replicas.b.state_dir)], capture_output=True, env={**_environ(), **env}, check=True)
    # Each replica's key cache refreshes on its own clock: both must refuse the key within the second.
    def both_refuse() -> bool:
        return all(invoke(replica.url, key).status_code == 401 for replica in (replicas.a, replicas.b))

    wait_for(both_refuse, 1.0, "A and B refusing the key revoked on B", interval=0.05)


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TOOLBRIDGE_")}


def test_a_rate_limit_of_60_a_minute_holds_across_both_replicas(replicas: Replicas) -> None:
    key = replicas.key("limited", rate_limit=60)
    urls = [replicas.a.url, replicas.b.url]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # 70 calls, 35 a replica: each alone would have let all through
        statuses = Counter(pool.map(lambda i: invoke(urls[i % 2], key).status_code, range(70)))
    assert set(statuses) == {200, 429}, statuses
    # 60 at once, then one more a second while the calls run (a loaded machine takes seconds for 70)
    for url in urls:
        while (answer := invoke(url, key)).status_code == 200:
            statuses[200] += 1
        assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1, answer.text
        assert "rate limit" in answer.json()["message"]
    refills = time.monotonic() - started
    assert 60 <= statuses[200] <= 60 + int(refills) + 1, (statuses, refills)


def test_2000_calls_spread_over_both_leave_2000_audit_rows(replicas: Replicas) -> None:
    key = replicas.key("audited")
    name = key_name_of(replicas, key)

    def client(i: int) -> Counter[int]:  # 16 clients, 125 calls each, keep-alive, half to each replica
        with httpx.Client() as http:
            server = (replicas.a, replicas.b)[i % 2]
            return Counter(invoke(server.url, key, http).status_code for _ in range(125))

    with ThreadPoolExecutor(16) as pool:
        statuses = sum(pool.map(client, range(16)), Counter[int]())
    assert statuses == {200: 2000}
    wait_for(lambda: replicas.audit_rows(name)[0] >= 2000, 30, "2,000 audit rows in PostgreSQL")
    assert replicas.audit_rows(name) == (2000, 2000)


def test_a_webhook_delivered_to_a_makes_b_answer_with_the_new_version_within_a_second(
        replicas: Replicas) -> None:
    old, new = replicas.versions
    key = replicas.a.admin_key
    assert invoke(replicas.b.url, key).headers["X-Toolbridge-Model-Version"] == old
    replicas.mlflow.set_registered_model_alias(TOOL, APPROVAL, new)
    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "data": {"name": TOOL, "alias": APPROVAL, "version": new}}).encode()
    delivery, now = str(uuid.uuid4()), str(int(time.time()))
    accepted = httpx.post(f"{replicas.a.url}/hooks/mlflow", content=body, timeout=10, headers={
        "Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign(SECRET, delivery, now, body)})
    assert accepted.status_code == 200, accepted.text
    wait_for(lambda: invoke(replicas.b.url, key).headers["X-Toolbridge-Model-Version"] == new, 1.0,
             f"B answering with version {new} after a webhook delivered to A\n{replicas.b.log()}",
             interval=0.05)
    replay = httpx.post(f"{replicas.b.url}/hooks/mlflow", content=body, timeout=10, headers={
        "Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign(SECRET, delivery, now, body)})
    assert replay.status_code == 401 and "already accepted" in replay.text  # the replay ids are shared


def test_calls_keep_answering_while_postgresql_restarts_and_no_audit_row_is_lost_or_doubled(
        replicas: Replicas) -> None:
    key, revoked = replicas.key("through-restart"), replicas.key("revoked-before")
    name = key_name_of(replicas, key)
    KeyStore(replicas.engine).revoke(key_name_of(replicas, revoked))
    wait_for(lambda: all(invoke(s.url, revoked).status_code == 401 for s in (replicas.a, replicas.b)), 5,
             "the revocation seen by both replicas")
    refused_during: list[int] = []
    stop = threading.Event()

    def client(i: int) -> Counter[int]:
        seen: Counter[int] = Counter()
        with httpx.Client() as http:
            server = (replicas.a, replicas.b)[i % 2]
            while not stop.is_set():
                seen[invoke(server.url, key, http).status_code] += 1
        return seen

    with ThreadPoolExecutor(8) as pool:
        running = [pool.submit(client, i) for i in range(8)]
        time.sleep(0.5)
        replicas.postgres.stop()
        try:
            assert not replicas.postgres.is_running()
            for server in (replicas.a, replicas.b):
                refused_during.append(invoke(server.url, revoked).status_code)
            time.sleep(2.0)
        finally:
            replicas.postgres.start()
        time.sleep(0.5)
        stop.set()
        statuses = sum((future.result() for future in running), Counter[int]())
    assert set(statuses) == {200}, statuses
    assert refused_during == [401, 401]
    calls = statuses[200]
    wait_for(lambda: replicas.audit_rows(name)[0] >= calls, 30,
             f"{calls} audit rows after PostgreSQL came back\n{replicas.a.log()}")
    assert replicas.audit_rows(name) == (calls, calls)


def test_with_redis_stopped_calls_go_on_with_per_process_limits_and_are_shared_again_when_it_returns(
        replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    replicas.redis.stop()
    try:
        key = replicas.key("redis-down", rate_limit=2)
        # Per process now: each replica grants its own 2 a minute.
        assert [invoke(a.url, key).status_code for _ in range(3)] == [200, 200, 429]
        assert [invoke(b.url, key).status_code for _ in range(3)] == [200, 200, 429]
        for server in (a, b):
            assert metric(server, "toolbridge_shared_state_degraded", component="redis") == 1
            assert "Redis cannot be reached" in server.full_log()
    finally:
        replicas.redis.start()
    for server in (a, b):
        wait_for(lambda s=server: (invoke(s.url, s.admin_key).status_code == 200  # type: ignore[misc]
                                   and metric(s, "toolbridge_shared_state_degraded", component="redis") == 0),
                 15, f"{server.url} back on Redis")
    key = replicas.key("redis-back", rate_limit=3)
    statuses = [invoke((a, b)[i % 2].url, key).status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]  # one bucket again
    assert replicas.redis.client().keys("toolbridge:bucket:*")
