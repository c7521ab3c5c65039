"""``machine_failure``: a tensor signature, float64 ``(-1, 4)``, each row ``[temperature_c, vibration_mm_s,
pressure_bar, rotation_rpm]`` → 0/1 (1 = failure expected within 24 h)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tool_server.demo.trained import DATA_DIR, RANDOM_STATE, SYNTHETIC_NOTE, TrainedModel, split

SENSOR_FEATURES = ["temperature_c", "vibration_mm_s", "pressure_bar", "rotation_rpm"]

__all__ = ["SENSOR_FEATURES", "train_machine_failure"]


def train_machine_failure(data_dir: Path = DATA_DIR) -> TrainedModel:
    """Standard scaling -> logistic regression on a float64 matrix; tensor signature ``(-1, 4)``."""
    df = pd.read_csv(data_dir / "sensor_readings.csv")
    X = df[SENSOR_FEATURES].to_numpy(dtype=np.float64)
    y = df["failure_within_24h"].to_numpy(dtype=np.int64)
    X_train, X_test, y_train, y_test = split(X, y)

    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=1.0, max_iter=1000, random_state=RANDOM_STATE)),
        ]
    )
    pipe.fit(X_train, y_train)
    metrics = {
        "test_accuracy": float(accuracy_score(y_test, pipe.predict(X_test))),
        "test_roc_auc": float(roc_auc_score(y_test, pipe.predict_proba(X_test)[:, 1])),
    }
    pipe.fit(X, y)

    example = np.array(
        [
            [68.5, 2.9, 6.3, 1490.0],  # healthy
            [91.2, 8.1, 5.1, 1310.0],  # overheating, vibrating, slowing down
        ],
        dtype=np.float64,
    )
    signature = infer_signature(X, pipe.predict(X))  # TensorSpec float64 (-1, 4) -> int64 (-1,)
    order = ", ".join(SENSOR_FEATURES)
    return TrainedModel(
        name="machine_failure",
        model=pipe,
        signature=signature,
        input_example=example,
        metrics=metrics,
        model_description=(
            "Predicts whether an industrial pump will fail within the next 24 hours from one snapshot of "
            "its sensors. Input: a matrix of float64 with shape (n, 4), one row per reading, columns in this "
            f"order: [{order}] -- temperature in degrees Celsius, vibration velocity in mm/s (RMS), "
            "discharge pressure in bar, shaft speed in revolutions per minute. "
            "Output: one integer per row, 1 = failure expected within 24 h, 0 = normal; class "
            "probabilities are available. Standardisation + logistic regression. " + SYNTHETIC_NOTE
        ),
        training_summary=(
            f"Trained on tool_server/demo/data/sensor_readings.csv ({len(df)} synthetic pump readings, "
            f"{int(y.sum())} followed by a failure within 24 h). "
            f"Metrics on a stratified 25% held-out split (random_state={RANDOM_STATE}); "
            "the registered model was then refit on all rows."
        ),
        tags={
            "toolbridge.description": (
                "Predict from pump sensor readings whether the machine fails within 24 hours (1 = failure)."
            ),
            "toolbridge.field_descriptions": json.dumps(
                {
                    "inputs": (
                        "List of readings, each a list of 4 numbers in this order: temperature_c "
                        "(degrees Celsius, typically 50-110), vibration_mm_s (RMS vibration velocity in "
                        "mm/s, typically 1-12), pressure_bar (discharge pressure in bar, typically 4-8), "
                        "rotation_rpm (shaft speed in revolutions per minute, typically 1100-1700)."
                    ),
                    **{
                        "temperature_c": "Column 0: temperature in degrees Celsius.",
                        "vibration_mm_s": "Column 1: RMS vibration velocity in mm/s.",
                        "pressure_bar": "Column 2: discharge pressure in bar.",
                        "rotation_rpm": "Column 3: shaft speed in revolutions per minute.",
                    },
                }
            ),
        },
        params={"C": "1.0", "feature_order": order},
    )


