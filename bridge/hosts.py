"""Model host processes: start `bentoml serve` of the model host, wait until ready, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bridge.errors import BridgeError
from bridge.process_group import spawn_group, stop_group

__all__ = ["HostProcess", "HostStartError", "free_port"]

SERVICE = "bridge.model_host.service:ModelHost"


class HostStartError(BridgeError):
    """A model host process did not become ready."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HostProcess:
    """One `bentoml serve` process of the model host, on a loopback port, logging to a file."""

    def __init__(self, name: str, log_dir: Path, env: dict[str, str], port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.log_path = log_dir / f"host-{name}.log"
        self.pgid_file = log_dir / f"host-{name}.pgid"
        self.env = env
        self.restarts = 0
        self._aliases: list[Path] = []
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def adopt(self, name: str) -> None:
        """Serve as host `name` from now on (a spare taken into use). Its log and pgid files keep their
        paths, which its processes carry in their group marker; links under the new name lead to them."""
        self.name = name
        for path in (self.log_path, self.pgid_file):
            alias = path.with_name(f"host-{name}{path.suffix}")
            alias.unlink(missing_ok=True)
            alias.symlink_to(path.name)
            self._aliases.append(alias)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def spawn(self) -> None:
        env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "TOOLBRIDGE_HOST_LOG": str(self.log_path),
               **self.env}
        self._process = spawn_group(
            [sys.executable, "-m", "bentoml", "serve", SERVICE,
             "--host", "127.0.0.1", "--port", str(self.port)],
            self.log_path, env, self.pgid_file)

    async def start(self, timeout: float = 90.0) -> None:
        self.spawn()
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise HostStartError(
                        f"model host {self.name} exited during start-up; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base_url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise HostStartError(f"model host {self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    async def restart(self, timeout: float = 90.0) -> None:
        process, self._process = self._process, None
        stop_group(process, self.pgid_file)  # the aliases stay: the same files serve the next process
        self.restarts += 1
        await self.start(timeout)

    def stop(self, grace: float = 10.0) -> None:
        process, self._process = self._process, None
        stop_group(process, self.pgid_file, grace)
        for alias in self._aliases:
            alias.unlink(missing_ok=True)
