"""A pyfunc model with every argument shape Dify mangles: it answers a number computed from all of them, so a
test can tell that each value arrived as the LLM meant it."""

from __future__ import annotations

import math
from typing import Any

import mlflow
import pandas as pd


def _number(value: Any) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


class DifyZoo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        threshold = _number((params or {}).get("threshold", 0.5))
        scores = []
        for row in model_input.to_dict(orient="records"):
            coupon = row.get("coupon") if isinstance(row.get("coupon"), dict) else {}
            tags = row.get("tags")
            tags = list(tags) if tags is not None and not isinstance(tags, float) else []
            scores.append(len(str(row["text"])) + _number(row.get("amount")) + _number(coupon.get("discount"))
                          + 10 * len(tags) + 100 * threshold)
        return pd.DataFrame({"score": scores})


mlflow.models.set_model(DifyZoo())
