"""The tool catalog as an OpenAPI 3.1 document a Dify custom tool imports (pure; every schema inline)."""

from __future__ import annotations

import copy
from typing import Any

from bridge.toolspec import ToolSpec

__all__ = ["build_openapi"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "machine-readable error kind"},
        "message": {"type": "string", "description": "what went wrong and how to fix the call"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "expected": {"type": "string"},
                               "got": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["error", "message"],
}


# Both ways of sending the key; Dify's custom tool wires either (Auth: API Key, Bearer or a custom header).
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "Authorization: Bearer <Toolbridge API key>"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "X-API-Key: <Toolbridge API key>"},
}


def _summary(spec: ToolSpec) -> str:
    first = spec.description.strip().split("\n", 1)[0]
    return first if len(first) <= 120 else first[:117] + "..."


def _error(description: str) -> dict[str, Any]:
    # A fresh dict each time: shared objects would come out of yaml.safe_dump as &anchors/*aliases.
    return {"description": description, "content": {"application/json": {"schema": copy.deepcopy(ERROR_SCHEMA)}}}


def _operation(spec: ToolSpec) -> dict[str, Any]:
    return {
        "operationId": spec.name,
        "summary": _summary(spec),
        "description": spec.description,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": copy.deepcopy(spec.input_schema)}},
        },
        "responses": {
            "200": {"description": "the model's answer",
                    "content": {"application/json": {"schema": copy.deepcopy(spec.output_schema)}}},
            "401": _error("no API key, or an unknown, expired or revoked one"),
            "403": _error("this API key may not call this tool"),
            "413": _error("the request body is too large"),
            "422": _error("invalid arguments; `problems` names each bad field"),
            "429": _error("this API key's rate limit is used up; retry after Retry-After"),
            "503": _error("the model is temporarily unavailable; retry after Retry-After"),
            "504": _error("the model did not answer within the call timeout"),
        },
    }


def build_openapi(specs: list[ToolSpec], base_url: str, title: str = "Toolbridge tools") -> dict[str, Any]:
    """One POST operation per tool at `/tools/{name}/invoke`, `operationId` = tool name."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1",
            "description": "Machine-learning models approved in MLflow, exposed as tools for LLM agents.",
        },
        "servers": [{"url": base_url}],
        "paths": {f"/tools/{spec.name}/invoke": {"post": _operation(spec)}
                  for spec in sorted(specs, key=lambda s: s.name)},
        "components": {"schemas": {}, "securitySchemes": copy.deepcopy(SECURITY_SCHEMES)},
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
    }
