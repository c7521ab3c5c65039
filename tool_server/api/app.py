"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.routing import Route

from tool_server.api.discovery import router as discovery_router
from tool_server.api.errors import add_exception_handlers, document_error_bodies
from tool_server.api.middleware import ApiKeyGate, BodyLimit, HostGuard, HostPolicy, RequestId, fast_http
from tool_server.api.routes import router
from tool_server.api.webhooks import router as hooks_router
from tool_server.exports.mcp_server import MCP_PATH, McpEndpoint
from tool_server.runtime import Runtime
from tool_server.shadow.routes import router as shadow_router
from tool_server.ui.routes import router as ui_router

__all__ = ["create_app", "server_options"]


def server_options() -> dict[str, Any]:
    """uvicorn's options for every tool-server process, single or worker."""
    # log_config=None, log_level=None: uvicorn's lines go through our handler, at our level. access_log=False:
    # the RequestId middleware writes each request's one access line (tool_server/ops/logs.py).
    return {"log_config": None, "log_level": None, "access_log": False, **fast_http()}


def create_app(runtime: Runtime) -> FastAPI:
    mcp = McpEndpoint(runtime)  # one per app: its session manager runs once

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            async with mcp.run():  # MCP sessions close before the bridge stops
                yield
        finally:
            await runtime.stop()  # flushes the audit log

    # `/openapi.json` is the tool catalog for agents; the server's own API description lives at /api/*.
    app = FastAPI(title="Toolbridge", lifespan=lifespan, openapi_url="/api/openapi.json",
                  docs_url="/api/docs", redoc_url=None)
    app.state.runtime = runtime
    add_exception_handlers(app)
    document_error_bodies(app)
    app.include_router(router)
    app.include_router(hooks_router)
    app.include_router(discovery_router)  # /toolsets (tool_server/discovery)
    app.include_router(shadow_router)  # GET /shadow (tool_server/shadow)
    app.include_router(ui_router)  # the web UI at /ui (tool_server/ui)
    # MCP: a 401 at the HTTP layer before the SDK sees anything; tools/list and tools/call then read the key's
    # principal from the request scope.
    app.router.routes.append(Route(MCP_PATH, endpoint=ApiKeyGate(StreamableHTTPASGIApp(mcp.manager),
                                                                   runtime.calls.authenticate)))
    app.router.routes.extend(mcp.discovery_routes(runtime.calls.authenticate))  # /mcp/search, /toolsets/*/mcp
    app.add_middleware(BodyLimit, limit=runtime.security.max_body_bytes)
    # Host/Origin (DNS rebinding, docs/security.md) on every route, /mcp included, before the key is read.
    app.add_middleware(HostGuard, policy=HostPolicy.of(runtime.server))
    app.add_middleware(RequestId)  # outermost: even a 413 or 421 carries the request id
    return app
