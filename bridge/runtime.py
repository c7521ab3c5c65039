"""The bridge as one object for the composition root: hosts (and how they are isolated), reconciler, invoker
and its optional response cache, crash and memory-limit supervision."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.errors import BridgeError
from bridge.host_pool import HostPool
from bridge.host_sandbox import HostLimits, plan_sandbox
from bridge.hosting.remote_pool import HostPools, pools_setting
from bridge.invoker import Invoker
from bridge.reconciler import Reconciler, VersionStatus
from bridge.response_cache import ResponseCache, cache_allowed
from bridge.shadow import ShadowMirror, ShadowSettings
from bridge.toolspec import ToolSpec
from registry_sync import Snapshot, SyncPlan

__all__ = ["Bridge", "BridgeSettings"]

log = logging.getLogger(__name__)


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore")

    call_timeout: float = Field(default=30.0, gt=0, description="seconds a model call may take")
    drain_grace: float = Field(default=10.0, ge=0, description="seconds an unapproved version keeps serving")
    keep_warm: float = Field(default=300.0, ge=0,
                             description="seconds an unapproved version stays loaded, "
                                         "so a rollback is instant")
    host_start_timeout: float = Field(default=120.0, gt=0)
    shared_hosts: int = Field(
        default=1, ge=1, le=32, description="model hosts shared by all non-dedicated models")
    spare_hosts: int = Field(default=1, ge=0, le=8, description="idle model hosts kept ready, so a dedicated "
                             "host starts by taking one; 0 = off")
    host_memory_budget_mb: float | None = Field(
        default=None, gt=0, description="per model host; past it, least recently used versions are evicted")
    host_batching: bool = Field(default=True, description="model hosts run concurrent calls of one version "
                                "as one model call (bridge.model_host.batching)")
    host_batch_max_rows: int = Field(default=64, ge=1, le=100_000, description="most input rows in one batch")
    # Model code is untrusted (bridge.host_sandbox): who hosts run as, in which sandbox, within which limits.
    host_user: str | None = Field(default=None, description="when Toolbridge runs as root, the OS user model "
                                  "hosts run as (default toolbridge-host, created if missing, else nobody; "
                                  "root = no separate user)")
    host_sandbox: Literal["auto", "bwrap", "off"] = Field(
        default="auto", description="bubblewrap around model hosts: auto = wherever it runs, "
                                    "bwrap = required (refuse to start without it), off = never")
    dedicated_memory_mb: int = Field(default=4096, ge=0, description="address space (RLIMIT_AS) of each "
                                     "process of a dedicated model host; past it allocations fail and the "
                                     "host is stopped; 0 = no limit")
    dedicated_cpu_seconds: int = Field(default=0, ge=0, description="CPU seconds (RLIMIT_CPU) a dedicated "
                                       "host process may use over its life before it is killed; 0 = no limit")
    dedicated_max_files: int = Field(default=1024, ge=0, description="open files (RLIMIT_NOFILE) of each "
                                     "dedicated host process; 0 = no limit")
    dedicated_max_processes: int = Field(default=4096, ge=0, description="processes and threads "
                                         "(RLIMIT_NPROC) of the host user, counting every host's, only when "
                                         "hosts run as their own user; 0 = off")
    max_output_bytes: int = Field(default=10 * 2**20, ge=1024, description="largest answer accepted from a "
                                  "model host; a larger one fails the call with a clear error")
    host_pools: HostPools = Field(default_factory=dict, description="remote model-host pools, a JSON object "
                                  "of pool name → URL(s); versions choose one with the tag toolbridge.pool")
    host_pools_file: Path | None = Field(default=None, description="the same object in a file (JSON, or TOML "
                                         "if it ends in .toml), e.g. a mounted ConfigMap; read at start; "
                                         "not with TOOLBRIDGE_HOST_POOLS")
    max_parallel_loads: int = Field(default=8, ge=1, le=256, description="model versions loaded and "
                                    "smoke-tested at once in a registry pass (a cold start loads every "
                                    "approved version)")

    @field_validator("host_pools_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value  # not Path(""), the current directory

    @model_validator(mode="after")
    def _pools_from_file(self) -> BridgeSettings:
        self.host_pools = pools_setting(self.host_pools, self.host_pools_file)
        return self


class Bridge:
    def __init__(self, settings: BridgeSettings, log_dir: Path, tracking_uri: str,
                 cache: ResponseCache | None = None, state_dir: Path | None = None,
                 shadow: ShadowSettings | None = None) -> None:
        """`state_dir` (default: the parent of `log_dir`) is what model hosts must never see."""
        self.settings = settings
        # Both, explicitly: an MLFLOW_REGISTRY_URI inherited from the caller's shell would send
        # `models:/` loads to another registry than the one the versions were approved in.
        env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri}
        if settings.host_memory_budget_mb is not None:
            env["TOOLBRIDGE_HOST_MEMORY_BUDGET_MB"] = str(settings.host_memory_budget_mb)
        env["TOOLBRIDGE_HOST_BATCHING"] = "1" if settings.host_batching else "0"
        env["TOOLBRIDGE_HOST_BATCH_MAX_ROWS"] = str(settings.host_batch_max_rows)
        limits = HostLimits(settings.dedicated_memory_mb, settings.dedicated_cpu_seconds,
                            settings.dedicated_max_files, settings.dedicated_max_processes)
        isolation = functools.partial(plan_sandbox, state_dir or log_dir.parent, settings.host_user,
                                      settings.host_sandbox)
        self.hosts = HostPool(log_dir, env, settings.shared_hosts, settings.call_timeout,
                              settings.host_start_timeout, settings.spare_hosts, isolation=isolation,
                              dedicated_limits=limits, max_output_bytes=settings.max_output_bytes,
                              remote_pools=settings.host_pools)
        self.reconciler = Reconciler(self.hosts, unload_after=max(settings.drain_grace, settings.keep_warm),
                                     max_parallel_loads=settings.max_parallel_loads)
        self.snapshot = Snapshot()
        self.cache = cache
        self.restarting: set[str] = set()  # hosts the supervisor is bringing back
        self.shadow = ShadowMirror(shadow or ShadowSettings(), lambda: self.reconciler.routes)
        self.invoker = Invoker(lambda: self.reconciler.routes, cache=cache, cacheable=self._cacheable,
                               restarting=self.restarting.__contains__, shadow=self.shadow)
        self.catalog_listeners: list[Callable[[], Awaitable[None]]] = []
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.hosts.start()
        await self.shadow.start()
        self._announce_isolation()
        self._supervisor = asyncio.create_task(self._supervise())

    def _announce_isolation(self) -> None:
        sandbox = self.hosts.sandbox
        if sandbox.user is None and sandbox.bwrap is None:
            log.warning(
                "MODEL HOSTS ARE NOT ISOLATED (isolation: env-only). A model is code: every model registered "
                "in MLflow can read and write whatever this user can, including the state directory %s "
                "(admin key, key database, audit log, secrets). Only the environment allow-list applies. "
                "Run Toolbridge as root (hosts then run as an unprivileged user) or install bubblewrap "
                "(apt-get install bubblewrap); see docs/security.md", sandbox.state_dir)
        else:
            log.info("model hosts isolated: %s (scratch under %s)", sandbox.isolation, sandbox.scratch_root)

    async def on_snapshot(self, snapshot: Snapshot, plan: SyncPlan) -> None:
        self.snapshot = snapshot
        for change in (*plan.added, *plan.changed, *plan.removed):
            log.info("registry: %s — %s", change.key, change.reason)
        before = self.catalog()
        await self.reconciler.apply(snapshot)
        if self.catalog() != before:
            for listener in self.catalog_listeners:
                try:
                    await listener()
                except Exception:  # a broken subscriber (e.g. a gone MCP session) must not stop the sync
                    log.exception("catalog listener failed")

    def catalog(self) -> list[ToolSpec]:
        """The live tools, one spec per tool (its champion's), sorted by name."""
        return sorted((route.champion.spec for route in self.reconciler.routes.values()),
                      key=lambda s: s.name)

    def _cacheable(self, spec: ToolSpec) -> bool:
        """Read from the latest snapshot, so a `toolbridge.cache=false` tag applies from the next pass; a
        version already gone from it (draining) is not cached."""
        ref = self.snapshot.refs.get(spec.key)
        return ref is not None and cache_allowed(spec, ref.model_tags)

    def status(self) -> list[VersionStatus]:
        return self.reconciler.status(self.snapshot)

    async def host_status(self) -> list[dict[str, Any]]:
        """Each model host: process, restarts, loaded versions and their memory, evictions."""
        rows = []
        for name, (role, process, client) in self.hosts.roles().items():
            row: dict[str, Any] = {"name": name, "role": role, "pid": process.pid, "url": process.base_url,
                                   "alive": process.alive, "restarts": process.restarts,
                                   "isolation": process.isolation,
                                   "limits": process.limits.describe() if process.limits else None}
            try:
                row.update(await client.host_info())
            except BridgeError as exc:
                row["error"] = str(exc)
            rows.append(row)
        rows.extend(await self.hosts.remote_status())  # never started here: /readyz says how they are
        return rows

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self.shadow.stop()  # before the hosts: its last windows are closed, not failed
        await self.hosts.stop()
        if self.cache is not None:
            await self.cache.close()

    async def _supervise(self) -> None:
        """Stop a dedicated host whose model went past its memory limit (its versions fail, with the reason);
        restart a crashed host with backoff, then load its versions again."""
        backoff: dict[str, float] = {}
        while True:
            await asyncio.sleep(1.0)
            for name in [name for name in self.hosts.processes if self.hosts.is_dedicated(name)]:
                breach = self.hosts.memory_breach(name)
                if breach is not None:
                    log.error("model host %s: %s", name, breach)
                    await self.reconciler.fail_host(name, breach, self.snapshot)
            for name, process in list(self.hosts.processes.items()):
                if process.alive:
                    backoff.pop(name, None)
                    continue
                delay = backoff[name] = min(30.0, backoff.get(name, 0.5) * 2)
                log.error("model host %s is down; restarting (restart #%d)", name, process.restarts + 1)
                self.restarting.add(name)
                try:
                    await process.restart(self.settings.host_start_timeout)
                    await self.reconciler.reload_host(name)
                    self.restarting.discard(name)
                except BridgeError as exc:
                    log.error("model host %s did not restart: %s; next try in %.0fs", name, exc, delay)
                    await asyncio.sleep(delay)
