"""Invoke a tool: validate, route to the live version, predict, shape the answer. No HTTP here.

HTTP routes, the MCP server and the LangChain toolkit (through HTTP) all call `Invoker.invoke`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import BridgeError
from bridge.host_client import HostError, HostTimeout, HostUnavailable
from bridge.live import Route
from bridge.schema import to_model_input

__all__ = ["InvokeResult", "Invoker", "ModelFailure", "ToolNotFound", "ToolTimeout", "ToolUnavailable"]


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


@dataclass(frozen=True)
class InvokeResult:
    tool: str
    model_name: str
    model_version: str
    role: str
    output: dict[str, Any]


class Invoker:
    def __init__(self, routes: Callable[[], Mapping[str, Route]], rng: random.Random | None = None) -> None:
        self._routes = routes
        self._rng = rng or random.Random()

    async def invoke(self, tool: str, arguments: Any, version: str | None = None) -> InvokeResult:
        route = self._routes().get(tool)
        if route is None:
            raise ToolNotFound(f"no tool named {tool!r}; list the available tools at GET /tools")
        live = route.pick(self._rng) if version is None else route.version(version)
        if live is None:
            served = ", ".join(sorted(route.pinned))
            raise ToolNotFound(f"tool {tool!r} does not serve version {version!r}; served now: {served}")
        arguments = live.validator.coerce(arguments)
        live.validator.validate(arguments)
        spec = live.spec
        try:
            outputs = await live.host.predict(spec.key, to_model_input(spec.signature, arguments), spec.model_uri)
        except HostTimeout as exc:
            raise ToolTimeout(f"tool {tool!r} did not answer within the call timeout ({exc}); the model is "
                              "slow or its host is overloaded: try again later, or ask the operator to raise "
                              "TOOLBRIDGE_CALL_TIMEOUT") from exc
        except HostUnavailable as exc:
            raise ToolUnavailable(f"tool {tool!r} is temporarily unavailable: {exc}") from exc
        except HostError as exc:
            raise ModelFailure(f"model {spec.key} could not answer: {exc}") from exc
        if len(outputs) != 1:
            raise ModelFailure(f"model {spec.key} returned {len(outputs)} rows for one input row")
        output = dict(outputs[0])
        output["model"] = {"name": spec.model_name, "version": spec.model_version}
        return InvokeResult(tool=tool, model_name=spec.model_name, model_version=spec.model_version,
                            role=spec.role, output=output)
