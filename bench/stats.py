"""Medians, p99 and markdown tables for the benchmarks' output (pure)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["Summary", "mib", "ms", "percentile", "ratio", "summarize", "table"]


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


class Summary:
    def __init__(self, samples: Sequence[float]) -> None:
        if not samples:
            raise ValueError("no samples to summarize")
        self.n = len(samples)
        self.median = statistics.median(samples)
        self.p99 = percentile(samples, 99)
        self.mean = statistics.fmean(samples)
        self.min = min(samples)
        self.max = max(samples)


def summarize(samples: Sequence[float]) -> Summary:
    return Summary(samples)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}" if seconds < 0.1 else f"{seconds * 1000:.0f}"


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f}"


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}×" if baseline else "n/a"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table, readable in a terminal and pasted as is into bench/README.md."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
