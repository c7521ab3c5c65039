"""Composition root: wires registry_sync and bridge together for one tool server process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from bridge.response_cache import MemoryBackend, RedisBackend, ResponseCache
from bridge.runtime import Bridge, BridgeSettings
from bridge.shadow import ShadowSettings
from bridge.toolspec import ToolSpec
from registry_sync import RegistryWatcher, SyncSettings
from tool_server.access.audit import AuditLog
from tool_server.access.catalog_tokens import CatalogTokens
from tool_server.access.db import make_engine
from tool_server.access.keys import KeyStore
from tool_server.access.limits import RateLimiter
from tool_server.api.errors import error_code
from tool_server.calls import CallObserver, Gateway
from tool_server.discovery.catalog import Discovery
from tool_server.discovery.settings import DiscoverySettings
from tool_server.ops.call_stats import CallStats
from tool_server.ops.metrics import Metrics
from tool_server.ops.usage import UsageWriteback
from tool_server.settings import CacheSettings, ObservabilitySettings, SecuritySettings, ServerSettings
from tool_server.shadow.writeback import ShadowWriteback

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
                 shadow: ShadowSettings | None = None) -> None:
        from registry_sync.mlflow_source import MlflowRegistry  # imports mlflow: only when serving

        _fail_fast_mlflow_client()
        self.server = server
        self.tracking_uri = tracking_uri
        self.sync_settings = sync or SyncSettings()
        self.cache_settings = cache or CacheSettings()
        self.metrics = Metrics(self)  # reads the runtime only when scraped; first, as the cache reports to it
        shadow = shadow or ShadowSettings()
        self.bridge = Bridge(bridge or BridgeSettings(), server.state_dir / "logs", tracking_uri,
                             cache=_response_cache(self.cache_settings, tracking_uri, self.metrics),
                             shadow=shadow)
        self.watcher = RegistryWatcher(MlflowRegistry(tracking_uri), self.sync_settings.policy(),
                                       self.sync_settings.poll_interval, listener=self.bridge.on_snapshot)
        # The exported catalog: linted (quarantine), toolsets, search, cached per catalog version and key.
        self.discovery = Discovery(DiscoverySettings(), self.bridge.catalog,
                                   lambda: self.bridge.reconciler.routes,
                                   lambda spec: self.bridge.snapshot.refs.get(spec.key),
                                   lint_sink=MlflowRegistry(tracking_uri))
        self.bridge.catalog_listeners.append(self.discovery.write_lint_tags)
        self.security = security or SecuritySettings()
        self.engine = make_engine(self.security.url(server.state_dir))
        self.keys = KeyStore(self.engine)
        self.catalog_tokens = CatalogTokens(self.engine)
        self.audit = AuditLog(self.engine)
        self.shadow = ShadowWriteback(MlflowRegistry(tracking_uri), self.engine, shadow.writeback_seconds,
                                      shadow.examples, audit_inputs=self.security.audit_inputs)
        self.bridge.shadow.window_listeners.append(self.shadow.add_window)
        self.bridge.shadow.disagreement_listeners.append(self.shadow.add_disagreement)
        self.call_stats = CallStats()  # the last hour per tool, this process only (GET /stats/calls)
        self.usage = UsageWriteback(MlflowRegistry(tracking_uri),
                                    (observability or ObservabilitySettings()).usage_writeback_seconds)
        self.calls = Gateway(self.tools, self.tool, self.bridge.invoker, self.keys, self.audit,
                             RateLimiter(self.security.rate_limit_per_minute), error_code,
                             audit_inputs=self.security.audit_inputs,
                             on_call=_both(self.metrics.record_call, self.call_stats.record),
                             on_usage=self.usage.record)
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.audit.start()
        await self.shadow.start()
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
        await self.bridge.stop()
        await self.shadow.stop()  # after the bridge: the mirror's last windows are written too
        self.engine.dispose()

    def request_sync(self) -> None:
        """A registry pass as soon as possible (a verified webhook): the one seam for workers and replicas."""
        self.watcher.trigger()

    def tools(self) -> list[ToolSpec]:
        return self.discovery.tools()  # quarantined tools left out of every export and call

    def tool(self, name: str) -> ToolSpec | None:
        return self.discovery.tool(name)
