"""`diff(previous, current)` on every registry transition a data scientist can cause."""

from __future__ import annotations

from registry_sync import (
    ApprovalPolicy,
    InMemoryRegistry,
    RegisteredModelInfo,
    RegistryWatcher,
    Snapshot,
    SyncPlan,
    VersionDetails,
    diff,
)

SIGNATURE = {"inputs": [{"type": "double", "name": "x", "required": True}], "outputs": None, "params": None}


class Registry:
    """An in-memory registry driven like a data scientist drives MLflow; each edit bumps the timestamp."""

    def __init__(self) -> None:
        self.source = InMemoryRegistry()
        self.watcher = RegistryWatcher(self.source, ApprovalPolicy(), poll_interval=1)
        self.stamp = 0

    def version(self, name: str, version: str, description: str = "") -> None:
        self.source.put_version(VersionDetails(name=name, version=version, uri=f"models:/{name}/{version}",
                                               signature=SIGNATURE, description=description))

    def model(self, name: str, aliases: dict[str, str], description: str = "", **tags: str) -> None:
        self.stamp += 1
        self.source.put_model(RegisteredModelInfo(
            name=name, aliases=aliases, description=description, last_updated_timestamp=self.stamp,
            tags={k.replace("__", "."): v for k, v in tags.items()}))

    def delete_model(self, name: str) -> None:
        del self.source.models[name]

    def sync(self) -> SyncPlan:
        import asyncio

        return asyncio.run(self.watcher.sync_once())


def keys(plan: SyncPlan) -> tuple[list[str], list[str], list[str]]:
    return ([c.key for c in plan.added], [c.key for c in plan.changed], [c.key for c in plan.removed])


def started(*versions: str, **aliases: str) -> Registry:
    registry = Registry()
    for version in versions:
        registry.version("m", version)
    registry.model("m", aliases)
    registry.sync()
    return registry


def test_identical_snapshots_make_an_empty_plan() -> None:
    registry = started("1", champion="1")
    assert diff(registry.watcher.snapshot, registry.watcher.snapshot).empty
    assert diff(Snapshot(), Snapshot()).empty


def test_new_approval_is_added_with_its_alias_in_the_reason() -> None:
    registry = started("1")
    registry.model("m", {"champion": "1"})
    plan = registry.sync()
    assert keys(plan) == (["m/1"], [], [])
    assert "alias champion" in plan.added[0].reason


def test_alias_moved_adds_new_and_removes_old() -> None:
    registry = started("1", "2", champion="1")
    registry.model("m", {"champion": "2"})
    assert keys(registry.sync()) == (["m/2"], [], ["m/1"])


def test_alias_deleted_removes() -> None:
    registry = started("1", champion="1")
    registry.model("m", {})
    plan = registry.sync()
    assert keys(plan) == ([], [], ["m/1"])
    assert "no longer approved" in plan.removed[0].reason


def test_opt_out_tag_removes() -> None:
    registry = started("1", champion="1")
    registry.model("m", {"champion": "1"}, toolbridge__enabled="false")
    assert keys(registry.sync()) == ([], [], ["m/1"])


def test_version_deleted_under_its_alias_removes_and_reports_why() -> None:
    registry = started("1", champion="1")
    del registry.source.versions[("m", "1")]
    registry.model("m", {"champion": "1"})  # MLflow drops the alias with the version; a stale one is excluded
    plan = registry.sync()
    assert keys(plan) == ([], [], ["m/1"])
    assert registry.watcher.snapshot.excluded[0].reason.endswith("which does not exist")


def test_model_deleted_removes() -> None:
    registry = started("1", champion="1")
    registry.delete_model("m")
    assert keys(registry.sync()) == ([], [], ["m/1"])


def test_model_renamed_is_a_removal_and_an_addition() -> None:
    registry = started("1", champion="1")
    registry.delete_model("m")
    registry.version("m2", "1")
    registry.model("m2", {"champion": "1"})
    assert keys(registry.sync()) == (["m2/1"], [], ["m/1"])


def test_description_and_tag_edits_are_changes_naming_the_fields() -> None:
    registry = started("1", champion="1")
    registry.model("m", {"champion": "1"}, description="Scores risk.", toolbridge__description="Risk score")
    plan = registry.sync()
    assert keys(plan) == ([], ["m/1"], [])
    assert plan.changed[0].reason == "changed: model_tags, model_description"


def test_tool_name_tag_edit_is_a_change() -> None:
    registry = started("1", champion="1")
    registry.model("m", {"champion": "1"}, toolbridge__tool_name="score")
    plan = registry.sync()
    assert plan.changed[0].reason == "changed: tool_name, model_tags"


def test_canary_added_then_removed() -> None:
    registry = started("1", "2", champion="1")
    registry.model("m", {"champion": "1", "challenger": "2"}, toolbridge__canary_weight="0.2")
    plan = registry.sync()
    assert keys(plan) == (["m/2"], ["m/1"], [])  # m/1's tags changed too (the weight tag)
    assert registry.watcher.snapshot.refs["m/2"].role == "canary"
    assert registry.watcher.snapshot.refs["m/2"].canary_weight == 0.2
    registry.model("m", {"champion": "1"}, toolbridge__canary_weight="0.2")
    assert keys(registry.sync()) == ([], [], ["m/2"])


def test_canary_promoted_to_champion_changes_role() -> None:
    registry = started("1", "2", champion="1", challenger="2")
    registry.model("m", {"champion": "2"})
    plan = registry.sync()
    assert keys(plan) == ([], ["m/2"], ["m/1"])
    assert "role" in plan.changed[0].reason
