"""Registry facts Toolbridge works from: approved model versions and the diff between snapshots."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelVersionRef(BaseModel):
    """One approved model version as the registry describes it (no model loaded).

    `signature` is MLflow's signature as stored in MLmodel, parsed:
    ``{"inputs": [...], "outputs": [...] | None, "params": [...] | None}``, each a list of MLflow
    column/tensor/param specs. `None` when the version has none. `input_example` is the example as
    records (list of dicts) for column models, or a nested list for tensors.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    uri: str
    aliases: tuple[str, ...] = ()
    tool_name: str = ""
    role: str = "champion"  # "champion" (approved), "canary", or "shadow" (mirrored, never answers)
    canary_weight: float = 0.0
    shadow_rate: float = 0.0  # role "shadow": share of the champion's calls mirrored to it
    model_tags: dict[str, str] = Field(default_factory=dict)
    version_tags: dict[str, str] = Field(default_factory=dict)
    model_description: str = ""
    version_description: str = ""
    signature: dict[str, Any] | None = None
    input_example: Any = None
    flavors: tuple[str, ...] = ()
    problem: str | None = None  # why this version cannot be exposed, if known upstream

    @property
    def key(self) -> str:
        return f"{self.name}/{self.version}"


class RegisteredModelInfo(BaseModel):
    """What one page of `search_registered_models` tells about a model: cheap to list, enough to diff."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)  # alias -> version
    last_updated_timestamp: int = 0


class Exclusion(BaseModel):
    """An aliased version that is not exposed, and why (shown in `GET /status`)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    reason: str


class Snapshot(BaseModel):
    """The approved versions at one moment, keyed by `name/version`."""

    model_config = ConfigDict(frozen=True)

    refs: dict[str, ModelVersionRef] = Field(default_factory=dict)
    excluded: tuple[Exclusion, ...] = ()


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    reason: str


class SyncPlan(BaseModel):
    """What changed between two snapshots; empty when nothing did."""

    model_config = ConfigDict(frozen=True)

    added: tuple[Change, ...] = ()
    changed: tuple[Change, ...] = ()
    removed: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


class VersionDetails(BaseModel):
    """What Toolbridge reads of one model version: its metadata and MLmodel (never the model itself)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    uri: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    signature: dict[str, Any] | None = None
    input_example: Any = None
    flavors: tuple[str, ...] = ()
