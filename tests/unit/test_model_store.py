"""The model host's store: real MLflow models loaded from local folders, LRU eviction past the budget."""

from __future__ import annotations

import itertools
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression, LogisticRegression

from bridge.model_host.loader import ModelNotLoaded, ModelStore


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    y = np.array([0, 0, 1, 1])
    dirs = {}
    for name, model in {"clf": LogisticRegression().fit(X, y), "reg": LinearRegression().fit(X, y * 2.5)}.items():
        path = tmp_path_factory.mktemp("models") / name
        mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, y),
                                  serialization_format="cloudpickle")
        dirs[name] = str(path)
    return dirs


def counting_memory(step: int) -> object:
    """A resident-memory reading that grows by `step` bytes at every look: each load costs `step`."""
    counter = itertools.count(0, step)
    return lambda: next(counter)


def test_classifier_answers_label_and_probabilities_per_class(model_dirs: dict[str, str]) -> None:
    store = ModelStore()
    loaded = store.load("clf/1", model_dirs["clf"])
    assert (loaded.kind, loaded.classes) == ("classifier", [0, 1])
    (answer,) = store.predict("clf/1", {"kind": "records", "records": [{"a": 3, "b": 0}]})
    assert answer["label"] == 1
    assert set(answer["probabilities"]) == {"0", "1"}
    assert abs(sum(answer["probabilities"].values()) - 1.0) < 1e-9


def test_regressor_answers_prediction(model_dirs: dict[str, str]) -> None:
    store = ModelStore()
    assert store.load("reg/1", model_dirs["reg"]).kind == "regressor"
    (answer,) = store.predict("reg/1", {"kind": "records", "records": [{"a": 3.0, "b": 0.0}]})
    assert answer["prediction"] == pytest.approx(2.5, abs=1.0)


def test_loading_the_same_version_twice_reuses_it(model_dirs: dict[str, str]) -> None:
    store = ModelStore()
    assert store.load("clf/1", model_dirs["clf"]) is store.load("clf/1", model_dirs["clf"])


def test_least_recently_used_version_is_evicted_past_the_budget(model_dirs: dict[str, str]) -> None:
    store = ModelStore(memory_budget_bytes=250, resident_bytes=counting_memory(100))
    store.load("clf/1", model_dirs["clf"])
    store.load("reg/1", model_dirs["reg"])
    store.predict("clf/1", {"kind": "records", "records": [{"a": 1.0, "b": 1.0}]})  # clf/1 is now the newest
    store.load("clf/2", model_dirs["clf"])
    assert sorted(m.key for m in store.list()) == ["clf/1", "clf/2"]
    assert store.evictions == 1
    assert store.memory_bytes() <= 250
    with pytest.raises(ModelNotLoaded):
        store.predict("reg/1", {"kind": "records", "records": [{"a": 1.0, "b": 1.0}]})


def test_the_version_just_loaded_is_never_evicted(model_dirs: dict[str, str]) -> None:
    store = ModelStore(memory_budget_bytes=50, resident_bytes=counting_memory(100))
    store.load("clf/1", model_dirs["clf"])
    store.load("reg/1", model_dirs["reg"])
    assert [m.key for m in store.list()] == ["reg/1"]


def test_missing_optional_integer_column_becomes_nan_for_the_model(tmp_path: Path) -> None:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    X = pd.DataFrame({"n": [1.0, 2.0, np.nan, 4.0]})
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(X, [1.0, 2.0, 3.0, 4.0])
    signature = ModelSignature(inputs=Schema([ColSpec("long", "n", required=False)]))
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), signature=signature, serialization_format="cloudpickle")
    store = ModelStore()
    store.load("m/1", str(tmp_path / "m"))
    (answer,) = store.predict("m/1", {"kind": "records", "records": [{"n": None}]})
    assert isinstance(answer["prediction"], float)
