"""bridge.schema: column signatures become a closed tool input JSON Schema (types, optionals, params)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from mlflow.types import ColSpec, ParamSpec
from mlflow.types.schema import AnyType, Array, Map, Object, Property

from bridge.schema import SchemaError, input_schema
from tests.unit.schema_helpers import columns, prop, walk

# --- the whole schema ------------------------------------------------------------------------------------


def test_column_signature_becomes_a_flat_closed_object_in_signature_order() -> None:
    signature = columns(ColSpec("long", "age"), ColSpec("double", "income"),
                        ColSpec("string", "city", required=False),
                        params=[ParamSpec("threshold", "double", 0.5)])

    assert input_schema(signature) == {
        "type": "object",
        "properties": {
            "age": {"type": "integer", "description": "Column `age` (MLflow type long)."},
            "income": {"type": "number", "description": "Column `income` (MLflow type double)."},
            "city": {"type": ["string", "null"],
                     "description": "Column `city` (MLflow type string). "
                                    "Optional: omit it or send null when unknown."},
            "threshold": {"type": ["number", "null"],
                          "description": "Inference parameter `threshold` (MLflow type double). "
                                         "Optional; default: 0.5."},
        },
        "required": ["age", "income"],
        "additionalProperties": False,
    }


def test_schema_is_deterministic_down_to_key_order() -> None:
    signature = columns(ColSpec("string", "b"), ColSpec("long", "a"), ColSpec(Object([
        Property("z", "double"), Property("y", "long")]), "c"))

    first, second = input_schema(signature), input_schema(json.loads(json.dumps(signature)))

    assert json.dumps(first) == json.dumps(second)
    assert list(first) == ["type", "properties", "required", "additionalProperties"]
    assert list(first["properties"]) == ["b", "a", "c"]
    # MLflow sorts object properties itself; we keep whatever order MLmodel holds.
    assert list(prop(first, "c")["properties"]) == list(signature["inputs"][2]["properties"]) == ["y", "z"]


# --- primitive types -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mlflow_type", "json_type"), [
    ("double", {"type": "number"}),
    ("float", {"type": "number"}),
    ("long", {"type": "integer"}),
    ("integer", {"type": "integer"}),
    ("boolean", {"type": "boolean"}),
    ("string", {"type": "string"}),
])
def test_primitive_column_types_map_to_json_types(mlflow_type: str, json_type: dict[str, Any]) -> None:
    schema = input_schema(columns(ColSpec(mlflow_type, "x")))

    assert prop(schema, "x") == {**json_type, "description": f"Column `x` (MLflow type {mlflow_type})."}
    assert schema["required"] == ["x"]


def test_datetime_column_is_a_date_time_string_with_an_example() -> None:
    schema = input_schema(columns(ColSpec("datetime", "when")))

    assert prop(schema, "when") == {
        "type": "string", "format": "date-time",
        "description": "Column `when` (MLflow type datetime). ISO 8601 date-time, e.g. 2024-01-31T12:00:00Z.",
    }


def test_binary_column_is_a_base64_string() -> None:
    schema = input_schema(columns(ColSpec("binary", "photo")))

    assert prop(schema, "photo") == {
        "type": "string", "contentEncoding": "base64",
        "description": "Column `photo` (MLflow type binary). Base64-encoded bytes.",
    }


def test_column_without_required_flag_from_older_mlflow_is_required() -> None:
    signature = {"inputs": [{"type": "double", "name": "x"}], "outputs": None, "params": None}

    assert input_schema(signature)["required"] == ["x"]


# --- composite types -------------------------------------------------------------------------------------


def test_array_column_is_an_array_of_the_mapped_item_type() -> None:
    schema = input_schema(columns(ColSpec(Array("long"), "tags"), ColSpec(Array(Array("string")), "grid")))

    assert prop(schema, "tags") == {"type": "array", "items": {"type": "integer"},
                                    "description": "Column `tags` (MLflow type array<long>)."}
    assert prop(schema, "grid") == {"type": "array", "items": {"type": "array", "items": {"type": "string"}},
                                    "description": "Column `grid` (MLflow type array<array<string>>)."}


def test_object_column_is_a_closed_object_with_its_own_required_and_nullable_optionals() -> None:
    point = Object([Property("x", "double"), Property("label", "string", required=False)])

    schema = input_schema(columns(ColSpec(point, "point")))

    assert prop(schema, "point") == {
        "type": "object",
        "properties": {
            "x": {"type": "number", "description": "Field `x` (MLflow type double)."},
            "label": {"type": ["string", "null"], "description": "Field `label` (MLflow type string)."},
        },
        "required": ["x"],
        "additionalProperties": False,
        "description": "Column `point` (MLflow type object).",
    }


def test_array_of_objects_maps_items_as_objects() -> None:
    schema = input_schema(columns(ColSpec(Array(Object([Property("sku", "long")])), "lines")))

    assert prop(schema, "lines")["items"] == {
        "type": "object",
        "properties": {"sku": {"type": "integer", "description": "Field `sku` (MLflow type long)."}},
        "required": ["sku"],
        "additionalProperties": False,
    }


def test_map_column_is_an_object_whose_values_have_the_mapped_type() -> None:
    schema = input_schema(columns(ColSpec(Map("double"), "weights"), ColSpec(Map(Array("long")), "ids")))

    assert prop(schema, "weights") == {"type": "object", "additionalProperties": {"type": "number"},
                                       "description": "Column `weights` (MLflow type map<string, double>)."}
    assert prop(schema, "ids") == {"type": "object",
                                   "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                                   "description": "Column `ids` (MLflow type map<string, array<long>>)."}


def test_any_column_has_no_type_constraint_but_a_description() -> None:
    schema = input_schema(columns(ColSpec(AnyType(), "payload")))

    assert prop(schema, "payload") == {"description": "Column `payload` (MLflow type any)."}
    assert schema["required"] == ["payload"]


def test_unknown_mlflow_type_is_a_schema_error_naming_the_column() -> None:
    signature = {"inputs": [{"type": "decimal", "name": "price", "required": True}]}

    with pytest.raises(SchemaError, match=r"column `price` has MLflow type 'decimal'.*supported: double"):
        input_schema(signature)


# --- optional columns ------------------------------------------------------------------------------------


def test_optional_columns_are_listed_nullable_and_not_required() -> None:
    schema = input_schema(columns(ColSpec("long", "age"), ColSpec(Array("double"), "history", required=False),
                                  ColSpec("datetime", "seen", required=False)))

    assert schema["required"] == ["age"]
    assert prop(schema, "history")["type"] == ["array", "null"]
    assert prop(schema, "history")["items"] == {"type": "number"}
    assert prop(schema, "seen") == {
        "type": ["string", "null"], "format": "date-time",
        "description": "Column `seen` (MLflow type datetime). ISO 8601 date-time, e.g. 2024-01-31T12:00:00Z. "
                       "Optional: omit it or send null when unknown.",
    }


def test_optional_any_column_stays_untyped_because_it_already_accepts_null() -> None:
    schema = input_schema(columns(ColSpec("long", "a"), ColSpec(AnyType(), "extra", required=False)))

    assert prop(schema, "extra") == {
        "description": "Column `extra` (MLflow type any). Optional: omit it or send null when unknown."}
    assert schema["required"] == ["a"]


# --- params ----------------------------------------------------------------------------------------------


def test_params_become_optional_nullable_properties_with_the_default_in_the_description() -> None:
    signature = columns(ColSpec("string", "text"), params=[
        ParamSpec("temperature", "double", 0.7), ParamSpec("top_k", "long", 3),
        ParamSpec("verbose", "boolean", False), ParamSpec("mode", "string", "fast"),
        ParamSpec("since", "datetime", np.datetime64("2024-01-01")), ParamSpec("cutoff", "float", None),
    ])

    schema = input_schema(signature)

    assert schema["required"] == ["text"]
    assert {name: prop(schema, name) for name in list(schema["properties"])[1:]} == {
        "temperature": {"type": ["number", "null"], "description": "Inference parameter `temperature` "
                        "(MLflow type double). Optional; default: 0.7."},
        "top_k": {"type": ["integer", "null"],
                  "description": "Inference parameter `top_k` (MLflow type long). Optional; default: 3."},
        "verbose": {"type": ["boolean", "null"], "description": "Inference parameter `verbose` "
                    "(MLflow type boolean). Optional; default: false."},
        "mode": {"type": ["string", "null"], "description": "Inference parameter `mode` "
                 "(MLflow type string). Optional; default: \"fast\"."},
        "since": {"type": ["string", "null"], "format": "date-time", "description": "Inference parameter "
                  "`since` (MLflow type datetime). Optional; default: \"2024-01-01\"."},
        "cutoff": {"type": ["number", "null"], "description": "Inference parameter `cutoff` "
                   "(MLflow type float). Optional; default: null."},
    }
    assert not any("default" in node for node in walk(schema["properties"]))  # no `default` reliance


def test_list_param_with_shape_is_an_array_and_object_param_an_object() -> None:
    signature = columns(ColSpec("string", "text"), params=[
        ParamSpec("stop", "string", ["\n"], (-1,)),
        ParamSpec("window", Object([Property("size", "long")]), {"size": 5}),
    ])

    schema = input_schema(signature)

    assert prop(schema, "stop") == {
        "type": ["array", "null"], "items": {"type": "string"},
        "description": "Inference parameter `stop` (MLflow type string, shape [-1]). "
                       "Optional; default: [\"\\n\"].",
    }
    assert prop(schema, "window") == {
        "type": ["object", "null"],
        "properties": {"size": {"type": "integer", "description": "Field `size` (MLflow type long)."}},
        "required": ["size"],
        "additionalProperties": False,
        "description": "Inference parameter `window` (MLflow type object). Optional; default: {\"size\": 5}.",
    }


def test_param_and_column_with_one_name_is_a_schema_error() -> None:
    signature = columns(ColSpec("string", "mode"), params=[ParamSpec("mode", "string", "a")])

    with pytest.raises(SchemaError, match=r"param `mode` and column `mode` both become tool field `mode`"):
        input_schema(signature)
