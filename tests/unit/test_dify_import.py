"""The OpenAPI document through Dify 1.14's own import code (tests/contracts/dify, ported from its source):
every signature shape imports, each argument gets one concrete type and the facts Dify drops restated in
its description, and a catalog of more than 100 tools is served in pages Dify accepts."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from mlflow.types.schema import Array, Object, Property
from openapi_spec_validator import validate

from bridge.toolspec import ModelFacts
from tests.contracts.dify.call import build_request, llm_tool_schema
from tests.contracts.dify.parser import ApiBasedToolSchemaParser, ApiToolManageService, describe
from tests.unit.test_exports import ALL, CREDIT, spec, walk
from tool_server.exports.openapi_doc import MAX_OPERATIONS, PageError, build_openapi, select_tools

CREDENTIALS = {"auth_type": "api_key_header", "api_key_header": "Authorization", "api_key_value": "tb_x",
               "api_key_header_prefix": "basic"}

ZOO = [
    *ALL,
    spec("optional_param", ModelSignature(
        inputs=Schema([ColSpec("string", "text"), ColSpec("double", "weight", required=False)]),
        params=ParamSchema([ParamSpec("threshold", "double", 0.5), ParamSpec("top_k", "long", 3)]))),
    spec("when", ModelSignature(inputs=Schema([ColSpec("datetime", "at"), ColSpec("boolean", "flag")]))),
    spec("blob", ModelSignature(inputs=Schema([ColSpec("binary", "payload")]))),
    spec("arrays", ModelSignature(inputs=Schema([ColSpec(Array("double"), "values"),
                                                 ColSpec(Array(Array("long")), "grid", required=False)]))),
    spec("coupon", ModelSignature(inputs=Schema([
        ColSpec(Object([Property("code", "string"), Property("discount", "double")]), "coupon"),
        ColSpec("long", "quantity")]))),
    spec("unnamed", ModelSignature(inputs=Schema([ColSpec("double"), ColSpec("double")]))),
    spec("image", ModelSignature(inputs=Schema([TensorSpec(np.dtype("uint8"), (-1, 2, 2, 3))]))),
    spec("labels", ModelSignature(inputs=Schema([ColSpec("string", "text")])),
         ModelFacts(kind="classifier", classes=(0, "maybe", 2))),
]


def imported(document: dict[str, Any]) -> list[dict[str, Any]]:
    """What Dify's console does on "save": parse, then the create checks (100-API limit, auth)."""
    text = json.dumps(document)
    ApiToolManageService.create_api_tool_provider_checks(text, CREDENTIALS)
    return describe(text)


def test_every_signature_shape_imports_into_dify() -> None:
    document = build_openapi(ZOO, "https://tools.example.com")
    validate(document)  # a valid OpenAPI 3.0.3 document as well
    assert document["openapi"] == "3.0.3"
    tools = {tool["tool_name"]: tool for tool in imported(document)}
    assert set(tools) == {s.name for s in ZOO}
    for tool in tools.values():
        assert tool["server_url"].startswith("https://tools.example.com/tools/")
        assert tool["description"], tool["tool_name"]


def test_a_31_type_list_is_what_crashed_difys_import() -> None:
    """The witness: the port reproduces Dify's crash on the document shape we used to serve."""
    document = build_openapi([CREDIT], "http://x")
    schema = document["paths"]["/tools/credit_risk/invoke"]["post"]["requestBody"]["content"]
    schema["application/json"]["schema"]["properties"]["employment_years"]["type"] = ["number", "null"]
    with pytest.raises(ValueError, match="unhashable type: 'list'"):
        ApiToolManageService.parser_api_schema(json.dumps(document))


def test_every_property_has_one_concrete_type_and_no_ref() -> None:
    document = build_openapi(ZOO, "http://x")
    assert not [node for node in walk(document) if "$ref" in node]
    for path in document["paths"].values():
        body = path["post"]["requestBody"]["content"]["application/json"]["schema"]
        for name, prop in body["properties"].items():
            assert isinstance(prop.get("type"), str), (name, prop)
    for node in walk(document):
        assert not isinstance(node.get("type"), list), node


def test_optional_values_are_nullable_and_not_required() -> None:
    tools = {tool["tool_name"]: tool for tool in imported(build_openapi(ZOO, "http://x"))}
    params = {p["name"]: p for p in tools["optional_param"]["parameters"]}
    assert params["text"]["required"] is True
    assert {params[n]["required"] for n in ("weight", "threshold", "top_k")} == {False}
    assert params["weight"]["type"] == params["threshold"]["type"] == params["top_k"]["type"] == "number"
    assert "0.5" in params["threshold"]["llm_description"]  # the default, in words
    # Dify fails the call itself on a null number (int(None)): the LLM is told to leave it out
    assert "Optional: omit it when unknown." in params["weight"]["llm_description"]
    assert "null" not in params["weight"]["llm_description"]
    body = build_openapi(ZOO, "http://x")["paths"]["/tools/optional_param/invoke"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]["properties"]
    assert schema["weight"] == {**schema["weight"], "type": "number", "nullable": True}


def test_what_dify_drops_is_restated_in_descriptions() -> None:
    tools = {tool["tool_name"]: {p["name"]: p for p in tool["parameters"]}
             for tool in imported(build_openapi(ZOO, "http://x"))}
    assert "2024-01-31T12:00:00Z" in tools["when"]["at"]["llm_description"]
    assert "JSON array of numbers" in tools["arrays"]["values"]["llm_description"]
    assert "JSON array of arrays of integers" in tools["arrays"]["grid"]["llm_description"]
    coupon = tools["coupon"]["coupon"]
    assert coupon["type"] == "string"  # Dify types every object argument as string
    assert "`code`" in coupon["llm_description"] and "`discount`" in coupon["llm_description"]
    assert "JSON object" in coupon["llm_description"]
    assert "mapping string keys to string values" in tools["tagger"]["attributes"]["llm_description"]
    assert tools["image"]["inputs"]["type"] == "array"
    assert "Base64" in tools["blob"]["payload"]["llm_description"]


def test_the_llm_sees_arrays_without_items_so_descriptions_carry_the_element_type() -> None:
    bundles, _ = ApiBasedToolSchemaParser.auto_parse_to_tool_bundle(
        json.dumps(build_openapi(ZOO, "http://x")))
    machine = next(b for b in bundles if b.operation_id == "machine_failure")
    shown = llm_tool_schema(machine)["parameters"]["properties"]["inputs"]
    assert shown["type"] == "array" and "items" not in shown
    assert "numbers" in shown["description"]


def test_difys_request_for_an_object_argument_is_its_python_repr() -> None:
    """What the server must parse (bridge.validation.InputValidator.coerce)."""
    bundles, _ = ApiBasedToolSchemaParser.auto_parse_to_tool_bundle(
        json.dumps(build_openapi(ZOO, "http://x")))
    bundle = next(b for b in bundles if b.operation_id == "coupon")
    request = build_request(bundle, CREDENTIALS, {"coupon": {"code": "SAVE", "discount": 0.2}, "quantity": 2})
    assert json.loads(request.body) == {"coupon": "{'code': 'SAVE', 'discount': 0.2}", "quantity": 2}
    assert request.headers["Authorization"] == "Basic tb_x"


def _many(count: int) -> list[Any]:
    signature = ModelSignature(inputs=Schema([ColSpec("double", "x")]))
    return [spec(f"model_{i:03d}", signature) for i in range(count)]


def test_more_than_100_tools_come_in_pages_dify_accepts() -> None:
    specs = _many(120)
    with pytest.raises(ValueError, match="less than 100"):  # all at once: Dify refuses the provider
        imported(build_openapi(specs, "http://x"))
    first = build_openapi(select_tools(specs, None, None), "http://x")
    second = build_openapi(select_tools(specs, None, "2"), "http://x")
    names = [t["tool_name"] for t in imported(first)] + [t["tool_name"] for t in imported(second)]
    assert len(imported(first)) == MAX_OPERATIONS and sorted(names) == sorted(s.name for s in specs)
    assert "http://x/openapi.json?page=2" in first["info"]["description"]
    assert "page 2 of 2" in second["info"]["description"]
    chosen = build_openapi(select_tools(specs, "model_00*,model_11?", None), "http://x")
    assert len(imported(chosen)) == 20
    with pytest.raises(PageError, match="page 3"):
        select_tools(specs, None, "3")
    with pytest.raises(PageError, match="a number"):
        select_tools(specs, None, "two")
