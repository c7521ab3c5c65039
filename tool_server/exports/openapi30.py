"""JSON Schema 2020-12 (our tool schemas) → OpenAPI 3.0.3 schema objects that Dify 1.14 imports (pure).

Dify's custom-tool parser hashes each body property's `type`, so a type list (`["number", "null"]`) crashes
the import of the whole document: optional values become one `type` plus `nullable: true`. Dify shows the LLM
only a property's type and description and drops enum, bounds, formats, item types and object fields, so
those facts are restated in the description of each top-level property (the schema keeps them for other
clients). No `$ref` anywhere: every schema stays inline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bridge.schema import OPTIONAL_NOTE
from bridge.validation import example_of

__all__ = ["body_property", "to_openapi30"]

JsonSchema = Mapping[str, Any]
_DROPPED = ("$schema", "$id", "$defs", "$comment", "prefixItems", "contentMediaType", "unevaluatedProperties")
DIFY_OPTIONAL_NOTE = "Optional: omit it when unknown."
_PLURAL = {"integer": "integers", "number": "numbers", "string": "strings", "boolean": "booleans"}


def _kinds(schema: JsonSchema) -> tuple[list[str], bool]:
    """(non-null types, nullable) of a schema."""
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    return [k for k in kinds if k != "null"], "null" in kinds


def to_openapi30(schema: JsonSchema) -> dict[str, Any]:
    """`schema` in the OpenAPI 3.0.3 dialect, recursively: single types + nullable, no 2020-12 keywords."""
    out: dict[str, Any] = {}
    kinds, nullable = _kinds(schema)
    for key, value in schema.items():
        if key in _DROPPED or key == "type":
            continue
        if key == "properties":
            out[key] = {name: to_openapi30(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = to_openapi30(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [to_openapi30(sub) for sub in value]
        elif key == "const":
            out["enum"] = [value]
        elif key == "examples":
            if value:
                out["example"] = value[0]
        elif key == "contentEncoding":
            if value == "base64":
                out["format"] = "byte"
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if len(kinds) == 1:
        out["type"] = kinds[0]
    elif len(kinds) > 1:  # 3.0 has no type list: one branch per type
        out["anyOf"] = [{"type": kind} for kind in kinds]
    if nullable:
        out["nullable"] = True
    return out


def _plural(schema: JsonSchema) -> str:
    """What many values of `schema` are called: `numbers`, `arrays of integers`, `objects`."""
    kinds, _ = _kinds(schema)
    kind = kinds[0] if len(kinds) == 1 else None
    if kind == "array":
        items = schema.get("items")
        return "arrays of " + (_plural(items) if isinstance(items, Mapping) else "values")
    if kind == "object":
        return "objects"
    return _PLURAL.get(kind or "", "values")


def restated_facts(schema: JsonSchema) -> list[str]:
    """What Dify drops from a property's schema, in words for the LLM."""
    facts: list[str] = []
    kinds, _ = _kinds(schema)
    kind = kinds[0] if len(kinds) == 1 else None
    if schema.get("enum"):
        facts.append("One of: " + ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"]) + ".")
    bounds = [(word, schema[key]) for key, word in (("minimum", "at least"), ("maximum", "at most"),
                                                    ("exclusiveMinimum", "more than"),
                                                    ("exclusiveMaximum", "less than")) if key in schema]
    if bounds:
        facts.append("Must be " + " and ".join(f"{word} {value}" for word, value in bounds) + ".")
    if schema.get("format") == "date-time" and "date-time" not in str(schema.get("description", "")):
        facts.append("A date-time in ISO 8601, e.g. 2024-01-31T12:00:00Z.")
    if kind == "array":
        example = json.dumps(example_of(schema), ensure_ascii=False)
        items = schema.get("items")
        facts.append(f"Send a JSON array of {_plural(items) if isinstance(items, Mapping) else 'values'}, "
                     f"e.g. {example}.")
    elif kind == "object":
        props = schema.get("properties") or {}
        if props:
            fields = ", ".join(f"`{name}` ({'/'.join(_kinds(sub)[0]) or 'any'})"
                               for name, sub in props.items())
            facts.append(f"Send a JSON object with the fields {fields}, "
                         f"e.g. {json.dumps(example_of(schema), ensure_ascii=False)}.")
        else:
            values = schema.get("additionalProperties")
            value_kind = "/".join(_kinds(values)[0]) if isinstance(values, Mapping) else "any"
            facts.append(f"Send a JSON object mapping string keys to {value_kind} values, "
                         f"e.g. {json.dumps(example_of(schema), ensure_ascii=False)}.")
    return facts


def body_property(schema: JsonSchema) -> dict[str, Any]:
    """A top-level request-body property as Dify must see it: exactly one string `type`, and the facts it
    drops written into the description."""
    converted = to_openapi30(schema)
    if "type" not in converted:  # several types: Dify sends a typeless property as null; ask for text
        converted.pop("anyOf", None)
        converted["type"] = "string"
    facts = restated_facts(schema)
    # Dify fails a call itself when an LLM gives null for a number (int(None)): tell it to leave it out.
    given = str(schema.get("description", "")).strip().replace(OPTIONAL_NOTE, DIFY_OPTIONAL_NOTE)
    description = " ".join(part for part in [given, *facts] if part)
    if description:
        converted["description"] = description
    return converted
