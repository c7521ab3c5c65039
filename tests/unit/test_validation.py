"""bridge.validation: every bad field named, with what was expected and what came, in words an LLM can use."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from mlflow.types.schema import Array, Map, Object, Property

import bridge.validation as validation
from bridge.errors import BridgeError
from bridge.schema import SchemaError, input_schema
from bridge.validation import (
    MAX_PROBLEMS,
    FieldProblem,
    InputValidator,
    ToolInputError,
    compile_validator,
)


def parsed(signature: ModelSignature) -> dict[str, Any]:
    return {key: json.loads(value) if value else None for key, value in signature.to_dict().items()}


@pytest.fixture(scope="module")
def applicant() -> InputValidator:
    """A typical tabular model: required and optional columns, a datetime, bytes, nested types and a param."""
    signature = ModelSignature(
        inputs=Schema([
            ColSpec("long", "age"), ColSpec("double", "income"), ColSpec("string", "city", required=False),
            ColSpec("datetime", "applied_at", required=False), ColSpec("binary", "photo", required=False),
            ColSpec(Array("long"), "history", required=False),
            ColSpec(Object([Property("street", "string"), Property("zip", "string", required=False)]),
                    "address", required=False),
            ColSpec(Map("double"), "scores", required=False), ColSpec("boolean", "vip", required=False),
        ]),
        params=ParamSchema([ParamSpec("threshold", "double", 0.5)]),
    )
    return compile_validator(input_schema(parsed(signature)))


@pytest.fixture(scope="module")
def pixels() -> InputValidator:
    return compile_validator(input_schema(parsed(ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("uint8"), (2, 3))])))))


def problems(validator: InputValidator, payload: Any) -> list[FieldProblem]:
    with pytest.raises(ToolInputError) as caught:
        validator.validate(payload)
    return caught.value.problems


def messages(validator: InputValidator, payload: Any) -> list[str]:
    return [p.message for p in problems(validator, payload)]


ACCEPTED = "age, income, city, applied_at, photo, history, address, scores, vip, threshold"


# --- valid input -----------------------------------------------------------------------------------------


def test_valid_arguments_pass(applicant: InputValidator) -> None:
    applicant.validate({
        "age": 41, "income": 52000.5, "city": "Lyon", "applied_at": "2024-01-31T12:00:00Z",
        "photo": base64.b64encode(b"\x89PNG").decode(), "history": [1, 2], "scores": {"a": 0.5},
        "address": {"street": "1 rue de la Paix", "zip": None}, "vip": True, "threshold": 0.7,
    })


def test_missing_optional_fields_and_nulls_are_fine(applicant: InputValidator) -> None:
    applicant.validate({"age": 41, "income": 1})
    applicant.validate({"age": 41, "income": 1, "city": None, "threshold": None, "address": None})


def test_integral_float_counts_as_integer_as_json_schema_says(applicant: InputValidator) -> None:
    applicant.validate({"age": 41.0, "income": 1})


@pytest.mark.parametrize("when", ["2024-01-31T12:00:00Z", "2024-01-31T12:00:00+02:00", "2024-01-31T12:00:00",
                                  "2024-01-31"])
def test_iso_dates_with_or_without_zone_or_time_are_accepted(applicant: InputValidator, when: str) -> None:
    applicant.validate({"age": 1, "income": 1, "applied_at": when})


# --- each kind of problem --------------------------------------------------------------------------------


def test_unknown_field_names_the_accepted_ones_and_the_likely_intended_one(applicant: InputValidator) -> None:
    assert problems(applicant, {"agee": 41, "age": 41, "income": 1}) == [FieldProblem(
        field="agee", expected=f"one of the accepted fields: {ACCEPTED}", got="an unknown field",
        message=f"field `agee` is not accepted; accepted fields: {ACCEPTED} (did you mean `age`?)")]


def test_unknown_field_without_a_close_match_gets_no_guess(applicant: InputValidator) -> None:
    assert messages(applicant, {"age": 41, "income": 1, "zzz": 0}) == [
        f"field `zzz` is not accepted; accepted fields: {ACCEPTED}"]


def test_missing_required_field_says_what_type_to_send(applicant: InputValidator) -> None:
    assert problems(applicant, {"income": 1}) == [FieldProblem(
        field="age", expected="integer", got="nothing", message="field `age` is required: expected integer")]


def test_wrong_type_quotes_what_came(applicant: InputValidator) -> None:
    assert problems(applicant, {"age": "forty", "income": 1}) == [FieldProblem(
        field="age", expected="integer", got="string 'forty'",
        message="field `age`: expected integer, got string 'forty'")]


@pytest.mark.parametrize(("payload", "message"), [
    ({"age": True, "income": 1}, "field `age`: expected integer, got boolean true"),
    ({"age": 4.5, "income": 1}, "field `age`: expected integer, got number 4.5"),
    ({"age": None, "income": 1}, "field `age`: expected integer, got null"),
    ({"age": 1, "income": "1"}, "field `income`: expected number, got string '1'"),
    ({"age": 1, "income": 1, "city": 7}, "field `city`: expected string or null, got integer 7"),
    ({"age": 1, "income": 1, "vip": "yes"}, "field `vip`: expected boolean (true or false) or null, "
                                            "got string 'yes'"),
    ({"age": 1, "income": 1, "history": {"a": 1}}, "field `history`: expected array of integers or null, "
                                                    "got object with fields a"),
    ({"age": 1, "income": 1, "address": "Lyon"},
     "field `address`: expected object with fields street, zip or null, got string 'Lyon'; send `address` as "
     'JSON text, e.g. {"street": "text", "zip": "text"}'),
])
def test_wrong_types_are_worded_from_the_schema(applicant: InputValidator, payload: Any,
                                                message: str) -> None:
    assert messages(applicant, payload) == [message]


def test_bad_date_time_shows_an_example(applicant: InputValidator) -> None:
    assert messages(applicant, {"age": 1, "income": 1, "applied_at": "yesterday"}) == [
        "field `applied_at`: expected ISO 8601 date-time string (e.g. 2024-01-31T12:00:00Z) or null, "
        "got string 'yesterday'"]


def test_bytes_that_are_not_base64_are_rejected(applicant: InputValidator) -> None:
    assert messages(applicant, {"age": 1, "income": 1, "photo": "not base64!"}) == [
        "field `photo`: expected base64-encoded string or null, got string 'not base64!'"]


def test_nested_fields_are_named_by_path(applicant: InputValidator) -> None:
    payload = {"age": 1, "income": 1, "history": [1, "two"], "address": {"zip": "69001", "town": "Lyon"},
               "scores": {"math": "A"}}

    assert messages(applicant, payload) == [
        "field `address.street` is required: expected string",
        "field `address.town` is not accepted; accepted fields: street, zip",
        "field `history[1]`: expected integer, got string 'two'",
        "field `scores.math`: expected number, got string 'A'",
    ]


def test_out_of_range_and_wrong_length_in_a_tensor(pixels: InputValidator) -> None:
    assert problems(pixels, {"inputs": [[0, 255, -1], [1, 2]]}) == [
        FieldProblem("inputs[0][2]", "integer >= 0", "integer -1",
                     "field `inputs[0][2]`: expected integer >= 0, got integer -1"),
        FieldProblem("inputs[1]", "array of exactly 3 items (each integer >= 0)", "array of 2 items",
                     "field `inputs[1]`: expected array of exactly 3 items (each integer >= 0), "
                     "got array of 2 items"),
    ]


def test_enum_and_bounds_from_any_schema_are_worded() -> None:
    validator = compile_validator({
        "type": "object", "additionalProperties": False,
        "properties": {"color": {"type": "string", "enum": ["red", "blue"]},
                       "p": {"type": "number", "minimum": 0, "maximum": 1},
                       "n": {"type": "integer", "exclusiveMinimum": 0},
                       "tags": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string"}}},
    })

    assert messages(validator, {"color": "green", "p": 1.5, "n": 0, "tags": []}) == [
        "field `color`: expected one of \"red\", \"blue\", got string 'green'",
        "field `n`: expected integer > 0, got integer 0",
        "field `p`: expected number >= 0 and <= 1, got number 1.5",
        "field `tags`: expected array of 1 to 3 strings, got array of 0 items",
    ]


def test_fields_matching_pattern_properties_are_not_unknown() -> None:
    validator = compile_validator({"type": "object", "properties": {"a": {"type": "integer"}},
                                   "patternProperties": {"^x_": {"type": "number"}},
                                   "additionalProperties": False})

    assert messages(validator, {"a": 1, "x_1": 2.5, "y": 3}) == [
        "field `y` is not accepted; accepted fields: a"]


# --- the arguments as a whole ----------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "got"), [
    ([1, 2], "array of 2 items"), (None, "null"), ("age=41", "string 'age=41'"), (3, "integer 3"),
])
def test_arguments_that_are_not_an_object_list_the_fields_expected(applicant: InputValidator, payload: Any,
                                                                   got: str) -> None:
    assert problems(applicant, payload) == [FieldProblem(
        field="", expected=f"a JSON object with fields {ACCEPTED}", got=got,
        message=f"expected a JSON object with fields {ACCEPTED}, got {got}")]


def test_every_bad_field_is_listed_once_in_a_readable_order(applicant: InputValidator) -> None:
    payload = {"agee": 1, "income": "high", "city": 3, "history": ["x"], "vip": 1}

    error = pytest.raises(ToolInputError, applicant.validate, payload).value

    assert [p.field for p in error.problems] == ["age", "agee", "city", "history[0]", "income", "vip"]
    assert str(error) == "\n".join([
        "The tool arguments have 6 problems:",
        "- field `age` is required: expected integer",
        f"- field `agee` is not accepted; accepted fields: {ACCEPTED} (did you mean `age`?)",
        "- field `city`: expected string or null, got integer 3",
        "- field `history[0]`: expected integer, got string 'x'",
        "- field `income`: expected number, got string 'high'",
        "- field `vip`: expected boolean (true or false) or null, got integer 1",
    ])


def test_a_field_failing_several_rules_is_reported_once_by_its_type() -> None:
    validator = compile_validator({"type": "object", "properties": {
        "n": {"type": "integer", "enum": [1, 2]}}})

    assert messages(validator, {"n": "three"}) == ["field `n`: expected one of 1, 2, got string 'three'"]
    assert [p.field for p in problems(validator, {"n": "three"})] == ["n"]


def test_one_problem_reads_in_the_singular(applicant: InputValidator) -> None:
    error = pytest.raises(ToolInputError, applicant.validate, {"income": 1}).value

    assert str(error) == "The tool arguments have a problem:\n- field `age` is required: expected integer"


def test_messages_never_carry_jsonschema_wording(applicant: InputValidator) -> None:
    payload = {"agee": 1, "income": "x", "history": "y", "address": {"town": 1}, "applied_at": "z"}

    text = str(pytest.raises(ToolInputError, applicant.validate, payload).value)

    for jargon in ("is not of type", "is a required property", "were unexpected", "was unexpected",
                   "is not a 'date-time'", "Failed validating", "$."):
        assert jargon not in text


def test_long_strings_are_shortened_when_quoted_back(applicant: InputValidator) -> None:
    (problem,) = problems(applicant, {"age": "x" * 500, "income": 1})

    assert problem.got == f"string '{'x' * 57}...' (500 characters)"


def test_problems_are_capped_and_the_rest_counted(pixels: InputValidator) -> None:
    many = compile_validator(input_schema(parsed(ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("uint8"), (MAX_PROBLEMS + 5,))])))))

    error = pytest.raises(ToolInputError, many.validate, {"inputs": [-1] * (MAX_PROBLEMS + 5)}).value

    assert len(error.problems) == MAX_PROBLEMS and error.more == 5
    assert error.problems[0].field == "inputs[0]"
    assert error.problems[-1].field == f"inputs[{MAX_PROBLEMS - 1}]"
    assert str(error).startswith(f"The tool arguments have {MAX_PROBLEMS + 5} problems:")
    assert str(error).endswith("- ... and 5 more problems like these")


# --- NaN and Infinity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [(float("nan"), "NaN"), (float("inf"), "Infinity"),
                                              (float("-inf"), "-Infinity")])
def test_non_finite_numbers_are_rejected_with_a_reason(applicant: InputValidator, value: float,
                                                       shown: str) -> None:
    assert problems(applicant, {"age": 1, "income": value}) == [FieldProblem(
        field="income", expected="a finite number", got=shown,
        message=f"field `income`: expected a finite number, got {shown} "
                "(JSON numbers cannot be NaN or Infinity)")]


def test_non_finite_numbers_are_found_deep_in_tensors_and_params(applicant: InputValidator) -> None:
    floats = compile_validator(input_schema(parsed(ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2))])))))

    nan_row = {"inputs": [[float("nan"), 1.0]]}
    assert [p.field for p in problems(floats, nan_row)] == ["inputs[0][0]"]
    assert [p.field for p in problems(applicant, {"age": 1, "income": 1, "threshold": float("inf")})] == [
        "threshold"]


def test_an_unknown_field_holding_nan_is_reported_once_as_unknown(applicant: InputValidator) -> None:
    (problem,) = problems(applicant, {"age": 1, "income": 1, "nope": float("nan")})

    assert problem.field == "nope" and problem.got == "an unknown field"


# --- compiling -------------------------------------------------------------------------------------------


def test_invalid_schema_is_a_schema_error_at_compile_time() -> None:
    with pytest.raises(SchemaError, match=r"not valid JSON Schema at properties/x/type"):
        compile_validator({"type": "object", "properties": {"x": {"type": "integr"}}})


def test_the_schema_is_checked_once_not_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = compile_validator({"type": "object", "properties": {"x": {"type": "integer"}}})

    def fail(*_: Any) -> None:
        raise AssertionError("schema checked again")

    monkeypatch.setattr(validation._Validator, "check_schema", fail)
    validator.validate({"x": 1})
    assert messages(validator, {"x": "1"}) == ["field `x`: expected integer, got string '1'"]


def test_validator_keeps_its_schema() -> None:
    schema = input_schema({"inputs": [{"type": "long", "name": "x", "required": True}]})

    assert compile_validator(schema).schema is schema


def test_tool_input_error_is_a_bridge_error() -> None:
    assert issubclass(ToolInputError, BridgeError)
    assert issubclass(SchemaError, BridgeError) and issubclass(SchemaError, ValueError)


# --- arrays and objects sent as JSON text (Dify custom tools) ----------------------------------------------


def test_array_sent_as_json_text_is_parsed_before_validation() -> None:
    validator = compile_validator(input_schema(parsed(ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2))])))))

    coerced = validator.coerce({"inputs": "[[1.0, 2.0]]"})

    assert coerced == {"inputs": [[1.0, 2.0]]}
    validator.validate(coerced)


def test_text_that_is_not_the_declared_kind_is_left_for_validation_to_report() -> None:
    validator = compile_validator(input_schema(parsed(ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2))])))))

    coerced = validator.coerce({"inputs": "{\"a\": 1}"})

    assert coerced == {"inputs": "{\"a\": 1}"}
    assert [p.field for p in problems(validator, coerced)] == ["inputs"]


def test_string_fields_are_never_parsed_while_nullable_arrays_and_objects_are(
    applicant: InputValidator
) -> None:
    coerced = applicant.coerce({"city": "[1, 2]", "history": "[1, 2]", "address": "{\"street\": \"Main\"}"})
    assert coerced == {"city": "[1, 2]", "history": [1, 2], "address": {"street": "Main"}}


def test_trusted_schemas_skip_the_metaschema_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: Any) -> None:
        raise AssertionError("trusted schema checked against the metaschema")

    monkeypatch.setattr(validation._Validator, "check_schema", fail)
    validator = compile_validator(input_schema({"inputs": [{"type": "long", "name": "x", "required": True}]}),
                                  trusted=True)
    assert messages(validator, {"x": "1"}) == ["field `x`: expected integer, got string '1'"]


def test_dify_shapes_are_read_as_the_llm_meant_them(applicant: InputValidator) -> None:
    """Dify sends an LLM's None as "", and an object argument as its Python repr (tests/contracts/dify)."""
    sent = {"age": 1, "income": 1, "applied_at": "", "history": "[1, 2]",
            "address": "{'street': 'Rue Neuve', 'zip': '69001'}"}
    coerced = applicant.coerce(sent)
    applicant.validate(coerced)
    assert coerced["applied_at"] is None and coerced["history"] == [1, 2]
    assert coerced["address"] == {"street": "Rue Neuve", "zip": "69001"}


def test_an_empty_string_stays_an_error_where_a_value_is_required(applicant: InputValidator) -> None:
    assert messages(applicant, applicant.coerce({"age": "", "income": 1})) == [
        "field `age`: expected integer, got string ''"]


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "{'a': open('/etc/passwd')}",
                                  "{1, 2}", "(" * 5000 + ")" * 5000, "{'street': b'x', 'zip': '1'}"])
def test_python_text_is_only_ever_a_literal_never_code(applicant: InputValidator, text: str) -> None:
    coerced = applicant.coerce({"age": 1, "income": 1, "address": text})
    assert coerced["address"] == text  # not parsed: left for validate to refuse
    assert "send `address` as JSON text" in messages(applicant, coerced)[0]
