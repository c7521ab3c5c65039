"""Re-export of `bridge.pydantic_models` (tool input JSON Schema → pydantic model), where the builder moved so
that the model host can use it too (bridge must not import tool_server). Import from bridge in new code."""

from __future__ import annotations

from bridge.pydantic_models import model_from_schema, to_arguments

__all__ = ["model_from_schema", "to_arguments"]
