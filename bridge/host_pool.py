"""The model hosts: N shared hosts started up front, dedicated hosts started for models that ask, and idle
spare hosts kept ready in the background so that a dedicated host starts by taking one (no cold start);
and the remote pools (bridge.hosting.remote_pool) that versions tagged `toolbridge.pool=<name>` go to.

Every host runs isolated as the pool's `Sandbox` says (decided once, at start); dedicated hosts, and the
spares that become them, also run under the dedicated `HostLimits`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.host_client import HostClient
from bridge.host_sandbox import HostLimits, Sandbox
from bridge.hosting.remote_pool import RemotePool, UnknownPool
from bridge.hosts import HostProcess
from registry_sync import ModelVersionRef

__all__ = ["DEFAULT_POOL", "HostPool", "SPARE_PREIMPORT", "TAG_ISOLATION", "TAG_POOL", "pool_of"]

log = logging.getLogger(__name__)

TAG_ISOLATION = "toolbridge.isolation"
TAG_POOL = "toolbridge.pool"
DEFAULT_POOL = "shared"  # local processes, unless TOOLBRIDGE_HOST_POOLS names a remote pool "shared"
REMOTE_PREFIX = "pool:"


def pool_of(ref: ModelVersionRef) -> str:
    """The host pool a version asks for: its version tag, else its model's, else the default."""
    chosen = ref.version_tags.get(TAG_POOL) or ref.model_tags.get(TAG_POOL) or DEFAULT_POOL
    return chosen.strip() or DEFAULT_POOL
# A spare imports the common flavors while it idles, so the first load on it does not pay for them.
SPARE_PREIMPORT = "mlflow.pyfunc,mlflow.sklearn,sklearn"


class HostPool:
    def __init__(self, log_dir: Path, env: dict[str, str], shared_hosts: int, call_timeout: float,
                 start_timeout: float, spare_hosts: int = 0, isolation: Callable[[], Sandbox] | None = None,
                 dedicated_limits: HostLimits | None = None, max_output_bytes: int | None = None,
                 remote_pools: dict[str, tuple[str, ...]] | None = None) -> None:
        self.log_dir = log_dir
        self.env = env
        self.shared_hosts = shared_hosts
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self.sandbox = Sandbox()  # the environment allow-list alone, until `start` plans the isolation
        self._plan_isolation = isolation
        self.dedicated_limits = dedicated_limits
        self.max_output_bytes = max_output_bytes
        self.processes: dict[str, HostProcess] = {}
        self.clients: dict[str, HostClient] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        self.spare_hosts = spare_hosts
        self.spares: dict[str, HostProcess] = {}  # ready and idle; never routed to, never placed on
        self.spare_clients: dict[str, HostClient] = {}
        self._spare_seq = 0
        self._spare_wanted = asyncio.Event()
        self._spare_keeper: asyncio.Task[None] | None = None
        self.remote = {name: RemotePool(name, urls, call_timeout, max_output_bytes)
                       for name, urls in (remote_pools or {}).items()}

    @staticmethod
    def is_dedicated(name: str) -> bool:
        return name.startswith("dedicated-")

    def name_for(self, ref: ModelVersionRef) -> str:
        """A stable host per model: the same model always lands on the same shared host."""
        if ref.model_tags.get(TAG_ISOLATION, "").strip().lower() == "dedicated":
            return "dedicated-" + re.sub(r"[^A-Za-z0-9_-]+", "_", ref.name)
        pool = pool_of(ref)
        if pool != DEFAULT_POOL or pool in self.remote:
            return REMOTE_PREFIX + pool  # an unknown one fails in `client`, as this version's problem
        return f"shared-{zlib.crc32(ref.name.encode()) % self.shared_hosts}"

    def _process(self, name: str, env: dict[str, str], dedicated: bool) -> HostProcess:
        return HostProcess(name, self.log_dir, env, sandbox=self.sandbox,
                           limits=self.dedicated_limits if dedicated else None)

    def _client(self, process: HostProcess) -> HostClient:
        return HostClient(process.base_url, self.call_timeout, max_output_bytes=self.max_output_bytes)

    async def start(self) -> None:
        if self._plan_isolation is not None:
            self.sandbox = await asyncio.to_thread(self._plan_isolation)
            if self.sandbox.user is None and self.dedicated_limits is not None:
                # RLIMIT_NPROC counts every process of the user: shared with the tool server, it would
                # count the tool server's threads too.
                self.dedicated_limits = dataclasses.replace(self.dedicated_limits, max_processes=0)
        if DEFAULT_POOL in self.remote:
            return  # every version goes to remote pools unless it asks for a dedicated host (started then)
        await asyncio.gather(*(self.client(f"shared-{i}") for i in range(self.shared_hosts)))
        if self.spare_hosts > 0:  # in the background: a spare never delays start-up
            self._spare_keeper = asyncio.create_task(self._keep_spares())

    def roles(self) -> dict[str, tuple[str, HostProcess, HostClient]]:
        """Every host process by name, with its role (shared, dedicated, spare) and client: for status."""
        rows = {name: ("dedicated" if self.is_dedicated(name) else "shared", process, self.clients[name])
                for name, process in self.processes.items() if name in self.clients}
        rows.update({name: ("spare", process, self.spare_clients[name])
                     for name, process in self.spares.items() if name in self.spare_clients})
        return rows

    async def client(self, name: str) -> HostClient:
        """The host's client, starting the host first if it is not running yet (dedicated hosts)."""
        if name in self.clients:
            return self.clients[name]
        if name.startswith(REMOTE_PREFIX):
            return self._remote(name.removeprefix(REMOTE_PREFIX))
        async with self._starting.setdefault(name, asyncio.Lock()):
            if name not in self.clients:
                spare = self._take_spare(name) if self.is_dedicated(name) else None
                if spare is None:
                    process = self._process(name, self.env, dedicated=self.is_dedicated(name))
                    await process.start(self.start_timeout)
                    spare = process, self._client(process)
                self.processes[name], self.clients[name] = spare
        return self.clients[name]

    def _remote(self, pool: str) -> RemotePool:
        if pool in self.remote:
            return self.remote[pool]
        known = ", ".join(sorted({DEFAULT_POOL, *self.remote}))
        raise UnknownPool(f"the model asks for host pool {pool!r} (tag {TAG_POOL}), which is not configured; "
                          f"configured pools: {known}. Fix the tag, or add the pool to TOOLBRIDGE_HOST_POOLS "
                          "(or to its TOOLBRIDGE_HOST_POOLS_FILE)")

    async def remote_status(self) -> list[dict[str, Any]]:
        """One row per URL of each remote pool (for status): ready or not, and what it holds."""
        rows = []
        for name, pool in sorted(self.remote.items()):
            for index, replica in enumerate(await pool.health()):
                rows.append({"name": f"{name}[{index}]", "role": f"remote pool {name}", "pool": name,
                             "pid": None, "alive": replica.pop("ready"), "restarts": 0, "isolation": "remote",
                             "limits": None, **replica})
        return rows

    def _take_spare(self, name: str) -> tuple[HostProcess, HostClient] | None:
        """A ready spare, now host `name` (same process), with a replacement asked for; None if none."""
        spare = next((key for key, process in self.spares.items() if process.alive), None)
        if spare is None:
            return None
        process = self.spares.pop(spare)
        client = self.spare_clients.pop(spare)
        process.adopt(name)
        self._spare_wanted.set()
        log.info("model host %s: took spare %s (pid %s)", name, spare, process.pid)
        return process, client

    async def _keep_spares(self) -> None:
        """Keep `spare_hosts` spares ready: replace a spare that exited; one that fails to start is logged
        and tried again with backoff (nobody waits for a spare, so it is never anyone's error)."""
        delay = 1.0
        while True:
            for name, process in list(self.spares.items()):
                if not process.alive:
                    log.warning("spare model host %s exited; starting another", name)
                    del self.spares[name]
                    await self.spare_clients.pop(name).close()
                    await asyncio.to_thread(process.stop)
            if len(self.spares) >= self.spare_hosts:
                self._spare_wanted.clear()
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that races the event,
                # and `stop` would wait for this task forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        await self._spare_wanted.wait()
                continue
            self._spare_seq += 1
            # A spare only ever becomes a dedicated host: it starts under the dedicated limits.
            env = {**self.env, "TOOLBRIDGE_HOST_PREIMPORT": SPARE_PREIMPORT}
            process = self._process(f"spare-{self._spare_seq}", env, dedicated=True)
            try:
                await process.start(self.start_timeout)
            except asyncio.CancelledError:
                process.stop()
                raise
            except Exception as exc:
                log.error("spare model host %s did not start: %s; next try in %.0fs",
                          process.name, exc, delay)
                await asyncio.to_thread(process.stop)
                await asyncio.sleep(delay)
                delay = min(60.0, delay * 2)
                continue
            delay = 1.0
            self.spares[process.name] = process
            self.spare_clients[process.name] = self._client(process)

    def memory_breach(self, name: str, error: str = "") -> str | None:
        """Why host `name`'s model failed, if it went past the dedicated memory limit (a MemoryError in the
        `error` it answered or in its log since the last look); None otherwise, or without a limit."""
        process = self.processes.get(name)
        limits = process.limits if process is not None else None
        if process is None or limits is None or not limits.memory_mb:
            return None
        if "MemoryError" not in error and not process.memory_errors():
            return None
        return (f"the model went past the memory limit of its dedicated host ({limits.memory_mb} MB of "
                "address space, TOOLBRIDGE_DEDICATED_MEMORY_MB): its host was stopped")

    async def retire(self, name: str) -> None:
        """Stop a dedicated host that serves nothing any more."""
        if not self.is_dedicated(name):
            return
        process, client = self.processes.pop(name, None), self.clients.pop(name, None)
        if client is not None:
            await client.close()
        if process is not None:
            await asyncio.to_thread(process.stop)

    async def stop(self) -> None:
        if self._spare_keeper is not None:
            self._spare_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._spare_keeper
        for name in list(self.spares):
            await self.spare_clients.pop(name).close()
            await asyncio.to_thread(self.spares.pop(name).stop)
        for name in list(self.processes):
            client = self.clients.pop(name, None)
            if client is not None:
                await client.close()
            await asyncio.to_thread(self.processes.pop(name).stop)
        for pool in self.remote.values():
            await pool.close()
        self.sandbox.cleanup()
