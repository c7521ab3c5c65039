"""What every demo trainer returns, and the data they read (package data: `tool_server/demo/data`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from sklearn.model_selection import train_test_split

__all__ = ["DATA_DIR", "RANDOM_STATE", "SYNTHETIC_NOTE", "TrainedModel", "split"]

DATA_DIR = Path(__file__).resolve().parent / "data"
RANDOM_STATE = 0
SYNTHETIC_NOTE = "Demo model trained on synthetic data; not for real decisions."

_Features = TypeVar("_Features", pd.DataFrame, np.ndarray)
_Target = TypeVar("_Target", pd.Series, np.ndarray)


@dataclass
class TrainedModel:
    """A fitted model plus everything needed to register it properly."""

    name: str
    model: Any
    signature: ModelSignature
    input_example: pd.DataFrame | np.ndarray
    metrics: dict[str, float]
    model_description: str
    """Registered-model description: what it does, inputs with units, output meaning."""
    training_summary: str
    """First part of the version description (data, split); metrics are appended at registration."""
    tags: dict[str, str] = field(default_factory=dict)
    """Registered-model tags (``toolbridge.*``)."""
    params: dict[str, Any] = field(default_factory=dict)


def split(X: _Features, y: _Target) -> tuple[_Features, _Features, _Target, _Target]:
    """Stratified 75/25 train/test split: X_train, X_test, y_train, y_test (each the type it came in as)."""
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=RANDOM_STATE,
                                                        stratify=y)
    return X_train, X_test, y_train, y_test

