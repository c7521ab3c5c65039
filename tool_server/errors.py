"""Domain errors → HTTP answers, in one place, registered by the app factory."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bridge.errors import BridgeError
from bridge.invoker import ModelFailure, ToolNotFound, ToolUnavailable
from bridge.validation import ToolInputError

__all__ = ["InvalidBody", "add_exception_handlers"]


class InvalidBody(Exception):
    """The request body is not a JSON object we can read."""


def _body(error: str, message: str, problems: list[dict[str, str]] | None = None) -> dict[str, object]:
    return {"error": error, "message": message, "problems": problems or []}


def add_exception_handlers(app: FastAPI) -> None:
    @app.exception_handler(ToolInputError)
    async def _invalid_arguments(_: Request, exc: ToolInputError) -> JSONResponse:
        problems = [{"field": p.field, "expected": p.expected, "got": p.got, "message": p.message}
                    for p in exc.problems]
        return JSONResponse(_body("invalid_arguments", str(exc), problems), status_code=422)

    @app.exception_handler(InvalidBody)
    async def _invalid_body(_: Request, exc: InvalidBody) -> JSONResponse:
        return JSONResponse(_body("invalid_body", str(exc)), status_code=422)

    @app.exception_handler(ToolNotFound)
    async def _not_found(_: Request, exc: ToolNotFound) -> JSONResponse:
        return JSONResponse(_body("tool_not_found", str(exc)), status_code=404)

    @app.exception_handler(ToolUnavailable)
    async def _unavailable(_: Request, exc: ToolUnavailable) -> JSONResponse:
        return JSONResponse(_body("tool_unavailable", str(exc)), status_code=503,
                            headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(ModelFailure)
    async def _model_failure(_: Request, exc: ModelFailure) -> JSONResponse:
        return JSONResponse(_body("model_failure", str(exc)), status_code=502)

    @app.exception_handler(BridgeError)
    async def _bridge_error(_: Request, exc: BridgeError) -> JSONResponse:
        return JSONResponse(_body("bridge_error", str(exc)), status_code=500)
