"""Wire schemas of the HTTP API, named by role."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["ErrorBody", "FieldProblemPublic", "ModelRefPublic", "ToolPublic", "VersionStatusPublic"]


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
    field: str
    expected: str
    got: str
    message: str


class ErrorBody(BaseModel):
    error: str
    message: str
    problems: list[FieldProblemPublic] = []


class VersionStatusPublic(BaseModel):
    tool: str
    model: str
    version: str
    role: str
    state: str
    reason: str | None = None
    host: str | None = None
