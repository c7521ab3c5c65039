"""The model host: one generic BentoML service that loads MLflow models by URI and serves many of them.

Start it with `bentoml serve bridge.model_host.service:ModelHost`. The bridge drives it through the
`/v1/models/*` endpoints; BentoML adds `/livez`, `/readyz` and `/metrics`.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import psutil
from bentoml.exceptions import InvalidArgument, NotFound

from bridge.model_host.loader import ModelNotLoaded, ModelStore


@bentoml.service(name="toolbridge-model-host", workers=1, traffic={"timeout": 120})
class ModelHost:
    """Holds loaded model versions in memory; one worker so every call sees the same store."""

    def __init__(self) -> None:
        budget_mb = os.environ.get("TOOLBRIDGE_HOST_MEMORY_BUDGET_MB")  # set by the bridge that starts us
        self.store = ModelStore(int(float(budget_mb) * 2**20) if budget_mb else None)

    @bentoml.api(route="/v1/models/load")
    def load(self, key: str, uri: str) -> dict[str, Any]:
        try:
            return self.store.load(key, uri).describe()
        except Exception as exc:  # any load fault is this version's problem, never the host's
            raise InvalidArgument(f"could not load {uri}: {type(exc).__name__}: {exc}") from exc

    @bentoml.api(route="/v1/models/unload")
    def unload(self, key: str) -> dict[str, Any]:
        return {"key": key, "unloaded": self.store.unload(key)}

    @bentoml.api(route="/v1/models/list")
    def list_models(self) -> dict[str, Any]:
        return {"models": [model.describe() for model in self.store.list()],
                "memory_bytes": self.store.memory_bytes(), "memory_budget_bytes": self.store.memory_budget_bytes,
                "evictions": self.store.evictions, "process_rss_bytes": psutil.Process(os.getpid()).memory_info().rss}

    @bentoml.api(route="/v1/predict")
    def predict(self, key: str, payload: dict[str, Any], uri: str | None = None) -> dict[str, Any]:
        """With `uri`, a version this host lost (worker restart, eviction) is loaded again on demand."""
        try:
            if uri is not None and not self.store.holds(key):
                self.store.load(key, uri)
            return {"key": key, "outputs": self.store.predict(key, payload)}
        except ModelNotLoaded as exc:
            raise NotFound(f"model version {key} is not loaded on this host") from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidArgument(f"model {key} rejected the input: {type(exc).__name__}: {exc}") from exc
