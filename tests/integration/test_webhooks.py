"""MLflow webhooks on real servers: an alias change reaches the catalog in seconds, not at the next poll.

`toolbridge up` runs with its embedded MLflow and a 300 s poll interval: after the start-up pass, only a
webhook can explain a change seen within a minute.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from bridge.hosts import free_port
from registry_sync.mlflow_source import WEBHOOK_EVENTS, MlflowRegistry
from registry_sync.webhooks import sign
from tests.conftest import ToolbridgeProcess, admin_headers, wait_for
from tool_server.api.app import create_app
from tool_server.demo import TrainedModel, register_trained_model, train_fin_sentiment
from tool_server.runtime import Runtime
from tool_server.settings import ServerSettings

pytestmark = pytest.mark.integration

POLL_INTERVAL = 300.0
WEBHOOK_BOUND = 60.0  # seconds; a fifth of the poll interval, and far above the lag measured here (~1-3 s)
TOOL = "webhook_sentiment"
HEADLINE = {"headline": "Initech shares rise after record quarterly revenue"}


@dataclass
class Hooked:
    server: ToolbridgeProcess
    mlflow_uri: str
    state: Path

    @property
    def hook_url(self) -> str:
        return f"{self.server.url}/hooks/mlflow"

    def secret(self) -> str:
        return (self.state / "webhook_secret").read_text().strip()


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooked]:
    """`toolbridge up` with its embedded MLflow (webhooks on by default), polling only every 300 s."""
    state = tmp_path_factory.mktemp("webhooks") / "state"
    # A free MLflow port rather than the default 5000, which a concurrent `up --demo` test may hold.
    env = {"TOOLBRIDGE_POLL_INTERVAL": str(POLL_INTERVAL), "TOOLBRIDGE_DRAIN_GRACE": "1",
           "TOOLBRIDGE_MLFLOW_PORT": str(free_port())}
    server = ToolbridgeProcess([], state, env)
    try:
        server.wait_healthy()
        mlflow_uri = httpx.get(f"{server.url}/status", headers=admin_headers(server.url),
                               timeout=10).json()["sync"]["mlflow_uri"]
        yield Hooked(server, mlflow_uri, state)
    finally:
        assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return dataclasses.replace(train_fin_sentiment(), name=TOOL)


def listed_version(url: str) -> str | None:
    tools = {t["name"]: t for t in httpx.get(f"{url}/tools", headers=admin_headers(url), timeout=10).json()}
    return str(tools[TOOL]["model"]["version"]) if TOOL in tools else None


def versions_seen(url: str) -> set[str]:
    """Versions of TOOL the sync has seen approved (any state: loading, live...)."""
    rows = httpx.get(f"{url}/status", headers=admin_headers(url), timeout=10).json()["versions"]
    return {str(row["version"]) for row in rows if row["model"] == TOOL}


def timed(change: Callable[[], object], done: Callable[[], bool], what: str, log: Callable[[], str],
          seen: Callable[[], bool] | None = None) -> tuple[float, float | None]:
    """Seconds from `change()` returning to `done()` holding, and to `seen()` holding first if given."""
    change()
    started, seen_after = time.monotonic(), None

    def check() -> bool:
        nonlocal seen_after
        if seen is not None and seen_after is None and seen():
            seen_after = time.monotonic() - started
        return done()

    wait_for(check, WEBHOOK_BOUND, f"{what} (by webhook; next poll in {POLL_INTERVAL:.0f}s)\n{log()}",
             interval=0.05)
    return time.monotonic() - started, seen_after


def test_embedded_up_registers_one_signed_webhook_with_private_files(hooked: Hooked) -> None:
    hooks = [h for h in MlflowClient(hooked.mlflow_uri).list_webhooks() if h.name == "toolbridge"]
    assert [h.url for h in hooks] == [hooked.hook_url]
    assert sorted(f"{e.entity}.{e.action}" for e in hooks[0].events) == sorted(WEBHOOK_EVENTS)
    for secret_file in (hooked.state / "webhook_secret", hooked.state / "mlflow" / "webhook_encryption.key"):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
    # Registering again (a restart does) updates the same webhook instead of adding one.
    again = MlflowRegistry(hooked.mlflow_uri).register_webhook(hooked.hook_url, hooked.secret())
    assert again == hooks[0].webhook_id
    assert [h.webhook_id for h in MlflowClient(hooked.mlflow_uri).list_webhooks()] == [again]


def test_alias_set_move_and_delete_reach_the_catalog_by_webhook(hooked: Hooked,
                                                                trained: TrainedModel) -> None:
    url, client = hooked.server.url, MlflowClient(hooked.mlflow_uri)
    first = str(register_trained_model(trained, tracking_uri=hooked.mlflow_uri, aliases=()).version)
    second = str(register_trained_model(trained, tracking_uri=hooked.mlflow_uri, aliases=()).version)
    assert listed_version(url) is None

    listed, seen = timed(lambda: client.set_registered_model_alias(TOOL, "champion", first),
                         lambda: listed_version(url) == first, "the tool listed", hooked.server.log,
                         seen=lambda: first in versions_seen(url))
    moved, _ = timed(lambda: client.set_registered_model_alias(TOOL, "champion", second),
                     lambda: listed_version(url) == second, "the moved alias", hooked.server.log)
    answer = httpx.post(f"{url}/tools/{TOOL}/invoke", headers=admin_headers(url), json=HEADLINE, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Toolbridge-Model-Version"] == second
    withdrawn, _ = timed(lambda: client.delete_registered_model_alias(TOOL, "champion"),
                         lambda: listed_version(url) is None, "the tool withdrawn", hooked.server.log)
    print(f"\nwebhook lag, MLflow call returned → seen: alias set → version in /status {seen:.2f}s, "
          f"→ tool listed {listed:.2f}s (incl. model load + smoke test); alias moved → new version listed "
          f"{moved:.2f}s; alias deleted → tool withdrawn {withdrawn:.2f}s")
    status = httpx.get(f"{url}/status", headers=admin_headers(url), timeout=10).json()["sync"]
    assert status["passes"] >= 4, status  # the start-up pass plus at least one per change, with no poll due


def post_hook(hooked: Hooked, body: bytes, delivery_id: str, timestamp: str,
              signature: str) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery_id,
               "X-MLflow-Timestamp": timestamp, "X-MLflow-Signature": signature}
    return httpx.post(hooked.hook_url, content=body, headers=headers, timeout=10)


def alias_event() -> bytes:
    return json.dumps({"entity": "model_version_alias", "action": "created",
                       "timestamp": "2026-01-01T00:00:00Z",
                       "data": {"name": TOOL, "alias": "champion", "version": "1"}}).encode()


def test_forged_stale_and_replayed_deliveries_get_401(hooked: Hooked) -> None:
    body, secret = alias_event(), hooked.secret()

    def signed(at: int) -> tuple[str, str, str]:
        delivery_id = str(uuid.uuid4())
        return delivery_id, str(at), sign(secret, delivery_id, str(at), body)

    forged_id, now, _ = signed(int(time.time()))
    forged = post_hook(hooked, body, forged_id, now, sign("not-the-secret-at-all", forged_id, now, body))
    stale = post_hook(hooked, body, *signed(int(time.time()) - 3600))
    unsigned = httpx.post(hooked.hook_url, content=body, timeout=10)
    fresh = signed(int(time.time()))
    accepted = post_hook(hooked, body, *fresh)
    replayed = post_hook(hooked, body, *fresh)

    assert accepted.status_code == 200 and accepted.json() == {"accepted": True}, accepted.text
    for answer, why in ((forged, "signature does not match"), (stale, "outside the 300s window"),
                        (unsigned, "missing header"), (replayed, "already accepted")):
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "webhook_rejected" and why in answer.json()["message"], answer.text
        assert secret not in answer.text


def post_in_process(state: Path, body: bytes, headers: dict[str, str] | None = None,
                    **settings: Any) -> tuple[httpx.Response, Runtime]:
    """POST to the real app over ASGI, without its lifespan: no MLflow, model host or server starts."""
    runtime = Runtime(ServerSettings(state_dir=state, **settings), "http://127.0.0.1:9")
    transport = httpx.ASGITransport(app=create_app(runtime))

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            return await client.post("/hooks/mlflow", content=body, headers=headers or {})

    return asyncio.run(post()), runtime


@pytest.fixture
def quiet_mlflow_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runtime() sets these process-wide; setting them here lets the test's teardown restore them."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


@pytest.mark.usefixtures("quiet_mlflow_client")
def test_without_a_secret_the_hook_says_webhooks_are_off(tmp_path: Path) -> None:
    answer, _ = post_in_process(tmp_path, alias_event())
    assert answer.status_code == 404
    assert answer.json()["error"] == "webhooks_disabled" and "webhooks are off" in answer.json()["message"]


@pytest.mark.usefixtures("quiet_mlflow_client")
def test_a_delivery_signed_with_the_env_secret_wakes_the_watcher(tmp_path: Path) -> None:
    secret = "an-env-secret-of-32-characters!!"
    delivery_id, now, body = str(uuid.uuid4()), str(int(time.time())), alias_event()
    headers = {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": now,
               "X-MLflow-Signature": sign(secret, delivery_id, now, body)}
    answer, runtime = post_in_process(tmp_path, body, headers, webhook_secret=secret)
    assert answer.status_code == 200 and answer.json() == {"accepted": True}
    assert runtime.watcher._wake.is_set()  # the next registry pass runs now, not at the next poll
