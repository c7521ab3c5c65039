"""Medians, p99 and markdown tables for the benchmarks' output (pure)."""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence

__all__ = ["Summary", "add_call_load_arguments", "mib", "ms", "percentile", "ratio", "summarize", "table"]


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


def add_call_load_arguments(parser: argparse.ArgumentParser, calls: int, warmup: int,
                            duration: float) -> None:
    """The options of the benches that time calls: sequential latency rounds, then concurrent load rounds."""
    parser.add_argument("--calls", type=int, default=calls, help="measured sequential calls per way")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds, interleaving the ways")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=duration, help="seconds of load per way, in all")
    parser.add_argument("--rounds-load", type=int, default=3, help="throughput rounds, interleaving the ways")
    parser.add_argument("--rows", type=int, default=256, help="distinct applicants the calls cycle through")
