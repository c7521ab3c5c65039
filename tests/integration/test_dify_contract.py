"""Dify 1.14 against the real server: the catalog imported by URL with no header, every tool called the way
Dify calls it (Basic auth, `json.dumps` bodies, "" for None, Python-repr objects), answers the LLM reads
once, and MCP `tools/list` / `tools/call` with each protocol version Dify's MCP client speaks. Dify's own code
for each step is ported in tests/contracts/dify (its facts in FACTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array, Object, Property

from tests.conftest import ToolbridgeProcess, tools_by_name, wait_for
from tests.contracts.dify.call import build_request, llm_view
from tests.contracts.dify.parser import ApiBasedToolSchemaParser, ApiToolBundle, ApiToolManageService

pytestmark = pytest.mark.integration

ZOO_MODEL = Path(__file__).parent / "models" / "dify_zoo.py"
ZOO_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "text"), ColSpec("double", "amount", required=False),
                   ColSpec("datetime", "at", required=False),
                   ColSpec(Array("string"), "tags", required=False),
                   ColSpec(Object([Property("code", "string"), Property("discount", "double")]), "coupon",
                           required=False)]),
    params=ParamSchema([ParamSpec("threshold", "double", 0.5)]))
# What an LLM asks Dify to send, per demo tool.
LLM_ARGUMENTS = {
    "fin_sentiment": {"headline": "Acme Corp beats earnings estimates and raises guidance"},
    # optional employment_years left out: Dify itself fails on a null number (int(None), FACTS.md B.7)
    "credit_risk": {"age": 41, "annual_income": 72000.0, "debt_to_income": 0.22, "late_payments_12m": 0},
    "machine_failure": {"inputs": [[70.0, 2.0, 5.0, 1500.0]]},
}
PROTOCOLS = ("2024-11-05", "2025-03-26", "2025-06-18")  # Dify 1.14 core/mcp/entities.py


def cli(server: ToolbridgeProcess, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tool_server", *args, "--state-dir", str(server.state_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def dify_fetch(url: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """Import from URL as Dify does it: plain httpx.get, its headers, no redirect followed."""
    response = httpx.get(url, headers=headers, timeout=timeout, follow_redirects=False)
    return response.status_code, response.text


def credentials(key: str, prefix: str = "basic") -> dict[str, Any]:
    """The form's defaults: header Authorization, prefix `basic` (Dify's own default)."""
    return {"auth_type": "api_key_header", "api_key_header": "Authorization", "api_key_value": key,
            "api_key_header_prefix": prefix}


def send(request: Any) -> httpx.Response:
    return httpx.request(request.method, request.url, headers=request.headers, content=request.body,
                         timeout=60)


def read_once(response: httpx.Response) -> str:
    """What the LLM reads of an answer; asserts Dify shows it once (raw == json.dumps(parsed))."""
    raw = response.text
    assert raw == json.dumps(json.loads(raw), ensure_ascii=False), raw
    seen = llm_view(response.status_code, raw, response.headers.get("content-type", ""))
    if response.status_code < 400:
        assert seen == raw, f"Dify would show the LLM this answer twice: {seen}"
    return seen


@pytest.fixture(scope="module")
def zoo_tool(toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any], mlflow_server: str) -> Iterator[str]:
    """A model with an optional number, date-time, array, object and inference parameter, live as a tool."""
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    mlflow.set_experiment("dify-contract")
    example = pd.DataFrame([{"text": "hello", "amount": 3.0, "at": pd.Timestamp("2024-01-31T12:00:00"),
                             "tags": ["a"], "coupon": {"code": "X", "discount": 0.5}}])
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=str(ZOO_MODEL), signature=ZOO_SIGNATURE,
                                       input_example=example, registered_model_name="dify_zoo",
                                       pip_requirements=["pandas"])
    client = MlflowClient(mlflow_server, mlflow_server)
    client.update_registered_model("dify_zoo", description="Scores a text with its optional extras.")
    client.set_registered_model_tag("dify_zoo", "toolbridge.toolsets", "dify_zoo_set")  # a Dify provider too
    client.set_registered_model_alias("dify_zoo", "champion", str(info.registered_model_version))
    wait_for(lambda: "dify_zoo" in tools_by_name(toolbridge.url), 180, f"dify_zoo live\n{toolbridge.log()}")
    yield "dify_zoo"
    client.delete_registered_model_alias("dify_zoo", "champion")


@pytest.fixture(scope="module")
def imported(toolbridge: ToolbridgeProcess, zoo_tool: str) -> dict[str, ApiToolBundle]:
    """The admin key's catalog imported from its token URL, headerless, through Dify's import code."""
    url = cli(toolbridge, "keys", "schema-url", "admin", "--url", toolbridge.url)
    schema = ApiToolManageService.get_api_tool_provider_remote_schema(url, fetch=dify_fetch)["schema"]
    bundles, *_ = ApiToolManageService.create_api_tool_provider_checks(schema, credentials("unused"))
    return {bundle.operation_id: bundle for bundle in bundles}


def test_import_from_url_needs_no_header_and_holds_every_tool(imported: dict[str, ApiToolBundle]) -> None:
    assert {*LLM_ARGUMENTS, "dify_zoo"} <= imported.keys()
    zoo = {p.name: p for p in imported["dify_zoo"].parameters}
    assert zoo["text"].required and not any(zoo[n].required for n in ("amount", "at", "tags", "coupon"))
    assert zoo["threshold"].required is False and "0.5" in (zoo["threshold"].llm_description or "")
    assert (zoo["amount"].type.value, zoo["tags"].type.value, zoo["coupon"].type.value) == (
        "number", "array", "string")


def test_every_demo_tool_answers_a_call_made_the_way_dify_makes_it(
        toolbridge: ToolbridgeProcess, imported: dict[str, ApiToolBundle]) -> None:
    creds = credentials(toolbridge.admin_key)  # one runtime for the whole agent run, as in Dify
    for _ in range(2):  # the second call carries `Basic Basic <key>` (Dify writes the prefix back)
        for name, arguments in LLM_ARGUMENTS.items():
            request = build_request(imported[name], creds, arguments)
            assert request.headers["Authorization"].startswith("Basic ")
            answer = send(request)
            assert answer.status_code == 200, (name, answer.text)
            assert json.loads(read_once(answer))["model"]["name"] == name
    assert creds["api_key_value"].startswith("Basic Basic ")


def test_bearer_and_a_basic_user_key_pair_work_too(toolbridge: ToolbridgeProcess,
                                                   imported: dict[str, ApiToolBundle]) -> None:
    for prefix, value in (("bearer", toolbridge.admin_key), ("custom", f"Bearer {toolbridge.admin_key}")):
        answer = send(build_request(imported["fin_sentiment"], credentials(value, prefix),
                                    LLM_ARGUMENTS["fin_sentiment"]))
        assert answer.status_code == 200, (prefix, answer.text)
    import base64

    pair = base64.b64encode(f"dify:{toolbridge.admin_key}".encode()).decode()
    answer = send(build_request(imported["fin_sentiment"], credentials(pair), LLM_ARGUMENTS["fin_sentiment"]))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("arguments", "score"), [
    # 3 characters + 100 * threshold 0.5, nothing else given
    ({"text": "abc"}, 53.0),
    # None for a string-typed argument arrives as "" (the date-time): read as null
    ({"text": "abc", "at": None, "amount": 2.5}, 55.5),
    # an object the LLM gives as an object arrives as its Python repr; an array as JSON
    ({"text": "abc", "coupon": {"code": "SAVE", "discount": 0.2}, "tags": ["x", "y"]}, 73.2),
    # an object the LLM gives as JSON text arrives as JSON
    ({"text": "abc", "coupon": '{"code": "SAVE", "discount": 0.25}', "threshold": 0.1}, 13.25),
])
def test_zoo_arguments_arrive_as_the_llm_meant_them(toolbridge: ToolbridgeProcess,
                                                    imported: dict[str, ApiToolBundle],
                                                    arguments: dict[str, Any], score: float) -> None:
    answer = send(build_request(imported["dify_zoo"], credentials(toolbridge.admin_key), arguments))
    assert answer.status_code == 200, answer.text
    assert json.loads(read_once(answer))["prediction"]["score"] == pytest.approx(score)


def test_a_bad_object_tells_the_llm_how_to_send_it(toolbridge: ToolbridgeProcess,
                                                   imported: dict[str, ApiToolBundle]) -> None:
    answer = send(build_request(imported["dify_zoo"], credentials(toolbridge.admin_key),
                                {"text": "abc", "coupon": "SAVE20"}))
    assert answer.status_code == 422
    seen = read_once(answer)
    assert seen.startswith("tool invoke error: Request failed with status code 422")  # a 4xx shows its body
    assert "send `coupon` as JSON text, e.g. {" in seen


def test_every_error_body_is_serialised_as_dify_reserialises_it(toolbridge: ToolbridgeProcess,
                                                               imported: dict[str, ApiToolBundle]) -> None:
    invoke = f"{toolbridge.url}/tools/credit_risk/invoke"
    answers = [
        httpx.post(invoke, json={"age": "forty"}, headers=toolbridge.headers, timeout=30),  # 422
        httpx.post(invoke, content=b"{", headers=toolbridge.headers, timeout=30),  # 422 body
        httpx.post(invoke, json={}, headers={"Authorization": "Basic tb_nope"}, timeout=30),  # 401
        httpx.post(f"{toolbridge.url}/tools/nope/invoke", json={}, headers=toolbridge.headers, timeout=30),
        httpx.get(f"{toolbridge.url}/openapi.json?page=99", headers=toolbridge.headers, timeout=30),
        httpx.post(invoke, content=b'{"age": "' + ("é" * 600_000).encode() + b'"}',
                   headers={**toolbridge.headers, "content-type": "application/json"}, timeout=30),  # 413
    ]
    assert [a.status_code for a in answers] == [422, 422, 401, 404, 404, 413]
    for answer in answers:
        read_once(answer)
    assert "page 99 does not exist" in answers[4].json()["message"]


def test_the_catalog_token_reads_only_its_keys_catalog_and_dies_with_the_key(
        toolbridge: ToolbridgeProcess, zoo_tool: str) -> None:
    cli(toolbridge, "keys", "create", "--name", "dify-fin", "--scopes", "fin_*")
    url = cli(toolbridge, "keys", "schema-url", "dify-fin", "--url", toolbridge.url)
    token = url.split("token=")[1]
    document = httpx.get(url, timeout=30).json()
    assert [op["post"]["operationId"] for op in document["paths"].values()] == ["fin_sentiment"]
    # read-only: no call, no status, no audit with it
    for method, path in (("POST", "/tools/fin_sentiment/invoke"), ("GET", "/status"), ("GET", "/tools")):
        refused = httpx.request(method, f"{toolbridge.url}{path}?token={token}", json={"headline": "x"},
                                timeout=30)
        assert refused.status_code == 401, (path, refused.text)
    forged = httpx.get(url[:-4] + "0000", timeout=30)
    assert forged.status_code == 401
    cli(toolbridge, "keys", "revoke", "dify-fin")
    revoked = httpx.get(url, timeout=30)
    assert revoked.status_code == 401 and "schema-url" in revoked.json()["message"]
    assert token not in toolbridge.log_path.read_text(errors="replace"), "a catalog token reached the log"


def _mcp(url: str, key: str, body: dict[str, Any], session: str | None = None) -> httpx.Response:
    """A POST as Dify's streamable client sends it: no MCP-Protocol-Version header."""
    headers = {"Accept": "application/json, text/event-stream", "content-type": "application/json",
               "Authorization": f"Bearer {key}", **({"mcp-session-id": session} if session else {})}
    return httpx.post(f"{url}/mcp", json=body, headers=headers, timeout=60)


def _message(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        message: dict[str, Any] = response.json()
        return message
    events = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads(next(event for event in events if event))  # type: ignore[no-any-return]


def _dify_parameter_type(prop: dict[str, Any]) -> str:
    """services/tools/tools_transform_service.py convert_mcp_schema_to_parameter: the type Dify resolves."""
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    for key in ("anyOf", "oneOf", "allOf"):
        if kind is None and prop.get(key):
            kind = next((o.get("type") for o in prop[key] if o.get("type") != "null"), None)
    return {"integer": "number", "float": "number"}.get(kind or "string", kind or "string")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_difys_mcp_client_lists_and_calls_tools_with_each_protocol_version(
        toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any], protocol: str) -> None:
    started = _mcp(toolbridge.url, toolbridge.admin_key, {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": protocol, "capabilities": {}, "clientInfo": {"name": "Dify",
                                                                                   "version": "1.14.1"}}})
    assert _message(started)["result"]["protocolVersion"] == protocol
    session = started.headers.get("mcp-session-id")
    notified = _mcp(toolbridge.url, toolbridge.admin_key,
                    {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert notified.status_code in (200, 202, 204)
    listed = _message(_mcp(toolbridge.url, toolbridge.admin_key,
                           {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, session))["result"]
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert set(LLM_ARGUMENTS) <= tools.keys()
    for tool in tools.values():
        assert tool["inputSchema"]["type"] == "object" and tool.get("outputSchema"), tool["name"]
        for prop in tool["inputSchema"]["properties"].values():
            assert _dify_parameter_type(prop) in ("string", "number", "boolean", "array", "object")
    # Dify drops None and blank arguments, and sends integers as numbers (3.0)
    called = _message(_mcp(toolbridge.url, toolbridge.admin_key, {
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "credit_risk", "arguments": {"age": 41.0, "annual_income": 72000.0,
                                                        "debt_to_income": 0.22, "late_payments_12m": 0.0}}},
        session))["result"]
    assert not called.get("isError"), called
    text = called["content"][0]["text"]
    assert json.loads(text) == called["structuredContent"]  # Dify reads the text as one JSON object
    failed = _message(_mcp(toolbridge.url, toolbridge.admin_key, {
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "credit_risk", "arguments": {"age": "forty"}}}, session))["result"]
    assert failed["isError"] and "age" in failed["content"][0]["text"]  # Dify ignores isError: text says it
    if session:
        closed = httpx.delete(f"{toolbridge.url}/mcp", headers={
            "mcp-session-id": session, "Authorization": f"Bearer {toolbridge.admin_key}"})
        assert closed.status_code in (200, 204, 405)


def test_a_document_of_every_live_tool_parses_without_a_type_list(toolbridge: ToolbridgeProcess,
                                                                  zoo_tool: str) -> None:
    for path in ("/openapi.json", "/openapi.yaml", "/tools/credit_risk/openapi.json",
                 "/tools/dify_zoo/openapi.json", "/toolsets/dify_zoo_set/openapi.json"):
        text = httpx.get(f"{toolbridge.url}{path}", headers=toolbridge.headers, timeout=30).text
        bundles, _ = ApiBasedToolSchemaParser.auto_parse_to_tool_bundle(text)
        assert bundles, path
