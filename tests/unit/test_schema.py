"""bridge.schema: MLflow signatures (built with MLflow's own classes) → tool JSON Schemas and model input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from mlflow.types.schema import AnyType, Array, Map, Object, Property

from bridge.errors import BridgeError
from bridge.schema import (
    SchemaError,
    arguments_from_record,
    field_map,
    input_schema,
    output_schema,
    strict_variant,
    to_model_input,
)


def parsed(signature: ModelSignature) -> dict[str, Any]:
    """The signature as registry_sync hands it over: MLmodel's JSON strings parsed into plain dicts."""
    return {key: json.loads(value) if value else None for key, value in signature.to_dict().items()}


def columns(*specs: ColSpec | TensorSpec, params: list[ParamSpec] | None = None,
            outputs: list[ColSpec | TensorSpec] | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"params": ParamSchema(params)} if params else {}
    return parsed(ModelSignature(inputs=Schema(list(specs)), outputs=Schema(outputs) if outputs else None,
                                 **extra))


def tensor(dtype: str, shape: tuple[int, ...], name: str | None = None) -> dict[str, Any]:
    return columns(TensorSpec(np.dtype(dtype), shape, name))


def prop(schema: dict[str, Any], name: str) -> dict[str, Any]:
    value: dict[str, Any] = schema["properties"][name]
    return value


def walk(node: Any) -> list[dict[str, Any]]:
    """Every schema object nested anywhere in `node`."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(walk(value))
    return found


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


# --- no signature ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", [None, {}])
def test_missing_signature_is_a_schema_error_that_says_how_to_log_one(
        signature: dict[str, Any] | None) -> None:
    with pytest.raises(SchemaError, match=r"^model version has no signature; log it with "
                                          r"`signature=infer_signature\(X, y\)`"):
        input_schema(signature)


def test_signature_without_inputs_is_a_schema_error() -> None:
    signature = parsed(ModelSignature(inputs=None, outputs=Schema([ColSpec("double")])))

    with pytest.raises(SchemaError, match=r"signature declares no inputs; log it with `signature=infer_"):
        input_schema(signature)


def test_schema_error_is_a_bridge_error_and_a_value_error() -> None:
    with pytest.raises(BridgeError):
        input_schema(None)
    with pytest.raises(ValueError):
        input_schema(None)


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


# --- valid JSON Schema, and the shape strict clients demand ----------------------------------------------

SIGNATURES = {
    "primitives": columns(*(ColSpec(t, f"c_{t}") for t in (
        "double", "float", "long", "integer", "boolean", "string", "datetime", "binary"))),
    "composites": columns(ColSpec(Array("long"), "a"), ColSpec(Object([Property("x", "double"),
                          Property("y", "string", required=False)]), "o"), ColSpec(Map("double"), "m"),
                          ColSpec(AnyType(), "any"), ColSpec(Array(Object([Property("z", "long")])), "ao")),
    "optional_and_params": columns(ColSpec("long", "age"), ColSpec("string", "city", required=False),
                                   params=[ParamSpec("t", "double", 0.1),
                                           ParamSpec("s", "string", ["a"], (-1,))]),
    "unnamed": columns(ColSpec("double"), ColSpec("long")),
    "tensor": tensor("float32", (-1, 28, 28)),
    "named_tensors": columns(TensorSpec(np.dtype("uint8"), (-1, 3), "a"),
                             TensorSpec(np.dtype("bool"), (2,), "b")),
}
# OpenAI strict mode cannot say "any value" or "a map": those signatures are outside its reach.
STRICT_ABLE = ["optional_and_params", "unnamed", "tensor", "named_tensors"]


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_every_input_schema_is_valid_inline_json_schema(name: str) -> None:
    schema = input_schema(SIGNATURES[name])

    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    for node in walk(schema):
        assert not {"$ref", "$defs", "allOf", "anyOf", "oneOf", "not"} & set(node), node
    for key, value in schema["properties"].items():
        assert value["description"], key
        if key not in schema["required"]:
            assert "type" not in value or "null" in value["type"], key


@pytest.mark.parametrize("name", STRICT_ABLE)
def test_strict_variant_has_openai_strict_shape(name: str) -> None:
    original = input_schema(SIGNATURES[name])

    strict = strict_variant(original)

    objects = [node for node in walk(strict) if node.get("type") in ("object", ["object", "null"])]
    assert objects and all(node["additionalProperties"] is False for node in objects)
    assert all(node["required"] == list(node["properties"]) for node in objects)
    for key, value in original["properties"].items():
        if key not in original["required"]:
            assert "null" in value["type"], key
    Draft202012Validator.check_schema(strict)


def test_strict_variant_requires_nested_optional_fields_and_leaves_the_original_alone() -> None:
    original = input_schema(columns(ColSpec(Object([Property("x", "double"),
                                                    Property("y", "string", required=False)]), "o"),
                                    ColSpec("long", "n", required=False)))

    strict = strict_variant(original)

    assert strict["required"] == ["o", "n"]
    assert prop(strict, "o")["required"] == ["x", "y"]
    assert original["required"] == ["o"]
    assert prop(original, "o")["required"] == ["x"]


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
