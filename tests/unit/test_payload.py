"""bridge.model_host.payload: the host's check of a model payload against the version's own signature, with
messages naming each bad field, what was expected and what came."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow.types import ColSpec, ParamSpec

from bridge.model_host.payload import PayloadInvalid, PayloadValidator, validator_for
from bridge.schema import to_model_input
from tests.unit.schema_helpers import SIGNATURES, columns, tensor
from tests.unit.test_pydantic_models import VALID


def problems(validator: PayloadValidator, payload: Any) -> list[str]:
    with pytest.raises(PayloadInvalid) as refused:
        validator.validate(payload)
    return refused.value.problems


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_what_the_tool_server_sends_for_a_valid_call_passes(name: str) -> None:
    validator = validator_for(SIGNATURES[name], name)

    assert validator is not None
    validator.validate(to_model_input(SIGNATURES[name], VALID[name]))


def test_every_row_is_checked_and_named_when_there_are_several() -> None:
    signature = columns(ColSpec("long", "age"), ColSpec("double", "income", required=False))
    validator = validator_for(signature, "m")
    assert validator is not None

    found = problems(validator, {"kind": "records", "records": [{"age": 1, "income": None},
                                                                {"age": 2.5, "income": "lots"}]})

    assert found == ["row 1: field `age`: expected integer, got number 2.5",
                     "row 1: field `income`: expected number or null, got string 'lots'"]


def test_fields_are_named_as_the_payload_names_them_mlflow_columns_and_params() -> None:
    signature = columns(ColSpec("double", "sepal length (cm)"), ColSpec("long", "class"),
                        params=[ParamSpec("threshold", "double", 0.5)])
    unnamed = columns(ColSpec("double"), ColSpec("long"))
    validator, by_position = validator_for(signature, "m"), validator_for(unnamed, "u")
    assert validator is not None and by_position is not None

    assert problems(validator, {"kind": "records", "records": [{"sepal length (cm)": "x", "class": 1}],
                                "params": {"threshold": "high"}}) == [
        "field `sepal length (cm)`: expected number, got string 'x'",
        "params: field `threshold`: expected number or null, got string 'high'"]
    assert problems(by_position, {"kind": "records", "records": [{"0": 1.5, "1": "two"}]}) == [
        "field `1`: expected integer, got string 'two'"]


def test_tensor_rows_are_checked_for_shape_and_type_and_any_number_of_rows_passes() -> None:
    validator = validator_for(tensor("float32", (-1, 2, 2)), "img")
    assert validator is not None and validator.batch_axis

    validator.validate({"kind": "tensor", "data": [[[1, 2], [3, 4]]] * 5, "dtype": "float32"})
    assert problems(validator, {"kind": "tensor", "data": [[[1, 2], [3, "4"]], [[1, 2]]]}) == [
        "field `data[0][1][1]`: expected number, got string '4'",
        "field `data[1]`: expected array of exactly 2 items (each array of exactly 2 numbers), got array of "
        "1 item"]


def test_named_tensors_and_fixed_first_dimensions_have_no_batch_axis() -> None:
    named, fixed = validator_for(SIGNATURES["named_tensors"], "n"), validator_for(tensor("int64", (3,)), "f")
    assert named is not None and fixed is not None

    assert not named.batch_axis and not fixed.batch_axis
    assert problems(named, {"kind": "tensors", "data": {"a": [[1, 2, 3]]}}) == [
        "field `data.b` is required: expected array of exactly 2 booleans"]
    assert problems(fixed, {"kind": "tensor", "data": [1, 2]}) == [
        "field `data`: expected array of exactly 3 integers, got array of 2 items"]


def test_a_payload_of_the_wrong_kind_or_shape_says_what_the_model_takes() -> None:
    validator = validator_for(columns(ColSpec("double", "x")), "m")
    assert validator is not None

    assert problems(validator, {"kind": "tensor", "data": [[1.0]]}) == [
        "`kind` string 'tensor' does not fit this model: its signature takes \"records\""]
    assert problems(validator, {"kind": "records", "records": {"x": 1.0}}) == [
        "`records` must be a list of at least one row, each an object keyed by column name, got object with "
        "fields x"]
    assert problems(validator, {"kind": "records", "records": [{"x": 1.0}], "params": {"t": 1}}) == [
        "this model takes no params, got object with fields t"]


def test_the_message_counts_the_problems_and_lists_each_on_its_own_line() -> None:
    validator = validator_for(columns(ColSpec("double", "x"), ColSpec("double", "y")), "credit_risk/3")
    assert validator is not None

    with pytest.raises(PayloadInvalid) as refused:
        validator.validate({"kind": "records", "records": [{"x": "one"}]})

    assert str(refused.value) == ("The input of model credit_risk/3 has 2 problems:\n"
                                  "- field `x`: expected number, got string 'one'\n"
                                  "- field `y` is required: expected number")


def test_a_signature_without_inputs_has_nothing_to_check() -> None:
    assert validator_for(None, "m") is None
    assert validator_for({"inputs": None, "outputs": None, "params": None}, "m") is None
