"""Usage counts written back to the registry as `toolbridge.usage.*` tags (pure merge logic, no I/O).

A data scientist reads in MLflow how much agents call a model. The tags are cumulative: each write adds the
calls counted since the previous one to the value already in the registry, so restarts and several replicas
add up. They are Toolbridge's own bookkeeping, never metadata of the tool: `without_usage_tags` keeps them out
of `ModelVersionRef`, or every write would look like a change and reload the model. So does it with the lint
findings Toolbridge writes back (`toolbridge.lint`, tool_server/discovery/lint.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TAG_CALLS",
    "TAG_ERRORS",
    "TAG_LAST_CALL",
    "TAG_LINT",
    "USAGE_TAG_PREFIX",
    "ModelUsage",
    "VersionUsage",
    "format_time",
    "merged_model_tags",
    "merged_version_tags",
    "without_usage_tags",
]

USAGE_TAG_PREFIX = "toolbridge.usage."
TAG_CALLS = USAGE_TAG_PREFIX + "calls"
TAG_ERRORS = USAGE_TAG_PREFIX + "errors"
TAG_LAST_CALL = USAGE_TAG_PREFIX + "last_call"
TAG_LINT = "toolbridge.lint"  # the catalog lint's findings on a version, written by Toolbridge


class VersionUsage(BaseModel):
    """Calls one model version answered since the last write."""

    model_config = ConfigDict(frozen=True)

    calls: int = Field(default=0, ge=0)
    last_call: datetime | None = None

    def plus(self, other: VersionUsage) -> VersionUsage:
        return VersionUsage(calls=self.calls + other.calls,
                            last_call=_latest(self.last_call, other.last_call))


class ModelUsage(BaseModel):
    """Calls to one registered model's tool since the last write; `versions` only those a version answered."""

    model_config = ConfigDict(frozen=True)

    name: str
    calls: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)
    last_call: datetime | None = None
    versions: dict[str, VersionUsage] = Field(default_factory=dict)

    def plus(self, other: ModelUsage) -> ModelUsage:
        """Both tallies together (a failed write handed back and the calls counted meanwhile)."""
        versions = dict(self.versions)
        for version, usage in other.versions.items():
            versions[version] = versions[version].plus(usage) if version in versions else usage
        return ModelUsage(name=self.name, calls=self.calls + other.calls, errors=self.errors + other.errors,
                          last_call=_latest(self.last_call, other.last_call), versions=versions)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC to the second, e.g. `2026-05-04T09:30:00Z`."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((m for m in (a, b) if m is not None), default=None)


def _count(raw: str | None) -> int:
    """A tag's count; a hand-edited, unreadable value counts as 0 rather than blocking every later write."""
    try:
        return max(0, int(raw)) if raw is not None else 0
    except ValueError:
        return 0


def _time(raw: str | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed is not None and parsed.tzinfo is None else parsed


def _merged(existing: Mapping[str, str], calls: int, last_call: datetime | None) -> dict[str, str]:
    tags = {TAG_CALLS: str(_count(existing.get(TAG_CALLS)) + calls)}
    latest = _latest(_time(existing.get(TAG_LAST_CALL)), last_call)
    if latest is not None:  # the later of both: another replica may have written a newer one
        tags[TAG_LAST_CALL] = format_time(latest)
    return tags


def merged_model_tags(existing: Mapping[str, str], usage: ModelUsage) -> dict[str, str]:
    """The registered-model usage tags after adding `usage` to the `existing` tags."""
    tags = _merged(existing, usage.calls, usage.last_call)
    tags[TAG_ERRORS] = str(_count(existing.get(TAG_ERRORS)) + usage.errors)
    return tags


def merged_version_tags(existing: Mapping[str, str], usage: VersionUsage) -> dict[str, str]:
    """The model-version usage tags after adding `usage` to the `existing` tags."""
    return _merged(existing, usage.calls, usage.last_call)


def without_usage_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags without Toolbridge's own bookkeeping: usage counts and lint findings."""
    return {key: value for key, value in tags.items()
            if not key.startswith(USAGE_TAG_PREFIX) and key != TAG_LINT}
