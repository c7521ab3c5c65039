"""Invoke a tool: validate, route to the live version, answer from the cache or predict, shape the answer.
No HTTP here.

HTTP routes, the MCP server and the LangChain toolkit (through HTTP) all call `Invoker.invoke`. A call the
champion answered is then offered to the tool's shadow version, if any (`bridge.shadow`): never awaited.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import BridgeError
from bridge.host_client import HostError, HostTimeout, HostUnavailable
from bridge.live import LiveVersion, Route
from bridge.response_cache import ResponseCache
from bridge.schema import to_model_input
from bridge.shadow.mirror import MirroredCall, ShadowMirror
from bridge.toolspec import ToolSpec
from bridge.untrusted import MAX_ERROR_CHARS, as_data, plain_text

__all__ = ["InvokeResult", "Invoker", "ModelFailure", "ModelRejectedInput", "ToolNotFound", "ToolTimeout",
           "ToolUnavailable"]


class ToolNotFound(BridgeError):
    """No live tool of that name (or that version is not served)."""


class ToolUnavailable(BridgeError):
    """The tool exists but its model host cannot answer now; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ToolTimeout(ToolUnavailable):
    """The model did not answer within the call timeout: a slow model or a busy host, not a bad call."""


class ModelFailure(BridgeError):
    """The model raised on input that passed validation."""


class ModelRejectedInput(ModelFailure):
    """The model refused these arguments (the host's 400: ValueError/TypeError/KeyError), e.g. a number far
    outside anything it can compute with: the caller can fix the call, unlike a crash."""


@dataclass(frozen=True)
class InvokeResult:
    tool: str
    model_name: str
    model_version: str
    role: str
    output: dict[str, Any]
    cached: bool | None = None  # True: answered from the cache; False: a miss; None: the cache did not apply


def _always(spec: ToolSpec) -> bool:
    return True


def _said(error: HostError) -> str:
    """What a model host said about a call, as text we may quote to an LLM (model code may have written
    it)."""
    return plain_text(str(error), MAX_ERROR_CHARS)


class Invoker:
    def __init__(self, routes: Callable[[], Mapping[str, Route]], rng: random.Random | None = None,
                 cache: ResponseCache | None = None, cacheable: Callable[[ToolSpec], bool] = _always,
                 restarting: Callable[[str], bool] = lambda host: False,
                 shadow: ShadowMirror | None = None) -> None:
        self._routes = routes
        self._shadow = shadow
        self._restarting = restarting  # by host name: fail fast, never queue on a half-started host
        self._rng = rng or random.Random()
        self._cache = cache
        self._cacheable = cacheable  # per version: not restricted, not opted out by its owners

    async def invoke(self, tool: str, arguments: Any, version: str | None = None) -> InvokeResult:
        if self._shadow is None:
            return await self._invoke(tool, arguments, version)
        self._shadow.caller_started()  # shadow calls wait while a caller is being answered
        try:
            return await self._invoke(tool, arguments, version)
        finally:
            self._shadow.caller_finished()

    async def _invoke(self, tool: str, arguments: Any, version: str | None) -> InvokeResult:
        route = self._routes().get(tool)
        if route is None:
            raise ToolNotFound(f"no tool named {tool!r}; list the available tools at GET /tools")
        live = route.pick(self._rng) if version is None else route.version(version)
        # Only calls the champion answers unasked are mirrored: not a canary's, not a pinned version's.
        shadowed = version is None and live is route.champion and route.shadow is not None
        original = arguments
        if live is None:
            served = ", ".join(sorted(route.pinned))
            raise ToolNotFound(f"tool {tool!r} does not serve version {version!r}; served now: {served}")
        arguments = live.validator.coerce(arguments)
        live.validator.validate(arguments)
        spec = live.spec
        model_input = to_model_input(spec.signature, arguments)
        # After the route pick: the key holds the version that answers, canary or pinned alike.
        cache = self._cache if self._cache is not None and self._cacheable(spec) else None
        key = cache.key(spec, model_input) if cache is not None else None
        if cache is not None and key is not None:
            stored = await cache.lookup(tool, key)
            if stored is not None:
                if shadowed:
                    self._offer(route, live, tool, original, stored, None)
                return InvokeResult(tool=tool, model_name=spec.model_name, model_version=spec.model_version,
                                    role=spec.role, output=stored, cached=True)
        if self._restarting(live.host_name):
            raise ToolUnavailable(f"tool {tool!r} is temporarily unavailable: its model host crashed and is "
                                  "restarting", retry_after=5)
        started = time.perf_counter()
        try:
            outputs = await live.host.predict(spec.key, model_input, spec.model_uri)
        except HostTimeout as exc:
            raise ToolTimeout(f"tool {tool!r} did not answer within the call timeout ({exc}); the model is "
                              "slow or its host is overloaded: try again later, or ask the operator to raise "
                              "TOOLBRIDGE_CALL_TIMEOUT") from exc
        except HostUnavailable as exc:
            raise ToolUnavailable(f"tool {tool!r} is temporarily unavailable: {exc}") from exc
        except HostError as exc:
            if exc.status == 400:
                raise ModelRejectedInput(
                    f"tool {tool!r} could not use these arguments: {_said(exc).rstrip('.')}. They match the "
                    "input schema, but the model cannot compute with them (e.g. a number far outside any "
                    "realistic range): send realistic values, as the tool description explains, and call "
                    "again") from exc
            raise ModelFailure(f"model {spec.key} could not answer: {_said(exc)}") from exc
        if len(outputs) != 1:
            raise ModelFailure(f"model {spec.key} returned {len(outputs)} rows for one input row")
        output = as_data(dict(outputs[0]))  # model-made strings are data: no control characters, capped
        output["model"] = {"name": spec.model_name, "version": spec.model_version}
        seconds = time.perf_counter() - started
        if cache is not None and key is not None:  # only answers are stored: errors raised above
            await cache.store(tool, key, output)
        if shadowed:
            self._offer(route, live, tool, original, output, seconds)
        return InvokeResult(tool=tool, model_name=spec.model_name, model_version=spec.model_version,
                            role=spec.role, output=output, cached=None if key is None else False)

    def _offer(self, route: Route, champion: LiveVersion, tool: str, arguments: Any, output: dict[str, Any],
               seconds: float | None) -> None:
        if self._shadow is not None and route.shadow is not None:
            self._shadow.offer(MirroredCall(tool=tool, champion=champion, target=route.shadow,
                                            arguments=arguments, champion_output=output,
                                            champion_seconds=seconds))
