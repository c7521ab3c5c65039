"""Catalog exports: the OpenAPI document Dify imports and OpenAI strict-mode tools, from real signatures."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from mlflow.types.schema import Map
from openapi_spec_validator import validate

from bridge.toolspec import ModelFacts, ToolSpec, build_tool_spec
from registry_sync import ModelVersionRef
from tests.unit.schema_helpers import walk
from tool_server.exports.openai_tools import openai_tool, openai_tools, strict_problems
from tool_server.exports.openapi_doc import build_openapi


def parsed(signature: ModelSignature) -> dict[str, Any]:
    return {k: json.loads(v) if v else None for k, v in signature.to_dict().items()}


NO_FACTS = ModelFacts()  # frozen: one shared default instance, exactly as the call in the signature was


def spec(name: str, signature: ModelSignature, facts: ModelFacts = NO_FACTS, **tags: str) -> ToolSpec:
    ref = ModelVersionRef(name=name, version="3", uri=f"models:/{name}/3", tool_name=name,
                          signature=parsed(signature), model_description=f"The {name} model.",
                          model_tags={k.replace("__", "."): v for k, v in tags.items()})
    return build_tool_spec(ref, facts)


CREDIT = spec("credit_risk", ModelSignature(
    inputs=Schema([ColSpec("long", "age"), ColSpec("double", "income"),
                   ColSpec("double", "employment_years", required=False)]),
    params=ParamSchema([ParamSpec("threshold", "double", 0.5)])),
    ModelFacts(kind="classifier", classes=(0, 1)),
    toolbridge__field_descriptions='{"age": "Applicant age in years"}')
SENSOR = spec("machine_failure", ModelSignature(inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 4))])))
TEXT = spec("fin_sentiment", ModelSignature(inputs=Schema([ColSpec("string", "headline"),
                                                           ColSpec("binary", "attachment", required=False)])),
            ModelFacts(kind="classifier", classes=("negative", "neutral", "positive")))
MAPPED = spec("tagger", ModelSignature(inputs=Schema([ColSpec(Map("string"), "attributes")])))
ALL = [CREDIT, SENSOR, TEXT, MAPPED]


def test_openapi_document_is_valid_openapi_3() -> None:
    validate(build_openapi(ALL, "https://tools.example.com"))


def test_openapi_meets_difys_import_rules() -> None:
    document = build_openapi(ALL, "https://tools.example.com")
    assert document["servers"][0]["url"] == "https://tools.example.com"
    operations = [path["post"] for path in document["paths"].values()]
    assert sorted(op["operationId"] for op in operations) == sorted(s.name for s in ALL)
    for operation in operations:
        assert operation["summary"] and operation["description"]
        assert len(operation["summary"]) <= 120
    assert not [node for node in walk(document) if "$ref" in node], "Dify resolves only top-level $refs"


def test_openapi_request_body_is_the_tool_input_schema_in_the_30_dialect() -> None:
    document = build_openapi([CREDIT], "http://x")
    operation = document["paths"]["/tools/credit_risk/invoke"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == set(CREDIT.input_schema["properties"])
    assert body["required"] == CREDIT.input_schema["required"] and body["additionalProperties"] is False
    assert body["properties"]["age"]["description"].startswith("Applicant age in years")
    assert body["properties"]["employment_years"]["type"] == "number"
    assert body["properties"]["employment_years"]["nullable"] is True


def test_openai_tools_pass_strict_mode_rules() -> None:
    for tool in openai_tools([CREDIT, SENSOR, TEXT]):
        function = tool["function"]
        assert tool["type"] == "function" and function["strict"] is True, function["name"]
        assert strict_problems(function["parameters"]) == []
        assert len(function["description"]) <= 1024


def test_openai_optional_fields_are_required_and_nullable() -> None:
    parameters = openai_tool(CREDIT)["function"]["parameters"]
    assert parameters["required"] == ["age", "income", "employment_years", "threshold"]
    assert parameters["properties"]["employment_years"]["type"] == ["number", "null"]
    assert parameters["additionalProperties"] is False


def test_openai_export_drops_keywords_strict_mode_refuses() -> None:
    parameters = openai_tool(TEXT)["function"]["parameters"]
    assert "contentEncoding" not in parameters["properties"]["attachment"]
    assert "contentEncoding" in TEXT.input_schema["properties"]["attachment"]


def test_a_map_input_is_exported_non_strict_with_the_reason_findable() -> None:
    tool = openai_tool(MAPPED)
    assert tool["function"]["strict"] is False
    assert strict_problems(tool["function"]["parameters"]) == [
        "parameters.attributes: object without properties (e.g. a map)",
        "parameters.attributes: additionalProperties must be false",
    ]


@pytest.mark.parametrize(("schema", "problem"), [
    ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
     "properties not in required: a"),
    ({"type": "object", "properties": {}, "required": []}, "additionalProperties must be false"),
    ({"description": "anything"}, "has no type"),
])
def test_strict_checker_catches_each_rule(schema: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in strict_problems(schema))
