"""A classifier written as code whose versions differ only by their `variant` (the logged model_config), so
the share of inputs two versions label differently is known before any call:

    champion    "high" when x >= 50, else "low"
    challenger  "high" when x >= 40: it disagrees with the champion on 40..49
    raising     the challenger, but raises on every x ending in 7
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

THRESHOLDS = {"champion": 50, "challenger": 40, "raising": 40}


def label(variant: str, x: int) -> str:
    """What version `variant` answers for `x` (the raising variant's failures aside)."""
    return "high" if x >= THRESHOLDS[variant] else "low"


def raises(variant: str, x: int) -> bool:
    return variant == "raising" and x % 10 == 7


class ShadowClassifier(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def load_context(self, context: Any) -> None:
        self.variant = str((context.model_config or {}).get("variant", "champion"))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        labels = []
        for x in model_input["x"]:
            if raises(self.variant, int(x)):
                raise ValueError(f"the {self.variant} variant cannot score x={int(x)}")
            labels.append(label(self.variant, int(x)))
        return labels


mlflow.models.set_model(ShadowClassifier())
