"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from tool_server.errors import InvalidBody
from tool_server.runtime import Runtime

__all__ = ["JsonBody", "RuntimeDep"]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def json_body(request: Request) -> Any:
    """The raw JSON body; parse errors become a 422 an LLM can act on (orjson also refuses NaN)."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidBody("the request body is empty; send the tool arguments as a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"the request body is not valid JSON ({exc}); send the arguments as a JSON object") \
            from exc


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
JsonBody = Annotated[Any, Depends(json_body)]
