"""Search mode: two tools instead of the whole catalog (pure). An agent carries `find_tools` and `call_tool`
in its context whatever the registry holds, finds the tools a task needs, then calls them by name through the
same gateway as a direct call (scopes, rate limit, audit, errors).

MCP serves them at /mcp/search; `GET /openai/tools?mode=search` gives their OpenAI form (an app runs
`find_tools` as `GET /tools?q=` and `call_tool` as `POST /tools/{name}/invoke`); the LangChain toolkit builds
them with `mode="search"`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.toolspec import ToolSpec

__all__ = ["CALL_TOOL", "CALL_TOOL_DESCRIPTION", "CALL_TOOL_SCHEMA", "DEFAULT_LIMIT", "FIND_TOOLS",
           "FIND_TOOLS_DESCRIPTION", "FIND_TOOLS_SCHEMA", "MAX_LIMIT", "SearchModeError", "call_arguments",
           "find_arguments", "found_tools", "openai_search_tools", "tool_card"]

FIND_TOOLS, CALL_TOOL = "find_tools", "call_tool"
DEFAULT_LIMIT, MAX_LIMIT = 5, 20
MAX_QUERY = 500

FIND_TOOLS_DESCRIPTION = (
    "Search the catalog of machine-learning model tools for the ones that fit a task. Describe what you need "
    "in plain words (e.g. 'probability a telecom customer churns'). Returns the best matching tools, each "
    "with its name, description and input_schema; then call one with call_tool.")
CALL_TOOL_DESCRIPTION = (
    "Call a tool found with find_tools: `name` is the tool's name, `arguments` an object matching its "
    "input_schema. Returns the model's answer, or an error that says which argument to fix.")
FIND_TOOLS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY,
                  "description": "what the tool should do, in plain words"},
        "limit": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT,
                  "description": f"how many tools to return, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"},
    },
    "required": ["query"],
    "additionalProperties": False,
}
CALL_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 64,
                 "description": "the tool's name, as find_tools gave it"},
        "arguments": {"type": "object", "description": "the tool's arguments, matching its input_schema"},
    },
    "required": ["name", "arguments"],
    "additionalProperties": False,
}


class SearchModeError(ValueError):
    """Arguments of find_tools or call_tool that cannot be used; the message says how to fix them."""


def find_arguments(arguments: Mapping[str, Any] | None) -> tuple[str, int]:
    """(query, limit) from find_tools' arguments."""
    arguments = arguments or {}
    unknown = sorted(set(arguments) - {"query", "limit"})
    if unknown:
        raise SearchModeError(f"find_tools takes `query` and `limit`, not {', '.join(unknown)}")
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise SearchModeError("find_tools needs `query`: a non-empty string saying what the tool should do, "
                              f"got {query!r}")
    if len(query) > MAX_QUERY:
        raise SearchModeError(f"`query` is {len(query)} characters; keep it under {MAX_QUERY}")
    limit = arguments.get("limit")
    if limit is None or limit == "":
        return query, DEFAULT_LIMIT
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)  # some clients send every number as a float (3.0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise SearchModeError(f"`limit` must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return query, limit


def call_arguments(arguments: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """(tool name, its arguments) from call_tool's arguments."""
    arguments = arguments or {}
    unknown = sorted(set(arguments) - {"name", "arguments"})
    if unknown:
        raise SearchModeError(f"call_tool takes `name` and `arguments`, not {', '.join(unknown)}; put the "
                              "tool's own arguments inside `arguments`")
    name = arguments.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SearchModeError(f"call_tool needs `name`: a tool name from find_tools, got {name!r}")
    inner = arguments.get("arguments")
    if inner is None or inner == "":
        inner = {}
    if not isinstance(inner, dict):
        raise SearchModeError(f"`arguments` must be an object of the tool's arguments, e.g. {{\"age\": 41}}, "
                              f"got {type(inner).__name__}")
    return name.strip(), inner


def tool_card(spec: ToolSpec) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "input_schema": spec.input_schema}


def found_tools(query: str, hits: Sequence[tuple[ToolSpec, float]]) -> dict[str, Any]:
    """find_tools' answer: the cards, best first, and what to do next."""
    if not hits:
        return {"tools": [], "hint": f"No tool matches {query!r}. Try other words (what is predicted, for "
                                     "which domain), or fewer of them."}
    return {"tools": [tool_card(spec) for spec, _ in hits],
            "hint": "Call the best fitting tool with call_tool(name, arguments)."}


def openai_search_tools() -> list[dict[str, Any]]:
    """The two tools as OpenAI function-calling tools. call_tool is not strict: its `arguments` differ per
    tool (strict mode needs every object's properties listed)."""
    find = {**FIND_TOOLS_SCHEMA, "required": ["query", "limit"]}  # strict: every property required
    find["properties"] = {name: {k: v for k, v in prop.items() if k not in ("minLength", "maxLength",
                                                                             "minimum", "maximum")}
                          for name, prop in FIND_TOOLS_SCHEMA["properties"].items()}
    return [
        {"type": "function", "function": {"name": FIND_TOOLS, "description": FIND_TOOLS_DESCRIPTION,
                                          "parameters": find, "strict": True}},
        {"type": "function", "function": {"name": CALL_TOOL, "description": CALL_TOOL_DESCRIPTION,
                                          "parameters": CALL_TOOL_SCHEMA, "strict": False}},
    ]
