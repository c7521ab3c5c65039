"""Pure snapshot logic: listing + details → Snapshot, and the diff between two snapshots."""

from __future__ import annotations

from registry_sync.policy import Candidate
from registry_sync.shadow import without_shadow_tags
from registry_sync.types import Change, Exclusion, ModelVersionRef, Snapshot, SyncPlan, VersionDetails
from registry_sync.usage import without_usage_tags

__all__ = ["diff", "make_ref"]

# Fields whose change alters the tool an agent sees or the version that answers.
_COMPARED = ("uri", "tool_name", "role", "canary_weight", "shadow_rate", "model_tags", "version_tags",
             "model_description", "version_description", "signature", "input_example", "aliases")


def make_ref(candidate: Candidate, details: VersionDetails) -> ModelVersionRef:
    model = candidate.model
    return ModelVersionRef(
        name=model.name,
        version=candidate.version,
        uri=details.uri,
        aliases=tuple(sorted(a for a, v in model.aliases.items() if v == candidate.version)),
        tool_name=candidate.tool_name,
        role=candidate.role,
        canary_weight=candidate.canary_weight,
        shadow_rate=candidate.shadow_rate,
        # Usage counts Toolbridge writes back are not the tool's metadata: with them a write would reload it.
        model_tags=without_usage_tags(model.tags),
        version_tags=without_shadow_tags(without_usage_tags(details.tags)),
        model_description=model.description,
        version_description=details.description,
        signature=details.signature,
        input_example=details.input_example,
        flavors=details.flavors,
    )


def _describe_added(ref: ModelVersionRef) -> str:
    aliases = ", ".join(ref.aliases) or ref.role
    return f"new {ref.role} version {ref.version} of {ref.name} (alias {aliases}) as tool {ref.tool_name}"


def diff(previous: Snapshot, current: Snapshot) -> SyncPlan:
    """Added, changed and removed versions between two snapshots, each with the reason."""
    added = [Change(key=k, reason=_describe_added(current.refs[k])) for k in sorted(current.refs)
             if k not in previous.refs]
    removed = [Change(key=k, reason=f"version {previous.refs[k].version} of {previous.refs[k].name} "
                      "is no longer approved (alias moved or deleted, opt-out tag, or model deleted)")
               for k in sorted(previous.refs) if k not in current.refs]
    changed = []
    for key in sorted(set(previous.refs) & set(current.refs)):
        before, after = previous.refs[key], current.refs[key]
        fields = [f for f in _COMPARED if getattr(before, f) != getattr(after, f)]
        if fields:
            changed.append(Change(key=key, reason="changed: " + ", ".join(fields)))
    return SyncPlan(added=tuple(added), changed=tuple(changed), removed=tuple(removed))


def exclusion(candidate: Candidate, reason: str) -> Exclusion:
    return Exclusion(name=candidate.model.name, version=candidate.version, reason=reason)
