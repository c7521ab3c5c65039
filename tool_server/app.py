"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tool_server.errors import add_exception_handlers
from tool_server.routes import router
from tool_server.runtime import Runtime

__all__ = ["create_app"]


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    # `/openapi.json` is the tool catalog for agents; the server's own API description lives at /api/*.
    app = FastAPI(title="Toolbridge", lifespan=lifespan, openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None)
    app.state.runtime = runtime
    add_exception_handlers(app)
    app.include_router(router)
    return app
