"""The model host: one generic BentoML service that loads MLflow models by URI and serves many of them.

Start it with `bentoml serve bridge.model_host.service:ModelHost`. The bridge drives it through the
`/v1/models/*` endpoints; BentoML adds `/livez`, `/readyz` and `/metrics`. `/v1/predict` checks each input
row against the version's signature (400 naming each bad field) and, with batching on, runs the calls that
arrive together for one version as one model call (`bridge.model_host.batching`).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import anyio
import bentoml
import psutil
from bentoml.exceptions import InvalidArgument, NotFound
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.model_host.batching import MicroBatcher, Result
from bridge.model_host.loader import ModelNotLoaded, ModelStore
from bridge.model_host.payload import PayloadInvalid

__all__ = ["HostSettings", "ModelHost"]

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _api(route: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """`bentoml.api(route=...)`, typed for mypy (its `_bentoml_sdk` ships no py.typed, so it reads as Any).

    BentoML turns the method into an APIMethod descriptor that binds and calls like the method itself.
    """
    decorator: Callable[[Callable[_P, _R]], Callable[_P, _R]] = bentoml.api(route=route)
    return decorator


class HostSettings(BaseSettings):
    """Set by the bridge that starts the host (bridge.runtime.BridgeSettings passes them on)."""

    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_HOST_", extra="ignore")

    memory_budget_mb: float | None = Field(
        default=None, gt=0, description="past it, least recently used versions are evicted")
    batching: bool = Field(default=True, description="run concurrent calls of one version as one model call")
    batch_max_rows: int = Field(default=64, ge=1, le=100_000, description="most input rows in one batch")
    preimport: str = Field(default="", description="comma-separated modules to import at start (a spare "
                           "host warms the common MLflow flavors so its first load does not pay for them)")


@bentoml.service(name="toolbridge-model-host", workers=1, traffic={"timeout": 120})
class ModelHost:
    """Holds loaded model versions in memory; one worker so every call sees the same store."""

    def __init__(self) -> None:
        self.settings = HostSettings()
        for module in filter(None, (name.strip() for name in self.settings.preimport.split(","))):
            try:
                importlib.import_module(module)
            except Exception as exc:  # a missing flavor only costs the first load its import
                log.warning("model host: could not pre-import %s: %s: %s", module, type(exc).__name__, exc)
        budget_mb = self.settings.memory_budget_mb
        self.store = ModelStore(int(budget_mb * 2**20) if budget_mb else None)
        # One model call at a time, as BentoML runs a sync API (its `threads` default is 1).
        self._model_thread = anyio.CapacityLimiter(1)
        self.batcher = (MicroBatcher(self._run_batch, self.settings.batch_max_rows)
                        if self.settings.batching else None)

    async def _run_batch(self, key: str, payloads: list[dict[str, Any]]) -> Sequence[Result]:
        return await anyio.to_thread.run_sync(self.store.predict_many, key, payloads,
                                              limiter=self._model_thread)

    @_api(route="/v1/models/load")
    def load(self, key: str, uri: str) -> dict[str, Any]:
        try:
            return self.store.load(key, uri).describe()
        except Exception as exc:  # any load fault is this version's problem, never the host's
            raise InvalidArgument(f"could not load {uri}: {type(exc).__name__}: {exc}") from exc

    @_api(route="/v1/models/unload")
    def unload(self, key: str) -> dict[str, Any]:
        return {"key": key, "unloaded": self.store.unload(key)}

    @_api(route="/v1/models/list")
    def list_models(self) -> dict[str, Any]:
        batching = {"enabled": self.batcher is not None, "max_rows": self.settings.batch_max_rows,
                    **(self.batcher.stats.as_dict() if self.batcher else {}),
                    "model_calls": self.store.model_calls, "fallbacks": self.store.fallbacks}
        return {"models": [model.describe() for model in self.store.list()],
                "memory_bytes": self.store.memory_bytes(),
                "memory_budget_bytes": self.store.memory_budget_bytes, "evictions": self.store.evictions,
                "process_rss_bytes": psutil.Process(os.getpid()).memory_info().rss, "batching": batching}

    @_api(route="/v1/predict")
    async def predict(self, key: str, payload: dict[str, Any], uri: str | None = None) -> dict[str, Any]:
        """With `uri`, a version this host lost (worker restart, eviction) is loaded again on demand."""
        try:
            if uri is not None and not self.store.holds(key):
                await anyio.to_thread.run_sync(self.store.load, key, uri)
            if self.batcher is not None:
                outputs = await self.batcher.submit(key, payload)
            else:
                outputs = await anyio.to_thread.run_sync(self.store.predict, key, payload,
                                                         limiter=self._model_thread)
            return {"key": key, "outputs": outputs}
        except ModelNotLoaded as exc:
            raise NotFound(f"model version {key} is not loaded on this host") from exc
        except PayloadInvalid as exc:
            raise InvalidArgument(str(exc)) from exc
        except (ValueError, TypeError, KeyError, OverflowError) as exc:  # e.g. an int past int64
            raise InvalidArgument(f"model {key} rejected the input: {type(exc).__name__}: {exc}") from exc
