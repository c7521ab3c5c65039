"""The live routing table: which loaded version answers each tool, swapped atomically per pass."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bridge.host_client import HostClient
from bridge.toolspec import ToolSpec
from bridge.validation import InputValidator

__all__ = ["LiveVersion", "Route", "ShadowTarget"]


@dataclass(frozen=True)
class LiveVersion:
    """A version loaded on a host and smoke-tested: ready to answer calls."""

    spec: ToolSpec
    host: HostClient
    host_name: str
    validator: InputValidator
    smoke_tested: bool


@dataclass(frozen=True)
class ShadowTarget:
    """A version holding the shadow alias: offered `rate` of the champion's calls after they are answered,
    never answering a caller; `blocked` says why it gets none (a restricted tool without the tag that
    allows it)."""

    live: LiveVersion
    rate: float = 1.0
    blocked: str | None = None


@dataclass(frozen=True)
class Route:
    """One tool: its champion, optionally a canary taking `canary_weight` of the calls, and a shadow."""

    champion: LiveVersion
    canary: LiveVersion | None = None
    canary_weight: float = 0.0
    pinned: dict[str, LiveVersion] = field(default_factory=dict)
    shadow: ShadowTarget | None = None

    def pick(self, rng: random.Random) -> LiveVersion:
        if self.canary is not None and rng.random() < self.canary_weight:
            return self.canary
        return self.champion

    def version(self, version: str) -> LiveVersion | None:
        return self.pinned.get(version)
