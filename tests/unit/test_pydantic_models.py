"""toolbridge_client.pydantic_models: the tool input schemas bridge.schema emits → pydantic models that
accept what the server accepts and reject what it rejects (checked against the server's own validator)."""

from __future__ import annotations

import math
import typing
from typing import Any

import pytest
from mlflow.types import ColSpec, ParamSpec
from mlflow.types.schema import Array, Object, Property
from pydantic import BaseModel, ValidationError

from bridge.schema import input_schema, output_schema, strict_variant
from bridge.validation import ToolInputError, compile_validator
from tests.unit.schema_helpers import SIGNATURES, columns, tensor
from toolbridge_client.pydantic_models import model_from_schema, to_arguments

# One valid call per signature of tests/unit/schema_helpers.py (every shape input_schema emits).
VALID: dict[str, dict[str, Any]] = {
    "primitives": {"c_double": 1.5, "c_float": 2, "c_long": 3, "c_integer": 4, "c_boolean": True,
                   "c_string": "x", "c_datetime": "2024-01-31T12:00:00Z", "c_binary": "aGVsbG8="},
    "composites": {"a": [1, 2], "o": {"x": 1.0}, "m": {"k": 0.5}, "any": {"free": [1, "form"]},
                   "ao": [{"z": 7}]},
    "optional_and_params": {"age": 41},
    "unnamed": {"input_0": 1.5, "input_1": 2},
    "tensor": {"inputs": [[[0.5] * 28] * 28]},
    "named_tensors": {"a": [[1, 2, 3]], "b": [True, False]},
}
# Calls both the server and the model must refuse, by signature.
INVALID: list[tuple[str, dict[str, Any]]] = [
    ("primitives", {**VALID["primitives"], "c_long": "three"}),
    ("primitives", {**VALID["primitives"], "c_double": math.nan}),
    ("primitives", {k: v for k, v in VALID["primitives"].items() if k != "c_string"}),
    ("primitives", {**VALID["primitives"], "c_boolean": [True]}),
    ("composites", {**VALID["composites"], "unknown": 1}),
    ("composites", {**VALID["composites"], "o": {"x": 1.0, "w": 2}}),
    ("composites", {**VALID["composites"], "o": {"y": "no x"}}),
    ("composites", {**VALID["composites"], "ao": [{"z": "seven"}]}),
    ("composites", {**VALID["composites"], "m": {"k": "high"}}),
    ("optional_and_params", {"age": 41, "city": 7}),
    ("optional_and_params", {"age": 41, "s": "not a list"}),
    ("unnamed", {"input_0": 1.5, "input_1": 2.5}),
    ("tensor", {"inputs": [[[0.5] * 27] * 28]}),
    ("tensor", {"inputs": [[[0.5] * 28] * 28] * 2}),
    ("named_tensors", {"a": [[1, 2, -3]], "b": [True, False]}),
    ("named_tensors", {"a": [[1, 2, 3]], "b": [True]}),
]


def model_for(name: str) -> tuple[dict[str, Any], type[BaseModel]]:
    schema = input_schema(SIGNATURES[name])
    return schema, model_from_schema(schema, name)


def server_accepts(schema: dict[str, Any], arguments: Any) -> bool:
    try:
        compile_validator(schema).validate(arguments)
    except ToolInputError:
        return False
    return True


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_a_valid_call_passes_the_model_and_its_dump_passes_the_server(name: str) -> None:
    schema, model = model_for(name)

    arguments = to_arguments(model, VALID[name])

    assert server_accepts(schema, arguments), arguments
    assert set(arguments) == set(schema["properties"])


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_every_model_has_one_field_per_property_with_its_description(name: str) -> None:
    schema, model = model_for(name)

    by_alias = {f.alias: f for f in model.model_fields.values()}

    assert list(by_alias) == list(schema["properties"])
    for prop, field in by_alias.items():
        assert field.description == schema["properties"][prop]["description"]
        assert field.is_required() == (prop in schema["required"])
    assert model.model_config.get("extra") == "forbid"
    model.model_json_schema()  # LangChain renders it (tool.args)


@pytest.mark.parametrize(("name", "arguments"), INVALID)
def test_a_call_the_server_refuses_is_refused_by_the_model_first(name: str,
                                                                  arguments: dict[str, Any]) -> None:
    schema, model = model_for(name)
    assert not server_accepts(schema, arguments)

    with pytest.raises(ValidationError):
        model.model_validate(arguments)


def test_json_types_map_to_python_types_and_optionals_to_none_defaults() -> None:
    _, model = model_for("primitives")
    _, optional = model_for("optional_and_params")

    assert {f.alias: f.annotation for f in model.model_fields.values()} == {
        "c_double": float, "c_float": float, "c_long": int, "c_integer": int, "c_boolean": bool,
        "c_string": str, "c_datetime": str, "c_binary": str}
    assert optional.model_fields["city"].annotation == str | None
    assert optional.model_fields["city"].default is None
    assert optional.model_fields["s"].annotation == list[str] | None
    assert to_arguments(optional, {"age": 41}) == {"age": 41, "city": None, "t": None, "s": None}


def test_number_fields_coerce_integers_to_floats_and_refuse_infinity() -> None:
    _, model = model_for("primitives")

    arguments = to_arguments(model, VALID["primitives"])

    assert arguments["c_float"] == 2.0 and type(arguments["c_float"]) is float
    with pytest.raises(ValidationError, match="finite"):
        model.model_validate({**VALID["primitives"], "c_double": math.inf})


def test_lax_coercions_still_produce_arguments_the_server_accepts() -> None:
    schema, model = model_for("optional_and_params")

    arguments = to_arguments(model, {"age": "40", "t": "0.5"})

    assert arguments == {"age": 40, "city": None, "t": 0.5, "s": None}
    assert server_accepts(schema, arguments)


def test_nested_objects_become_closed_models_and_dump_back_to_plain_json() -> None:
    _, model = model_for("composites")

    inner = model.model_fields["o"].annotation
    assert isinstance(inner, type) and issubclass(inner, BaseModel)
    assert inner.model_config.get("extra") == "forbid"
    assert inner.model_fields["y"].annotation == str | None
    instance = model.model_validate(VALID["composites"])
    assert isinstance(instance.o, BaseModel)  # type: ignore[attr-defined]
    assert to_arguments(model, dict(instance)) == {
        "a": [1, 2], "o": {"x": 1.0, "y": None}, "m": {"k": 0.5}, "any": {"free": [1, "form"]},
        "ao": [{"z": 7}]}


def test_maps_become_dicts_and_untyped_fields_accept_anything() -> None:
    _, model = model_for("composites")

    assert typing.get_origin(model.model_fields["m"].annotation) is dict
    assert model.model_fields["any"].annotation is Any


def test_tensors_become_nested_lists_with_fixed_lengths() -> None:
    schema = input_schema(tensor("float64", (-1, 4)))
    model = model_from_schema(schema, "machine_failure")

    assert to_arguments(model, {"inputs": [[70, 2.0, 5.0, 1500]]}) == {"inputs": [[70.0, 2.0, 5.0, 1500.0]]}
    for wrong in ([[1.0, 2.0, 3.0]], [[1.0] * 4, [1.0] * 4], [], [[1.0, 2.0, 3.0, "four"]], 1.0):
        with pytest.raises(ValidationError):
            model.model_validate({"inputs": wrong})
    lengths = model.model_json_schema()["properties"]["inputs"]
    assert (lengths["minItems"], lengths["maxItems"]) == (1, 1)
    assert (lengths["items"]["minItems"], lengths["items"]["maxItems"]) == (4, 4)


def test_unsigned_tensors_refuse_negative_numbers() -> None:
    model = model_from_schema(input_schema(tensor("uint8", (3,))), "img")

    assert to_arguments(model, {"inputs": [0, 1, 255]}) == {"inputs": [0, 1, 255]}
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        model.model_validate({"inputs": [0, -1, 2]})


def test_property_names_python_cannot_use_keep_their_name_as_alias() -> None:
    schema = input_schema(columns(ColSpec("double", "petal.width"), ColSpec("long", "class"),
                                  ColSpec("string", "json"), ColSpec("double", "petal-width"),
                                  ColSpec("long", "2nd"), ColSpec("long", "_hidden")))
    model = model_from_schema(schema, "odd names")

    assert [f.alias for f in model.model_fields.values()] == list(schema["properties"])
    assert all(name.isidentifier() and not name.startswith("_") for name in model.model_fields)
    arguments = {"petal.width": 1.0, "class": 2, "json": "{}", "petal-width": 3.0, "2nd": 4, "_hidden": 5}
    assert to_arguments(model, arguments) == arguments
    by_field_name = {name: arguments[f.alias or name] for name, f in model.model_fields.items()}
    assert to_arguments(model, by_field_name) == arguments  # what LangChain hands the tool


def test_field_descriptions_from_the_data_scientist_are_carried() -> None:
    schema = input_schema(columns(ColSpec("double", "annual_income")),
                          {"annual_income": "Gross annual income in US dollars."})

    field = model_from_schema(schema, "credit").model_fields["annual_income"]

    assert field.description == "Gross annual income in US dollars."


def test_params_with_a_shape_are_optional_nullable_lists() -> None:
    schema = input_schema(columns(ColSpec("string", "text"),
                                  params=[ParamSpec("stop", "string", ["."], (-1,))]))
    model = model_from_schema(schema, "gen")

    assert to_arguments(model, {"text": "hi"}) == {"text": "hi", "stop": None}
    assert to_arguments(model, {"text": "hi", "stop": ["!", "?"]}) == {"text": "hi", "stop": ["!", "?"]}
    assert server_accepts(schema, to_arguments(model, {"text": "hi"}))


def test_strict_variant_fields_are_required_but_accept_null() -> None:
    strict = strict_variant(input_schema(columns(ColSpec("long", "age"),
                                                 ColSpec("string", "city", required=False))))
    model = model_from_schema(strict, "strict")

    assert model.model_fields["city"].is_required()
    assert to_arguments(model, {"age": 1, "city": None}) == {"age": 1, "city": None}
    with pytest.raises(ValidationError):
        model.model_validate({"age": 1})


def test_enums_become_literals() -> None:
    schema = output_schema("classifier", ["negative", "neutral", "positive"], None)
    model = model_from_schema(schema, "fin_sentiment_output")

    label = model.model_fields["label"].annotation
    assert typing.get_origin(label) is typing.Literal
    assert typing.get_args(label) == ("negative", "neutral", "positive")
    with pytest.raises(ValidationError):
        model.model_validate({"label": "bullish", "model": {"name": "m", "version": "1"}})


def test_open_objects_allow_extra_keys_and_unknown_types_accept_anything() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "decimal"}, "o": {"type": "object"}},
              "required": ["x"]}
    model = model_from_schema(schema, "open")

    assert model.model_fields["x"].annotation is Any
    assert model.model_config.get("extra") == "allow"
    assert to_arguments(model, {"x": "1.5", "o": {"k": 1}, "y": 2}) == {"x": "1.5", "o": {"k": 1}, "y": 2}


def test_deeply_nested_arrays_of_objects_are_validated_all_the_way_down() -> None:
    schema = input_schema(columns(ColSpec(Array(Array(Object([Property("v", "long")]))), "grid")))
    model = model_from_schema(schema, "grid")

    assert to_arguments(model, {"grid": [[{"v": 1}], []]}) == {"grid": [[{"v": 1}], []]}
    with pytest.raises(ValidationError):
        model.model_validate({"grid": [[{"v": 1, "w": 2}]]})


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_strict_models_accept_every_valid_call_too(name: str) -> None:
    schema = input_schema(SIGNATURES[name])

    model_from_schema(schema, name, strict=True).model_validate(VALID[name])


@pytest.mark.parametrize(("name", "arguments"), INVALID)
def test_strict_models_refuse_what_the_server_refuses(name: str, arguments: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model_from_schema(input_schema(SIGNATURES[name]), name, strict=True).model_validate(arguments)


def test_strict_column_models_take_json_types_only_but_integral_numbers_as_integers() -> None:
    schema = input_schema(columns(ColSpec("long", "age"), ColSpec("double", "income"),
                                  ColSpec("boolean", "ok")))
    strict = model_from_schema(schema, "credit", strict=True)
    lax = model_from_schema(schema, "credit")
    coercions = [{"age": "40"}, {"age": True}, {"income": "1.5"}, {"ok": "yes"}, {"ok": 1}, {"age": 40.5}]

    assert strict.model_validate({"age": 40.0, "income": 3, "ok": False}).model_dump() == {
        "age": 40, "income": 3.0, "ok": False}
    for coercion in coercions:
        arguments = {"age": 40, "income": 1.0, "ok": True, **coercion}
        assert not server_accepts(schema, arguments)
        with pytest.raises(ValidationError):
            strict.model_validate(arguments)
    lax.model_validate({"age": "40", "income": "1.5", "ok": "yes"})  # what the LangChain toolkit keeps


def test_strict_optional_columns_take_null_or_nothing() -> None:
    schema = input_schema(columns(ColSpec("long", "age"), ColSpec("string", "city", required=False)))
    model = model_from_schema(schema, "optional", strict=True)

    assert model.model_validate({"age": 1}).model_dump() == {"age": 1, "city": None}
    assert model.model_validate({"age": 1, "city": None}).model_dump() == {"age": 1, "city": None}
    with pytest.raises(ValidationError):
        model.model_validate({"age": 1, "city": 7})


def test_strict_tensor_models_check_shape_and_number_type() -> None:
    model = model_from_schema(input_schema(tensor("float64", (-1, 3))), "tensor", strict=True)

    model.model_validate({"inputs": [[1, 2.5, 3]]})
    for wrong in ([[1.0, 2.0]], [[1.0, "2", 3.0]], [[1.0, True, 3.0]], [[1.0, 2.0, 3.0]] * 2):
        with pytest.raises(ValidationError):
            model.model_validate({"inputs": wrong})


def test_strict_models_refuse_a_field_keyed_by_its_python_name() -> None:
    model = model_from_schema(input_schema(columns(ColSpec("double", "class"))), "odd", strict=True)

    assert model.model_validate({"class": 1.0}).model_dump(by_alias=True) == {"class": 1.0}
    with pytest.raises(ValidationError):
        model.model_validate({"f_class": 1.0})
