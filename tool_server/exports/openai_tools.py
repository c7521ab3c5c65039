"""The catalog as OpenAI function-calling tools, strict mode where the schema allows it (pure)."""

from __future__ import annotations

import re
from typing import Any

from bridge.schema import strict_variant
from bridge.toolspec import ToolSpec

__all__ = ["openai_tool", "openai_tools", "strict_problems"]

NAME_RULE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DESCRIPTION = 1024  # longer function descriptions are refused by some OpenAI-compatible servers
# Keywords strict mode does not accept; they stay in our own schema (validated server-side),
# not in the export.
_UNSUPPORTED = ("contentEncoding",)


def _strip_unsupported(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_unsupported(v) for k, v in node.items() if k not in _UNSUPPORTED}
    if isinstance(node, list):
        return [_strip_unsupported(v) for v in node]
    return node


def strict_problems(schema: Any, where: str = "parameters") -> list[str]:
    """Why `schema` breaks OpenAI strict mode (empty when it passes)."""
    if not isinstance(schema, dict):
        return [f"{where}: not a schema object"]
    problems: list[str] = []
    if "type" not in schema and "enum" not in schema:
        problems.append(f"{where}: has no type (strict mode needs every value typed)")
    types = schema.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if is_object:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            problems.append(f"{where}: object without properties (e.g. a map)")
            properties = {}
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties must be false")
        missing = sorted(set(properties) - set(schema.get("required", [])))
        if missing:
            problems.append(f"{where}: properties not in required: {', '.join(missing)}")
        for name, sub in properties.items():
            problems.extend(strict_problems(sub, f"{where}.{name}"))
    if "items" in schema:
        problems.extend(strict_problems(schema["items"], f"{where}[]"))
    for keyword in ("$ref", "allOf", "oneOf", "not"):
        if keyword in schema:
            problems.append(f"{where}: uses {keyword}")
    return problems


def openai_tool(spec: ToolSpec) -> dict[str, Any]:
    parameters = _strip_unsupported(strict_variant(spec.input_schema))
    strict = not strict_problems(parameters) and NAME_RULE.match(spec.name) is not None
    description = spec.description
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 3] + "..."
    return {"type": "function",
            "function": {"name": spec.name, "description": description, "parameters": parameters,
                         "strict": strict}}


def openai_tools(specs: list[ToolSpec]) -> list[dict[str, Any]]:
    return [openai_tool(spec) for spec in specs]
