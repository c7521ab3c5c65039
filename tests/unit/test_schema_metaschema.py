"""Every schema our transform can produce is valid JSON Schema (draft 2020-12).

This is why the reconciler builds validators without checking each schema against the metaschema at run time
(that check costs 10-20 ms a version, most of a 500-tool catalog build): the transform is proven here instead,
over signatures drawn from MLflow's own types and serialised by MLflow itself.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from mlflow.models import ModelSignature
from mlflow.types.schema import (
    AnyType,
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    TensorSpec,
)

from bridge.schema import input_schema, output_schema, strict_variant

NAMES = st.from_regex(r"[a-z][a-z0-9_ ]{0,11}", fullmatch=True)
SCALARS = st.sampled_from([DataType.double, DataType.float, DataType.long, DataType.integer, DataType.boolean,
                           DataType.string, DataType.binary, DataType.datetime])
PARAM_DEFAULTS = {DataType.double: 0.5, DataType.float: 1.5, DataType.long: 3, DataType.integer: 2,
                  DataType.boolean: True, DataType.string: "auto"}


def _types(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return SCALARS
    inner = _types(depth - 1)
    objects = st.lists(st.tuples(NAMES, inner, st.booleans()), min_size=1, max_size=3,
                       unique_by=lambda p: p[0]).map(
        lambda props: Object([Property(name, kind, required=req) for name, kind, req in props]))
    return st.one_of(SCALARS, inner.map(Array), inner.map(Map), objects)


COLUMN_TYPES = st.one_of(_types(2), st.just(AnyType()))
COLUMNS = st.lists(st.tuples(NAMES, COLUMN_TYPES, st.booleans()), min_size=1, max_size=6,
                   unique_by=lambda c: c[0].replace(" ", "_"))
PARAMS = st.lists(st.tuples(NAMES.map(lambda n: "p_" + n), st.sampled_from(list(PARAM_DEFAULTS))),
                  max_size=3, unique_by=lambda p: p[0].replace(" ", "_"))
TENSORS = st.tuples(st.sampled_from(["float64", "float32", "int64", "int32", "bool"]),
                    st.lists(st.integers(1, 5), min_size=0, max_size=3))


def parsed(signature: ModelSignature) -> dict[str, Any]:
    return {k: json.loads(v) if v else None for k, v in signature.to_dict().items()}


def assert_valid(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns=COLUMNS, params=PARAMS)
def test_column_signatures_give_valid_schemas(columns: list[tuple[str, Any, bool]],
                                              params: list[tuple[str, Any]]) -> None:
    names = {name.replace(" ", "_") for name, _, _ in columns}
    params = [p for p in params if p[0].replace(" ", "_") not in names]
    signature = parsed(ModelSignature(
        inputs=Schema([ColSpec(kind, name, required=required) for name, kind, required in columns]),
        outputs=Schema([ColSpec(kind, name, required=required) for name, kind, required in columns]),
        params=ParamSchema([ParamSpec(name, kind, PARAM_DEFAULTS[kind]) for name, kind in params]) if params
        else None))
    schema = input_schema(signature)
    assert_valid(schema)
    assert_valid(strict_variant(schema))
    assert_valid(output_schema("other", None, signature))


@settings(max_examples=60, deadline=None)
@given(tensor=TENSORS)
def test_tensor_signatures_give_valid_schemas(tensor: tuple[str, list[int]]) -> None:
    dtype, dims = tensor
    signature = parsed(ModelSignature(inputs=Schema([TensorSpec(np.dtype(dtype), (-1, *dims))])))
    assert_valid(input_schema(signature))
    assert_valid(output_schema("other", None, signature))


def test_classifier_and_regressor_outputs_are_valid() -> None:
    assert_valid(output_schema("classifier", ["negative", "neutral", "positive"], None))
    assert_valid(output_schema("classifier", [0, 1], None))
    assert_valid(output_schema("regressor", None, None))
