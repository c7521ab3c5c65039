"""The HTTP API: the FastAPI app and its short adapters (decode → core → encode). No business logic here.

    app          create_app(runtime): routes, MCP mount, middleware, exception handlers
    routes       /tools, /openapi.*, /openai/tools, /tools/{name}/invoke, /status, /audit, /metrics
    webhooks     POST /hooks/mlflow (MLflow's signed deliveries wake the registry watcher)
    deps         FastAPI dependencies as Annotated aliases (RuntimeDep, CallerDep, AdminDep, ...)
    middleware   pure-ASGI guards: RequestId, BodyLimit, ApiKeyGate (for /mcp)
    errors       every domain error → one HTTP status and error body, in one place
    wire         wire schemas named by role (ToolPublic, InvokeResponse, ErrorBody) and declared answers

Modules are imported by name; this package re-exports nothing so that importing one never imports all.
"""
