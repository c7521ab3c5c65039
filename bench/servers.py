"""Real servers for the benchmarks, each in a process group of its own that the bench always stops.

`toolbridge up` (with its model hosts and, without --mlflow-uri, its embedded MLflow), `mlflow models serve`
and a plain one-model BentoML service, on free loopback ports. Use them as context managers: `__exit__` stops
the group (bridge.process_group, as Toolbridge stops its children); `toolbridge up` is stopped with Ctrl-C,
then any model host or MLflow group it left is reaped the way its next start would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import psutil

from bridge.hosts import free_port
from bridge.process_group import reap_stale_groups, spawn_group, stop_group

__all__ = ["AdminKeyAuth", "BenchServer", "MlflowModelsServe", "PlainBento", "ToolbridgeUp", "tree_memory",
           "wait_for"]

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; RuntimeError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the developer's Toolbridge/MLflow settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOOLBRIDGE_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `mlflow models serve` execs `uvicorn`
    env["BENTOML_DO_NOT_TRACK"] = "true"
    return {**env, **extra}


def tree_memory(pid: int, children: bool = True) -> dict[str, int]:
    """RSS and PSS summed over a process and its descendants (PSS shares common pages fairly between them).

    By tree, not by process group: BentoML's worker runs in a session of its own, under its arbiter.
    """
    rss = pss = 0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *(root.children(recursive=True) if children else ())]:
            with contextlib.suppress(psutil.Error):
                info = proc.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
    return {"rss": rss, "pss": pss}


def _children(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return list(psutil.Process(pid).children(recursive=True))
    return []


class BenchServer:
    """One command in a new session (its own process group), logging to a file."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self.env = env
        self.pgid_file = log_path.with_suffix(".pgid")
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.process = spawn_group(self.command, self.log_path, self.env, self.pgid_file, cwd=REPO)

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{self.name} exited during start-up; log {self.log_path}:\n{tail}")

    def memory(self) -> dict[str, int]:
        return tree_memory(self.process.pid) if self.process is not None else {"rss": 0, "pss": 0}

    def stop(self, grace: float = 15.0) -> None:
        process, self.process = self.process, None
        stop_group(process, self.pgid_file, grace)

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AdminKeyAuth(httpx.Auth):
    """`Authorization: Bearer <STATE_DIR/admin.key>` whenever that file exists (API keys may be on)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "admin.key"
        self.key: str | None = None

    def _read(self) -> str | None:
        with contextlib.suppress(OSError):
            self.key = self.path.read_text().strip() or None
        return self.key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self.key or self._read()
        if key:
            request.headers["Authorization"] = f"Bearer {key}"
        response = yield request
        if response.status_code == 401 and (fresh := self._read()) and fresh != key:
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request


class ToolbridgeUp(BenchServer):
    """`toolbridge up` as a user runs it; stopped with Ctrl-C (SIGINT) so it stops its hosts and MLflow."""

    def __init__(self, state_dir: Path, args: list[str], env: dict[str, str]) -> None:
        self.state_dir = state_dir.resolve()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = AdminKeyAuth(self.state_dir)
        command = [sys.executable, "-m", "tool_server", "up", "--port", str(self.port),
                   "--state-dir", str(self.state_dir), *args]
        super().__init__("toolbridge up", command, self.state_dir / "toolbridge.log", clean_env(**env))

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=timeout)

    def wait_healthy(self, timeout: float = 240.0) -> None:
        def healthy() -> bool:
            self.check_alive()
            return httpx.get(f"{self.url}/healthz", timeout=2.0, auth=self.auth).status_code == 200

        wait_for(healthy, timeout, f"toolbridge /healthz (log {self.log_path})", interval=0.25)

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/status", timeout=30.0, auth=self.auth)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def tools(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/tools", timeout=10.0, auth=self.auth)
        response.raise_for_status()
        return {tool["name"]: tool for tool in response.json()}

    def child_pid(self, marker: str) -> int | None:
        """The pid of the child process (model host, embedded MLflow) whose command line contains `marker`."""
        for child in _children(self.process.pid) if self.process is not None else []:
            with contextlib.suppress(psutil.Error):
                if child.ppid() == self.process.pid and marker in " ".join(child.cmdline()):
                    return int(child.pid)
        return None

    def host_pid(self, host: dict[str, Any]) -> int | None:
        """The `bentoml serve` process of a host listed by `GET /status`."""
        return self.child_pid(f"--port {host['url'].rsplit(':', 1)[1]}")

    def stop(self, grace: float = 60.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                stop_group(process, self.pgid_file, 5.0)
        # Hosts or MLflow it did not stop itself (none after a clean Ctrl-C), as its next start would.
        reap_stale_groups(self.state_dir)


class MlflowModelsServe(BenchServer):
    """`mlflow models serve -m URI --env-manager local` on a free port (uvicorn, 1 worker by default)."""

    def __init__(self, model_uri: str, tracking_uri: str, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(self.port)]
        super().__init__("mlflow models serve", command, log_dir / f"mlflow-serve-{self.port}.log",
                         clean_env(MLFLOW_TRACKING_URI=tracking_uri))

    def wait_ready(self, timeout: float = 180.0) -> None:
        def ready() -> bool:
            self.check_alive()
            return httpx.get(f"{self.url}/ping", timeout=2.0).status_code == 200

        wait_for(ready, timeout, f"mlflow models serve /ping (log {self.log_path})")


class PlainBento(BenchServer):
    """`bentoml serve bench.plain_bento_service:PlainModel`: one MLflow model, as a user would write it."""

    def __init__(self, model_uri: str, tracking_uri: str, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "bentoml", "serve", "bench.plain_bento_service:PlainModel",
                   "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__("plain BentoML service", command, log_dir / f"plain-bento-{self.port}.log",
                         clean_env(MLFLOW_TRACKING_URI=tracking_uri, BENCH_MODEL_URI=model_uri))

    def wait_ready(self, timeout: float = 180.0) -> None:
        def ready() -> bool:
            self.check_alive()
            return httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200

        wait_for(ready, timeout, f"plain BentoML /readyz (log {self.log_path})")
