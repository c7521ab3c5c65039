"""Property tests: whatever an input schema admits, our validator, the LangChain argument model and a real
model in the model host's store all accept (signature → schema → validation → prediction round trip)."""

from __future__ import annotations

import json
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bridge.model_host.loader import ModelStore
from bridge.schema import input_schema, to_model_input
from bridge.validation import compile_validator
from toolbridge_client.pydantic_models import model_from_schema

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parsed(signature: ModelSignature) -> dict[str, Any]:
    return {k: json.loads(v) if v else None for k, v in signature.to_dict().items()}


TABULAR = parsed(ModelSignature(
    inputs=Schema([ColSpec("long", "age"), ColSpec("double", "income"), ColSpec("string", "city"),
                   ColSpec("double", "employment_years", required=False)]),
    params=ParamSchema([ParamSpec("threshold", "double", 0.5)])))
TENSOR = parsed(ModelSignature(inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 3))])))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    root = tmp_path_factory.mktemp("property-models")
    frame = pd.DataFrame({"age": [25, 40, 61, 33], "income": [1e4, 5e4, 9e4, 3e4],
                          "city": ["Oslo", "Lima", "Pune", "Oslo"],
                          "employment_years": [1.0, None, 30.0, 4.0]})
    labels = [0, 1, 1, 0]
    tabular = make_pipeline(
        ColumnTransformer([("num", SimpleImputer(), ["age", "income", "employment_years"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])]),
        StandardScaler(with_mean=False), LogisticRegression())
    tabular.fit(frame, labels)
    mlflow.sklearn.save_model(tabular, str(root / "tabular"), serialization_format="cloudpickle",
                              signature=ModelSignature.from_dict({k: json.dumps(v) if v else None
                                                                  for k, v in TABULAR.items()}))
    tensor = LogisticRegression().fit(np.array([[0.0, 1, 2], [3, 4, 5], [1, 1, 1], [9, 9, 9]]), labels)
    mlflow.sklearn.save_model(tensor, str(root / "tensor"), serialization_format="cloudpickle",
                              signature=ModelSignature.from_dict({"inputs": json.dumps(TENSOR["inputs"])}))
    models = ModelStore()
    models.load("tabular/1", str(root / "tabular"))
    models.load("tensor/1", str(root / "tensor"))
    return models


def admitted(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values `schema` admits, for the schema forms bridge.schema emits; numbers bounded to what a float64
    feature holds without overflowing a linear model."""
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return st.one_of(*(admitted({**schema, "type": kind}) for kind in kinds))
    if kinds == "null":
        return st.none()
    if kinds == "boolean":
        return st.booleans()
    if kinds == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**53)), max_value=schema.get("maximum", 2**53))
    if kinds == "number":
        return st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
    if kinds == "string":
        return st.text(max_size=50)
    if kinds == "array":
        return st.lists(admitted(schema["items"]), min_size=schema.get("minItems", 0),
                        max_size=schema.get("maxItems", 5))
    assert kinds == "object", schema
    properties = schema["properties"]
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: admitted(sub) for name, sub in properties.items() if name in required},
        optional={name: admitted(sub) for name, sub in properties.items() if name not in required})


TABULAR_SCHEMA = input_schema(TABULAR)
TENSOR_SCHEMA = input_schema(TENSOR)


@PROPERTY_SETTINGS
@given(arguments=admitted(TABULAR_SCHEMA))
def test_tabular_arguments_the_schema_admits_are_accepted_everywhere(
    store: ModelStore, arguments: Any
) -> None:
    compile_validator(TABULAR_SCHEMA).validate(arguments)
    model_from_schema(TABULAR_SCHEMA, "Tabular").model_validate(arguments)
    payload = to_model_input(TABULAR, arguments)
    payload["params"] = {}  # sklearn flavors take no params; the host passes them only to pyfunc models
    (answer,) = store.predict("tabular/1", payload)
    assert answer["label"] in (0, 1)


@PROPERTY_SETTINGS
@given(arguments=admitted(TENSOR_SCHEMA))
def test_tensor_arguments_the_schema_admits_are_accepted_everywhere(
    store: ModelStore, arguments: Any
) -> None:
    compile_validator(TENSOR_SCHEMA).validate(arguments)
    model_from_schema(TENSOR_SCHEMA, "Tensor").model_validate(arguments)
    (answer,) = store.predict("tensor/1", to_model_input(TENSOR, arguments))
    assert answer["label"] in (0, 1)
