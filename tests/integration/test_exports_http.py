"""The exports served by the running tool server, for the live demo tools."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml
from openapi_spec_validator import validate

from tests.conftest import ToolbridgeProcess, admin_headers, wait_for
from tool_server.exports.openai_tools import strict_problems

pytestmark = pytest.mark.integration


def get(server: ToolbridgeProcess, path: str) -> httpx.Response:
    response = httpx.get(f"{server.url}{path}", headers=server.headers, timeout=10)
    assert response.status_code == 200, response.text
    return response


def test_served_openapi_validates_and_has_an_operation_per_live_tool(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    document = get(toolbridge, "/openapi.json").json()
    validate(document)
    operations = {path["post"]["operationId"]: path["post"] for path in document["paths"].values()}
    assert set(demo_tools) <= operations.keys()
    for name in demo_tools:
        assert operations[name]["description"] == demo_tools[name]["description"]
    # The same document in YAML. Other tests share this server's MLflow: should the catalog change between
    # the two reads, both are read again.
    def same_document() -> bool:
        in_yaml = yaml.safe_load(get(toolbridge, "/openapi.yaml").text)
        return bool(in_yaml == get(toolbridge, "/openapi.json").json())

    wait_for(same_document, 30, "/openapi.yaml holding the document /openapi.json holds")


def test_one_tool_openapi_holds_just_that_tool(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    document = get(toolbridge, "/tools/credit_risk/openapi.json").json()
    validate(document)
    assert list(document["paths"]) == ["/tools/credit_risk/invoke"]
    missing = httpx.get(f"{toolbridge.url}/tools/nope/openapi.json", headers=admin_headers(toolbridge.url),
                        timeout=10)
    assert missing.status_code == 404


def test_openai_tools_are_strict_for_every_demo_tool(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    tools = {tool["function"]["name"]: tool["function"] for tool in get(toolbridge, "/openai/tools").json()}
    assert set(demo_tools) <= tools.keys()
    for name in demo_tools:
        assert tools[name]["strict"] is True
        assert strict_problems(tools[name]["parameters"]) == []
    assert tools["credit_risk"]["parameters"]["properties"]["employment_years"]["type"] == ["number", "null"]


def test_a_strict_client_sending_null_for_an_optional_field_is_accepted(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    arguments = {"age": 35, "annual_income": 55000.0, "debt_to_income": 0.3, "late_payments_12m": 1,
                 "employment_years": None}
    answer = httpx.post(f"{toolbridge.url}/tools/credit_risk/invoke", headers=admin_headers(toolbridge.url),
                        json=arguments, timeout=30)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["probabilities"]) == {"0", "1"}


def test_a_dify_call_with_the_tensor_sent_as_json_text_is_answered(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    answer = httpx.post(f"{toolbridge.url}/tools/machine_failure/invoke",
                        headers=admin_headers(toolbridge.url),
                        json={"inputs": "[[70.0, 2.0, 5.0, 1500.0]]"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["label"] in (0, 1)
