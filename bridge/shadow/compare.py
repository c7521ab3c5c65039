"""Champion and shadow answers compared (pure, no I/O): one comparison per call, added up per window.

Classifiers (answers with `label`): the labels agree or not, a confusion table champion × shadow, and the
absolute differences of the probabilities. Regressors (a numeric `prediction`, or a list of numbers): the
absolute difference; they agree when equal to 1e-9 relative. Anything else (a text or a record): equal or not,
with text predictions counted as labels.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from registry_sync.shadow import ShadowWindow

__all__ = ["Comparison", "ShadowHistory", "WindowCounter", "compare", "percentile"]

MAX_LABELS = 30  # distinct labels a confusion table keeps per window; the rest count as "(other)"
OTHER = "(other)"


@dataclass(frozen=True)
class Comparison:
    agree: bool
    labels: tuple[str, str] | None = None  # (champion's, shadow's) for a confusion table
    mean_abs_diff: float | None = None  # over the numbers both answers hold (probabilities, predictions)
    max_abs_diff: float | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _numeric(diffs: list[float], agree: bool, labels: tuple[str, str] | None = None) -> Comparison:
    if not diffs:
        return Comparison(agree=agree, labels=labels)
    return Comparison(agree=agree, labels=labels, mean_abs_diff=sum(diffs) / len(diffs),
                      max_abs_diff=max(diffs))


def compare(champion: Mapping[str, Any], shadow: Mapping[str, Any]) -> Comparison:
    """How the shadow's answer to one call compares with the champion's (the `model` field ignored)."""
    if "label" in champion and "label" in shadow:
        labels = (str(champion["label"]), str(shadow["label"]))
        mine, theirs = champion.get("probabilities") or {}, shadow.get("probabilities") or {}
        diffs = [abs(float(mine.get(k, 0.0)) - float(theirs.get(k, 0.0))) for k in sorted({*mine, *theirs})
                 if _is_number(mine.get(k, 0.0)) and _is_number(theirs.get(k, 0.0))]
        return _numeric(diffs, labels[0] == labels[1], labels)
    a, b = champion.get("prediction"), shadow.get("prediction")
    if isinstance(a, int | float) and isinstance(b, int | float) and _is_number(a) and _is_number(b):
        return _numeric([abs(float(a) - float(b))], _close(float(a), float(b)))
    if (isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a
            and all(_is_number(x) for x in (*a, *b))):
        pairs = [(float(x), float(y)) for x, y in zip(a, b, strict=True)]
        return _numeric([abs(x - y) for x, y in pairs], all(_close(x, y) for x, y in pairs))
    if isinstance(a, str | bool | int) and isinstance(b, str | bool | int):
        return Comparison(agree=a == b, labels=(str(a), str(b)))
    if isinstance(a, dict) and isinstance(b, dict):
        shared = [k for k in a if k in b and _is_number(a[k]) and _is_number(b[k])]
        return _numeric([abs(float(a[k]) - float(b[k])) for k in shared], a == b)
    return Comparison(agree=a == b)


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` in 0..1) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


@dataclass
class WindowCounter:
    """The open window of one shadow version; `close` turns it into a ShadowWindow and starts the next."""

    model: str
    tool: str
    shadow_version: str
    window_calls: int
    window_seconds: float
    clock: Callable[[], float]
    champion_version: str = ""
    sequence: int = 0
    started: float = field(default=0.0)
    calls: int = 0  # answered or failed by the shadow
    compared: int = 0
    agreed: int = 0
    errors: int = 0
    dropped: int = 0
    numeric: int = 0
    diff_sum: float = 0.0
    diff_max: float = 0.0
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    champion_ms: list[float] = field(default_factory=list)
    shadow_ms: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def add(self, champion_version: str, comparison: Comparison | None, champion_seconds: float | None,
            shadow_seconds: float) -> None:
        """One mirrored call: `comparison` None when the shadow failed."""
        self._touch()
        self.champion_version = champion_version
        self.calls += 1
        if champion_seconds is not None:  # None: the champion's answer came from the response cache
            self.champion_ms.append(champion_seconds * 1000)
        self.shadow_ms.append(shadow_seconds * 1000)
        if comparison is None:
            self.errors += 1
            return
        self.compared += 1
        self.agreed += comparison.agree
        if comparison.mean_abs_diff is not None and comparison.max_abs_diff is not None:
            self.numeric += 1
            self.diff_sum += comparison.mean_abs_diff
            self.diff_max = max(self.diff_max, comparison.max_abs_diff)
        if comparison.labels is not None:
            mine, theirs = (label if label in self.confusion or len(self.confusion) < MAX_LABELS else OTHER
                            for label in comparison.labels)
            row = self.confusion.setdefault(mine, {})
            row[theirs] = row.get(theirs, 0) + 1

    def drop(self) -> None:
        """A call the full queue turned away."""
        self._touch()
        self.dropped += 1

    def _touch(self) -> None:
        if not (self.calls or self.dropped):  # a window's clock starts at its first event, not at a close
            self.started = self.clock()

    def due(self) -> bool:
        """Full (N calls), or M seconds old with something in it."""
        return self.calls >= self.window_calls or (
            (self.calls or self.dropped) > 0 and self.clock() - self.started >= self.window_seconds)

    def snapshot(self) -> dict[str, Any]:
        """The open window so far (GET /shadow): its counts, confusion table and p50 latencies."""
        return {"calls": self.calls, "compared": self.compared, "agreed": self.agreed,
                "shadow_errors": self.errors, "dropped": self.dropped,
                "confusion": {mine: dict(row) for mine, row in self.confusion.items()},
                "champion_p50_ms": percentile(self.champion_ms, 0.5),
                "shadow_p50_ms": percentile(self.shadow_ms, 0.5)}

    def close(self) -> ShadowWindow:
        now = self.clock()
        window = ShadowWindow(
            model=self.model, tool=self.tool, shadow_version=self.shadow_version,
            champion_version=self.champion_version, sequence=self.sequence, ended_at=now,
            seconds=max(0.0, now - self.started), compared=self.compared, agreed=self.agreed,
            shadow_errors=self.errors, dropped=self.dropped, numeric_compared=self.numeric,
            abs_diff_sum=self.diff_sum, abs_diff_max=self.diff_max, confusion=self.confusion,
            champion_p50_ms=percentile(self.champion_ms, 0.5),
            champion_p99_ms=percentile(self.champion_ms, 0.99),
            shadow_p50_ms=percentile(self.shadow_ms, 0.5), shadow_p99_ms=percentile(self.shadow_ms, 0.99))
        self.sequence += 1
        self.started, self.calls, self.compared, self.agreed, self.errors, self.dropped = now, 0, 0, 0, 0, 0
        self.numeric, self.diff_sum, self.diff_max, self.confusion = 0, 0.0, 0.0, {}
        self.champion_ms, self.shadow_ms = [], []
        return window


@dataclass
class ShadowHistory:
    """What this process saw of one shadow version: totals since start and the last windows (GET /shadow)."""

    windows: deque[ShadowWindow] = field(default_factory=lambda: deque(maxlen=500))
    compared: int = 0
    agreed: int = 0
    errors: int = 0
    dropped: int = 0
    numeric: int = 0
    diff_sum: float = 0.0
    diff_max: float = 0.0
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, window: ShadowWindow) -> None:
        self.windows.append(window)
        self.compared += window.compared
        self.agreed += window.agreed
        self.errors += window.shadow_errors
        self.dropped += window.dropped
        self.numeric += window.numeric_compared
        self.diff_sum += window.abs_diff_sum
        self.diff_max = max(self.diff_max, window.abs_diff_max)
        for mine, row in window.confusion.items():
            for theirs, n in row.items():
                self.confusion.setdefault(mine, {})[theirs] = self.confusion.get(mine, {}).get(theirs, 0) + n

    def totals(self) -> dict[str, Any]:
        return {"calls_compared": self.compared, "agreed": self.agreed,
                "agreement": self.agreed / self.compared if self.compared else None,
                "shadow_errors": self.errors, "dropped": self.dropped,
                "mean_abs_diff": self.diff_sum / self.numeric if self.numeric else None,
                "max_abs_diff": self.diff_max if self.numeric else None, "confusion": self.confusion}
