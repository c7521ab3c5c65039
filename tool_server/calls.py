"""Every tool call, from every channel, through one door: limit, authorize, decode, invoke, audit. No HTTP.

HTTP routes and the MCP server both call `Gateway.invoke` (LangChain goes through HTTP), so a scope check or
an audit record can never be forgotten on one channel. The catalog a caller sees comes from here too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.invoker import Invoker, InvokeResult, ModelRejectedInput, ToolNotFound, ToolUnavailable
from bridge.toolspec import RESTRICTED, ToolSpec
from bridge.validation import ToolInputError
from tool_server.access.audit import AuditLog, AuditRecord
from tool_server.access.keys import KeyStore
from tool_server.access.limits import RateLimiter
from tool_server.access.scopes import AccessError, Principal, RateLimited, may_call, tool_forbidden
from tool_server.ops.logs import ACCESS_NOTE, REQUEST_ID, access_log

__all__ = ["CallContext", "ErrorCode", "Gateway", "InvalidBody", "decode_arguments"]

# (HTTP status, error kind) of an exception; supplied by tool_server.api.errors, the one place that maps them.
ErrorCode = Callable[[BaseException], tuple[int, str]]
CLIENT_CLOSED = (499, "client_closed")  # the caller hung up before the answer (nginx's convention)
# (tool, version, channel, outcome, seconds) of every call: the metrics hook.
CallObserver = Callable[[str, str, str, str, float], None]
# (model name, version that answered or None, outcome) of each call that reached a model's tool: usage counts.
UsageObserver = Callable[[str, str | None, str], None]


class InvalidBody(Exception):
    """The request body is not a JSON object we can read."""


def decode_arguments(raw: bytes) -> Any:
    """Parse a JSON body; errors an LLM can act on (orjson also refuses NaN)."""
    if not raw.strip():
        raise InvalidBody("the request body is empty; send the tool arguments as a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"the request body is not valid JSON ({exc}); send the arguments as a JSON "
                          "object") from exc


@dataclass(frozen=True)
class CallContext:
    request_id: str
    channel: str  # http | mcp


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, AccessError):
        return "denied"
    if isinstance(error, ToolInputError | InvalidBody | ToolNotFound | ModelRejectedInput):
        return "invalid"
    if isinstance(error, ToolUnavailable):
        return "unavailable"
    return "error"


class Gateway:
    def __init__(self, catalog: Callable[[], list[ToolSpec]], lookup: Callable[[str], ToolSpec | None],
                 invoker: Invoker, keys: KeyStore, audit: AuditLog, limiter: RateLimiter,
                 error_code: ErrorCode, audit_inputs: bool = False, on_call: CallObserver | None = None,
                 on_usage: UsageObserver | None = None) -> None:
        self._catalog, self._lookup, self._invoker = catalog, lookup, invoker
        self.keys, self.audit, self.limiter = keys, audit, limiter
        self._error_code = error_code
        self.audit_inputs = audit_inputs
        self._on_call = on_call
        self._on_usage = on_usage

    async def authenticate(self, key: str | None) -> Principal:
        """From the server's key cache (access/key_cache.py): no database round trip, no thread hop; a
        revocation reaches every worker and replica within a second."""
        return await self.keys.authenticate_async(key)

    def visible(self, who: Principal) -> list[ToolSpec]:
        """The catalog as this key sees it: only the tools it may call."""
        return [spec for spec in self._catalog() if may_call(who, spec)]

    def tool(self, who: Principal, name: str) -> ToolSpec:
        """The tool if this key may call it; otherwise Forbidden, worded the same whether it exists."""
        spec = self._lookup(name)
        if spec is not None and may_call(who, spec):
            return spec
        if spec is None and who.sees_any_tool_named(name):  # it would see any such tool: no leak in a 404
            raise ToolNotFound(f"no tool named {name!r}; list the available tools at GET /tools")
        raise tool_forbidden(name)

    async def invoke(self, who: Principal, name: str, context: CallContext, *, arguments: Any = None,
                     raw: bytes | None = None, version: str | None = None) -> InvokeResult:
        """Call a tool for `who`: `raw` JSON bytes (HTTP) or decoded `arguments` (MCP). Always audited."""
        started = time.perf_counter()
        # Here as well as in the middleware: MCP runs tool calls in its session's task, not the request's.
        request_id = REQUEST_ID.set(context.request_id)
        decode_error: InvalidBody | None = None
        if raw is not None:
            try:
                arguments = decode_arguments(raw)
            except InvalidBody as exc:
                decode_error = exc
        canonical = raw if decode_error is not None and raw is not None else _canonical(arguments)
        result: InvokeResult | None = None
        error: BaseException | None = None
        try:
            wait = await self.limiter.take_async(who.key_id, who.rate_limit_per_minute)
            if wait:
                raise RateLimited(f"this API key has used up its calls for now (rate limit); retry after "
                                  f"{wait} seconds", retry_after=wait)
            self.tool(who, name)  # before the body is judged: a key must not learn about tools it cannot call
            if decode_error is not None:
                raise decode_error
            result = await self._invoker.invoke(name, arguments, version=version)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                self._record(who, name, context, started, canonical, result, error, version)
            finally:
                REQUEST_ID.reset(request_id)

    def _record(self, who: Principal, name: str, context: CallContext, started: float, canonical: bytes,
                result: InvokeResult | None, error: BaseException | None, version: str | None) -> None:
        if error is None:
            status, kind = 200, None
        elif isinstance(error, asyncio.CancelledError):
            status, kind = CLIENT_CLOSED
        else:
            status, kind = self._error_code(error)
        spec = self._lookup(name)
        keep_inputs = (self.audit_inputs and spec is not None and spec.sensitivity != RESTRICTED
                       and may_call(who, spec))
        latency = time.perf_counter() - started
        outcome = _outcome(error)
        if self._on_call is not None:
            version_label = result.model_version if result else (version or "")
            self._on_call(name[:128] if spec is not None else "(unknown)", version_label, context.channel,
                          outcome, latency)
        if self._on_usage is not None and spec is not None:
            self._on_usage(result.model_name if result else spec.model_name,
                           result.model_version if result else None, outcome)
        model_version = result.model_version if result else version
        # The access line: the key's public id, never the key; never the inputs (the audit decides those).
        fields = {"tool": name[:128], "version": model_version, "channel": context.channel,
                  "outcome": outcome, "error": kind, "key_id": who.key_id}
        note = ACCESS_NOTE.get() if context.channel == "http" else None
        if note is not None:  # the HTTP request's own access line carries them: one line a call
            note.fields.update(fields)
        elif access_log.isEnabledFor(logging.INFO):
            access_log.info("%s %s: %s %d in %.1f ms", context.channel, name[:128], outcome, status,
                            latency * 1000, extra={**fields, "request_id": context.request_id,
                                                   "status": status, "latency_ms": round(latency * 1000, 3)})
        self.audit.record(AuditRecord(
            time=datetime.now(UTC), request_id=context.request_id, key_id=who.key_id, key_name=who.name,
            tool=name[:128], model_version=model_version,
            channel=context.channel,
            outcome=outcome, status=status, error=kind,
            latency_ms=round(latency * 1000, 3), input_bytes=len(canonical),
            input_sha256=hashlib.sha256(canonical).hexdigest(),
            inputs=canonical.decode(errors="replace") if keep_inputs else None))


def _canonical(arguments: Any) -> bytes:
    """Sorted-key JSON: the same arguments hash the same whichever channel or key order they came in."""
    try:
        return orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return repr(arguments).encode()
