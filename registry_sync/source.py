"""The interface registry_sync reads MLflow through, and an in-memory registry for unit tests."""

from __future__ import annotations

from typing import Protocol

from registry_sync.errors import MalformedEntry, RegistryUnavailable
from registry_sync.types import RegisteredModelInfo, VersionDetails
from registry_sync.usage import ModelUsage, merged_model_tags, merged_version_tags

__all__ = ["InMemoryRegistry", "RegistrySource", "UsageSink"]


class RegistrySource(Protocol):
    """A model registry as registry_sync needs it: a cheap listing, and details on demand."""

    def list_models(self) -> list[RegisteredModelInfo]:
        """Every registered model with its tags and aliases. Raises RegistryUnavailable."""
        ...

    def fetch_version(self, name: str, version: str) -> VersionDetails:
        """One version's metadata and MLmodel. Raises MalformedEntry or RegistryUnavailable."""
        ...


class UsageSink(Protocol):
    """Where usage counts go: the registry's `toolbridge.usage.*` tags. Kept apart from RegistrySource,
    which the watcher reads through and which never writes."""

    def write_usage(self, usage: ModelUsage) -> None:
        """Add `usage` to the model's (and its versions') usage tags; versions gone from the registry are
        skipped. Raises RegistryUnavailable (keep the counts, retry) or MalformedEntry (the model is gone)."""
        ...


class InMemoryRegistry:
    """A RegistrySource held in memory, with call counters, for tests of the pure sync logic."""

    def __init__(self) -> None:
        self.models: dict[str, RegisteredModelInfo] = {}
        self.versions: dict[tuple[str, str], VersionDetails] = {}
        self.available = True
        self.list_calls = 0
        self.fetch_calls = 0
        self.usage_writes = 0

    def put_model(self, model: RegisteredModelInfo) -> None:
        self.models[model.name] = model

    def put_version(self, details: VersionDetails) -> None:
        self.versions[(details.name, details.version)] = details

    def list_models(self) -> list[RegisteredModelInfo]:
        self.list_calls += 1
        if not self.available:
            raise RegistryUnavailable("in-memory registry switched off")
        return list(self.models.values())

    def fetch_version(self, name: str, version: str) -> VersionDetails:
        self.fetch_calls += 1
        if not self.available:
            raise RegistryUnavailable("in-memory registry switched off")
        try:
            return self.versions[(name, version)]
        except KeyError:
            raise MalformedEntry(
                f"alias points at version {version} of {name!r}, which does not exist") from None

    def write_usage(self, usage: ModelUsage) -> None:
        self.usage_writes += 1
        if not self.available:
            raise RegistryUnavailable("in-memory registry switched off")
        model = self.models.get(usage.name)
        if model is None:
            raise MalformedEntry(f"registered model {usage.name!r} does not exist")
        tags = {**model.tags, **merged_model_tags(model.tags, usage)}
        self.models[usage.name] = model.model_copy(update={"tags": tags})
        for version, counted in usage.versions.items():
            details = self.versions.get((usage.name, version))
            if details is not None:
                tags = {**details.tags, **merged_version_tags(details.tags, counted)}
                self.versions[(usage.name, version)] = details.model_copy(update={"tags": tags})
