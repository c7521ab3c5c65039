"""The rolling hour of call statistics: per tool and minute, bounded, percentiles within their bin width."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tool_server.ops.call_stats import CallStats, MinuteBucket, percentile


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def tool(stats: CallStats, name: str) -> dict[str, Any]:
    return next(t for t in stats.snapshot()["tools"] if t["tool"] == name)


def test_each_minute_counts_calls_errors_and_rejections_of_each_tool(clock: Clock) -> None:
    stats = CallStats(clock)
    for outcome in ("ok", "ok", "error", "unavailable", "invalid", "denied"):
        stats.record("a", "1", "http", outcome, 0.010)
    stats.record("b", "7", "mcp", "ok", 0.020)
    minute = tool(stats, "a")["minutes"][-1]
    assert (minute["calls"], minute["errors"], minute["rejected"]) == (6, 2, 2)
    assert tool(stats, "b")["minutes"][-1]["calls"] == 1
    assert [t["tool"] for t in stats.snapshot()["tools"]] == ["a", "b"]


def test_every_tool_has_sixty_minutes_oldest_first_ending_now(clock: Clock) -> None:
    stats = CallStats(clock)
    stats.record("a", "1", "http", "ok", 0.01)
    clock.now += 120
    stats.record("a", "1", "http", "ok", 0.01)
    stats.record("a", "1", "http", "ok", 0.01)
    snapshot = stats.snapshot()
    minutes = snapshot["tools"][0]["minutes"]
    assert len(minutes) == 60 == snapshot["window_minutes"]
    assert [m["calls"] for m in minutes[-3:]] == [1, 0, 2]
    assert minutes[-1]["minute"] == int(clock.now // 60) * 60
    assert minutes[0]["minute"] == snapshot["first_minute"]
    assert minutes[-2]["p50_ms"] is None  # a quiet minute has no latency
    assert snapshot["tools"][0]["total"]["calls"] == 3


def test_calls_older_than_the_window_are_forgotten_and_quiet_tools_dropped(clock: Clock) -> None:
    stats = CallStats(clock)
    stats.record("old", "1", "http", "ok", 0.01)
    clock.now += 30 * 60
    stats.record("recent", "1", "http", "ok", 0.01)
    assert tool(stats, "old")["total"]["calls"] == 1
    clock.now += 31 * 60
    assert [t["tool"] for t in stats.snapshot()["tools"]] == ["recent"]
    clock.now += 30 * 60
    assert stats.snapshot()["tools"] == []


def test_memory_stays_bounded_however_many_calls(clock: Clock) -> None:
    stats = CallStats(clock)
    rng = random.Random(7)
    for _ in range(3 * 60):
        for _ in range(50):
            stats.record("a", "1", "http", "ok", rng.uniform(0.001, 2.0))
        clock.now += 60
    buckets = stats._buckets["a"]
    assert len(buckets) <= 60
    assert all(len(b.latency) < 250 for b in buckets.values())  # 1 ms..2 s spans ~194 bins of 4%


def test_percentiles_are_within_two_percent_of_the_exact_ones() -> None:
    rng = random.Random(3)
    latencies = sorted(rng.lognormvariate(3, 1) for _ in range(5000))  # ms, a long tail
    bucket = MinuteBucket()
    for ms in latencies:
        bucket.add("1", "ok", ms / 1000)
    for q in (0.5, 0.99):
        exact = latencies[int(q * len(latencies)) - 1]
        got = percentile(bucket.latency, q)
        assert got is not None and abs(got - exact) / exact < 0.02, (q, got, exact)


def test_latency_excludes_rejected_calls_but_includes_failures() -> None:
    bucket = MinuteBucket()
    bucket.add("", "invalid", 0.001)  # a 422 is answered fast: it would flatter p50
    bucket.add("", "error", 30.0)  # a timeout is what p99 is for
    bucket.add("1", "ok", 0.010)
    public = bucket.public()
    assert public["p50_ms"] == pytest.approx(10, rel=0.02)
    assert public["p99_ms"] == pytest.approx(30_000, rel=0.02)


def test_answering_versions_are_counted_only_for_successful_calls(clock: Clock) -> None:
    """The version of a failed call may be any text a caller put in a pinned-version URL."""
    stats = CallStats(clock)
    for version in ("3", "3", "3", "4"):
        stats.record("a", version, "http", "ok", 0.01)
    stats.record("a", "../../etc", "http", "invalid", 0.01)
    stats.record("a", "99", "http", "error", 0.01)
    assert tool(stats, "a")["total"]["versions"] == {"3": 3, "4": 1}


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile({}, 0.5) is None
    assert MinuteBucket().public() == {"calls": 0, "errors": 0, "rejected": 0, "p50_ms": None, "p99_ms": None}


def test_record_has_the_gateways_observer_signature(clock: Clock) -> None:
    from tool_server.calls import CallObserver  # noqa: F401  (the alias the Gateway takes)

    observer: CallObserver = CallStats(clock).record
    observer("a", "1", "http", "ok", 0.5)
