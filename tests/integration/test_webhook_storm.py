"""A webhook storm (500 deliveries, duplicated and out of order) while aliases move converges to MLflow's
state, with passes coalesced rather than one per delivery."""

from __future__ import annotations

import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from mlflow import MlflowClient

from registry_sync.webhooks import sign
from tests.conftest import FAST_SYNC, ToolbridgeProcess, wait_for
from tests.integration.test_lifecycle import HEADLINE, register

pytestmark = pytest.mark.integration

SECRET = FAST_SYNC["TOOLBRIDGE_WEBHOOK_SECRET"]


def delivery(event: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    delivery_id, now = str(uuid.uuid4()), str(int(time.time()))
    return body, {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery_id,
                  "X-MLflow-Timestamp": now, "X-MLflow-Signature": sign(SECRET, delivery_id, now, body)}


def test_webhook_storm_converges_to_the_registry_state(
    toolbridge: ToolbridgeProcess, mlflow_server: str
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    versions = [register("storm_probe", mlflow_server) for _ in range(2)]
    client.set_registered_model_alias("storm_probe", "champion", versions[0])
    server = toolbridge
    # The shared server polls too: this proves the storm breaks nothing and its passes coalesce.

    def answering() -> str | None:
        answer = httpx.post(f"{server.url}/tools/storm_probe/invoke", json=HEADLINE, headers=server.headers,
                            timeout=30)
        return str(answer.json()["model"]["version"]) if answer.status_code == 200 else None

    wait_for(lambda: answering() == versions[0], 120, f"storm_probe live\n{server.log()}")
    passes_before = httpx.get(f"{server.url}/status", headers=server.headers,
                              timeout=10).json()["sync"]["passes"]

    rng = random.Random(7)
    events = [{"entity": "model_version_alias", "action": rng.choice(["created", "deleted"]),
               "timestamp": "2026-01-01T00:00:00Z",
               "data": {"name": "storm_probe", "alias": "champion", "version": rng.choice(versions)}}
              for _ in range(450)]
    deliveries = [delivery(event) for event in events]
    deliveries += rng.sample(deliveries, 50)  # MLflow retries: the same delivery again
    rng.shuffle(deliveries)
    client.set_registered_model_alias("storm_probe", "champion", versions[1])  # the truth moves meanwhile

    def send(item: tuple[bytes, dict[str, str]]) -> int:
        return httpx.post(f"{server.url}/hooks/mlflow", content=item[0], headers=item[1],
                          timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, deliveries))
    assert len(codes) == 500
    assert codes.count(200) == 450 and codes.count(401) == 50, sorted(set(codes))

    wait_for(lambda: answering() == versions[1], 60, f"convergence to version {versions[1]}\n{server.log()}")
    status = httpx.get(f"{server.url}/status", headers=server.headers, timeout=10).json()
    live = [row["version"] for row in status["versions"]
            if row["state"] == "live" and row["model"] == "storm_probe"]
    assert live == [versions[1]]
    passes = status["sync"]["passes"] - passes_before
    assert 1 <= passes < 450, f"{passes} passes for 450 accepted deliveries: they should coalesce"
