"""A small typed Python client for the Toolbridge HTTP API, sync and async, over httpx.

    from toolbridge_client import ToolbridgeClient

    with ToolbridgeClient("http://127.0.0.1:8000") as client:
        tools = client.list_tools()                   # or list_tools(toolset="finance")
        found = client.search_tools("loan default risk")  # the best matches first
        result = client.invoke("fin_sentiment", {"headline": "Acme beats estimates"})

One client holds one httpx connection pool: keep it for many calls and close it (or use ``with``).
Error answers become exceptions, one tree with a single root::

    ToolbridgeError                 anything this client raises
    ├── ToolbridgeConnectionError   the server could not be reached or did not answer in time
    └── ToolCallError               the server answered with an error (.status, .error, .message, .problems)
        ├── ToolNotFoundError       404: no live tool of that name
        └── ToolUnavailableError    503: try again after .retry_after seconds

The API key, when given, is sent as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncToolbridgeClient",
    "FieldProblem",
    "ModelRef",
    "ToolCallError",
    "ToolInfo",
    "ToolNotFoundError",
    "ToolUnavailableError",
    "ToolbridgeClient",
    "ToolbridgeConnectionError",
    "ToolbridgeError",
]

DEFAULT_TIMEOUT = 60.0  # above the server's default model-call timeout (30 s), so the server speaks first


class ModelRef(BaseModel):
    """The MLflow model version behind a tool."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str


class ToolInfo(BaseModel):
    """One entry of the catalog (``GET /tools``); fields added by newer servers are ignored."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    model: ModelRef
    kind: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    invoke_url: str


class FieldProblem(BaseModel):
    """One bad argument, as a 422 answer names it."""

    model_config = ConfigDict(frozen=True)

    field: str
    expected: str
    got: str
    message: str


class ToolbridgeError(Exception):
    """Root of every error this client raises."""


class ToolbridgeConnectionError(ToolbridgeError):
    """The server could not be reached, or did not answer within the timeout."""


class ToolCallError(ToolbridgeError):
    """The server answered with an error status; `message` is written to be shown to a person or an LLM."""

    def __init__(self, status: int, error: str, message: str,
                 problems: list[FieldProblem] | None = None) -> None:
        super().__init__(f"HTTP {status} {error}: {message}")
        self.status = status
        self.error = error  # machine-readable code, e.g. "invalid_arguments", "tool_not_found"
        self.message = message
        self.problems = problems or []


class ToolNotFoundError(ToolCallError):
    """404: no live tool of that name (or the pinned version is not served)."""


class ToolUnavailableError(ToolCallError):
    """503: the tool exists but cannot answer now; retry after `retry_after` seconds (None when not said)."""

    def __init__(self, status: int, error: str, message: str, retry_after: float | None) -> None:
        super().__init__(status, error, message)
        self.retry_after = retry_after


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "toolbridge-client"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _tool_path(name: str, version: str | None = None) -> str:
    path = f"/tools/{quote(name, safe='')}"
    return f"{path}/versions/{quote(version, safe='')}" if version is not None else path


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):  # absent, or an HTTP date: let the caller pick its own back-off
        return None


def _error(response: httpx.Response) -> ToolCallError:
    """The exception for an error answer; non-JSON bodies (a proxy's HTML page) keep their text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": response.text.strip()[:500] or response.reason_phrase}
    error = str(body.get("error") or "http_error")
    message = str(body.get("message") or response.reason_phrase)
    status = response.status_code
    if status == 404:
        return ToolNotFoundError(status, error, message)
    if status == 503:
        return ToolUnavailableError(status, error, message, _retry_after(response))
    problems = [FieldProblem.model_validate(p) for p in body.get("problems") or [] if isinstance(p, dict)]
    return ToolCallError(status, error, message, problems)


def _json(response: httpx.Response) -> Any:
    if response.is_error:
        raise _error(response)
    try:
        return response.json()
    except ValueError as exc:
        raise ToolCallError(response.status_code, "invalid_response",
                            f"the server answered {response.request.url} with non-JSON content") from exc


def _object(response: httpx.Response) -> dict[str, Any]:
    body = _json(response)
    if not isinstance(body, dict):
        raise ToolCallError(response.status_code, "invalid_response", "the answer is not a JSON object")
    return body


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones."""
    kept = {k: v for k, v in (params or {}).items() if v is not None}
    return kept or None


def _list(response: httpx.Response) -> list[dict[str, Any]]:
    body = _json(response)
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise ToolCallError(response.status_code, "invalid_response",
                            "the answer is not a JSON list of objects")
    return body


def _catalog(response: httpx.Response) -> list[ToolInfo]:
    """``GET /tools`` (a list) or ``GET /tools/{name}`` (an object) as ToolInfo; other shapes are errors."""
    body = _json(response)
    try:
        return [ToolInfo.model_validate(t) for t in body] if isinstance(body, list) else [
            ToolInfo.model_validate(body)]
    except ValidationError as exc:
        raise ToolCallError(response.status_code, "invalid_response",
                            f"{response.request.url} did not answer with Toolbridge tools: {exc}") from exc


def _connection_error(exc: httpx.TransportError, base_url: httpx.URL) -> ToolbridgeConnectionError:
    what = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
    return ToolbridgeConnectionError(f"Toolbridge at {base_url} {what}: {exc!r}")


class ToolbridgeClient:
    """Sync client; `transport` replaces the network (``httpx.MockTransport``, ``httpx.WSGITransport``)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=_headers(api_key), timeout=timeout,
                                  transport=transport)

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None = None,
              params: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            return self._http.request(method, path, json=body, params=_params(params))
        except httpx.TransportError as exc:
            raise _connection_error(exc, self._http.base_url) from exc

    def list_tools(self, toolset: str | None = None) -> list[ToolInfo]:
        """The tools this key may call (only those of `toolset`, if given)."""
        return _catalog(self._send("GET", "/tools", params={"toolset": toolset}))

    def search_tools(self, query: str, limit: int | None = None,
                     toolset: str | None = None) -> list[ToolInfo]:
        """The tools that best match `query` (``GET /tools?q=``), best first."""
        return _catalog(self._send("GET", "/tools", params={"q": query, "limit": limit, "toolset": toolset}))

    def toolsets(self) -> list[dict[str, Any]]:
        """``GET /toolsets``: name, description, tool count and export URLs of each toolset this key sees."""
        return _list(self._send("GET", "/toolsets"))

    def get_tool(self, name: str) -> ToolInfo:
        return _catalog(self._send("GET", _tool_path(name)))[0]

    def invoke(self, name: str, arguments: Mapping[str, Any], *,
               version: str | None = None) -> dict[str, Any]:
        """Call a tool; the result object holds the prediction and ``model: {name, version}``."""
        return _object(self._send("POST", f"{_tool_path(name, version)}/invoke", arguments))

    def status(self) -> dict[str, Any]:
        """``GET /status``: registry sync health and the state of every approved version."""
        return _object(self._send("GET", "/status"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncToolbridgeClient:
    """Async twin of ToolbridgeClient (``transport``: e.g. ``httpx.ASGITransport(app)``); use it from one
    event loop, as httpx binds its connection pool to the loop that first uses it."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=_headers(api_key), timeout=timeout,
                                       transport=transport)

    async def _send(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                    params: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            return await self._http.request(method, path, json=body, params=_params(params))
        except httpx.TransportError as exc:
            raise _connection_error(exc, self._http.base_url) from exc

    async def list_tools(self, toolset: str | None = None) -> list[ToolInfo]:
        return _catalog(await self._send("GET", "/tools", params={"toolset": toolset}))

    async def search_tools(self, query: str, limit: int | None = None,
                           toolset: str | None = None) -> list[ToolInfo]:
        return _catalog(await self._send("GET", "/tools",
                                         params={"q": query, "limit": limit, "toolset": toolset}))

    async def toolsets(self) -> list[dict[str, Any]]:
        return _list(await self._send("GET", "/toolsets"))

    async def get_tool(self, name: str) -> ToolInfo:
        return _catalog(await self._send("GET", _tool_path(name)))[0]

    async def invoke(self, name: str, arguments: Mapping[str, Any], *,
                     version: str | None = None) -> dict[str, Any]:
        return _object(await self._send("POST", f"{_tool_path(name, version)}/invoke", arguments))

    async def status(self) -> dict[str, Any]:
        return _object(await self._send("GET", "/status"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
