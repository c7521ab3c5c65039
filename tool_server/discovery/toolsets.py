"""Toolsets: named groups of tools from the registered-model tag `toolbridge.toolsets=finance,risk` (pure).

A tool may be in several toolsets. A toolset's description comes from the setting
TOOLBRIDGE_TOOLSET_DESCRIPTIONS, else from the tag `toolbridge.toolset_description` of its first model (by
tool name) that has one, else it is generated from its tools' names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bridge.toolspec import ToolSpec

__all__ = ["TAG_TOOLSET_DESCRIPTION", "Toolset", "group_toolsets"]

TAG_TOOLSET_DESCRIPTION = "toolbridge.toolset_description"
_LISTED = 8  # tool names named in a generated description


@dataclass(frozen=True)
class Toolset:
    name: str
    description: str
    tools: tuple[str, ...]  # sorted tool names


def group_toolsets(specs: Sequence[ToolSpec], configured: Mapping[str, str],
                   model_tag: Callable[[ToolSpec, str], str | None]) -> dict[str, Toolset]:
    """Every toolset named by `specs`, sorted by name; `model_tag(spec, tag)` reads a registered-model tag."""
    members: dict[str, list[ToolSpec]] = {}
    for spec in sorted(specs, key=lambda s: s.name):
        for name in spec.toolsets:
            members.setdefault(name, []).append(spec)
    found: dict[str, Toolset] = {}
    for name in sorted(members):
        tools = members[name]
        description = configured.get(name) or next(
            (text.strip() for spec in tools if (text := model_tag(spec, TAG_TOOLSET_DESCRIPTION))
             and text.strip()), "")
        if not description:
            listed = ", ".join(spec.name for spec in tools[:_LISTED])
            more = f" and {len(tools) - _LISTED} more" if len(tools) > _LISTED else ""
            description = f"Toolset {name}: {listed}{more}."
        found[name] = Toolset(name=name, description=description, tools=tuple(s.name for s in tools))
    return found
