"""The model hosts: N shared hosts started up front, and dedicated hosts started for models that ask."""

from __future__ import annotations

import asyncio
import re
import zlib
from pathlib import Path

from bridge.host_client import HostClient
from bridge.hosts import HostProcess
from registry_sync import ModelVersionRef

__all__ = ["HostPool", "TAG_ISOLATION"]

TAG_ISOLATION = "toolbridge.isolation"


class HostPool:
    def __init__(self, log_dir: Path, env: dict[str, str], shared_hosts: int, call_timeout: float,
                 start_timeout: float) -> None:
        self.log_dir = log_dir
        self.env = env
        self.shared_hosts = shared_hosts
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self.processes: dict[str, HostProcess] = {}
        self.clients: dict[str, HostClient] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    @staticmethod
    def is_dedicated(name: str) -> bool:
        return name.startswith("dedicated-")

    def name_for(self, ref: ModelVersionRef) -> str:
        """A stable host per model: the same model always lands on the same shared host."""
        if ref.model_tags.get(TAG_ISOLATION, "").strip().lower() == "dedicated":
            return "dedicated-" + re.sub(r"[^A-Za-z0-9_-]+", "_", ref.name)
        return f"shared-{zlib.crc32(ref.name.encode()) % self.shared_hosts}"

    async def start(self) -> None:
        await asyncio.gather(*(self.client(f"shared-{i}") for i in range(self.shared_hosts)))

    async def client(self, name: str) -> HostClient:
        """The host's client, starting the host first if it is not running yet (dedicated hosts)."""
        if name in self.clients:
            return self.clients[name]
        async with self._starting.setdefault(name, asyncio.Lock()):
            if name not in self.clients:
                process = HostProcess(name, self.log_dir, self.env)
                await process.start(self.start_timeout)
                self.processes[name] = process
                self.clients[name] = HostClient(process.base_url, self.call_timeout)
        return self.clients[name]

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
        for name in list(self.processes):
            client = self.clients.pop(name, None)
            if client is not None:
                await client.close()
            await asyncio.to_thread(self.processes.pop(name).stop)
