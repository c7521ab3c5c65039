"""Model host processes: start `bentoml serve` of the model host, wait until ready, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bridge.errors import BridgeError
from bridge.host_sandbox import HostLimits, Sandbox, host_environment
from bridge.process_group import spawn_group, stop_group

__all__ = ["HostProcess", "HostStartError", "free_port"]

SERVICE = "bridge.model_host.service:ModelHost"


class HostStartError(BridgeError):
    """A model host process did not become ready."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# How a Python traceback ends when an allocation failed (past RLIMIT_AS, or the machine's memory).
_MEMORY_ERROR = re.compile(rb"^MemoryError\b", re.MULTILINE)
_LOG_SCAN_MAX = 8 * 2**20


class HostProcess:
    """One `bentoml serve` process of the model host, on a loopback port, logging to a file.

    Its environment is the allow-list of `bridge.host_sandbox` plus `env` (the host's own settings); the
    `sandbox` decides its OS user and bubblewrap, `limits` its rlimits; it gets a scratch directory of its own
    (HOME, TMPDIR, its working directory), kept across restarts and removed when it stops."""

    def __init__(self, name: str, log_dir: Path, env: dict[str, str], port: int | None = None,
                 sandbox: Sandbox | None = None, limits: HostLimits | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.log_path = log_dir / f"host-{name}.log"
        self.pgid_file = log_dir / f"host-{name}.pgid"
        self.env = env
        self.sandbox = sandbox or Sandbox()
        self.limits = limits
        self.restarts = 0
        self._aliases: list[Path] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None
        self._log_scanned = 0

    @property
    def isolation(self) -> str:
        return self.sandbox.isolation

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
        if self._scratch is None:
            self._scratch = self.sandbox.new_scratch(self.name)
        env = host_environment(os.environ, {"BENTOML_DO_NOT_TRACK": "true",
                                            "TOOLBRIDGE_HOST_LOG": str(self.log_path),
                                            **self.env, **self.sandbox.scratch_env(self._scratch)})
        command = self.sandbox.command([sys.executable, "-m", "bentoml", "serve", SERVICE,
                                        "--host", "127.0.0.1", "--port", str(self.port)], self._scratch)
        with contextlib.suppress(OSError):
            self._log_scanned = self.log_path.stat().st_size
        user, group = self.sandbox.popen_user()
        self._process = spawn_group(command, self.log_path, env, self.pgid_file, cwd=self._scratch,
                                    user=user, group=group,
                                    preexec=self.limits.apply if self.limits is not None else None)

    def memory_errors(self) -> bool:
        """Whether the host logged a MemoryError since the last look (a model went past its address-space
        limit: the allocation failed and the model raised). Reads only what the log gained meanwhile."""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                start = max(self._log_scanned, size - _LOG_SCAN_MAX)
                log.seek(start)
                fresh = log.read(size - start)
        except OSError:
            return False
        self._log_scanned = size
        return _MEMORY_ERROR.search(fresh) is not None

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
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
