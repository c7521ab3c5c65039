"""`toolbridge up --workers N`: the controller process. It runs the Runtime (watcher, bridge, hosts) as a
single process does, binds the listening socket once, and keeps N worker processes serving on it: a worker
that dies is started again (with backoff if it keeps dying); SIGINT or SIGTERM stops the workers (they finish
their calls and write their audit records), then the hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import multiprocess

from tool_server.ops.metrics import MULTIPROC_DIR
from tool_server.runtime import Runtime
from tool_server.settings import ServerSettings
from tool_server.workers.control import Controller

__all__ = ["WorkerPool", "bind_listener", "serve_workers"]

log = logging.getLogger(__name__)

WORKER_MODULE = "tool_server.workers.worker"
STOP_GRACE_SECONDS = 30.0  # a stopping worker finishes its calls and flushes its audit log within this
_PR_SET_PDEATHSIG = 1


def bind_listener(host: str, port: int) -> socket.socket:
    """The one listening socket every worker accepts on (inherited by each, so the port never moves)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the controller dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0


class WorkerPool:
    """N worker processes sharing one listening socket, each started again when it dies."""

    def __init__(self, count: int, listener: socket.socket, env: dict[str, str],
                 metrics_dir: Path | None = None) -> None:
        self.listener = listener
        self.env = env
        self.metrics_dir = metrics_dir
        self.slots = [_Slot(index) for index in range(count)]
        self.stopping = False

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        # From the event loop's thread: PDEATHSIG fires when the *thread* that forked exits.
        fd = self.listener.fileno()
        slot.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE], env={**self.env, "TOOLBRIDGE_WORKER_LISTEN_FD": str(fd),
                                                        "TOOLBRIDGE_WORKER_INDEX": str(slot.index)},
            pass_fds=(fd,), stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        slot.started_at = time.monotonic()
        log.info("worker %d started (pid %d)", slot.index, slot.process.pid)

    async def supervise(self) -> None:
        """Start again each worker that exited; one that dies soon after starting waits longer each time."""
        while not self.stopping:
            now = time.monotonic()
            for slot in self.slots:
                process = slot.process
                if process is not None and process.poll() is not None:
                    quick = now - slot.started_at < 10.0
                    slot.backoff = min(30.0, slot.backoff * 2) if quick else 1.0
                    slot.next_start = now + slot.backoff
                    log.error("worker %d (pid %d) exited with %s; starting it again in %.0fs", slot.index,
                              process.pid, process.returncode, slot.backoff)
                    slot.process = None
                    if self.metrics_dir is not None:  # its counters stay summed; its live gauges go
                        multiprocess.mark_process_dead(process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
                elif process is None and now >= slot.next_start:
                    slot.restarts += 1
                    self._spawn(slot)
            await asyncio.sleep(0.2)

    def describe(self) -> list[dict[str, Any]]:
        return [{"index": slot.index, "pid": slot.process.pid if slot.process else None,
                 "alive": slot.process is not None and slot.process.poll() is None, "restarts": slot.restarts}
                for slot in self.slots]

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every worker (uvicorn's graceful shutdown), SIGKILL those still running after `grace`."""
        self.stopping = True
        running = [slot.process for slot in self.slots if slot.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(process.poll() is None for process in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for process in running:
            if process.poll() is None:
                log.error("worker pid %d did not stop within %.0fs: killed", process.pid, grace)
                process.kill()
                process.wait()


class _ControlServer(uvicorn.Server):
    """The control endpoint's uvicorn: the controller handles SIGINT and SIGTERM itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def _worker_env(settings: ServerSettings, tracking_uri: str, port: int, control_url: str, token: str,
                metrics_dir: Path) -> dict[str, str]:
    """What a worker is told: the settings the CLI resolved (flags, embedded MLflow, the bound port), the
    way to its controller, and where its metrics go; any other TOOLBRIDGE_* it reads as the controller did."""
    return {**os.environ, "TOOLBRIDGE_HOST": settings.host, "TOOLBRIDGE_PORT": str(port),
            "TOOLBRIDGE_STATE_DIR": str(settings.state_dir.resolve()), "TOOLBRIDGE_MLFLOW_URI": tracking_uri,
            "TOOLBRIDGE_WORKER_CONTROL_URL": control_url, "TOOLBRIDGE_WORKER_CONTROL_TOKEN": token,
            MULTIPROC_DIR: str(metrics_dir)}


def serve_workers(runtime: Runtime, settings: ServerSettings, tracking_uri: str,
                  listener: socket.socket) -> None:
    """Run the controller and `settings.workers` workers on `listener` until SIGINT or SIGTERM."""
    asyncio.run(_serve(runtime, settings, tracking_uri, listener))


async def _serve(runtime: Runtime, settings: ServerSettings, tracking_uri: str,
                 listener: socket.socket) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    token = secrets.token_urlsafe(32)
    controller = Controller(runtime, token)
    control_socket = bind_listener("127.0.0.1", 0)
    control_url = f"http://127.0.0.1:{control_socket.getsockname()[1]}"
    control = _ControlServer(uvicorn.Config(controller.app(), log_config=None, log_level=None,
                                            access_log=False, lifespan="off"))
    metrics_dir = settings.state_dir / "worker-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counts of an earlier run must not be summed in
    metrics_dir.mkdir(parents=True, mode=0o700)
    env = _worker_env(settings, tracking_uri, listener.getsockname()[1], control_url, token, metrics_dir)
    pool = WorkerPool(settings.workers, listener, env, metrics_dir)
    controller.workers = pool.describe
    tasks: list[asyncio.Task[None]] = []
    started = False
    try:
        tasks.append(asyncio.create_task(control.serve(sockets=[control_socket])))
        await runtime.start()
        started = True
        controller.publish_if_changed()  # a first table before the first worker asks
        tasks.append(asyncio.create_task(controller.publish_forever()))
        if not stop.is_set():
            pool.start()
            tasks.append(asyncio.create_task(pool.supervise()))
            log.info("%d workers serving on %s, one registry sync and one set of model hosts here (pid %d)",
                     settings.workers, settings.base_url, os.getpid())
            await stop.wait()
    finally:
        controller.stop()  # waiting long-polls answer at once
        await pool.stop()  # first: workers finish their calls on hosts that still run
        control.should_exit = True
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if started:  # as uvicorn's lifespan: a start that failed is not followed by a stop
            await runtime.stop()
        listener.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
