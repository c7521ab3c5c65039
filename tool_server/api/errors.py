"""Domain errors → HTTP answers, in one place, registered by the app factory.

Every error answer has the same body, `{error, message, problems}` (wire.ErrorBody): our domain errors,
FastAPI's own parameter validation (422) and Starlette's routing answers (404 unknown path, 405 method).

`error_code` gives the same (status, kind) to the audit log, so an MCP call's record says what the same
call would have answered over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bridge.errors import BridgeError
from bridge.invoker import ModelFailure, ModelRejectedInput, ToolNotFound, ToolTimeout, ToolUnavailable
from bridge.validation import ToolInputError
from tool_server.access.scopes import Forbidden, RateLimited, Unauthenticated
from tool_server.api.encoding import PythonJSONResponse
from tool_server.api.middleware import BodyTooLarge
from tool_server.api.wire import ERROR_DESCRIPTIONS
from tool_server.calls import InvalidBody
from tool_server.discovery.catalog import UnknownToolset

__all__ = ["InvalidBody", "PageNotFound", "add_exception_handlers", "document_error_bodies", "error_code"]


class PageNotFound(Exception):
    """A `?page=` past the last page of a catalog document."""

# Most specific first: the first matching class wins.
_CODES: list[tuple[type[Exception], int, str]] = [
    (ToolInputError, 422, "invalid_arguments"),
    (InvalidBody, 422, "invalid_body"),
    (PageNotFound, 404, "page_not_found"),
    (UnknownToolset, 404, "toolset_not_found"),
    (ModelRejectedInput, 422, "model_rejected_input"),
    (BodyTooLarge, 413, "body_too_large"),
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (RateLimited, 429, "rate_limited"),
    (ToolNotFound, 404, "tool_not_found"),
    (ToolTimeout, 504, "tool_timeout"),
    (ToolUnavailable, 503, "tool_unavailable"),
    (ModelFailure, 502, "model_failure"),
    (BridgeError, 500, "bridge_error"),
]


def error_code(exc: BaseException) -> tuple[int, str]:
    for kind, status, code in _CODES:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal_error"


def _body(error: str, message: str, problems: list[dict[str, str]] | None = None) -> dict[str, object]:
    return {"error": error, "message": message, "problems": problems or []}


def _headers(exc: Exception) -> dict[str, str]:
    if isinstance(exc, ToolUnavailable | RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    return {}


async def _handle(_: Request, exc: Exception) -> PythonJSONResponse:
    status, code = error_code(exc)
    problems = None
    if isinstance(exc, ToolInputError):
        problems = [{"field": p.field, "expected": p.expected, "got": p.got, "message": p.message}
                    for p in exc.problems]
    return PythonJSONResponse(_body(code, str(exc), problems), status_code=status, headers=_headers(exc))


_PLACES = {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body field"}


def _problem(error: dict[str, Any]) -> dict[str, str]:
    """One of pydantic's errors as a FieldProblem: "query parameter `limit`: expected ..., got 'abc'"."""
    place, *names = [str(part) for part in error.get("loc", ())] or ["request"]
    field = ".".join(names) or place
    where = f"{_PLACES.get(place, place)} `{field}`"
    expected = str(error.get("msg", "a valid value"))
    for prefix in ("Value error, ", "Input should be "):
        expected = expected.removeprefix(prefix)
    if error.get("type") == "missing":
        expected, got = "a value (it is required)", "nothing"
    else:
        got = repr(error.get("input"))[:80]
    return {"field": field, "expected": expected, "got": got,
            "message": f"{where}: expected {expected}, got {got}"}


async def _invalid_request(_: Request, exc: Exception) -> PythonJSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(error) for error in exc.errors()]
    message = "; ".join(p["message"] for p in problems) + ". Fix the request and send it again."
    return PythonJSONResponse(_body("invalid_request", message, problems), status_code=422)


async def _http_error(request: Request, exc: Exception) -> PythonJSONResponse:
    """Routing answers (unknown path, wrong method) in our body, pointing at the API description."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = (f"no endpoint at {request.url.path}; the API is described at /api/openapi.json, the tools "
                   "are listed at GET /tools")
    elif exc.status_code == 405:
        allowed = headers.get("Allow", "?")
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    else:
        message = str(exc.detail)
    try:
        kind = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:  # a status outside the standard list
        kind = "http_error"
    return PythonJSONResponse(_body(kind, message), status_code=exc.status_code, headers=headers)


def add_exception_handlers(app: FastAPI) -> None:
    for kind, _, _ in _CODES:
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)


_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def document_error_bodies(app: FastAPI) -> None:
    """Make the served API description say what `_invalid_request` answers: FastAPI declares its own 422
    body (HTTPValidationError) on every route with parameters; ours is ErrorBody."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # FastAPI caches it in app.openapi_schema: edited in place, once
        for operation in (op for path in document.get("paths", {}).values() for op in path.values()):
            answer = operation.get("responses", {}).get("422", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == _FASTAPI_422:
                operation["responses"]["422"] = {
                    "description": ERROR_DESCRIPTIONS[422],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        schemas = document.get("components", {}).get("schemas", {})
        if "ErrorBody" in schemas:
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
