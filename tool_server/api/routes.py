"""HTTP routes: short adapters (decode → core → encode)."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import ORJSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from bridge.invoker import InvokeResult
from bridge.toolspec import ToolSpec
from tool_server.access.audit import read_records
from tool_server.api.deps import AdminDep, CallerDep, CatalogReaderDep, HttpCallDep, RawBody, RuntimeDep
from tool_server.api.discovery import (
    LimitQuery,
    ModeQuery,
    SearchQuery,
    ToolsetQuery,
    catalog_answer,
    openai_answer,
)
from tool_server.api.encoding import PythonJSONResponse
from tool_server.api.errors import PageNotFound
from tool_server.api.wire import (
    INVOKE_OPENAPI,
    INVOKE_RESPONSES,
    AuditSince,
    ModelRefPublic,
    ToolPublic,
    error_responses,
)
from tool_server.exports.openapi_doc import PageError, build_openapi, select_tools, to_yaml

__all__ = ["router"]

router = APIRouter()

# Every route below declares the errors it can answer (wire.ErrorBody), so /api/openapi.json tells the truth.
KEYED = error_responses(401)  # any key may call it
ADMIN_ONLY = error_responses(401, 403)
PER_TOOL = error_responses(401, 403, 404)


def _only(media_type: str, description: str, schema: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A 200 that is not JSON: FastAPI would declare application/json."""
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


def _public(spec: ToolSpec, base_url: str) -> ToolPublic:
    return ToolPublic(
        name=spec.name, description=spec.description, kind=spec.kind,
        model=ModelRefPublic(name=spec.model_name, version=spec.model_version),
        input_schema=spec.input_schema, output_schema=spec.output_schema,
        invoke_url=f"{base_url}/tools/{spec.name}/invoke",
    )


@router.get("/healthz", tags=["service"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/status", tags=["service"], responses=ADMIN_ONLY)
async def status(runtime: RuntimeDep, _: AdminDep) -> dict[str, Any]:
    """The registry sync, each approved version, the model hosts (and with several workers, each worker)."""
    return {
        **await runtime.status(),
        "lint": runtime.discovery.view().report(),  # catalog lint findings, per tool (docs/discovery.md)
    }


@router.get("/metrics", tags=["service"], response_class=Response,
            responses={**_only("text/plain", "Prometheus text format", {"type": "string"}), **ADMIN_ONLY})
async def metrics(runtime: RuntimeDep, _: AdminDep) -> Response:
    """Prometheus metrics (admin key: scrape with `authorization: {credentials_file: admin.key}`)."""
    return Response(await runtime.metrics_text(), media_type=CONTENT_TYPE_LATEST)


@router.get("/audit", tags=["service"], responses=error_responses(401, 403, 422))
async def audit(runtime: RuntimeDep, _: AdminDep,
                since: Annotated[AuditSince | None, Query(description="records from this time on, e.g. "
                                                                      "2026-01-01T00:00:00Z")] = None,
                limit: Annotated[int, Query(ge=1, le=100_000, description="at most this many")] = 1000,
                key_name: Annotated[str | None, Query(min_length=1, max_length=64,
                                                      description="only this key's calls")] = None,
                ) -> list[dict[str, Any]]:
    """Audit records from `since` (ISO 8601), oldest first, at most `limit` (admin only)."""
    await runtime.audit.flush()  # what was called before this request is in the answer

    def read() -> list[dict[str, Any]]:
        records = read_records(runtime.engine, since=since, key_name=key_name)
        return [r.public() for r, _ in zip(records, range(limit), strict=False)]

    return await asyncio.to_thread(read)


@router.get("/tools", tags=["tools"], responses=error_responses(401, 404, 422),
            response_model=list[ToolPublic])
async def list_tools(runtime: RuntimeDep, caller: CallerDep, q: SearchQuery = None, limit: LimitQuery = None,
                     toolset: ToolsetQuery = None) -> Response:
    """The tools this key may call (of `toolset`); with `q`, the `limit` best matches, best first."""
    return await catalog_answer(runtime, caller, q, limit, toolset)


@router.get("/tools/{name}", tags=["tools"], responses=PER_TOOL)
async def get_tool(name: str, runtime: RuntimeDep, caller: CallerDep) -> ToolPublic:
    return _public(runtime.calls.tool(caller, name), runtime.server.base_url)


def _answer(result: InvokeResult) -> PythonJSONResponse:
    headers = {"X-Toolbridge-Model-Version": result.model_version}
    if result.cached is not None:  # only when the response cache applied to this tool
        headers["X-Toolbridge-Cache"] = "hit" if result.cached else "miss"
    return PythonJSONResponse(result.output, headers=headers)


@router.post("/tools/{name}/invoke", tags=["tools"], responses=INVOKE_RESPONSES,
             openapi_extra=INVOKE_OPENAPI)
async def invoke(name: str, runtime: RuntimeDep, caller: CallerDep, call: HttpCallDep, body: RawBody
                 ) -> PythonJSONResponse:
    return _answer(await runtime.calls.invoke(caller, name, call, raw=body))


@router.post("/tools/{name}/versions/{version}/invoke", tags=["tools"], responses=INVOKE_RESPONSES,
             openapi_extra=INVOKE_OPENAPI)
async def invoke_version(name: str, version: str, runtime: RuntimeDep, caller: CallerDep, call: HttpCallDep,
                         body: RawBody) -> PythonJSONResponse:
    return _answer(await runtime.calls.invoke(caller, name, call, raw=body, version=version))


ToolsQuery = Annotated[str | None, Query(
    description="only tools whose names match these comma-separated globs, e.g. credit_*,fin_*",
    max_length=2000)]
PageQuery = Annotated[str | None, Query(
    description="page of at most 100 tools (Dify's limit per custom-tool provider), from 1; `all` for every "
                "tool in one document", pattern="^([1-9][0-9]{0,5}|all)$")]
CATALOG = error_responses(401, 404, 422)


def _document(runtime: RuntimeDep, caller: CatalogReaderDep, tools: str | None, page: str | None
              ) -> dict[str, Any]:
    view = runtime.discovery.view()  # built once per catalog version and key scope, then shared (read only)

    def build() -> dict[str, Any]:
        try:
            selection = select_tools(view.visible(caller), tools, page)
        except PageError as exc:
            raise PageNotFound(str(exc)) from exc
        return build_openapi(selection, runtime.server.base_url)

    key = ("openapi", caller.scopes, tools, page, runtime.server.base_url)
    document: dict[str, Any] = view.memo(key, build)
    return document


@router.get("/openapi.json", tags=["exports"], responses=CATALOG)
async def openapi(runtime: RuntimeDep, caller: CatalogReaderDep, tools: ToolsQuery = None,
                  page: PageQuery = None) -> ORJSONResponse:
    """The tools this key may call, one OpenAPI 3.0.3 operation each: the URL a Dify custom tool imports.
    At most 100 operations a document (Dify's limit): `?page=` for the rest, `?tools=` to choose."""
    return ORJSONResponse(_document(runtime, caller, tools, page))


@router.get("/openapi.yaml", tags=["exports"], response_class=Response,
            responses={**_only("application/yaml", "/openapi.json in YAML", {"type": "object"}), **CATALOG})
async def openapi_yaml(runtime: RuntimeDep, caller: CatalogReaderDep, tools: ToolsQuery = None,
                       page: PageQuery = None) -> Response:
    return Response(to_yaml(_document(runtime, caller, tools, page)), media_type="application/yaml")


@router.get("/tools/{name}/openapi.json", tags=["exports"], responses=PER_TOOL)
async def tool_openapi(name: str, runtime: RuntimeDep, caller: CatalogReaderDep) -> ORJSONResponse:
    """A one-tool OpenAPI document, for importing a single tool."""
    spec = runtime.calls.tool(caller, name)
    return ORJSONResponse(build_openapi([spec], runtime.server.base_url, title=f"Toolbridge tool {name}"))


@router.get("/openai/tools", tags=["exports"], responses=error_responses(401, 404, 422))
async def openai(runtime: RuntimeDep, caller: CallerDep, toolset: ToolsetQuery = None,
                 mode: ModeQuery = "tools") -> Response:
    """The catalog as OpenAI function-calling tools (`tools=` of a chat completion request), per key (and
    toolset); `mode=search`: find_tools and call_tool only (run them as GET /tools?q= and POST invoke)."""
    return openai_answer(runtime, caller, toolset, mode)


@router.get("/stats/calls", tags=["service"], responses=ADMIN_ONLY)
async def call_stats(runtime: RuntimeDep, _: AdminDep) -> dict[str, Any]:
    """The last hour of calls per tool, minute by minute (calls, errors, rejected, p50/p99 ms), the versions
    that answered, and each live tool's routing (champion, canary and its weight), for the UI's operations
    page (admin only). Counted in this worker process: with several workers, each answers with its own calls
    (`worker_pid` says which); Prometheus' `/metrics` is the fleet-wide view."""
    routing = {name: {"champion": route.champion.spec.model_version,
                      "canary": route.canary.spec.model_version if route.canary else None,
                      "canary_weight": route.canary_weight if route.canary else 0.0}
               for name, route in sorted(runtime.bridge.reconciler.routes.items())}
    return {**runtime.call_stats.snapshot(), "worker_pid": os.getpid(), "routing": routing}
