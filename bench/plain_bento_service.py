"""A plain one-model BentoML service, as a user would write it by hand: the baseline of `bench.call_latency`.

    BENCH_MODEL_URI=models:/credit_risk/1 bentoml serve bench.plain_bento_service:PlainModel
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import mlflow.pyfunc
import pandas as pd


@bentoml.service(name="bench-plain-model", workers=1, traffic={"timeout": 60})
class PlainModel:
    def __init__(self) -> None:
        self.model = mlflow.pyfunc.load_model(os.environ["BENCH_MODEL_URI"])

    @bentoml.api(route="/predict")
    def predict(self, records: list[dict[str, Any]]) -> list[Any]:
        output = self.model.predict(pd.DataFrame.from_records(records))
        return list(output.tolist() if hasattr(output, "tolist") else output)
