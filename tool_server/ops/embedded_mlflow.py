"""The embedded default: a real `mlflow server` on loopback, SQLite and artifacts under the state dir."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bridge.process_group import spawn_group, stop_group
from tool_server.settings import persistent_secret

__all__ = ["EmbeddedMlflow", "MlflowStartError"]


class MlflowStartError(RuntimeError):
    """The embedded MLflow server did not come up."""


def _fernet_key() -> str:
    """Same as `cryptography.fernet.Fernet.generate_key()`, without depending on cryptography directly."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


class EmbeddedMlflow:
    def __init__(self, state_dir: Path, port: int) -> None:
        self.root = (state_dir / "mlflow").resolve()
        self.port = port
        self.log_path = self.root / "server.log"
        self.webhook_key_path = self.root / "webhook_encryption.key"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

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
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        # MLflow's job runner (GenAI evaluation jobs, unused by a registry) starts four huey consumers of
        # ~300 MB each; off unless the operator's environment turns it on.
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ, **self._webhook_env()}
        self._process = spawn_group(command, self.log_path, env, self.root / "server.pgid")
        self._wait_ready(timeout)

    def _webhook_env(self) -> dict[str, str]:
        """Lets this server call Toolbridge's webhook on loopback, over plain http.

        The Fernet key encrypts webhook secrets in mlflow.db. MLflow makes a random one per process when none
        is given, so after a restart (or in a second worker) stored secrets no longer decrypt (mlflow#19896):
        keep one next to the database, for good.
        """
        key = persistent_secret(self.webhook_key_path, _fernet_key)
        return {
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": key,
        }

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                taken = f" (port {self.port} taken)" if b"address already in use" in self._new_log() else ""
                raise MlflowStartError(f"mlflow server exited during start-up{taken}; see {self.log_path}")
            # /health alone may be answered by another server already on the port (a concurrent start saw it
            # free): ours is up once it says it listens. Then webhooks cannot end up in a stranger's MLflow.
            with contextlib.suppress(httpx.HTTPError):
                if (f"Uvicorn running on {self.uri}".encode() in self._new_log()
                        and httpx.get(f"{self.uri}/health", timeout=2.0).status_code == 200):
                    return
            time.sleep(0.25)
        self.stop()
        raise MlflowStartError(f"mlflow server not ready after {timeout:.0f}s; see {self.log_path}")

    def _new_log(self) -> bytes:
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read()

    def stop(self, grace: float = 10.0) -> None:
        process, self._process = self._process, None
        stop_group(process, self.root / "server.pgid", grace)
