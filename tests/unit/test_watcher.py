"""The watch loop over an in-memory registry: transitions, O(changes) fetches, fail-static."""

from __future__ import annotations

import asyncio

from registry_sync import (
    ApprovalPolicy,
    InMemoryRegistry,
    RegisteredModelInfo,
    RegistryWatcher,
    SyncPlan,
    VersionDetails,
)

SIGNATURE = {"inputs": [{"type": "string", "name": "text", "required": True}], "outputs": None,
             "params": None}


def registry_with(*versions: str) -> InMemoryRegistry:
    registry = InMemoryRegistry()
    for version in versions:
        registry.put_version(VersionDetails(name="m", version=version, uri=f"models:/m/{version}",
                                            signature=SIGNATURE))
    return registry


def set_aliases(registry: InMemoryRegistry, stamp: int, **aliases: str) -> None:
    registry.put_model(RegisteredModelInfo(name="m", aliases=aliases, last_updated_timestamp=stamp))


def sync(watcher: RegistryWatcher) -> SyncPlan:
    return asyncio.run(watcher.sync_once())


def test_new_approval_then_alias_move_then_delete() -> None:
    registry = registry_with("1", "2")
    watcher = RegistryWatcher(registry, ApprovalPolicy(), poll_interval=1)
    set_aliases(registry, 1, champion="1")
    plan = sync(watcher)
    assert [c.key for c in plan.added] == ["m/1"] and not plan.removed
    set_aliases(registry, 2, champion="2")
    plan = sync(watcher)
    assert [c.key for c in plan.added] == ["m/2"] and [c.key for c in plan.removed] == ["m/1"]
    set_aliases(registry, 3)
    plan = sync(watcher)
    assert [c.key for c in plan.removed] == ["m/2"] and watcher.snapshot.refs == {}


def test_idle_pass_fetches_nothing() -> None:
    registry = registry_with("1")
    set_aliases(registry, 1, champion="1")
    watcher = RegistryWatcher(registry, ApprovalPolicy(), poll_interval=1)
    sync(watcher)
    fetched = registry.fetch_calls
    plan = sync(watcher)
    assert plan.empty
    assert registry.fetch_calls == fetched == 1


def test_registry_down_keeps_last_snapshot_and_reports_degraded() -> None:
    registry = registry_with("1")
    set_aliases(registry, 1, champion="1")
    watcher = RegistryWatcher(registry, ApprovalPolicy(), poll_interval=1)
    sync(watcher)
    registry.available = False
    plan = sync(watcher)
    assert plan.empty
    assert list(watcher.snapshot.refs) == ["m/1"]
    assert watcher.status.state == "degraded" and "switched off" in (watcher.status.last_error or "")
    registry.available = True
    sync(watcher)
    assert watcher.status.state == "ok" and watcher.status.last_error is None


def test_alias_on_missing_version_is_excluded_not_fatal() -> None:
    registry = registry_with("1")
    set_aliases(registry, 1, champion="7")
    watcher = RegistryWatcher(registry, ApprovalPolicy(), poll_interval=1)
    sync(watcher)
    assert watcher.snapshot.refs == {}
    assert watcher.snapshot.excluded[0].version == "7"
    assert watcher.status.state == "ok"


def test_description_edit_is_a_change_with_reason() -> None:
    registry = registry_with("1")
    set_aliases(registry, 1, champion="1")
    watcher = RegistryWatcher(registry, ApprovalPolicy(), poll_interval=1)
    sync(watcher)
    registry.put_model(RegisteredModelInfo(name="m", aliases={"champion": "1"}, description="new",
                                           last_updated_timestamp=2))
    plan = sync(watcher)
    assert [(c.key, c.reason) for c in plan.changed] == [("m/1", "changed: model_description")]
