"""The embedded default: a real `mlflow server` on loopback, SQLite and artifacts under the state dir."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["EmbeddedMlflow", "MlflowStartError"]


class MlflowStartError(RuntimeError):
    """The embedded MLflow server did not come up."""


class EmbeddedMlflow:
    def __init__(self, state_dir: Path, port: int) -> None:
        self.root = (state_dir / "mlflow").resolve()
        self.port = port
        self.log_path = self.root / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        (self.root / "artifacts").mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts", "--workers", "1",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True,
                                             env={**os.environ})
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise MlflowStartError(f"mlflow server exited during start-up; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.uri}/health", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.25)
        self.stop()
        raise MlflowStartError(f"mlflow server not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self, grace: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
