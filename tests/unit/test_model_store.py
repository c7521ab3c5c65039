"""The model host's store: real MLflow models loaded from local folders, LRU eviction past the budget, input
checked against the signature, and the calls of one batch run as one model call."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression, LogisticRegression

from bridge.model_host.loader import ModelNotLoaded, ModelStore
from bridge.model_host.payload import PayloadInvalid


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    y = np.array([0, 0, 1, 1])
    dirs = {}
    models = {"clf": LogisticRegression().fit(X, y), "reg": LinearRegression().fit(X, y * 2.5)}
    for name, model in models.items():
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
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), signature=signature,
                              serialization_format="cloudpickle")
    store = ModelStore()
    store.load("m/1", str(tmp_path / "m"))
    (answer,) = store.predict("m/1", {"kind": "records", "records": [{"n": None}]})
    assert isinstance(answer["prediction"], float)


@pytest.fixture(scope="module")
def city_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A classifier whose one-hot encoder refuses a city it never saw: input valid for the signature that the
    model itself rejects."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = pd.DataFrame({"city": ["Oslo", "Lima", "Oslo", "Lima"], "a": [0.0, 1.0, 2.0, 3.0]})
    model = make_pipeline(ColumnTransformer([("city", OneHotEncoder(handle_unknown="error"), ["city"])],
                                            remainder="passthrough"), LogisticRegression())
    path = tmp_path_factory.mktemp("models") / "city"
    y = [0, 1, 0, 1]
    mlflow.sklearn.save_model(model.fit(X, y), str(path), signature=infer_signature(X, y),
                              serialization_format="cloudpickle")
    return str(path)


def rows(*records: dict[str, object]) -> dict[str, object]:
    return {"kind": "records", "records": list(records), "params": {}}


def test_calls_of_one_batch_run_as_one_model_call_with_the_answers_of_single_calls(
    model_dirs: dict[str, str]
) -> None:
    store = ModelStore()
    store.load("clf/1", model_dirs["clf"])
    payloads = [rows({"a": float(a), "b": 1.0}) for a in range(4)]
    payloads.append(rows({"a": 9.0, "b": 0.0}, {"a": 0.0, "b": 0}))  # two rows in one call; b as an integer

    answers = store.predict_many("clf/1", payloads)

    assert answers == [store.predict("clf/1", payload) for payload in payloads]
    assert [len(a) for a in answers] == [1, 1, 1, 1, 2]  # type: ignore[arg-type]
    assert (store.model_calls, store.fallbacks) == (1, 0)


def test_a_row_that_breaks_the_signature_fails_only_its_own_call_naming_the_field(
    model_dirs: dict[str, str]
) -> None:
    store = ModelStore()
    store.load("reg/1", model_dirs["reg"])

    good, bad, other = store.predict_many("reg/1", [
        rows({"a": 1.0, "b": 0.0}), rows({"a": "forty", "b": 0.0}), rows({"a": 2.0, "b": 1.0})])

    assert isinstance(good, list) and isinstance(other, list)
    assert isinstance(bad, PayloadInvalid)
    assert "field `a`: expected number, got string 'forty'" in str(bad)
    assert store.model_calls == 1  # the two good calls still shared one model call


def test_when_the_model_refuses_a_merged_batch_each_call_is_rerun_alone_and_only_the_culprit_fails(
    city_model: str
) -> None:
    store = ModelStore()
    store.load("city/1", city_model)

    oslo, atlantis, lima = store.predict_many("city/1", [rows({"city": "Oslo", "a": 1.0}),
                                                         rows({"city": "Atlantis", "a": 1.0}),
                                                         rows({"city": "Lima", "a": 2.0})])

    assert isinstance(oslo, list) and isinstance(lima, list)
    assert oslo[0]["label"] in (0, 1) and lima[0]["label"] in (0, 1)
    assert isinstance(atlantis, ValueError) and "Atlantis" in str(atlantis)
    assert (store.model_calls, store.fallbacks) == (4, 1)


def test_tensor_calls_are_stacked_along_the_batch_axis(tmp_path: Path) -> None:
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
    mlflow.sklearn.save_model(LogisticRegression().fit(X, [0, 0, 1, 1]), str(tmp_path / "t"),
                              signature=infer_signature(X, np.array([0, 0, 1, 1])),
                              serialization_format="cloudpickle")
    store = ModelStore()
    store.load("t/1", str(tmp_path / "t"))
    payloads = [{"kind": "tensor", "data": [row], "dtype": "float64", "params": {}} for row in X.tolist()]

    answers = store.predict_many("t/1", payloads)

    assert answers == [store.predict("t/1", payload) for payload in payloads]
    assert store.model_calls == 1
    with pytest.raises(PayloadInvalid, match=r"field `data\[0\]`: expected array of exactly 2 numbers"):
        store.predict("t/1", {"kind": "tensor", "data": [[1.0, 2.0, 3.0]], "dtype": "float64"})


def test_a_direct_call_with_bad_fields_is_refused_before_the_model_with_every_problem_named(
    model_dirs: dict[str, str]
) -> None:
    store = ModelStore()
    store.load("clf/1", model_dirs["clf"])

    with pytest.raises(PayloadInvalid) as refused:
        store.predict("clf/1", rows({"a": True, "bb": 1.0}))

    assert str(refused.value).splitlines() == [
        "The input of model clf/1 has 3 problems:",
        "- field `a`: expected number, got boolean true",
        "- field `b` is required: expected number",
        "- field `bb` is not accepted; accepted fields: a, b (did you mean `b`?)",
    ]


def test_the_host_answers_400_naming_the_field_and_404_for_a_version_it_does_not_hold(
    model_dirs: dict[str, str]
) -> None:
    from bentoml.exceptions import InvalidArgument, NotFound

    from bridge.model_host.service import ModelHost

    host = ModelHost.inner()
    host.store.load("clf/1", model_dirs["clf"])

    with pytest.raises(InvalidArgument) as refused:
        asyncio.run(host.predict(key="clf/1", payload=rows({"a": "high", "b": 0.0})))
    with pytest.raises(NotFound, match="not loaded"):
        asyncio.run(host.predict(key="gone/1", payload=rows({"a": 1.0, "b": 0.0})))
    answer = asyncio.run(host.predict(key="clf/1", payload=rows({"a": 3.0, "b": 0.0})))

    assert refused.value.error_code == 400
    assert "field `a`: expected number, got string 'high'" in str(refused.value)
    assert answer["outputs"][0]["label"] == 1
    assert host.batcher is not None and host.batcher.stats.calls == 3  # batching is on by default
