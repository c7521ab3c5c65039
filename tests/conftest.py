"""Shared fixtures: isolated environment, and real servers (mlflow, toolbridge) on free loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from bridge.hosts import free_port
from tests.servers import postgres_server, redis_server  # noqa: F401  (session fixtures: real PostgreSQL, Redis)
from tool_server.ops.embedded_mlflow import EmbeddedMlflow


def _forget_mlflow_uris() -> None:
    """mlflow's fluent API keeps the URIs in module globals *and* exports them to os.environ."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    registry_utils._registry_uri = None
    tracking_utils._tracking_uri = None
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def forget_mlflow_uris() -> Iterator[None]:
    """A test that calls mlflow.set_tracking_uri must not point the next test's clients (or the servers it
    starts) at its MLflow."""
    yield
    _forget_mlflow_uris()


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's Toolbridge or MLflow settings."""
    for name in list(os.environ):
        if name.startswith(("TOOLBRIDGE_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")):
            monkeypatch.delenv(name)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll until `predicate` returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@pytest.fixture(scope="session")
def mlflow_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMlflow]:
    """A real `mlflow server` (SQLite, served artifacts) on a free loopback port."""
    server = EmbeddedMlflow(tmp_path_factory.mktemp("mlflow-state"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(mlflow_embedded: EmbeddedMlflow) -> str:
    """The tracking URI of the shared test MLflow server."""
    return mlflow_embedded.uri


def _inherited_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}


class ToolbridgeProcess:
    """`toolbridge up` as a user runs it, in its own process group; `headers` carry its admin key."""

    started: ClassVar[dict[str, ToolbridgeProcess]] = {}  # by URL, for helpers that are handed only a URL

    def __init__(self, args: list[str], state_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_dir = state_dir
        ToolbridgeProcess.started[self.url] = self
        self.log_path = state_dir / "toolbridge.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "tool_server", "up", "--port", str(self.port),
                   "--state-dir", str(state_dir), *args]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL,
                                            # never the default 5000: a parallel run may hold it
                                            env={**_inherited_environ(),
                                                 "TOOLBRIDGE_MLFLOW_PORT": str(free_port()), **env},
                                            start_new_session=True)

    def wait_healthy(self, timeout: float = 180.0) -> None:
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"toolbridge exited early:\n{self.log()}")
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

        wait_for(healthy, timeout, "toolbridge /healthz")

    @property
    def admin_key(self) -> str:
        """The key `toolbridge up` created on first start (STATE_DIR/admin.key, mode 0600)."""
        return (self.state_dir / "admin.key").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def log(self) -> str:
        """The log's tail, for failure messages."""
        return self.log_path.read_text(errors="replace")[-6000:]

    def full_log(self) -> str:
        """The whole log, for assertions: access lines soon push start-up lines out of the tail."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


FAST_SYNC = {"TOOLBRIDGE_POLL_INTERVAL": "1", "TOOLBRIDGE_DRAIN_GRACE": "2", "TOOLBRIDGE_KEEP_WARM": "5",
             "TOOLBRIDGE_HOST_MEMORY_BUDGET_MB": "2048",
             "TOOLBRIDGE_WEBHOOK_SECRET": "shared-test-secret-0123456789",
             # load tests share the admin key; 429s have their own
             "TOOLBRIDGE_RATE_LIMIT_PER_MINUTE": "1000000"}


def admin_headers(url: str) -> dict[str, str]:
    """The admin key's header for the toolbridge started at `url`."""
    return ToolbridgeProcess.started[url.rstrip("/")].headers


@pytest.fixture(scope="session")
def toolbridge(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolbridgeProcess]:
    """The tool server against the shared test MLflow server, polling every second."""
    server = ToolbridgeProcess(["--mlflow-uri", mlflow_server], tmp_path_factory.mktemp("toolbridge"),
                               FAST_SYNC)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def tools_by_name(url: str) -> dict[str, Any]:
    tools = httpx.get(f"{url}/tools", headers=admin_headers(url), timeout=10).json()
    return {tool["name"]: tool for tool in tools}


@pytest.fixture(scope="session")
def demo_tools(toolbridge: ToolbridgeProcess, mlflow_server: str) -> dict[str, Any]:
    """The three demo models registered with `champion` in the shared MLflow, and live as tools."""
    from tool_server.demo import DEMO_MODEL_NAMES, register_demo_models

    assert register_demo_models(mlflow_server) == list(DEMO_MODEL_NAMES)
    tools: dict[str, Any] = wait_for(
        lambda: (found := tools_by_name(toolbridge.url)).keys() >= set(DEMO_MODEL_NAMES) and found,
        120, f"the demo tools at GET /tools\n{toolbridge.log()}")
    return tools
