"""LangChain tools for the Toolbridge catalog: one tool per live model, calling the HTTP API.

    from toolbridge_client.langchain import ToolbridgeToolkit

    toolkit = ToolbridgeToolkit("http://127.0.0.1:8000")
    tools = toolkit.get_tools()                   # list[BaseTool], one per catalog tool
    llm_with_tools = chat_model.bind_tools(tools)

    ToolbridgeToolkit(url, api_key, toolset="finance")   # only the tools of one toolset
    ToolbridgeToolkit(url, api_key, mode="search")       # two tools, whatever the catalog holds: find_tools
                                                         # (GET /tools?q=) and call_tool (POST invoke)

Each tool's ``args_schema`` is a pydantic model built from the tool's input JSON Schema
(`toolbridge_client.pydantic_models`), so LangChain rejects bad arguments with a pydantic ``ValidationError``
before any HTTP call. The LLM is shown the server's own JSON Schema (``tool_call_schema``), the one shape
every client accepts: inline, nullable optionals, ``additionalProperties: false``, original property names.

A call returns the server's result object (a dict: ``label``/``probabilities`` or ``prediction``, and
``model: {name, version}``). An error answer (422 with its field messages, 404, 503, unreachable server)
raises ``ToolException``; with ``handle_tool_error=True`` (the default here) LangChain hands its text to the
model as the tool's output, so an agent loop can show the LLM what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Literal, Self

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from toolbridge_client import (
    DEFAULT_TIMEOUT,
    AsyncToolbridgeClient,
    ToolbridgeClient,
    ToolbridgeError,
    ToolCallError,
    ToolInfo,
    ToolUnavailableError,
)
from toolbridge_client.pydantic_models import model_from_schema, to_arguments

__all__ = ["CallToolArgs", "CallToolTool", "FindToolsArgs", "FindToolsTool", "ToolbridgeTool",
           "ToolbridgeToolkit", "tool_error_text"]

SEARCH_LIMIT = 5


class _Clients:
    """One sync and one async client per toolkit, shared by its tools; the async one is made on first use
    (httpx binds an async pool to the event loop that first uses it)."""

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        self.url, self._api_key, self._timeout = url, api_key, timeout
        self.sync = ToolbridgeClient(url, api_key=api_key, timeout=timeout)
        self._async: AsyncToolbridgeClient | None = None

    @property
    def async_(self) -> AsyncToolbridgeClient:
        if self._async is None:
            self._async = AsyncToolbridgeClient(self.url, api_key=self._api_key, timeout=self._timeout)
        return self._async

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None


def tool_error_text(tool: str, error: ToolbridgeError) -> str:
    """What the LLM reads when a call fails: what went wrong and what to do next."""
    if isinstance(error, ToolCallError) and error.status == 422:
        # The server's message already lists each bad field ("- field `age`: expected integer, got 'forty'").
        return f"Tool `{tool}` rejected the arguments. {error.message}\nFix them, then call it again."
    if isinstance(error, ToolUnavailableError):
        wait = f" in {error.retry_after:g} seconds" if error.retry_after is not None else " later"
        return f"Tool `{tool}` is temporarily unavailable: {error.message} Try again{wait}."
    if isinstance(error, ToolCallError):
        return f"Tool `{tool}` failed (HTTP {error.status}, {error.error}): {error.message}"
    return f"Tool `{tool}` could not be called: {error}"


class ToolbridgeTool(BaseTool):
    """One Toolbridge tool as a LangChain tool. Built by ToolbridgeToolkit.get_tools()."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    info: ToolInfo
    """The catalog entry the tool was built from (model name and version at build time, schemas)."""
    clients: _Clients = Field(exclude=True, repr=False)
    """The toolkit's shared HTTP clients."""
    handle_tool_error: bool = True

    @property
    def tool_call_schema(self) -> dict[str, Any]:
        # Show the LLM the server's schema, not one regenerated from the pydantic model: same names, no
        # $defs, nullable optionals, and exactly what the server validates.
        return {**self.info.input_schema, "description": self.description}

    def _arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # LangChain hands over validated values by field name (nested ones as models): back to JSON by alias.
        if isinstance(self.args_schema, type) and issubclass(self.args_schema, BaseModel):
            return to_arguments(self.args_schema, kwargs)
        return kwargs

    def _run(self, **kwargs: Any) -> dict[str, Any]:
        try:
            client: ToolbridgeClient = self.clients.sync
            return client.invoke(self.name, self._arguments(kwargs))
        except ToolbridgeError as exc:
            raise ToolException(tool_error_text(self.name, exc)) from exc

    async def _arun(self, **kwargs: Any) -> dict[str, Any]:
        try:
            client: AsyncToolbridgeClient = self.clients.async_
            return await client.invoke(self.name, self._arguments(kwargs))
        except ToolbridgeError as exc:
            raise ToolException(tool_error_text(self.name, exc)) from exc


class FindToolsArgs(BaseModel):
    query: str = Field(min_length=1, max_length=500, description="what the tool should do, in plain words")
    limit: int | None = Field(default=None, ge=1, le=20,
                              description=f"how many tools to return, 1 to 20 (default {SEARCH_LIMIT})")


class CallToolArgs(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="the tool's name, as find_tools gave it")
    arguments: dict[str, Any] = Field(default_factory=dict,
                                      description="the tool's arguments, matching its input_schema")


class FindToolsTool(BaseTool):
    """Search mode: the catalog tools that fit a task, with their input schemas (``GET /tools?q=``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "find_tools"
    description: str = (
        "Search the catalog of machine-learning model tools for the ones that fit a task. Describe what you "
        "need in plain words (e.g. 'probability a telecom customer churns'). Returns the best matching "
        "tools, each with its name, description and input_schema; then call one with call_tool.")
    args_schema: type[BaseModel] = FindToolsArgs
    clients: _Clients = Field(exclude=True, repr=False)
    toolset: str | None = None
    handle_tool_error: bool = True

    @staticmethod
    def _answer(query: str, found: list[ToolInfo]) -> dict[str, Any]:
        if not found:
            return {"tools": [], "hint": f"No tool matches {query!r}. Try other words, or fewer of them."}
        return {"tools": [{"name": t.name, "description": t.description, "input_schema": t.input_schema}
                          for t in found],
                "hint": "Call the best fitting tool with call_tool(name, arguments)."}

    def _run(self, query: str, limit: int | None = None) -> dict[str, Any]:
        try:
            found = self.clients.sync.search_tools(query, limit or SEARCH_LIMIT, self.toolset)
        except ToolbridgeError as exc:
            raise ToolException(tool_error_text(self.name, exc)) from exc
        return self._answer(query, found)

    async def _arun(self, query: str, limit: int | None = None) -> dict[str, Any]:
        try:
            found = await self.clients.async_.search_tools(query, limit or SEARCH_LIMIT, self.toolset)
        except ToolbridgeError as exc:
            raise ToolException(tool_error_text(self.name, exc)) from exc
        return self._answer(query, found)


class CallToolTool(BaseTool):
    """Search mode: call a tool found with find_tools, by name (``POST /tools/{name}/invoke``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "call_tool"
    description: str = (
        "Call a tool found with find_tools: `name` is the tool's name, `arguments` an object matching its "
        "input_schema. Returns the model's answer, or an error that says which argument to fix.")
    args_schema: type[BaseModel] = CallToolArgs
    clients: _Clients = Field(exclude=True, repr=False)
    handle_tool_error: bool = True

    def _run(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return self.clients.sync.invoke(name, arguments or {})
        except ToolbridgeError as exc:
            raise ToolException(tool_error_text(name, exc)) from exc

    async def _arun(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return await self.clients.async_.invoke(name, arguments or {})
        except ToolbridgeError as exc:
            raise ToolException(tool_error_text(name, exc)) from exc


class ToolbridgeToolkit:
    """The Toolbridge catalog as LangChain tools.

    `names` keeps only those tools; `toolset` only the tools of that toolset (model tag toolbridge.toolsets).
    `mode="search"` gives two tools instead, `find_tools` and `call_tool`, so an agent carries two schemas
    whatever the registry holds (with `toolset`, find_tools searches only that toolset).
    `validate_locally=False` gives the tools the JSON Schema dict as ``args_schema``: LangChain then passes
    arguments through unchecked and the server's 422 does the talking.
    """

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 names: Iterable[str] | None = None, validate_locally: bool = True,
                 toolset: str | None = None, mode: Literal["tools", "search"] = "tools") -> None:
        if mode not in ("tools", "search"):
            raise ValueError(f"mode must be 'tools' (one tool per catalog entry) or 'search' (find_tools and "
                             f"call_tool), got {mode!r}")
        self._clients = _Clients(url.rstrip("/"), api_key, timeout)
        self._names = set(names) if names is not None else None
        self._validate_locally = validate_locally
        self._toolset, self._mode = toolset, mode

    def _search_tools(self) -> list[BaseTool]:
        return [FindToolsTool(clients=self._clients, toolset=self._toolset),
                CallToolTool(clients=self._clients)]

    def _tool(self, info: ToolInfo) -> ToolbridgeTool:
        args_schema: type[BaseModel] | dict[str, Any] = (
            model_from_schema(info.input_schema, info.name) if self._validate_locally else info.input_schema)
        return ToolbridgeTool(
            name=info.name, description=info.description, args_schema=args_schema, info=info,
            clients=self._clients,
            metadata={"toolbridge_model": info.model.name, "toolbridge_version": info.model.version,
                      "toolbridge_kind": info.kind})

    def tools_for(self, catalog: Iterable[ToolInfo]) -> list[BaseTool]:
        """Tools for catalog entries read elsewhere (a cached catalog, another client), calling this toolkit's
        server."""
        return [self._tool(t) for t in catalog if self._names is None or t.name in self._names]

    def get_tools(self) -> list[BaseTool]:
        """One tool per catalog entry, read now (``GET /tools``); call again to pick up catalog changes.
        In search mode: find_tools and call_tool."""
        if self._mode == "search":
            return self._search_tools()
        return self.tools_for(self._clients.sync.list_tools(self._toolset))

    async def aget_tools(self) -> list[BaseTool]:
        if self._mode == "search":
            return self._search_tools()
        return self.tools_for(await self._clients.async_.list_tools(self._toolset))

    def close(self) -> None:
        self._clients.sync.close()

    async def aclose(self) -> None:
        self.close()
        await self._clients.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
