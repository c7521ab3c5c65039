"""MCP over streamable HTTP: the live catalog as MCP tools, every call through the shared gateway.

Three views of the catalog on one session manager, told apart by the request path:

    /mcp                  every tool the key may call
    /toolsets/{ts}/mcp    only the toolset's tools; `list_changed` only when those change
    /mcp/search           search mode: `find_tools` and `call_tool` (tool_server/discovery/search_mode.py)

A short adapter like `routes.py`: tools/list reads `runtime.tools()` on each request (so the list is always
the live catalog), tools/call decodes the arguments, calls `runtime.bridge.invoker.invoke` and encodes the
result or the error. Built on the official SDK's low-level `Server` (mcp 2.x) behind its
`StreamableHTTPSessionManager`, stateful, so both protocol generations work on the one endpoint:

- handshake era (`initialize` + `Mcp-Session-Id`, protocol ≤ 2025-11-25, every mcp 1.x client and most hosts):
  `notifications/tools/list_changed` goes down each session's standalone GET stream;
- 2026-07-28 era (no session; the 2.x `mcp.Client` default): it goes down `subscriptions/listen` streams.

Errors are `isError: true` results whose text stands on its own: Dify's MCP client ignores `isError` and
shows the text to the LLM as if it were the answer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any, cast

import anyio
import orjson
from mcp import types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from sse_starlette.sse import AppStatus
from starlette.routing import Route

from bridge.errors import BridgeError
from bridge.invoker import ModelFailure, ModelRejectedInput, ToolNotFound, ToolUnavailable
from bridge.toolspec import ToolSpec
from bridge.validation import ToolInputError
from tool_server.access.scopes import AccessError, Principal
from tool_server.api.middleware import ApiKeyGate, principal_of, request_id_of
from tool_server.calls import CallContext
from tool_server.discovery import search_mode
from tool_server.runtime import Runtime

__all__ = ["MCP_PATH", "MCP_SEARCH_PATH", "MCP_TOOLSET_PATH", "McpEndpoint"]

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MCP_SEARCH_PATH = "/mcp/search"
MCP_TOOLSET_PATH = "/toolsets/{toolset}/mcp"
NOTIFY_TIMEOUT = 2.0  # seconds one session may take to accept a notification before we give up on it
INSTRUCTIONS = ("Each tool runs an approved machine-learning model from the MLflow registry on the arguments "
                "you give it and returns its prediction and the model version that answered.")
ALL: tuple[str, ...] = ("all",)
SEARCH: tuple[str, ...] = ("search",)
View = tuple[str, ...]  # ALL, SEARCH or ("toolset", name)


def view_of(path: str) -> View:
    """Which view of the catalog a request path asks for."""
    if path.rstrip("/") == MCP_SEARCH_PATH:
        return SEARCH
    parts = path.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "toolsets" and parts[2] == "mcp":
        return ("toolset", parts[1])
    return ALL


class _CatalogServer(Server[dict[str, Any]]):
    """Advertises `tools.listChanged` to handshake-era clients.

    The session manager builds the `initialize` answer from `create_initialization_options()` with no
    arguments, whose default says the list never changes; ours does. (2026-07-28 clients derive the flag from
    `subscriptions/listen` being served.)
    """

    def create_initialization_options(
        self, notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = notification_options or NotificationOptions(tools_changed=True)
        return super().create_initialization_options(options, experimental_capabilities, extensions)


def _tool(spec: ToolSpec) -> types.Tool:
    return types.Tool(name=spec.name, description=spec.description, input_schema=spec.input_schema,
                      output_schema=spec.output_schema,
                      # A prediction changes nothing: hosts may call it without asking the user each time.
                      annotations=types.ToolAnnotations(read_only_hint=True, destructive_hint=False,
                                                        open_world_hint=False))


SEARCH_TOOLS = [
    types.Tool(name=search_mode.FIND_TOOLS, description=search_mode.FIND_TOOLS_DESCRIPTION,
               input_schema=search_mode.FIND_TOOLS_SCHEMA,
               annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False)),
    types.Tool(name=search_mode.CALL_TOOL, description=search_mode.CALL_TOOL_DESCRIPTION,
               input_schema=search_mode.CALL_TOOL_SCHEMA,
               annotations=types.ToolAnnotations(read_only_hint=True, destructive_hint=False,
                                                 open_world_hint=False)),
]


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _answer(output: dict[str, Any]) -> types.CallToolResult:
    # orjson, as the HTTP route: the same text for the same answer (NaN → null, UTF-8 kept).
    return types.CallToolResult(content=[types.TextContent(type="text", text=orjson.dumps(output).decode())],
                                structured_content=output, is_error=False)


class McpEndpoint:
    """The MCP server of one app: serve `manager` at MCP_PATH and `discovery_routes()`; enter `run()` in the
    app's lifespan, once."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Per view: its subscriptions/listen streams (2026 era; a Redis bus would fan out across replicas).
        self._listeners: dict[View, tuple[InMemorySubscriptionBus, ListenHandler]] = {}
        self._sessions: dict[str, tuple[ServerSession, View]] = {}  # handshake-era sessions by Mcp-Session-Id
        self._seen: dict[View, list[ToolSpec]] = {}  # each followed view's tools when last announced
        self.server = _CatalogServer(
            "toolbridge", version=version("toolbridge"), instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools, on_call_tool=self._call_tool,
            # No get_tool_input_schema: it cannot see the caller. The SDK falls back to our tools/list
            # handler, which answers per key, so Mcp-Param checks never reveal a tool the key may not see.
            on_subscriptions_listen=self._listen,
        )
        self.server.middleware.append(self._track_session)
        # Stateful: a handshake-era client only hears list_changed on its session's GET stream. SSE answers
        # (json_response=False): subscriptions/listen needs them. The SDK's DNS-rebinding check stays off: the
        # app's HostGuard checks Host and Origin for every route, /mcp included (api/middleware.py).
        self.manager = StreamableHTTPSessionManager(app=self.server, stateless=False, json_response=False)

    def discovery_routes(self, authenticate: Callable[[str | None], Awaitable[Principal]]) -> list[Route]:
        """Search mode and the toolsets' servers, as app.py serves MCP_PATH: pure ASGI (BaseHTTPMiddleware
        buffers SSE) behind the API-key gate, at exact paths (app.mount() answers POST /mcp with a 307)."""
        gate = ApiKeyGate(StreamableHTTPASGIApp(self.manager), authenticate)
        return [Route(path, endpoint=gate) for path in (MCP_SEARCH_PATH, MCP_TOOLSET_PATH)]

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Serve sessions and follow the catalog. The SDK's manager runs only once: one endpoint per app."""
        self._seen[ALL] = self._members(ALL)
        self.runtime.bridge.catalog_listeners.append(self.notify_tools_changed)
        try:
            async with self.manager.run(), anyio.create_task_group() as tasks:
                tasks.start_soon(self._end_listen_streams_on_exit)
                yield
                tasks.cancel_scope.cancel()
        finally:
            self.runtime.bridge.catalog_listeners.remove(self.notify_tools_changed)
            self._sessions.clear()

    async def _end_listen_streams_on_exit(self) -> None:
        # uvicorn waits for open responses to end before it runs the lifespan shutdown, and a 2026-era listen
        # stream never ends by itself: Ctrl-C would hang while an agent listens. The SDK's SSE library ends
        # the handshake-era streams when uvicorn is told to exit (AppStatus); end ours at the same moment.
        while True:
            if AppStatus.should_exit:
                for _, handler in list(self._listeners.values()):
                    handler.close()  # again each round: a client may re-listen while we drain
            await anyio.sleep(0.5)

    def _members(self, view: View) -> list[ToolSpec]:
        """A view's tools whoever asks (what a change is judged on); search mode's two never change."""
        if view == SEARCH:
            return []
        specs = self.runtime.discovery.tools()
        return specs if view == ALL else [s for s in specs if view[1] in s.toolsets]

    def _follow(self, view: View) -> None:
        if view not in self._seen:
            self._seen[view] = self._members(view)

    async def notify_tools_changed(self) -> None:
        """Tell the clients of each view whose tools changed to fetch tools/list again, in both protocol
        generations; the clients of other views hear nothing."""
        changed = set()
        for view, before in list(self._seen.items()):
            now = self._members(view)
            if now != before:
                self._seen[view] = now
                changed.add(view)
        for view in changed & set(self._listeners):
            await self._listeners[view][0].publish(ToolsListChanged())
        async with anyio.create_task_group() as tg:
            for session_id, (session, view) in list(self._sessions.items()):
                if view in changed:
                    tg.start_soon(self._notify_session, session_id, session)

    async def _notify_session(self, session_id: str, session: ServerSession) -> None:
        # A closed session drops the message silently; a stuck one must not hold up the registry sync.
        with anyio.move_on_after(NOTIFY_TIMEOUT) as scope:
            await session.send_tool_list_changed()
        if scope.cancelled_caught:
            log.warning("MCP session %s did not take list_changed within %ss", session_id, NOTIFY_TIMEOUT)

    @staticmethod
    def _view(ctx: ServerRequestContext[Any, Any]) -> View:
        return view_of(ctx.request.scope["path"]) if ctx.request is not None else ALL

    async def _listen(self, ctx: ServerRequestContext[Any, Any],
                      params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        view = self._view(ctx)
        self._follow(view)
        if view not in self._listeners:
            bus = InMemorySubscriptionBus()
            self._listeners[view] = (bus, ListenHandler(bus))
        return await self._listeners[view][1](ctx, params)

    @staticmethod
    def _caller(ctx: ServerRequestContext[dict[str, Any]]) -> Principal | None:
        """The API key's principal, left in the request scope by the gate in front of the MCP paths."""
        return principal_of(ctx.request.scope) if ctx.request is not None else None

    async def _list_tools(self, ctx: ServerRequestContext[dict[str, Any]],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        caller, view = self._caller(ctx), self._view(ctx)
        self._follow(view)
        if caller is None:
            return types.ListToolsResult(tools=[])
        if view == SEARCH:
            return types.ListToolsResult(tools=SEARCH_TOOLS)
        toolset = view[1] if view != ALL else None
        catalog = self.runtime.discovery.view()  # only the tools this key may call, built once per version
        tools = cast(list[types.Tool], catalog.memo(("mcp", caller.scopes, toolset), lambda: [
            _tool(spec) for spec in catalog.visible(caller, toolset)]))
        return types.ListToolsResult(tools=tools)

    async def _call_tool(self, ctx: ServerRequestContext[dict[str, Any]],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        caller, view = self._caller(ctx), self._view(ctx)
        if caller is None or ctx.request is None:  # unreachable behind the gate; never call anonymously
            return _error("An API key is required to call tools.")
        call = CallContext(request_id=request_id_of(ctx.request.scope), channel="mcp")
        if view == SEARCH:
            return await self._search_mode(caller, call, params.name, params.arguments)
        if view != ALL and view[1] not in getattr(self.runtime.tool(params.name), "toolsets", ()):
            names = ", ".join(s.name for s in self.runtime.discovery.view().visible(caller, view[1]))
            return _error(f"There is no tool named {params.name!r} in toolset {view[1]!r}. Its tools: "
                          f"{names or 'none right now'}.")
        return await self._invoke(caller, call, params.name, params.arguments or {}, search=False)

    async def _search_mode(self, caller: Principal, call: CallContext, name: str,
                           arguments: dict[str, Any] | None) -> types.CallToolResult:
        try:
            if name == search_mode.FIND_TOOLS:
                query, limit = search_mode.find_arguments(arguments)
                hits = await self.runtime.discovery.view().search_async(caller, query, limit)
                return _answer(search_mode.found_tools(query, hits))
            if name == search_mode.CALL_TOOL:
                tool, inner = search_mode.call_arguments(arguments)
                return await self._invoke(caller, call, tool, inner, search=True)
        except search_mode.SearchModeError as exc:
            return _error(f"{exc}.")
        return _error(f"There is no tool named {name!r} here: this server has two, find_tools (search the "
                      "catalog) and call_tool (call a tool it found).")

    async def _invoke(self, caller: Principal, call: CallContext, name: str, arguments: dict[str, Any],
                      search: bool) -> types.CallToolResult:
        try:  # scopes, rate limit and audit: the same door as HTTP
            result = await self.runtime.calls.invoke(caller, name, call, arguments=arguments)
        except AccessError as exc:  # 403/429 over HTTP: the same words here
            return _error(str(exc))
        except ToolInputError as exc:
            return _error(f"Tool {name!r} was not called. {exc}\nFix these arguments and call it again.")
        except ToolNotFound:
            if search:
                return _error(f"There is no tool named {name!r}. Call find_tools with what you need to get "
                              "the names of the tools that do it.")
            visible = self.runtime.discovery.view().visible(caller)
            available = ", ".join(spec.name for spec in visible) or "none right now"
            return _error(f"There is no tool named {name!r}. Available tools: {available}.")
        except ToolUnavailable as exc:
            return _error(f"{exc}\nTry again in {exc.retry_after} seconds.")
        except ModelRejectedInput as exc:  # valid by the schema, refused by the model: the caller can fix it
            return _error(f"Tool {name!r} was not called successfully: the model rejected these arguments: "
                          f"{exc}\nChange the arguments (e.g. smaller numbers) and call it again.")
        except ModelFailure as exc:
            return _error(f"Tool {name!r} failed: {exc}")
        except BridgeError as exc:
            return _error(f"Tool {name!r} could not be called: {exc}")
        except Exception:  # the SDK would send str(exc) as a JSON-RPC error: keep internals in our log
            log.exception("MCP tools/call %s failed", name)
            return _error(f"Tool {name!r} failed because of an internal error in Toolbridge; "
                          "the server log has the details.")
        return _answer(result.output)

    async def _track_session(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Remember each handshake-era session by its Mcp-Session-Id, to push list_changed to it later.

        The SDK builds a new `ServerSession` proxy per message and gives no public per-session hook, so we
        key on the header (absent on `initialize`, present from `notifications/initialized` on) and drop the
        entry through the connection's exit stack, a private attribute: without it, stale entries cost a
        little memory and their sends are dropped silently.
        """
        result = await call_next(ctx)
        request = ctx.request
        if request is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            session_id = request.headers.get("mcp-session-id")
            if session_id and session_id not in self._sessions:
                view = self._view(ctx)
                self._follow(view)
                self._sessions[session_id] = (ctx.session, view)
                connection = getattr(ctx.session, "_connection", None)
                if connection is not None:
                    connection.exit_stack.callback(self._sessions.pop, session_id, None)
        return result
