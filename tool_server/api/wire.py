"""Wire schemas of the HTTP API, named by role, and the error answers each route declares."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

__all__ = ["ANSWER_HEADERS", "ERROR_DESCRIPTIONS", "INVOKE_OPENAPI", "INVOKE_RESPONSES", "RETRY_AFTER_HEADER",
           "RETRY_AFTER_STATUSES", "WEBHOOK_OPENAPI", "WEBHOOK_RESPONSES", "AuditSince", "ErrorBody",
           "FieldProblemPublic", "ModelRefPublic", "ToolPublic", "VersionStatusPublic", "error_responses"]


class ModelRefPublic(BaseModel):
    name: str
    version: str


class ToolPublic(BaseModel):
    name: str
    description: str
    model: ModelRefPublic
    kind: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    invoke_url: str


class FieldProblemPublic(BaseModel):
    field: str = Field(description="the argument or parameter at fault")
    expected: str = Field(description="what it must be")
    got: str = Field(description="what came")
    message: str = Field(description="the same, in one sentence")


class ErrorBody(BaseModel):
    """Every error answer: 4xx and 5xx alike, from every route."""

    error: str = Field(description="machine-readable error kind, e.g. invalid_arguments")
    message: str = Field(description="what went wrong and how to fix the call")
    problems: list[FieldProblemPublic] = Field(description="one entry per bad field (422), else empty")


class VersionStatusPublic(BaseModel):
    tool: str
    model: str
    version: str
    role: str
    state: str
    reason: str | None = None
    host: str | None = None


# One wording per status, shared by the management API (FastAPI's spec) and the tool OpenAPI export.
ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "no API key, or an unknown, expired or revoked one",
    403: "this API key may not use this endpoint or call this tool",
    404: "no such tool (or tool version) is live now; GET /tools lists them",
    413: "the request body is too large",
    422: "invalid arguments or parameters (`problems` names each bad field), or arguments the model itself "
         "cannot use (error `model_rejected_input`, e.g. a number far out of range)",
    429: "this API key's rate limit is used up; retry after Retry-After seconds",
    502: "the model failed while answering (not a fault of the call)",
    503: "the model is temporarily unavailable; retry after Retry-After seconds",
    504: "the model did not answer within the call timeout",
}


# RFC 3339, what `format: date-time` promises: pydantic alone also takes "0.5" (unix seconds) or a bare date.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    if isinstance(value, datetime):
        return value
    # The words after "expected": the 422 handler adds the parameter's name and what came.
    raise ValueError("an ISO 8601 date-time with a time zone, e.g. 2026-01-01T00:00:00Z")


AuditSince = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


# The headers of a tool's answer (declared in both OpenAPI documents).
ANSWER_HEADERS: dict[str, dict[str, Any]] = {
    "X-Toolbridge-Model-Version": {"description": "the model version that answered", "required": True,
                                   "schema": {"type": "string"}},
    "X-Toolbridge-Cache": {"description": "hit or miss, when the response cache applies to this tool",
                           "schema": {"type": "string", "enum": ["hit", "miss"]}},
}
RETRY_AFTER_HEADER: dict[str, Any] = {"description": "seconds to wait before calling again", "required": True,
                                      "schema": {"type": "integer", "minimum": 0}}
RETRY_AFTER_STATUSES = (429, 503, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` entries: these statuses answer with an ErrorBody (and Retry-After where due)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        responses[status] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        if status in RETRY_AFTER_STATUSES:
            responses[status]["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    return responses


# `/tools/{name}/invoke` in the management API: the body and answer depend on the tool, so they are generic
# here; each tool's exact schemas are in GET /openapi.json (the tool OpenAPI document).
INVOKE_OPENAPI: dict[str, Any] = {"requestBody": {
    "required": True,
    "description": "the tool's arguments as one JSON object; GET /tools/{name} gives its input_schema",
    "content": {"application/json": {"schema": {"type": "object"}}},
}}
INVOKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the model's answer; its exact schema is the tool's output_schema",
          "headers": ANSWER_HEADERS,
          "content": {"application/json": {"schema": {
              "type": "object", "required": ["model"],
              "properties": {"model": {"type": "object", "required": ["name", "version"],
                                       "properties": {"name": {"type": "string"},
                                                      "version": {"type": "string"}}}},
          }}}},
    **error_responses(401, 403, 404, 413, 422, 429, 502, 503, 504),
}

# `POST /hooks/mlflow`: what MLflow sends (registry_sync.webhooks verifies it) and what it gets back.
WEBHOOK_OPENAPI: dict[str, Any] = {"requestBody": {
    "required": True,
    "description": "an MLflow webhook delivery, signed with the shared secret",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["entity", "action"],
        "properties": {"entity": {"type": "string", "examples": ["model_version_alias"]},
                       "action": {"type": "string", "examples": ["created"]},
                       "data": {"type": "object", "description": "the model name, version, alias or tag"}},
    }}},
}}
WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "accepted: the next registry pass runs now",
          "content": {"application/json": {"schema": {
              "type": "object", "required": ["accepted"], "properties": {"accepted": {"type": "boolean"}}}}}},
    401: {"model": ErrorBody,
          "description": "rejected: unsigned, forged, stale, replayed or malformed delivery"},
    404: {"model": ErrorBody, "description": "webhooks are off: no secret is configured"},
    413: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[413]},
}
