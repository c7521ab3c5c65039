"""Prometheus metrics: tool calls per tool, version, channel and outcome; response cache hits and misses per
tool; sync and host health at scrape time.

With several workers (`toolbridge up --workers N`), each worker counts its calls in Prometheus' multiprocess
files (PROMETHEUS_MULTIPROC_DIR, set by the controller before the worker imports prometheus_client) and a
scrape of any worker sums them all; the sync and host series come from the controller (`render_state`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.runtime import Bridge
from registry_sync import RegistryWatcher
from tool_server.shadow.metrics import shadow_families

__all__ = ["MULTIPROC_DIR", "Metrics", "ObservedRuntime"]

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ObservedRuntime(Protocol):
    """What a scrape reads: the composition root satisfies it (no import of it here, so no cycle)."""

    watcher: RegistryWatcher | None  # None in a worker: its controller runs the watcher
    bridge: Bridge

    def tools(self) -> Sequence[object]: ...


class _RuntimeCollector(Collector):
    """Reads the sync and host state when scraped, so nothing has to keep gauges in step."""

    def __init__(self, runtime: ObservedRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if self.runtime.watcher is None:
            return
        sync = self.runtime.watcher.status
        yield GaugeMetricFamily("toolbridge_live_tools", "Tools currently callable",
                                value=len(self.runtime.tools()))
        yield CounterMetricFamily("toolbridge_sync_passes", "Registry passes that succeeded",
                                  value=sync.passes)
        yield CounterMetricFamily("toolbridge_sync_failures", "Registry passes that failed",
                                  value=sync.failures)
        yield CounterMetricFamily("toolbridge_sync_version_fetches",
                                  "Model version details read from MLflow", value=sync.fetches)
        age = time.time() - sync.last_success_at if sync.last_success_at else float("nan")
        yield GaugeMetricFamily("toolbridge_sync_last_success_age_seconds",
                                "Seconds since the last successful registry pass", value=age)
        yield GaugeMetricFamily("toolbridge_sync_degraded", "1 while MLflow cannot be read (fail-static)",
                                value=1.0 if sync.state == "degraded" else 0.0)
        restarts = CounterMetricFamily("toolbridge_host_restarts", "Model host restarts after a crash",
                                       labels=["host"])
        alive = GaugeMetricFamily("toolbridge_host_up", "1 while the model host process runs",
                                  labels=["host"])
        for name, process in list(self.runtime.bridge.hosts.processes.items()):
            restarts.add_metric([name], process.restarts)
            alive.add_metric([name], 1.0 if process.alive else 0.0)
        yield restarts
        yield alive
        yield from shadow_families(self.runtime.bridge.shadow)


class Metrics:
    """One registry per app (not the process-global one), so several apps in one process never collide.

    `multiprocess`: this process is one of several workers; `render` sums the calls of all of them."""

    def __init__(self, runtime: ObservedRuntime, multiprocess: bool = False) -> None:
        self.multiprocess = multiprocess
        if multiprocess and not os.environ.get(MULTIPROC_DIR):
            raise RuntimeError(f"a worker's metrics need {MULTIPROC_DIR} set before prometheus_client is "
                               "imported (the controller sets it for its workers)")
        self.registry = CollectorRegistry()
        self.calls = Counter("toolbridge_tool_calls", "Tool invocations",
                             ["tool", "version", "channel", "outcome"], registry=self.registry)
        self.latency = Histogram("toolbridge_tool_call_seconds", "Tool invocation latency, end to end",
                                 ["tool", "version", "channel"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.cache_hits = Counter("toolbridge_cache_hits", "Tool calls answered from the response cache",
                                  ["tool"], registry=self.registry)
        self.cache_misses = Counter("toolbridge_cache_misses", "Cacheable tool calls the model had to answer",
                                    ["tool"], registry=self.registry)
        self.cache_errors = Counter("toolbridge_cache_errors", "Response cache faults (the model answered)",
                                    registry=self.registry)
        self.shared_state_degraded = Gauge(
            "toolbridge_shared_state_degraded", "1 while a shared-state server (redis, database) does not "
            "answer and this process runs on its own state", ["component"], registry=self.registry,
            multiprocess_mode="livemax")
        self.state = CollectorRegistry()  # the sync and host series alone: what a controller gives workers
        self.state.register(_RuntimeCollector(runtime))
        if not multiprocess:
            self.registry.register(_RuntimeCollector(runtime))

    def record_call(self, tool: str, version: str, channel: str, outcome: str, seconds: float) -> None:
        self.calls.labels(tool, version, channel, outcome).inc()
        self.latency.labels(tool, version, channel).observe(seconds)

    def set_degraded(self, component: str, degraded: bool) -> None:
        """Shared state's hook (access/redis_link.py, access/key_cache.py)."""
        self.shared_state_degraded.labels(component).set(1.0 if degraded else 0.0)

    def record_cache(self, event: str, tool: str) -> None:
        """The response cache's observer: `event` is hit, miss or error."""
        if event == "hit":
            self.cache_hits.labels(tool).inc()
        elif event == "miss":
            self.cache_misses.labels(tool).inc()
        else:
            self.cache_errors.inc()

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        summed = CollectorRegistry()  # fresh each scrape: the files of workers started since are read too
        multiprocess.MultiProcessCollector(summed)  # type: ignore[no-untyped-call]
        return generate_latest(summed)

    def render_state(self) -> bytes:
        return generate_latest(self.state)
