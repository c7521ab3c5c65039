"""bridge.schema: tool output schemas, and tool arguments to MLflow model input and back."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from mlflow.types import ColSpec, ParamSpec, TensorSpec
from mlflow.types.schema import Array

from bridge.schema import SchemaError, arguments_from_record, output_schema, to_model_input
from tests.unit.schema_helpers import columns, prop

# --- output schemas --------------------------------------------------------------------------------------

MODEL = {
    "type": "object",
    "properties": {"name": {"type": "string", "description": "Registered model name in MLflow."},
                   "version": {"type": "string", "description": "Model version that answered."}},
    "required": ["name", "version"],
    "additionalProperties": False,
    "description": "The MLflow model version that produced this result.",
}


def test_classifier_output_has_a_typed_label_and_one_probability_per_class() -> None:
    assert output_schema("classifier", [0, 1, 2], None) == {
        "type": "object",
        "properties": {
            "label": {"type": "integer", "enum": [0, 1, 2],
                      "description": "Predicted class label, one of: 0, 1, 2."},
            "probabilities": {
                "type": "object",
                "properties": {"0": {"type": "number"}, "1": {"type": "number"}, "2": {"type": "number"}},
                "additionalProperties": {"type": "number"},
                "description": "Probability of each class label (0 to 1), keyed by the label.",
            },
            "model": MODEL,
        },
        "required": ["label", "model"],
    }


def test_classifier_with_string_labels_has_a_string_label() -> None:
    schema = output_schema("classifier", ["setosa", "versicolor"], None)

    assert prop(schema, "label") == {"type": "string", "enum": ["setosa", "versicolor"],
                                     "description": "Predicted class label, one of: setosa, versicolor."}
    assert list(prop(schema, "probabilities")["properties"]) == ["setosa", "versicolor"]


def test_classifier_labels_from_numpy_become_plain_json_values() -> None:
    schema = output_schema("classifier", list(np.array([3, 7], dtype=np.int64)), None)

    assert prop(schema, "label")["enum"] == [3, 7]
    assert all(type(v) is int for v in prop(schema, "label")["enum"])
    json.dumps(schema)


def test_classifier_without_known_classes_leaves_the_label_untyped() -> None:
    schema = output_schema("classifier", None, None)

    assert prop(schema, "label") == {"description": "Predicted class label."}
    assert prop(schema, "probabilities")["properties"] == {}


def test_regressor_output_is_a_number() -> None:
    signature = columns(ColSpec("double", "x"), outputs=[TensorSpec(np.dtype("float64"), (-1,))])

    assert output_schema("regressor", None, signature) == {
        "type": "object",
        "properties": {"prediction": {"type": "number", "description": "The predicted value."},
                       "model": MODEL},
        "required": ["prediction", "model"],
    }


def test_multi_output_regressor_predicts_an_array_per_row() -> None:
    signature = columns(ColSpec("double", "x"), outputs=[TensorSpec(np.dtype("float64"), (-1, 2))])

    assert prop(output_schema("regressor", None, signature), "prediction") == {
        "type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
        "description": "The model's output for one row (dtype float64, shape [2]).",
    }


@pytest.mark.parametrize(("outputs", "prediction"), [
    ([TensorSpec(np.dtype("int64"), (-1,))],
     {"type": "integer", "description": "The model's output for one row (dtype int64, shape [])."}),
    ([TensorSpec(np.dtype("float32"), (-1, 3))],
     {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3,
      "description": "The model's output for one row (dtype float32, shape [3])."}),
    ([ColSpec("string")], {"type": "string", "description": "The model's output (MLflow type string)."}),
    ([ColSpec("double", "score")],
     {"description": "The model's output: column `score` (MLflow type double), "
                     "as a value or as an object keyed by the column."}),
    ([ColSpec("double", "p"), ColSpec(Array("string"), "tags")],
     {"type": "object", "properties": {
         "p": {"type": "number", "description": "MLflow type double."},
         "tags": {"type": "array", "items": {"type": "string"}, "description": "MLflow type array<string>."}},
      "description": "The model's output columns."}),
    (None, {"description": "The model's output (its signature declares no outputs)."}),
])
def test_other_models_type_the_prediction_from_the_signature_outputs(
        outputs: list[ColSpec | TensorSpec] | None, prediction: dict[str, Any]) -> None:
    schema = output_schema("other", None, columns(ColSpec("double", "x"), outputs=outputs))

    assert prop(schema, "prediction") == prediction
    assert schema["required"] == ["prediction", "model"]
    assert prop(schema, "model") == MODEL
    Draft202012Validator.check_schema(schema)


def test_output_schema_of_a_model_without_signature_still_promises_model() -> None:
    schema = output_schema("other", None, None)

    assert prop(schema, "prediction") == {
        "description": "The model's output (its signature declares no outputs)."}
    assert prop(schema, "model") == MODEL


# --- to_model_input --------------------------------------------------------------------------------------


def test_records_hold_every_column_with_missing_optionals_as_none_and_only_given_params() -> None:
    signature = columns(ColSpec("long", "age"), ColSpec("string", "city", required=False),
                        ColSpec("double", "score", required=False),
                        params=[ParamSpec("threshold", "double", 0.5), ParamSpec("top_k", "long", 3)])

    model_input = to_model_input(signature, {"age": 41, "score": None, "threshold": 0.9})

    assert model_input == {"kind": "records", "records": [{"age": 41, "city": None, "score": None}],
                           "params": {"threshold": 0.9}}


def test_null_params_are_left_to_the_model_default() -> None:
    signature = columns(ColSpec("long", "age"), params=[ParamSpec("threshold", "double", 0.5)])

    assert to_model_input(signature, {"age": 1, "threshold": None})["params"] == {}


def test_integral_floats_become_ints_for_integer_columns_and_params_only() -> None:
    signature = columns(ColSpec("long", "age"), ColSpec("integer", "n"), ColSpec("double", "income"),
                        params=[ParamSpec("top_k", "long", 3)])

    model_input = to_model_input(signature, {"age": 40.0, "n": 2.5, "income": 3.0, "top_k": 5.0})

    record = model_input["records"][0]
    assert record == {"age": 40, "n": 2.5, "income": 3.0}
    assert type(record["age"]) is int and type(record["income"]) is float
    assert model_input["params"] == {"top_k": 5} and type(model_input["params"]["top_k"]) is int


def test_records_use_the_original_column_names_of_renamed_fields() -> None:
    signature = columns(ColSpec("double", "sepal length (cm)"), ColSpec("double", "petal_width"))

    model_input = to_model_input(signature, {"sepal_length_cm": 5.1, "petal_width": 0.2})

    assert model_input["records"] == [{"sepal length (cm)": 5.1, "petal_width": 0.2}]


def test_unnamed_columns_are_keyed_by_position_in_column_order() -> None:
    signature = columns(ColSpec("double"), ColSpec("string"), ColSpec("long"))

    model_input = to_model_input(signature, {"input_2": 7, "input_1": "b", "input_0": 1.5})

    assert model_input["records"] == [{"0": 1.5, "1": "b", "2": 7}]
    assert list(model_input["records"][0]) == ["0", "1", "2"]
    assert to_model_input(columns(ColSpec("string")), {"input": "hello"})["records"] == [{"0": "hello"}]


def test_tensor_input_passes_the_nested_list_and_dtype() -> None:
    signature = columns(TensorSpec(np.dtype("float64"), (-1, 2)), params=[ParamSpec("scale", "double", 1.0)])

    model_input = to_model_input(signature, {"inputs": [[1.0, 2.0], [3.0, 4.0]], "scale": 2.0})

    assert model_input == {"kind": "tensor", "data": [[1.0, 2.0], [3.0, 4.0]], "dtype": "float64",
                           "params": {"scale": 2.0}}


def test_several_named_tensors_pass_data_and_dtype_by_tensor_name() -> None:
    signature = columns(TensorSpec(np.dtype("float32"), (-1, 2), "left"),
                        TensorSpec(np.dtype("int64"), (-1,), "right"))

    model_input = to_model_input(signature, {"left": [[1.0, 2.0]], "right": [7]})

    assert model_input == {"kind": "tensors", "data": {"left": [[1.0, 2.0]], "right": [7]},
                           "dtype": {"left": "float32", "right": "int64"}, "params": {}}


def test_model_input_is_json_ready() -> None:
    signature = columns(ColSpec("double"), ColSpec("long"), params=[ParamSpec("k", "long", 1)])

    model_input = to_model_input(signature, {"input_0": 1.0, "input_1": 2, "k": 3})

    assert json.loads(json.dumps(model_input)) == model_input


def test_to_model_input_without_signature_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="no signature"):
        to_model_input({}, {"x": 1})


def test_a_record_keyed_by_column_maps_back_to_tool_arguments_without_nulls() -> None:
    signature = columns(ColSpec("double", "sepal length (cm)"), ColSpec("string", "city", required=False),
                        ColSpec("long", "age"), params=[ParamSpec("k", "long", 1)])
    record = {"sepal length (cm)": 5.1, "city": None, "age": 3, "extra": 1}

    arguments = arguments_from_record(signature, record)

    assert arguments == {"sepal_length_cm": 5.1, "age": 3}
    round_trip = to_model_input(signature, arguments)["records"]
    assert round_trip == [{"sepal length (cm)": 5.1, "city": None, "age": 3}]


def test_a_positional_record_maps_to_unnamed_column_fields() -> None:
    signature = columns(ColSpec("double"), ColSpec("string"))

    assert arguments_from_record(signature, {"0": 1.5, "1": "a"}) == {"input_0": 1.5, "input_1": "a"}
    assert arguments_from_record(signature, {0: 1.5, 1: "a"}) == {"input_0": 1.5, "input_1": "a"}


def test_an_input_example_saved_by_pandas_smoke_tests_a_datetime_column() -> None:
    """MLflow writes a DataFrame example's timestamps as epoch milliseconds, and NaN for missing values."""
    signature = {"inputs": [{"type": "datetime", "name": "at"}, {"type": "double", "name": "x",
                                                                 "required": False}]}
    record = {"at": 1706702400000, "x": float("nan")}
    assert arguments_from_record(signature, record) == {"at": "2024-01-31T12:00:00Z"}
