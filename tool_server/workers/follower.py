"""A worker follows the controller: it long-polls the published routing table and swaps it into its Bridge,
forwards sync requests (webhooks), and reads the controller's status and metrics for `/status` and `/metrics`.

The control endpoint listens on loopback only and wants the token the controller handed its workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import httpx

from bridge.host_client import HostClient
from bridge.hosting.remote_pool import RemotePool
from bridge.runtime import Bridge
from tool_server.workers.table import FollowedTable, Lives, TableError, decode_table

__all__ = ["LONG_POLL_SECONDS", "ControlClient", "ControllerUnavailable", "RouteFollower"]

log = logging.getLogger(__name__)

LONG_POLL_SECONDS = 20.0  # the controller answers a table request at the latest after this, changed or not
REMOTE_PREFIX = "pool:"  # bridge.host_pool names the hosts of a remote pool so


class ControllerUnavailable(Exception):
    """The controller's control endpoint did not answer (it is stopping, or gone)."""


class ControlClient:
    """HTTP client of the controller's loopback control endpoint."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {token}"},
                                       timeout=httpx.Timeout(10.0, read=LONG_POLL_SECONDS + 15.0))

    async def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = await self._http.get(path, params=params)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ControllerUnavailable(f"the controller at {self.url} did not answer {path}: {exc}") from exc
        return response

    async def table(self, after: int) -> tuple[int, dict[str, Any]]:
        """The published table once its generation is not `after` (or after the long-poll timeout)."""
        body = (await self._get("/control/table", after=after, worker=os.getpid())).json()
        return int(body["generation"]), body["table"]

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = (await self._get("/control/status")).json()
        return status

    async def metrics(self) -> bytes:
        return (await self._get("/control/metrics")).content

    async def request_sync(self) -> None:
        try:
            (await self._http.post("/control/sync")).raise_for_status()
        except httpx.HTTPError as exc:
            raise ControllerUnavailable(f"the controller at {self.url} did not take the sync request: "
                                        f"{exc}") from exc

    async def close(self) -> None:
        await self._http.aclose()


class RouteFollower:
    """Keeps a worker's Bridge routing exactly what the controller publishes; never loads a model."""

    def __init__(self, control: ControlClient, bridge: Bridge) -> None:
        self.control = control
        self.bridge = bridge
        self.generation = 0
        self.applied_at: float | None = None
        self._lives: Lives = {}
        self._clients: dict[tuple[str, tuple[str, ...]], HostClient] = {}
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def start(self, timeout: float = 60.0) -> None:
        """Apply the current table before serving (a worker never answers from an empty table while the
        controller has one), then follow it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                generation, table = await self.control.table(after=-1)
                break
            except ControllerUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        await self._apply(generation, table)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        # The flag as well as the cancel: an HTTP client may turn the cancellation of a request into an error.
        self._stopping = True
        for task in [self._task, *self._background]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._task, *self._background] if t), return_exceptions=True)
        for client in self._clients.values():
            await client.close()
        await self.control.close()

    def request_sync(self) -> None:
        """Ask the controller for a registry pass now (a verified webhook reached this worker)."""
        task = asyncio.create_task(self._forward_sync())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _forward_sync(self) -> None:
        try:
            await self.control.request_sync()
        except ControllerUnavailable as exc:  # the next poll picks the change up anyway
            log.warning("%s", exc)

    async def _follow(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                generation, table = await self.control.table(after=self.generation)
                if generation != self.generation:
                    await self._apply(generation, table)
                delay = 0.2
            except (ControllerUnavailable, TableError) as exc:  # keep routing the last table (fail-static)
                if self._stopping:
                    return
                log.warning("worker %d keeps routing table %d: %s", os.getpid(), self.generation, exc)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
            except Exception:  # a bug in one table must not end the following: log it, try again
                if self._stopping:
                    return
                log.exception("worker %d could not apply a routing table", os.getpid())
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _apply(self, generation: int, table: dict[str, Any]) -> None:
        followed = decode_table(table, self._connect, self._lives)
        before = self.bridge.catalog()
        self._swap(followed)
        self._lives, self.generation, self.applied_at = followed.lives, generation, time.time()
        self._retire_unused_clients()
        log.debug("worker %d routes table %d (%d tools)", os.getpid(), generation, len(followed.routes))
        if self.bridge.catalog() != before:
            for listener in self.bridge.catalog_listeners:
                try:
                    await listener()
                except Exception:  # a gone MCP session must not stop the worker following the table
                    log.exception("catalog listener failed")

    def _swap(self, followed: FollowedTable) -> None:
        bridge = self.bridge
        bridge.snapshot = followed.snapshot  # first: the cache decision of the new versions reads it
        bridge.reconciler.routes = followed.routes  # one assignment, as the controller's reconciler does
        # In place: the invoker holds this set's __contains__.
        bridge.restarting.intersection_update(followed.restarting)
        bridge.restarting.update(followed.restarting)

    def _connect(self, name: str, urls: tuple[str, ...]) -> HostClient:
        client = self._clients.get((name, urls))
        if client is None:
            settings = self.bridge.settings
            if name.startswith(REMOTE_PREFIX):
                client = RemotePool(name.removeprefix(REMOTE_PREFIX), urls, settings.call_timeout,
                                    settings.max_output_bytes)
            else:
                client = HostClient(urls[0], settings.call_timeout,
                                    max_output_bytes=settings.max_output_bytes)
            self._clients[(name, urls)] = client
        return client

    def _retire_unused_clients(self) -> None:
        used = {id(live.host) for _, live in self._lives.values()}
        for key, client in list(self._clients.items()):
            if id(client) not in used:
                del self._clients[key]
                # After the calls already routed to it had their time to finish.
                task = asyncio.create_task(_close_later(client, self.bridge.settings.call_timeout + 5.0))
                self._background.add(task)
                task.add_done_callback(self._background.discard)


async def _close_later(client: HostClient, delay: float) -> None:
    await asyncio.sleep(delay)
    await client.close()
