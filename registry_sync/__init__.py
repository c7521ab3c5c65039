"""registry_sync: reads the MLflow registry and says which model versions are approved as tools.

It imports nothing else of Toolbridge. `MlflowRegistry` is the only part that imports mlflow.
"""

from registry_sync.errors import MalformedEntry, RegistrySyncError, RegistryUnavailable
from registry_sync.policy import ApprovalPolicy, SyncSettings, safe_tool_name, select_candidates
from registry_sync.snapshot import diff
from registry_sync.source import InMemoryRegistry, RegistrySource
from registry_sync.types import (
    Change,
    Exclusion,
    ModelVersionRef,
    RegisteredModelInfo,
    Snapshot,
    SyncPlan,
    VersionDetails,
)
from registry_sync.watcher import RegistryWatcher, SyncStatus

__all__ = [
    "ApprovalPolicy",
    "Change",
    "Exclusion",
    "InMemoryRegistry",
    "MalformedEntry",
    "ModelVersionRef",
    "RegisteredModelInfo",
    "RegistrySource",
    "RegistrySyncError",
    "RegistryUnavailable",
    "RegistryWatcher",
    "Snapshot",
    "SyncPlan",
    "SyncSettings",
    "SyncStatus",
    "VersionDetails",
    "diff",
    "safe_tool_name",
    "select_candidates",
]
