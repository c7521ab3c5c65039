"""The tool catalog as an OpenAPI 3.0.3 document a Dify custom tool imports (pure; every schema inline).

3.0.3 because Dify 1.14 crashes on a 3.1 type list; at most 100 operations a document because Dify refuses a
provider of more: a larger catalog is served in pages (`?page=`) or chosen by globs (`?tools=credit_*`).
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Sequence
from typing import Any

import yaml

from bridge.toolspec import ToolSpec
from tool_server.api.wire import ANSWER_HEADERS, ERROR_DESCRIPTIONS, RETRY_AFTER_HEADER, RETRY_AFTER_STATUSES
from tool_server.exports.openapi30 import body_property, to_openapi30

__all__ = ["ERROR_SCHEMA", "MAX_OPERATIONS", "PageError", "Selection", "build_openapi", "select_tools",
           "to_yaml"]

MAX_OPERATIONS = 100  # Dify refuses to create a custom-tool provider of more operations


class PageError(ValueError):
    """A `?page=` that is not a page of this catalog."""

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


def _request_schema(spec: ToolSpec) -> dict[str, Any]:
    schema = to_openapi30({k: v for k, v in spec.input_schema.items() if k != "properties"})
    schema["properties"] = {name: body_property(prop)
                            for name, prop in spec.input_schema.get("properties", {}).items()}
    return schema


def _operation(spec: ToolSpec) -> dict[str, Any]:
    return {
        "operationId": spec.name,
        "summary": _summary(spec),
        "description": spec.description,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _request_schema(spec)}},
        },
        "responses": {
            "200": {"description": "the model's answer",
                    "headers": copy.deepcopy(ANSWER_HEADERS),
                    "content": {"application/json": {"schema": to_openapi30(spec.output_schema)}}},
            **{str(status): _error(status) for status in INVOKE_ERRORS},
        },
    }


class Selection:
    """The tools of one document: those matching `patterns` (all if none), page `page` of at most
    MAX_OPERATIONS (`None`: the first; `"all"`: every tool in one document, too many for Dify)."""

    def __init__(self, specs: Sequence[ToolSpec], patterns: Sequence[str] = (),
                 page: int | str | None = None) -> None:
        chosen = sorted((s for s in specs if not patterns or any(fnmatch.fnmatchcase(s.name, p)
                                                                  for p in patterns)),
                        key=lambda s: s.name)
        self.total = len(chosen)
        self.pages = max(1, math.ceil(self.total / MAX_OPERATIONS))
        if page == "all":
            self.page: int | None = None
            self.specs = chosen
            return
        number = 1 if page is None else page
        if not isinstance(number, int) or not 1 <= number <= self.pages:
            raise PageError(f"page {page!r} does not exist: this catalog has {self.pages} page(s) of at most "
                            f"{MAX_OPERATIONS} tools; send ?page=1 to ?page={self.pages}, or ?page=all")
        self.page = number
        self.specs = chosen[(number - 1) * MAX_OPERATIONS:number * MAX_OPERATIONS]


def select_tools(specs: Sequence[ToolSpec], tools: str | None, page: str | None) -> Selection:
    """`?tools=credit_*,fin_*` and `?page=2` (or `all`) as the routes receive them."""
    patterns = [p.strip() for p in (tools or "").split(",") if p.strip()]
    if page is None or page == "all":
        return Selection(specs, patterns, page)
    if not page.isdigit():
        raise PageError(f"page must be a number from 1 or 'all', got {page!r}")
    return Selection(specs, patterns, int(page))


def _paging_note(selection: Selection, base_url: str, document_path: str) -> str:
    if selection.page is None or selection.pages == 1:
        return ""
    others = ", ".join(f"{base_url}{document_path}?page={n}" for n in range(1, selection.pages + 1)
                       if n != selection.page)
    by_name = document_path == "/openapi.json"  # ?tools= is the whole catalog's
    choose = ", or choose tools by name with ?tools=credit_*,fin_*" if by_name else ""
    return (f" This is page {selection.page} of {selection.pages} ({selection.total} tools; Dify holds at "
            f"most {MAX_OPERATIONS} a custom-tool provider): import the others as providers of their own "
            f"({others}){choose}.")


def build_openapi(specs: Sequence[ToolSpec] | Selection, base_url: str,
                  title: str = "Toolbridge tools", document_path: str = "/openapi.json") -> dict[str, Any]:
    """One POST operation per tool at `/tools/{name}/invoke`, `operationId` = tool name; `document_path` is
    where the document is served (its other pages are named after it)."""
    selection = specs if isinstance(specs, Selection) else Selection(specs, page="all")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": "1",
            "description": "Machine-learning models approved in MLflow, exposed as tools for LLM agents."
                           + _paging_note(selection, base_url, document_path),
        },
        "servers": [{"url": base_url}],
        "paths": {f"/tools/{spec.name}/invoke": {"post": _operation(spec)} for spec in selection.specs},
        "components": {"schemas": {}, "securitySchemes": copy.deepcopy(SECURITY_SCHEMES)},
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
    }


# libyaml's dumper when PyYAML was built with it: several times faster on a 500-tool catalog.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_yaml(document: dict[str, Any]) -> str:
    """The document as YAML (`GET /openapi.yaml`), key order kept."""
    text: str = yaml.dump(document, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)  # no stream: a str
    return text
