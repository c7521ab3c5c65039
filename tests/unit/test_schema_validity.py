"""bridge.schema: missing signatures are SchemaErrors; emitted schemas are valid, inline and strict-able."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import Object, Property

from bridge.errors import BridgeError
from bridge.schema import SchemaError, input_schema, strict_variant
from tests.unit.schema_helpers import SIGNATURES, columns, parsed, prop, walk

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


# --- valid JSON Schema, and the shape strict clients demand ----------------------------------------------
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
