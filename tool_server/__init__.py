"""tool_server: what agents and app builders see — catalog, exports, invocation — and the CLI.

    runtime.py  the one composition root: registry_sync + bridge + access + ops for one process
    calls.py    the one door of every tool call (HTTP, MCP): limit, authorise, decode, invoke, audit
    settings.py pydantic-settings classes, one per concern (TOOLBRIDGE_*)
    api/        the FastAPI app, routes, middleware, error mapping, webhook receiver
    exports/    the catalog as OpenAPI (Dify), OpenAI tools, MCP
    access/     API keys, scopes, rate limits, audit log, their database
    ops/        metrics, logs, usage write-back, embedded MLflow
    cli/        the `toolbridge` command
    demo/       the demo models `toolbridge up --demo` trains and registers

Nothing of Toolbridge imports it.
"""

__all__: list[str] = []
