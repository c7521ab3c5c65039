"""The last hour of tool calls, per tool and minute, in this process: calls, errors, p50 and p99 latency.

`CallStats.record` has the Gateway's `on_call` observer signature (tool, version, channel, outcome, seconds);
`GET /stats/calls` and the UI's operations page read `snapshot()`. Memory is bounded: 60 one-minute buckets
per tool, each holding counts and a sparse log-scale latency histogram (bins 4% wide, so a percentile is
within 2% of the true value) rather than every latency. Histograms merge by adding counts, which is what a
later, shared (multi-worker) version needs; today each worker process reports only the calls it served.

What counts:
    calls     every call of the tool, whatever its outcome
    errors    calls the server or the model failed (outcome `error`: 5xx, `unavailable`: 503/504)
    rejected  calls refused before an answer through the caller's fault (`invalid`: 4xx such as 422,
              `denied`: 403/429)
    p50, p99  latency of the calls that were not rejected (answers and failures, a timeout included), in ms
    versions  calls answered per model version (successful calls only: a failed call's version may be any
              text a caller put in a URL), which shows the canary's real share
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WINDOW_MINUTES", "CallStats", "MinuteBucket", "percentile"]

WINDOW_MINUTES = 60
ERRORS = frozenset({"error", "unavailable"})
REJECTED = frozenset({"invalid", "denied"})
_GROWTH = 1.04  # width of a latency bin: each bin's upper bound is 4% above its lower bound
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_MS = 0.001  # latencies below a microsecond share bin 0


def _bin(latency_ms: float) -> int:
    if latency_ms <= _FLOOR_MS:
        return 0
    return 1 + int(math.log(latency_ms / _FLOOR_MS) / _LOG_GROWTH)


def _bin_value(index: int) -> float:
    """A bin's representative latency: the geometric middle of its bounds."""
    if index == 0:
        return _FLOOR_MS
    return float(_FLOOR_MS * _GROWTH ** (index - 0.5))


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """The q-quantile (0 < q ≤ 1) of a latency histogram, in ms, nearest-rank; None when it is empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(_bin_value(index), 3)
    raise AssertionError("unreachable: rank ≤ total")


@dataclass
class MinuteBucket:
    """One tool's calls within one minute."""

    calls: int = 0
    errors: int = 0
    rejected: int = 0
    latency: dict[int, int] = field(default_factory=dict)  # log bin → count
    versions: dict[str, int] = field(default_factory=dict)

    def add(self, version: str, outcome: str, seconds: float) -> None:
        self.calls += 1
        if outcome in REJECTED:
            self.rejected += 1
            return
        if outcome in ERRORS:
            self.errors += 1
        elif outcome == "ok" and version:
            self.versions[version] = self.versions.get(version, 0) + 1
        index = _bin(seconds * 1000)
        self.latency[index] = self.latency.get(index, 0) + 1

    def merge(self, other: MinuteBucket) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.rejected += other.rejected
        for index, count in other.latency.items():
            self.latency[index] = self.latency.get(index, 0) + count
        for version, count in other.versions.items():
            self.versions[version] = self.versions.get(version, 0) + count

    def public(self) -> dict[str, Any]:
        return {"calls": self.calls, "errors": self.errors, "rejected": self.rejected,
                "p50_ms": percentile(self.latency, 0.50), "p99_ms": percentile(self.latency, 0.99)}


class CallStats:
    """A rolling window of per-tool, per-minute call outcomes and latencies (this process only)."""

    def __init__(self, clock: Callable[[], float] = time.time, minutes: int = WINDOW_MINUTES) -> None:
        self._clock = clock
        self.minutes = minutes
        self._buckets: dict[str, dict[int, MinuteBucket]] = {}  # tool → minute number → bucket
        self._lock = threading.Lock()  # the event loop records; a thread may read

    def record(self, tool: str, version: str, channel: str, outcome: str, seconds: float) -> None:
        """The Gateway's `on_call` observer: one finished call (the channel is not kept)."""
        minute = int(self._clock() // 60)
        with self._lock:
            per_tool = self._buckets.setdefault(tool, {})
            bucket = per_tool.get(minute)
            if bucket is None:
                bucket = per_tool[minute] = MinuteBucket()
                self._forget_before(minute - self.minutes + 1)
            bucket.add(version, outcome, seconds)

    def _forget_before(self, first: int) -> None:
        for tool in list(self._buckets):
            per_tool = self._buckets[tool]
            for minute in [m for m in per_tool if m < first]:
                del per_tool[minute]
            if not per_tool:
                del self._buckets[tool]

    def snapshot(self) -> dict[str, Any]:
        """Every tool called within the window: its minutes oldest first (empty ones included, so each list
        has `minutes` entries ending with the current minute) and its totals over the window."""
        now = int(self._clock() // 60)
        first = now - self.minutes + 1
        tools: list[dict[str, Any]] = []
        with self._lock:  # buckets of the current minute change under a concurrent record
            self._forget_before(first)
            for tool in sorted(self._buckets):
                per_tool, total = self._buckets[tool], MinuteBucket()
                minutes: list[dict[str, Any]] = []
                for minute in range(first, now + 1):
                    bucket = per_tool.get(minute) or MinuteBucket()
                    total.merge(bucket)
                    minutes.append({"minute": minute * 60, **bucket.public()})
                totals: dict[str, Any] = {**total.public(), "versions": dict(sorted(total.versions.items()))}
                tools.append({"tool": tool, "minutes": minutes, "total": totals})
        return {"window_minutes": self.minutes, "first_minute": first * 60, "tools": tools}
