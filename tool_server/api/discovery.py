"""Discovery routes: toolsets, tool search, the per-toolset Dify document, search mode's OpenAI tools (short
adapters over tool_server/discovery; documents cached per catalog version and key scope)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from bridge.toolspec import ToolSpec
from tool_server.access.scopes import Principal
from tool_server.api.deps import CallerDep, CatalogReaderDep, RuntimeDep
from tool_server.api.errors import PageNotFound
from tool_server.api.wire import ModelRefPublic, ToolPublic, error_responses
from tool_server.discovery.search_mode import openai_search_tools
from tool_server.exports.openai_tools import openai_tools
from tool_server.exports.openapi_doc import PageError, build_openapi, select_tools
from tool_server.runtime import Runtime

__all__ = ["DEFAULT_SEARCH_LIMIT", "LimitQuery", "ModeQuery", "SearchQuery", "ToolsetQuery", "catalog_answer",
           "openai_answer", "router"]

router = APIRouter()

DEFAULT_SEARCH_LIMIT = 10
TOOLSET_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$"
SearchQuery = Annotated[str | None, Query(
    min_length=1, max_length=500, description="rank the tools by relevance to these words (BM25 over names, "
                                              "descriptions, fields, output labels, toolsets), best first")]
LimitQuery = Annotated[int | None, Query(
    ge=1, le=1000, description=f"at most this many tools (with q: default {DEFAULT_SEARCH_LIMIT})")]
ToolsetQuery = Annotated[str | None, Query(
    pattern=TOOLSET_PATTERN, description="only the tools of this toolset (model tag toolbridge.toolsets), "
                                         "e.g. finance")]
ToolsetPath = Annotated[str, Path(pattern=TOOLSET_PATTERN, description="a toolset name, e.g. finance")]
ModeQuery = Annotated[Literal["tools", "search"], Query(
    description="tools: one tool per catalog entry; search: the two tools find_tools and call_tool")]
PageQuery = Annotated[str | None, Query(
    description="page of at most 100 tools (Dify's limit per custom-tool provider), from 1; `all` for every "
                "tool in one document", pattern="^([1-9][0-9]{0,5}|all)$")]


def _json(content: Any) -> Response:
    body = content if isinstance(content, bytes) else orjson.dumps(content)
    return Response(body, media_type="application/json")


def tool_public(spec: ToolSpec, base_url: str) -> dict[str, Any]:
    return ToolPublic(
        name=spec.name, description=spec.description, kind=spec.kind,
        model=ModelRefPublic(name=spec.model_name, version=spec.model_version),
        input_schema=spec.input_schema, output_schema=spec.output_schema,
        invoke_url=f"{base_url}/tools/{spec.name}/invoke",
    ).model_dump(mode="json")


def _specs(runtime: Runtime, caller: Principal, toolset: str | None) -> list[ToolSpec]:
    view = runtime.discovery.view()
    if toolset is not None:
        view.toolset(caller, toolset)  # 404 naming the key's toolsets
    return view.visible(caller, toolset)


async def catalog_answer(runtime: Runtime, caller: Principal, q: str | None, limit: int | None,
                         toolset: str | None) -> Response:
    """GET /tools: the key's catalog (of a toolset), or with `q` the best matches first."""
    view = runtime.discovery.view()
    base = runtime.server.base_url
    if q is None:
        return _json(view.memo(("tools", caller.scopes, toolset, limit, base), lambda: orjson.dumps(
            [tool_public(spec, base) for spec in _specs(runtime, caller, toolset)[:limit]])))
    if toolset is not None:
        view.toolset(caller, toolset)
    hits = await view.search_async(caller, q, limit or DEFAULT_SEARCH_LIMIT, toolset)
    return _json([tool_public(spec, base) for spec, _ in hits])


def openai_answer(runtime: Runtime, caller: Principal, toolset: str | None, mode: str) -> Response:
    """GET /openai/tools: per key (and toolset); `mode=search` gives find_tools and call_tool instead."""
    if mode == "search":
        return _json(openai_search_tools())
    view = runtime.discovery.view()
    return _json(view.memo(("openai", caller.scopes, toolset),
                           lambda: orjson.dumps(openai_tools(_specs(runtime, caller, toolset)))))


@router.get("/toolsets", tags=["tools"], responses=error_responses(401))
async def toolsets(runtime: RuntimeDep, caller: CallerDep) -> list[dict[str, Any]]:
    """The toolsets this key has tools in: name, description, how many of its tools, and their exports."""
    base = runtime.server.base_url
    return [{"name": toolset.name, "description": toolset.description, "tools": count,
             "openapi_url": f"{base}/toolsets/{toolset.name}/openapi.json",
             "mcp_url": f"{base}/toolsets/{toolset.name}/mcp"}
            for toolset, count in runtime.discovery.view().visible_toolsets(caller)]


@router.get("/toolsets/{toolset}/openapi.json", tags=["exports"], responses=error_responses(401, 404, 422))
async def toolset_openapi(toolset: ToolsetPath, runtime: RuntimeDep, caller: CatalogReaderDep,
                          page: PageQuery = None) -> Response:
    """The toolset's tools this key may call as an OpenAPI 3.0.3 document: one Dify provider per toolset."""
    view = runtime.discovery.view()
    base = runtime.server.base_url

    def build() -> bytes:
        try:
            selection = select_tools(_specs(runtime, caller, toolset), None, page)
        except PageError as exc:
            raise PageNotFound(str(exc)) from exc
        return orjson.dumps(build_openapi(selection, base, title=f"Toolbridge toolset {toolset}",
                                          document_path=f"/toolsets/{toolset}/openapi.json"))

    return _json(view.memo(("toolset-openapi", caller.scopes, toolset, page, base), build))
