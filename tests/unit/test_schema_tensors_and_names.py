"""bridge.schema: tensor inputs, tool field names and data-scientist descriptions in the input schema."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from mlflow.types import ColSpec, ParamSpec, TensorSpec

from bridge.schema import SchemaError, field_map, input_schema
from tests.unit.schema_helpers import columns, prop, tensor

# --- tensors ---------------------------------------------------------------------------------------------


def test_rank_one_tensor_is_one_inputs_array_of_any_length() -> None:
    assert input_schema(tensor("float64", (-1,))) == {
        "type": "object",
        "properties": {"inputs": {
            "type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 1,
            "description": "Input tensor (dtype float64). Shape [-1] (-1 means any size): send a JSON array."
                           " The first dimension is the batch: send exactly one sample per call.",
        }},
        "required": ["inputs"],
        "additionalProperties": False,
    }


def test_rank_two_tensor_fixes_the_length_of_fixed_dimensions_only() -> None:
    assert prop(input_schema(tensor("float64", (-1, 4))), "inputs") == {
        "type": "array",
        "items": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
        "minItems": 1, "maxItems": 1,
        "description": "Input tensor (dtype float64). Shape [-1, 4] (-1 means any size): "
                       "send a JSON array nested 2 levels deep. The first dimension is the batch: "
                       "send exactly one sample per call.",
    }


def test_rank_three_tensor_nests_three_arrays() -> None:
    assert prop(input_schema(tensor("float32", (-1, 2, 3), name="image")), "inputs") == {
        "type": "array",
        "items": {"type": "array", "minItems": 2, "maxItems": 2,
                  "items": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}},
        "minItems": 1, "maxItems": 1,
        "description": "Input tensor `image` (dtype float32). Shape [-1, 2, 3] (-1 means any size): "
                       "send a JSON array nested 3 levels deep. The first dimension is the batch: "
                       "send exactly one sample per call.",
    }


def test_fully_fixed_tensor_has_no_any_size_note_and_a_fixed_outer_length() -> None:
    assert prop(input_schema(tensor("bool", (3,))), "inputs") == {
        "type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 3,
        "description": "Input tensor (dtype bool). Shape [3]: send a JSON array.",
    }


def test_rank_zero_tensor_is_a_single_value() -> None:
    assert prop(input_schema(tensor("int32", ())), "inputs") == {
        "type": "integer", "description": "Input tensor (dtype int32). Shape []: send a single value."}


@pytest.mark.parametrize(("dtype", "item"), [
    ("float16", {"type": "number"}),
    ("float32", {"type": "number"}),
    ("int8", {"type": "integer"}),
    ("int64", {"type": "integer"}),
    ("uint8", {"type": "integer", "minimum": 0}),
    ("bool", {"type": "boolean"}),
    ("str", {"type": "string"}),
    ("object", {"type": "string"}),
    ("S", {"type": "string", "contentEncoding": "base64"}),
    ("datetime64[ns]", {"type": "string", "format": "date-time"}),
    ("complex128", {}),
])
def test_tensor_dtypes_map_to_item_types(dtype: str, item: dict[str, Any]) -> None:
    assert prop(input_schema(tensor(dtype, (-1,))), "inputs")["items"] == item


def test_several_named_tensors_get_one_required_property_each() -> None:
    signature = columns(TensorSpec(np.dtype("float32"), (-1, 2), "left"),
                        TensorSpec(np.dtype("int64"), (-1,), "right"))

    schema = input_schema(signature)

    assert list(schema["properties"]) == ["left", "right"]
    assert schema["required"] == ["left", "right"]
    assert prop(schema, "right") == {"type": "array", "items": {"type": "integer"}, "minItems": 1,
                                     "maxItems": 1,
                                     "description": "Input tensor `right` (dtype int64). "
                                                    "Shape [-1] (-1 means any size): send a JSON array."
                                                    " The first dimension is the batch: "
                                                    "send exactly one sample per call."}


# --- names -----------------------------------------------------------------------------------------------


def test_single_unnamed_column_is_called_input_and_maps_to_position_zero() -> None:
    signature = columns(ColSpec("string"), params=[ParamSpec("max_tokens", "long", 16)])

    schema = input_schema(signature)

    assert prop(schema, "input") == {"type": "string",
                                     "description": "Unnamed input column 0 (MLflow type string)."}
    assert schema["required"] == ["input"]
    assert field_map(signature) == {"input": 0, "max_tokens": "max_tokens"}


def test_several_unnamed_columns_are_numbered_by_position() -> None:
    signature = columns(ColSpec("double"), ColSpec("long"), ColSpec("string"))  # MLflow: all required

    schema = input_schema(signature)

    assert list(schema["properties"]) == ["input_0", "input_1", "input_2"]
    assert schema["required"] == ["input_0", "input_1", "input_2"]
    assert prop(schema, "input_1") == {"type": "integer",
                                       "description": "Unnamed input column 1 (MLflow type long)."}
    assert field_map(signature) == {"input_0": 0, "input_1": 1, "input_2": 2}


def test_column_names_no_client_accepts_are_made_safe_and_keep_the_original_in_the_description() -> None:
    signature = columns(ColSpec("double", "sepal length (cm)"), ColSpec("double", "petal.width-cm_2"))

    schema = input_schema(signature)

    assert list(schema["properties"]) == ["sepal_length_cm", "petal.width-cm_2"]
    assert prop(schema, "sepal_length_cm")["description"] == (
        "Column `sepal length (cm)` (MLflow type double).")
    assert field_map(signature) == {"sepal_length_cm": "sepal length (cm)",
                                    "petal.width-cm_2": "petal.width-cm_2"}


def test_two_columns_made_safe_to_one_name_is_a_schema_error_naming_both() -> None:
    signature = columns(ColSpec("double", "a b"), ColSpec("double", "a_b"))

    with pytest.raises(SchemaError, match=r"column `a_b` and column `a b` both become tool field `a_b`"):
        input_schema(signature)


def test_single_tensor_maps_back_to_its_name_or_position() -> None:
    assert field_map(tensor("float64", (-1,), name="pixels")) == {"inputs": "pixels"}
    assert field_map(tensor("float64", (-1,))) == {"inputs": 0}


# --- descriptions ----------------------------------------------------------------------------------------


def test_field_descriptions_replace_the_generated_sentence_and_keep_needed_facts() -> None:
    signature = columns(ColSpec("long", "age"), ColSpec("double", "sepal length (cm)"),
                        ColSpec("datetime", "when", required=False), ColSpec("string", "note"),
                        params=[ParamSpec("threshold", "double", 0.5)])
    descriptions = {"age": "Applicant age in years.", "sepal_length_cm": "Sepal length, cm.",
                    "when": " Time of visit ", "threshold": "Decision threshold.", "note": "   ",
                    "unrelated": "ignored"}

    schema = input_schema(signature, descriptions)

    assert {name: p["description"] for name, p in schema["properties"].items()} == {
        "age": "Applicant age in years.",
        "sepal_length_cm": "Sepal length, cm.",
        "when": "Time of visit ISO 8601 date-time, e.g. 2024-01-31T12:00:00Z. "
                "Optional: omit it or send null when unknown.",
        "note": "Column `note` (MLflow type string).",  # a blank description does not erase ours
        "threshold": "Decision threshold. Optional; default: 0.5.",
    }


def test_field_description_by_mlflow_name_wins_over_property_name() -> None:
    signature = columns(ColSpec("double", "sepal length (cm)"))

    schema = input_schema(signature, {"sepal length (cm)": "by column", "sepal_length_cm": "by property"})

    assert prop(schema, "sepal_length_cm")["description"] == "by column"


def test_tensor_description_from_the_data_scientist_keeps_the_shape() -> None:
    schema = input_schema(tensor("float64", (-1, 4)), {"inputs": "Iris measurements."})

    assert prop(schema, "inputs")["description"] == (
        "Iris measurements. Shape [-1, 4] (-1 means any size): send a JSON array nested 2 levels deep."
        " The first dimension is the batch: send exactly one sample per call.")
