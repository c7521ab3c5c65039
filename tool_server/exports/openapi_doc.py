"""The tool catalog as an OpenAPI 3.1 document a Dify custom tool imports (pure; every schema inline)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from bridge.toolspec import ToolSpec
from tool_server.api.wire import ANSWER_HEADERS, ERROR_DESCRIPTIONS, RETRY_AFTER_HEADER, RETRY_AFTER_STATUSES

__all__ = ["ERROR_SCHEMA", "build_openapi", "to_yaml"]

# wire.ErrorBody written out inline (Dify resolves only a top-level requestBody $ref).
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "machine-readable error kind, e.g. invalid_arguments"},
        "message": {"type": "string", "description": "what went wrong and how to fix the call"},
        "problems": {
            "type": "array",
            "description": "one entry per bad field (422), else empty",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "expected": {"type": "string"},
                               "got": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "expected", "got", "message"],
            },
        },
    },
    "required": ["error", "message", "problems"],
}

# Both ways of sending the key; Dify's custom tool wires either (Auth: API Key, Bearer or a custom header).
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "Authorization: Bearer <Toolbridge API key>"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "X-API-Key: <Toolbridge API key>"},
}

# What an invoke can answer besides 200.
INVOKE_ERRORS = (401, 403, 404, 413, 422, 429, 502, 503, 504)


def _summary(spec: ToolSpec) -> str:
    first = spec.description.strip().split("\n", 1)[0]
    return first if len(first) <= 120 else first[:117] + "..."


def _error(status: int) -> dict[str, Any]:
    # A fresh dict each time: shared objects would come out of the YAML dumper as &anchors/*aliases.
    answer: dict[str, Any] = {"description": ERROR_DESCRIPTIONS[status],
                              "content": {"application/json": {"schema": copy.deepcopy(ERROR_SCHEMA)}}}
    if status in RETRY_AFTER_STATUSES:
        answer["headers"] = {"Retry-After": copy.deepcopy(RETRY_AFTER_HEADER)}
    return answer


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
                    "headers": copy.deepcopy(ANSWER_HEADERS),
                    "content": {"application/json": {"schema": copy.deepcopy(spec.output_schema)}}},
            **{str(status): _error(status) for status in INVOKE_ERRORS},
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


# libyaml's dumper when PyYAML was built with it: several times faster on a 500-tool catalog.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_yaml(document: dict[str, Any]) -> str:
    """The document as YAML (`GET /openapi.yaml`), key order kept."""
    text: str = yaml.dump(document, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)  # no stream: a str
    return text
