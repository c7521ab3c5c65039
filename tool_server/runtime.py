"""Composition root: wires registry_sync and bridge together for one tool server process.

A single process (and the controller of several workers) runs the registry watcher and the bridge's hosts;
a worker (`control` given) runs neither and follows the routing table its controller publishes
(tool_server.workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from bridge.response_cache import MemoryBackend, RedisBackend, ResponseCache
from bridge.runtime import Bridge, BridgeSettings
from bridge.shadow import ShadowSettings
from bridge.toolspec import ToolSpec
from registry_sync import RegistryWatcher, SyncSettings
from tool_server.access.audit import AuditLog
from tool_server.access.catalog_tokens import CatalogTokens
from tool_server.access.db import make_engine
from tool_server.access.key_cache import CachedKeyStore
from tool_server.api.errors import error_code
from tool_server.api.wire import VersionStatusPublic
from tool_server.calls import CallObserver, Gateway
from tool_server.discovery.catalog import Discovery
from tool_server.discovery.settings import DiscoverySettings
from tool_server.ops.call_stats import CallStats
from tool_server.ops.metrics import Metrics
from tool_server.ops.shared_state import RedisWriterLock, SharedState
from tool_server.ops.usage import FileWriterLock, UsageWriteback
from tool_server.settings import (
    CacheSettings,
    ObservabilitySettings,
    SecuritySettings,
    ServerSettings,
    SharedStateSettings,
)
from tool_server.shadow.writeback import SHADOW_LOCK, ShadowWriteback
from tool_server.workers.follower import ControlClient, RouteFollower

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


def _fail_fast_mlflow_client() -> None:
    """MLflow's client retries for minutes by default; a pass should fail fast and back off instead."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _both(first: CallObserver, second: CallObserver) -> CallObserver:
    def observe(tool: str, version: str, channel: str, outcome: str, seconds: float) -> None:
        first(tool, version, channel, outcome, seconds)
        second(tool, version, channel, outcome, seconds)
    return observe


def _response_cache(settings: CacheSettings, tracking_uri: str, metrics: Metrics) -> ResponseCache | None:
    mode = settings.mode
    if mode == "off":
        return None
    if mode == "memory":
        backend: MemoryBackend | RedisBackend = MemoryBackend(settings.cache_max_entries)
        where = f"in process, at most {settings.cache_max_entries} entries"
    else:
        assert settings.cache_url is not None  # CacheSettings refuses redis without a URL
        backend = RedisBackend(settings.cache_url.get_secret_value(), settings.cache_timeout_seconds)
        where = "in Redis (TOOLBRIDGE_CACHE_URL)"
    log.info("response cache on: %s, answers kept %gs", where, settings.cache_ttl_seconds)
    return ResponseCache(backend, settings.cache_ttl_seconds, registry=tracking_uri,
                         observer=metrics.record_cache)


class Runtime:
    def __init__(self, server: ServerSettings, tracking_uri: str, sync: SyncSettings | None = None,
                 bridge: BridgeSettings | None = None, security: SecuritySettings | None = None,
                 cache: CacheSettings | None = None,
                 observability: ObservabilitySettings | None = None,
                 shadow: ShadowSettings | None = None, control: ControlClient | None = None) -> None:
        """`control`: this process is a worker following the controller behind it (no hosts, no watcher)."""
        from registry_sync.mlflow_source import MlflowRegistry  # imports mlflow: only when serving

        _fail_fast_mlflow_client()
        self.server = server
        self.tracking_uri = tracking_uri
        self.sync_settings = sync or SyncSettings()
        self.cache_settings = cache or CacheSettings()
        # Reads the runtime only when scraped; first, as the cache reports to it. A worker's counts are
        # summed with its siblings' (multiprocess files); the sync and host series come from the controller.
        self.metrics = Metrics(self, multiprocess=control is not None)
        shadow = shadow or ShadowSettings()
        self.bridge = Bridge(bridge or BridgeSettings(), server.state_dir / "logs", tracking_uri,
                             cache=_response_cache(self.cache_settings, tracking_uri, self.metrics),
                             shadow=shadow)
        self.follower = RouteFollower(control, self.bridge) if control is not None else None
        self.watcher = None if control is not None else RegistryWatcher(
            MlflowRegistry(tracking_uri), self.sync_settings.policy(), self.sync_settings.poll_interval,
            listener=self.bridge.on_snapshot)
        # The exported catalog: linted (quarantine), toolsets, search, cached per catalog version and key.
        self.discovery = Discovery(DiscoverySettings(), self.bridge.catalog,
                                   lambda: self.bridge.reconciler.routes,
                                   lambda spec: self.bridge.snapshot.refs.get(spec.key),
                                   # one writer of the lint tags: the controller, not each worker
                                   lint_sink=MlflowRegistry(tracking_uri) if control is None else None)
        self.bridge.catalog_listeners.append(self.discovery.on_catalog_changed)
        self.security = security or SecuritySettings()
        self.engine = make_engine(self.security.url(server.state_dir), self.security.database_pool_size)
        self.keys = CachedKeyStore(self.engine, self.security.key_refresh_seconds,
                                   on_degraded=self.metrics.set_degraded)
        # Redis (TOOLBRIDGE_REDIS_URL) shared by replicas: limits, replay ids, webhook fan-out, usage lock.
        self.shared = SharedState(SharedStateSettings(),
                                  self.watcher.trigger if self.watcher is not None else lambda: None,
                                  on_degraded=self.metrics.set_degraded)
        self.catalog_tokens = CatalogTokens(self.engine)
        self.audit = AuditLog(self.engine)
        self.shadow = ShadowWriteback(MlflowRegistry(tracking_uri), self.engine, shadow.writeback_seconds,
                                      shadow.examples, audit_inputs=self.security.audit_inputs,
                                      lock=RedisWriterLock(self.shared.link, SHADOW_LOCK)  # replicas
                                      if self.shared.link is not None  # else this up's workers
                                      else FileWriterLock(server.state_dir / "shadow.lock"))
        self.bridge.shadow.window_listeners.append(self.shadow.add_window)
        self.bridge.shadow.disagreement_listeners.append(self.shadow.add_disagreement)
        self.call_stats = CallStats()  # the last hour per tool, this process only (GET /stats/calls)
        self.usage = UsageWriteback(MlflowRegistry(tracking_uri),
                                    (observability or ObservabilitySettings()).usage_writeback_seconds,
                                    lock=self.shared.usage_lock  # Redis: replicas; else workers
                                    or FileWriterLock(server.state_dir / "usage.lock"))
        self.calls = Gateway(self.tools, self.tool, self.bridge.invoker, self.keys, self.audit,
                             self.shared.limiter(self.security.rate_limit_per_minute), error_code,
                             audit_inputs=self.security.audit_inputs,
                             on_call=_both(self.metrics.record_call, self.call_stats.record),
                             on_usage=self.usage.record)
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.keys.start()
        await self.shared.start(listen=self.watcher is not None)  # the process with the watcher hears fan-out
        await self.audit.start()
        await self.shadow.start()
        if self.follower is not None:
            await self.follower.start()
            await self.bridge.shadow.start()  # a worker mirrors the calls it answers itself
        else:
            assert self.watcher is not None
            await self.bridge.start()
            self._loop_task = asyncio.create_task(self.watcher.run_forever())
        self.usage.start()

    async def stop(self) -> None:
        await self.usage.stop()  # one last write of the usage counts
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self.audit.stop()  # after the last request (uvicorn drains them first): every call is written
        if self.follower is not None:
            await self.follower.stop()
        await self.bridge.stop()  # in a worker: nothing was started, the response cache is closed
        await self.shadow.stop()  # after the bridge: the mirror's last windows are written too
        await self.shared.stop()
        await self.keys.stop()
        self.engine.dispose()

    def request_sync(self) -> None:
        """A registry pass as soon as possible (a verified webhook): the one seam for workers and replicas."""
        self.shared.publish_sync()  # the other replicas too (with Redis)
        if self.follower is not None:
            self.follower.request_sync()  # the controller's watcher runs it; every worker follows
        else:
            assert self.watcher is not None
            self.watcher.trigger()

    async def status(self) -> dict[str, Any]:
        """GET /status: the registry sync, each approved version, the hosts; a worker asks its controller."""
        if self.follower is not None:
            status = await self.follower.control.status()
            status["answered_by"] = {"pid": os.getpid(), "table": self.follower.generation}
            return status
        assert self.watcher is not None
        sync = self.watcher.status
        age = time.time() - sync.last_success_at if sync.last_success_at else None
        versions = self.bridge.status()
        # How far the approved versions are (a cold start loads them all); warm ones are no longer approved.
        counts = {state: sum(1 for row in versions if row.state == state)
                  for state in ("loading", "live", "failed")}
        return {
            "sync": {**sync.model_dump(), "last_success_age_seconds": age, "mlflow_uri": self.tracking_uri,
                     **counts, "total": sum(counts.values())},
            "versions": [VersionStatusPublic(**row.__dict__).model_dump() for row in versions],
            "excluded": [e.model_dump() for e in self.watcher.snapshot.excluded],
            "hosts": await self.bridge.host_status(),
        }

    async def metrics_text(self) -> bytes:
        """GET /metrics: a worker adds the controller's sync and host series to the calls of every worker."""
        if self.follower is None:
            return self.metrics.render()
        return self.metrics.render() + await self.follower.control.metrics()

    def tools(self) -> list[ToolSpec]:
        return self.discovery.tools()  # quarantined tools left out of every export and call

    def tool(self, name: str) -> ToolSpec | None:
        return self.discovery.tool(name)
