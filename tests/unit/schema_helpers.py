"""Signature builders (MLflow's own classes, parsed as registry_sync hands them over) for the schema tests."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from mlflow.types.schema import AnyType, Array, Map, Object, Property


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
