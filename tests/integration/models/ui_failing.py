"""A pyfunc model that loads but cannot answer: its smoke test fails, so the version is never exposed and
`GET /status` (and the UI's operations page) shows it failed, with the reason."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class SensorFeedOffline(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        raise RuntimeError("sensor feed offline: this model cannot score any row")


mlflow.models.set_model(SensorFeedOffline())
