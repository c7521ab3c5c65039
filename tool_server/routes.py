"""HTTP routes: short adapters (decode → core → encode)."""

from __future__ import annotations

import time
from typing import Any

import yaml
from fastapi import APIRouter
from fastapi.responses import ORJSONResponse, Response

from bridge.invoker import ToolNotFound
from bridge.toolspec import ToolSpec
from tool_server.deps import JsonBody, RuntimeDep
from tool_server.openai_export import openai_tools
from tool_server.openapi_export import build_openapi
from tool_server.wire import ModelRefPublic, ToolPublic, VersionStatusPublic

__all__ = ["router"]

router = APIRouter()


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


@router.get("/status", tags=["service"])
async def status(runtime: RuntimeDep) -> dict[str, Any]:
    sync = runtime.watcher.status
    age = time.time() - sync.last_success_at if sync.last_success_at else None
    return {
        "sync": {**sync.model_dump(), "last_success_age_seconds": age, "mlflow_uri": runtime.tracking_uri},
        "versions": [VersionStatusPublic(**row.__dict__).model_dump() for row in runtime.bridge.status()],
        "excluded": [e.model_dump() for e in runtime.watcher.snapshot.excluded],
        "hosts": await runtime.bridge.host_status(),
    }


@router.get("/tools", tags=["tools"])
async def list_tools(runtime: RuntimeDep) -> list[ToolPublic]:
    return [_public(spec, runtime.server.base_url) for spec in runtime.tools()]


@router.get("/tools/{name}", tags=["tools"])
async def get_tool(name: str, runtime: RuntimeDep) -> ToolPublic:
    spec = runtime.tool(name)
    if spec is None:
        raise ToolNotFound(f"no tool named {name!r}; list the available tools at GET /tools")
    return _public(spec, runtime.server.base_url)


@router.post("/tools/{name}/invoke", tags=["tools"])
async def invoke(name: str, arguments: JsonBody, runtime: RuntimeDep) -> ORJSONResponse:
    result = await runtime.bridge.invoker.invoke(name, arguments)
    return ORJSONResponse(result.output, headers={"X-Toolbridge-Model-Version": result.model_version})


@router.post("/tools/{name}/versions/{version}/invoke", tags=["tools"])
async def invoke_version(name: str, version: str, arguments: JsonBody, runtime: RuntimeDep) -> ORJSONResponse:
    result = await runtime.bridge.invoker.invoke(name, arguments, version=version)
    return ORJSONResponse(result.output, headers={"X-Toolbridge-Model-Version": result.model_version})


@router.get("/openapi.json", tags=["exports"])
async def openapi(runtime: RuntimeDep) -> ORJSONResponse:
    """Every tool as one OpenAPI operation: the URL a Dify custom tool imports."""
    return ORJSONResponse(build_openapi(runtime.tools(), runtime.server.base_url))


@router.get("/openapi.yaml", tags=["exports"])
async def openapi_yaml(runtime: RuntimeDep) -> Response:
    document = build_openapi(runtime.tools(), runtime.server.base_url)
    return Response(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), media_type="application/yaml")


@router.get("/tools/{name}/openapi.json", tags=["exports"])
async def tool_openapi(name: str, runtime: RuntimeDep) -> ORJSONResponse:
    """A one-tool OpenAPI document, for importing a single tool."""
    spec = runtime.tool(name)
    if spec is None:
        raise ToolNotFound(f"no tool named {name!r}; list the available tools at GET /tools")
    return ORJSONResponse(build_openapi([spec], runtime.server.base_url, title=f"Toolbridge tool {name}"))


@router.get("/openai/tools", tags=["exports"])
async def openai(runtime: RuntimeDep) -> ORJSONResponse:
    """The catalog as OpenAI function-calling tools (`tools=` of a chat completion request)."""
    return ORJSONResponse(openai_tools(runtime.tools()))
