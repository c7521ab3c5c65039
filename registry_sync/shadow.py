"""Shadow comparisons as the registry keeps them (pure, no I/O): tag names, one window of comparisons, and
the totals a version's `toolbridge.shadow.summary` tag holds.

A version holding the shadow alias answers the champion's calls in the background; each window of
comparisons becomes metrics on an MLflow run (experiment `toolbridge-shadow`, one run per shadow version),
and the totals a tag on the version. Those tags are Toolbridge's bookkeeping, never the tool's metadata:
`without_shadow_tags` keeps them out of `ModelVersionRef`, or each write would reload the version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EXPERIMENT", "RUN_TAG_KEY", "SHADOW_TAG_PREFIX", "TAG_RUN_ID", "TAG_SHADOW_RATE",
           "TAG_SHADOW_RESTRICTED", "TAG_SUMMARY", "ShadowSink", "ShadowWindow", "assign_steps",
           "merged_summary", "without_shadow_tags"]

TAG_SHADOW_RATE = "toolbridge.shadow_rate"  # registered-model tag: share of champion calls mirrored, 0..1
TAG_SHADOW_RESTRICTED = "toolbridge.shadow_restricted"  # "true": a restricted tool's calls may be mirrored
SHADOW_TAG_PREFIX = "toolbridge.shadow."
TAG_SUMMARY = SHADOW_TAG_PREFIX + "summary"  # on the shadow version: JSON totals
TAG_RUN_ID = SHADOW_TAG_PREFIX + "run_id"  # on the shadow version: the run holding the windows
RUN_TAG_KEY = SHADOW_TAG_PREFIX + "key"  # on the run: `name/version` of the shadow version
EXPERIMENT = "toolbridge-shadow"
MAX_TAG_CHARS = 4000  # MLflow refuses version tag values past 5,000 characters


class ShadowWindow(BaseModel):
    """The comparisons of one shadow version over one window (N calls or M seconds, whichever first)."""

    model_config = ConfigDict(frozen=True)

    model: str
    tool: str
    shadow_version: str
    champion_version: str
    sequence: int = Field(ge=0)  # 0, 1, ... per shadow version and process: the run's step, after a base
    ended_at: float  # unix seconds
    seconds: float = Field(ge=0)
    compared: int = Field(default=0, ge=0)  # calls both versions answered
    agreed: int = Field(default=0, ge=0)
    shadow_errors: int = Field(default=0, ge=0)
    dropped: int = Field(default=0, ge=0)  # offered while the queue was full
    numeric_compared: int = Field(default=0, ge=0)  # comparisons with numbers (probabilities, predictions)
    abs_diff_sum: float = Field(default=0.0, ge=0)  # of each comparison's mean absolute difference
    abs_diff_max: float = Field(default=0.0, ge=0)
    confusion: dict[str, dict[str, int]] = Field(default_factory=dict)  # champion label → shadow label → n
    champion_p50_ms: float | None = None
    champion_p99_ms: float | None = None
    shadow_p50_ms: float | None = None
    shadow_p99_ms: float | None = None

    @property
    def key(self) -> str:
        return f"{self.model}/{self.shadow_version}"

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    def metrics(self) -> dict[str, float]:
        """The window as MLflow metrics (absent values left out, so charts show no false zeros)."""
        values: dict[str, float | None] = {
            "calls_compared": self.compared, "agreement": self.agreement, "shadow_errors": self.shadow_errors,
            "dropped": self.dropped,
            "mean_abs_diff": self.abs_diff_sum / self.numeric_compared if self.numeric_compared else None,
            "max_abs_diff": self.abs_diff_max if self.numeric_compared else None,
            "champion_p50_ms": self.champion_p50_ms, "champion_p99_ms": self.champion_p99_ms,
            "shadow_p50_ms": self.shadow_p50_ms, "shadow_p99_ms": self.shadow_p99_ms,
        }
        return {name: float(value) for name, value in values.items() if value is not None}


class ShadowSink(Protocol):
    """Where shadow windows go: metrics on the version's run, totals in its tags."""

    def write_shadow(self, windows: Sequence[ShadowWindow]) -> str:
        """Log `windows` (all of one shadow version) and update the version's summary; the run id.
        Raises RegistryUnavailable (keep them, retry) or MalformedEntry (the version is gone)."""
        ...


def _totals(raw: str | None) -> dict[str, object]:
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:  # a hand-edited tag: start again rather than block every later write
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def merged_summary(existing: str | None, windows: Sequence[tuple[int, ShadowWindow]], run_id: str) -> str:
    """The summary tag after adding `windows` (each with its step) to the `existing` one.

    Idempotent: a window whose step is not past the summary's `last_step` is already counted, so a write
    retried after its metrics were logged does not count them twice.
    """
    totals = _totals(existing)
    last_step = totals.get("last_step")
    compared, agreed = _int(totals.get("calls_compared")), _int(totals.get("agreed"))
    errors, dropped = _int(totals.get("shadow_errors")), _int(totals.get("dropped"))
    numeric, diff_sum = _int(totals.get("numeric_compared")), _number(totals.get("abs_diff_sum"))
    diff_max = _number(totals.get("max_abs_diff"))
    found = totals.get("confusion")
    confusion: dict[str, dict[str, int]] = {
        str(a): {str(b): _int(n) for b, n in row.items()} for a, row in found.items() if isinstance(row, dict)
    } if isinstance(found, dict) else {}
    champion = str(totals.get("champion_version", ""))
    for step, window in sorted(windows, key=lambda pair: pair[0]):
        if isinstance(last_step, int) and step <= last_step:
            continue
        compared, agreed = compared + window.compared, agreed + window.agreed
        errors, dropped = errors + window.shadow_errors, dropped + window.dropped
        numeric, diff_sum = numeric + window.numeric_compared, diff_sum + window.abs_diff_sum
        diff_max = max(diff_max, window.abs_diff_max)
        for a, row in window.confusion.items():
            for b, n in row.items():
                confusion.setdefault(a, {})[b] = confusion.get(a, {}).get(b, 0) + n
        last_step, champion = step, window.champion_version
    summary: dict[str, object] = {
        "champion_version": champion, "calls_compared": compared, "agreed": agreed,
        "agreement": round(agreed / compared, 6) if compared else None, "shadow_errors": errors,
        "dropped": dropped, "numeric_compared": numeric, "abs_diff_sum": diff_sum,
        "mean_abs_diff": diff_sum / numeric if numeric else None, "max_abs_diff": diff_max,
        "confusion": confusion, "last_step": last_step, "run_id": run_id,
    }
    text = json.dumps(summary, sort_keys=True)
    if len(text) > MAX_TAG_CHARS:  # labels without end (free text): the table stays on the run's windows
        summary["confusion"] = f"omitted: more than {MAX_TAG_CHARS} characters; see GET /shadow"
        text = json.dumps(summary, sort_keys=True)
    return text


def assign_steps(windows: Sequence[ShadowWindow], last_step: int | None,
                 logged: Mapping[tuple[str, int], int]) -> list[tuple[int, ShadowWindow]]:
    """Each window's step on the run: the one it was logged at (`logged`, by key and sequence, for a retried
    write), else the next ones after the summary's `last_step` and after those."""
    known = [logged[(w.key, w.sequence)] for w in windows if (w.key, w.sequence) in logged]
    next_step = max([-1 if last_step is None else last_step, *known]) + 1
    steps = []
    for window in windows:
        step = logged.get((window.key, window.sequence))
        if step is None:
            step, next_step = next_step, next_step + 1
        steps.append((step, window))
    return steps


def without_shadow_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if not key.startswith(SHADOW_TAG_PREFIX)}
