"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tool_server.errors import add_exception_handlers
from tool_server.hooks import router as hooks_router
from tool_server.mcp_server import McpEndpoint
from tool_server.routes import router
from tool_server.runtime import Runtime

__all__ = ["create_app"]


def create_app(runtime: Runtime) -> FastAPI:
    mcp = McpEndpoint(runtime)  # one per app: its session manager runs once

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            async with mcp.run():  # MCP sessions close before the bridge stops
                yield
        finally:
            await runtime.stop()

    # `/openapi.json` is the tool catalog for agents; the server's own API description lives at /api/*.
    app = FastAPI(title="Toolbridge", lifespan=lifespan, openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None)
    app.state.runtime = runtime
    add_exception_handlers(app)
    app.include_router(router)
    app.include_router(hooks_router)
    app.router.routes.append(mcp.route)
    return app
