"""ToolSpec: what an agent sees of one approved model version (pure: registry facts + host facts → spec)."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from bridge.errors import BridgeError
from bridge.schema import input_schema, output_schema
from registry_sync import ModelVersionRef

__all__ = ["RESTRICTED", "TAG_TOOLSETS", "ModelFacts", "ToolSpec", "build_tool_spec", "describe",
           "sensitivity", "toolsets"]

TAG_DESCRIPTION = "toolbridge.description"
TAG_FIELD_DESCRIPTIONS = "toolbridge.field_descriptions"
TAG_SENSITIVITY = "toolbridge.sensitivity"
TAG_TOOLSETS = "toolbridge.toolsets"
TOOLSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RESTRICTED = "restricted"
NORMAL = "normal"


class ModelFacts(BaseModel):
    """What the model host learned by loading the model: its kind and class labels."""

    model_config = ConfigDict(frozen=True)

    kind: str = "other"  # classifier | regressor | other
    classes: tuple[Any, ...] | None = None


class ToolSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    model_name: str
    model_version: str
    model_uri: str
    role: str = "champion"
    kind: str = "other"
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    signature: dict[str, Any]
    sensitivity: str = NORMAL  # "restricted": only keys with the restricted scope see it; inputs never logged
    toolsets: tuple[str, ...] = ()  # from the model tag `toolbridge.toolsets=finance,risk`

    @property
    def key(self) -> str:
        return f"{self.model_name}/{self.model_version}"


def field_descriptions(ref: ModelVersionRef) -> dict[str, str]:
    raw = ref.model_tags.get(TAG_FIELD_DESCRIPTIONS)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BridgeError(f"tag {TAG_FIELD_DESCRIPTIONS} of {ref.name} is not valid JSON ({exc.msg}); "
                          'set it to an object like {"age": "Applicant age in years"}') from exc
    if not isinstance(parsed, dict):
        raise BridgeError(f"tag {TAG_FIELD_DESCRIPTIONS} of {ref.name} must be a JSON object of "
                          "field name → description")
    return {str(k): str(v) for k, v in parsed.items()}


def sensitivity(ref: ModelVersionRef) -> str:
    """`restricted` unless the tag is absent, empty, `normal` or `public`: a typo must fail closed."""
    value = ref.model_tags.get(TAG_SENSITIVITY, "").strip().lower()
    return NORMAL if value in ("", NORMAL, "public") else RESTRICTED


def toolsets(ref: ModelVersionRef) -> tuple[str, ...]:
    """`finance, Risk` → ("finance", "risk"): lower-cased, deduplicated; names that could not be a URL path
    segment or a scope (`toolset:NAME`) are left out (the catalog lint reports them)."""
    names = (part.strip().lower() for part in ref.model_tags.get(TAG_TOOLSETS, "").split(","))
    return tuple(sorted({name for name in names if TOOLSET_NAME.match(name)}))


def describe(ref: ModelVersionRef, facts: ModelFacts) -> str:
    """The description an LLM reads to decide when to call the tool."""
    parts = [p.strip() for p in (ref.model_tags.get(TAG_DESCRIPTION, ""), ref.model_description,
                                 ref.version_description) if p and p.strip()]
    if not parts:
        parts = [f"No description was provided by the owners of MLflow model {ref.name!r}; "
                 "this tool runs its approved version on the given inputs."]
    if facts.kind == "classifier" and facts.classes:
        labels = ", ".join(str(c) for c in facts.classes)
        parts.append(f"Returns `label`, one of: {labels}, and `probabilities` per label.")
    elif facts.kind == "regressor":
        parts.append("Returns `prediction`, a number.")
    else:
        parts.append("Returns `prediction`, the model's raw output.")
    parts.append(f"(MLflow model {ref.name} version {ref.version})")
    return "\n\n".join(dict.fromkeys(parts))


def build_tool_spec(ref: ModelVersionRef, facts: ModelFacts) -> ToolSpec:
    """Raises SchemaError when the version cannot be a tool (no signature, unsupported types)."""
    classes = list(facts.classes) if facts.classes is not None else None
    return ToolSpec(
        name=ref.tool_name,
        description=describe(ref, facts),
        model_name=ref.name,
        model_version=ref.version,
        model_uri=ref.uri,
        role=ref.role,
        kind=facts.kind,
        input_schema=input_schema(ref.signature, field_descriptions(ref)),
        output_schema=output_schema(facts.kind, classes, ref.signature),
        signature=ref.signature or {},
        sensitivity=sensitivity(ref),
        toolsets=toolsets(ref),
    )
