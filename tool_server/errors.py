"""Domain errors → HTTP answers, in one place, registered by the app factory.

`error_code` gives the same (status, kind) to the audit log, so an MCP call's record says what the same
call would have answered over HTTP.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bridge.errors import BridgeError
from bridge.invoker import ModelFailure, ToolNotFound, ToolTimeout, ToolUnavailable
from bridge.validation import ToolInputError
from tool_server.calls import InvalidBody
from tool_server.middleware import BodyTooLarge
from tool_server.scopes import Forbidden, RateLimited, Unauthenticated

__all__ = ["InvalidBody", "add_exception_handlers", "error_code"]

# Most specific first: the first matching class wins.
_CODES: list[tuple[type[Exception], int, str]] = [
    (ToolInputError, 422, "invalid_arguments"),
    (InvalidBody, 422, "invalid_body"),
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


async def _handle(_: Request, exc: Exception) -> JSONResponse:
    status, code = error_code(exc)
    problems = None
    if isinstance(exc, ToolInputError):
        problems = [{"field": p.field, "expected": p.expected, "got": p.got, "message": p.message}
                    for p in exc.problems]
    return JSONResponse(_body(code, str(exc), problems), status_code=status, headers=_headers(exc))


def add_exception_handlers(app: FastAPI) -> None:
    for kind, _, _ in _CODES:
        app.add_exception_handler(kind, _handle)
