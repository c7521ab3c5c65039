"""Approval policy: which aliased versions become tools, under which tool name (pure, no I/O)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from registry_sync.shadow import TAG_SHADOW_RATE
from registry_sync.types import Exclusion, RegisteredModelInfo

__all__ = ["ApprovalPolicy", "Candidate", "SyncSettings", "safe_tool_name", "select_candidates"]

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TAG_TOOL_NAME = "toolbridge.tool_name"
TAG_ENABLED = "toolbridge.enabled"
TAG_CANARY_WEIGHT = "toolbridge.canary_weight"


def _split_csv(value: object) -> object:
    """Accept `a,b` from the environment as well as a list from code."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ApprovalPolicy(BaseModel):
    """Which aliases approve a version, which alias marks a canary, which tags a model must carry."""

    model_config = ConfigDict(frozen=True)

    approval_aliases: tuple[str, ...] = ("champion",)
    canary_alias: str | None = "challenger"
    shadow_alias: str | None = "shadow"
    required_tags: dict[str, str] = Field(default_factory=dict)


class SyncSettings(BaseSettings):
    """Registry watch settings, from `TOOLBRIDGE_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore")

    approval_aliases: Annotated[list[str], NoDecode] = ["champion"]
    canary_alias: str | None = "challenger"
    shadow_alias: str | None = "shadow"
    required_tags: dict[str, str] = {}
    poll_interval: float = Field(default=5.0, gt=0, description="seconds between two registry passes")

    _split_aliases = field_validator("approval_aliases", mode="before")(_split_csv)

    @field_validator("approval_aliases")
    @classmethod
    def _at_least_one(cls, aliases: list[str]) -> list[str]:
        if not aliases:
            raise ValueError("TOOLBRIDGE_APPROVAL_ALIASES needs at least one alias, e.g. 'champion'")
        return aliases

    def policy(self) -> ApprovalPolicy:
        return ApprovalPolicy(
            approval_aliases=tuple(self.approval_aliases),
            canary_alias=self.canary_alias or None,
            shadow_alias=self.shadow_alias or None,
            required_tags=self.required_tags,
        )


class Candidate(BaseModel):
    """A version the policy approves, before its details are fetched."""

    model_config = ConfigDict(frozen=True)

    model: RegisteredModelInfo
    version: str
    role: str  # "champion", "canary" or "shadow"
    tool_name: str
    canary_weight: float = 0.0
    shadow_rate: float = 0.0


def safe_tool_name(model_name: str) -> str:
    """The model name made to match OpenAI's tool-name rule `^[A-Za-z0-9_-]{1,64}$`."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", model_name).strip("_") or "model"
    return name[:64]


def _canary_weight(model: RegisteredModelInfo) -> float | str:
    raw = model.tags.get(TAG_CANARY_WEIGHT, "0.1")
    try:
        weight = float(raw)
    except ValueError:
        return f"tag {TAG_CANARY_WEIGHT}={raw!r} is not a number; set it to a share between 0 and 1, e.g. 0.1"
    if not 0.0 <= weight <= 1.0:
        return f"tag {TAG_CANARY_WEIGHT}={raw!r} is outside 0..1; set it to a share between 0 and 1, e.g. 0.1"
    return weight


def _shadow_rate(model: RegisteredModelInfo) -> float | str:
    raw = model.tags.get(TAG_SHADOW_RATE, "1.0")
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:  # NaN too
        return (f"tag {TAG_SHADOW_RATE}={raw!r} is not a share between 0 and 1; set it to the share of the "
                "champion's calls to mirror to the shadow version, e.g. 0.25 (default 1.0)")
    return rate


def _shadow(model: RegisteredModelInfo, policy: ApprovalPolicy, tool_name: str,
            taken: set[str]) -> tuple[list[Candidate], list[str]]:
    """The version holding the shadow alias, unless it already answers as champion or canary."""
    version = model.aliases.get(policy.shadow_alias) if policy.shadow_alias else None
    if version is None or version in taken:
        return [], []
    rate = _shadow_rate(model)
    if isinstance(rate, str):
        return [], [f"shadow version {version} is not mirrored: {rate}"]
    return [Candidate(model=model, version=version, role="shadow", tool_name=tool_name, shadow_rate=rate)], []


def _model_candidates(
    model: RegisteredModelInfo, policy: ApprovalPolicy
) -> tuple[list[Candidate], list[str]]:
    """Candidates of one model, or the reason (for each aliased version) why there are none."""
    if model.tags.get(TAG_ENABLED, "true").strip().lower() in {"false", "0", "no", "off"}:
        return [], []  # opted out: withdrawn silently, as the data scientist asked
    for tag, wanted in policy.required_tags.items():
        if model.tags.get(tag) != wanted:
            return [], []  # not meant to be a tool under this policy
    tool_name = model.tags.get(TAG_TOOL_NAME) or safe_tool_name(model.name)
    if not TOOL_NAME_PATTERN.match(tool_name):
        return [], [f"tag {TAG_TOOL_NAME}={tool_name!r} must match ^[A-Za-z0-9_-]{{1,64}}$"]
    champion = next((model.aliases[a] for a in policy.approval_aliases if a in model.aliases), None)
    if champion is None:
        return [], []
    found = [Candidate(model=model, version=champion, role="champion", tool_name=tool_name)]
    problems: list[str] = []
    canary = model.aliases.get(policy.canary_alias) if policy.canary_alias else None
    if canary is not None and canary != champion:
        weight = _canary_weight(model)
        if isinstance(weight, str):
            problems.append(weight)
        else:
            found.append(Candidate(model=model, version=canary, role="canary", tool_name=tool_name,
                                   canary_weight=weight))
    shadows, shadow_problems = _shadow(model, policy, tool_name, {champion, canary or champion})
    return found + shadows, problems + shadow_problems


def select_candidates(
    models: list[RegisteredModelInfo], policy: ApprovalPolicy
) -> tuple[list[Candidate], list[Exclusion]]:
    """Approved versions of every model, with name collisions excluded on both sides."""
    candidates: list[Candidate] = []
    excluded: list[Exclusion] = []
    for model in models:
        found, problems = _model_candidates(model, policy)
        candidates.extend(found)
        for problem in problems:
            version = found[0].version if found else next(iter(model.aliases.values()), "?")
            excluded.append(Exclusion(name=model.name, version=version, reason=problem))
    owners: dict[str, set[str]] = {}
    for candidate in candidates:
        owners.setdefault(candidate.tool_name, set()).add(candidate.model.name)
    clashing = {tool for tool, names in owners.items() if len(names) > 1}
    for candidate in candidates:
        if candidate.tool_name in clashing:
            others = sorted(owners[candidate.tool_name] - {candidate.model.name})
            excluded.append(Exclusion(
                name=candidate.model.name, version=candidate.version,
                reason=f"tool name {candidate.tool_name!r} is also claimed by {', '.join(others)}; "
                f"give one of them a distinct tag {TAG_TOOL_NAME}",
            ))
    return [c for c in candidates if c.tool_name not in clashing], excluded
