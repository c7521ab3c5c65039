"""The Python client and the LangChain toolkit against the real tool server (fixtures `toolbridge`,
`demo_tools`): LangChain validates before calling, good calls return the model's structured answer, the
server's 422 reaches the LLM as readable text."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ValidationError

from bridge.hosts import free_port
from tests.conftest import ToolbridgeProcess
from tool_server.demo import DEMO_MODEL_NAMES
from toolbridge_client import (
    AsyncToolbridgeClient,
    ToolbridgeClient,
    ToolbridgeConnectionError,
    ToolCallError,
    ToolInfo,
    ToolNotFoundError,
)
from toolbridge_client.langchain import ToolbridgeToolkit

pytestmark = pytest.mark.integration

GOOD_NEWS = "Acme Corp beats quarterly earnings estimates and raises full-year guidance"
BAD_NEWS = "Globex shares plunge after profit warning"
APPLICANT = {"age": 41, "annual_income": 72000.0, "debt_to_income": 0.22, "late_payments_12m": 0}


@pytest.fixture(scope="module")
def tools(toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]) -> Iterator[dict[str, BaseTool]]:
    with ToolbridgeToolkit(toolbridge.url, api_key=toolbridge.admin_key) as toolkit:
        yield {tool.name: tool for tool in toolkit.get_tools()}


def call(name: str, args: dict[str, Any], call_id: str = "call-1") -> dict[str, Any]:
    """A tool call as a chat model emits it."""
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def test_get_tools_gives_one_validating_tool_per_catalog_entry(tools: dict[str, BaseTool],
                                                               demo_tools: dict[str, Any]) -> None:
    assert set(DEMO_MODEL_NAMES) <= tools.keys()
    for name in DEMO_MODEL_NAMES:
        tool, entry = tools[name], demo_tools[name]
        assert tool.description == entry["description"]
        assert isinstance(tool.args_schema, type) and issubclass(tool.args_schema, BaseModel)
        assert tool.args_schema.model_config.get("extra") == "forbid"
        aliases = {f.alias for f in tool.args_schema.model_fields.values()}
        assert aliases == entry["input_schema"]["properties"].keys()
        # What a chat model is shown: the server's own schema, property for property.
        parameters = convert_to_openai_tool(tool)["function"]["parameters"]
        assert parameters["properties"] == entry["input_schema"]["properties"]
        assert parameters["required"] == entry["input_schema"]["required"]
        assert parameters["additionalProperties"] is False


def test_bad_arguments_raise_validation_error_before_any_http(toolbridge: ToolbridgeProcess,
                                                              demo_tools: dict[str, Any]) -> None:
    with ToolbridgeClient(toolbridge.url, api_key=toolbridge.admin_key) as client:
        catalog = client.list_tools()
    # The same tools, pointed at a port where nothing listens: any HTTP attempt would fail to connect.
    with ToolbridgeToolkit(f"http://127.0.0.1:{free_port()}") as offline:
        tools = {tool.name: tool for tool in offline.tools_for(catalog)}

        for bad in ({**APPLICANT, "age": "forty"}, {**APPLICANT, "debt_ratio": 0.2},
                    {k: v for k, v in APPLICANT.items() if k != "age"}):
            with pytest.raises(ValidationError):
                tools["credit_risk"].invoke(bad)
        with pytest.raises(ValidationError):
            tools["machine_failure"].invoke({"inputs": [[70.0, 2.0, 5.0]]})  # 3 readings where 4 are due
        with pytest.raises(ValidationError):
            tools["fin_sentiment"].invoke(call("fin_sentiment", {"text": GOOD_NEWS}))
        # A valid call does go out, and fails to connect: the errors above came before any request.
        unreachable = tools["credit_risk"].invoke(APPLICANT)
    assert "could not be reached" in unreachable


def test_a_good_call_returns_the_models_structured_answer(tools: dict[str, BaseTool],
                                                          demo_tools: dict[str, Any]) -> None:
    answer = tools["fin_sentiment"].invoke({"headline": GOOD_NEWS})

    assert answer["label"] == "positive"
    assert set(answer["probabilities"]) == {"negative", "neutral", "positive"}
    assert answer["model"] == demo_tools["fin_sentiment"]["model"]
    credit = tools["credit_risk"].invoke(APPLICANT)  # optional employment_years left out
    assert credit["label"] in (0, 1) and credit["model"]["name"] == "credit_risk"
    sensors = tools["machine_failure"].invoke({"inputs": [[70, 2, 5, 1500]]})  # ints become floats
    assert sensors["label"] in (0, 1) and sensors["model"]["name"] == "machine_failure"


def test_a_tool_call_from_a_chat_model_gets_a_json_tool_message(tools: dict[str, BaseTool]) -> None:
    message = tools["fin_sentiment"].invoke(call("fin_sentiment", {"headline": GOOD_NEWS}, "abc"))

    assert isinstance(message, ToolMessage)
    assert message.tool_call_id == "abc" and message.status == "success"
    assert '"label": "positive"' in message.text


def test_a_server_side_422_reaches_the_model_as_field_messages(toolbridge: ToolbridgeProcess,
                                                               demo_tools: dict[str, Any]) -> None:
    # Without local validation LangChain passes anything through, so the server's validation speaks.
    with ToolbridgeToolkit(toolbridge.url, api_key=toolbridge.admin_key, validate_locally=False,
                           names=["credit_risk"]) as toolkit:
        (credit,) = toolkit.get_tools()
        bad = {"age": "forty", "annual_income": 50000.0, "debt_ratio": 0.2}

        message = credit.invoke(call("credit_risk", bad))
        text = credit.invoke(bad)
        credit.handle_tool_error = False
        with pytest.raises(ToolException) as raised:
            credit.invoke(bad)

    assert isinstance(message, ToolMessage) and message.status == "error"
    for expected in ("field `age`: expected integer, got string 'forty'", "debt_ratio",
                     "field `late_payments_12m` is required", "Fix them, then call it again"):
        assert expected in message.text
    assert text == message.text
    cause = raised.value.__cause__
    assert isinstance(cause, ToolCallError) and cause.status == 422 and cause.error == "invalid_arguments"
    assert {"age", "debt_ratio", "debt_to_income", "late_payments_12m"} <= {p.field for p in cause.problems}


def test_the_sync_client_reads_the_catalog_calls_tools_and_raises_typed_errors(
        toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]) -> None:
    with ToolbridgeClient(toolbridge.url + "/", api_key=toolbridge.admin_key) as client:
        catalog = {tool.name: tool for tool in client.list_tools()}
        one = client.get_tool("credit_risk")
        answer = client.invoke("fin_sentiment", {"headline": GOOD_NEWS})
        pinned = client.invoke("fin_sentiment", {"headline": GOOD_NEWS},
                               version=demo_tools["fin_sentiment"]["model"]["version"])
        status = client.status()
        with pytest.raises(ToolCallError) as invalid:
            client.invoke("credit_risk", {**APPLICANT, "age": "forty"})
        with pytest.raises(ToolNotFoundError):
            client.invoke("no_such_tool", {})
        with pytest.raises(ToolNotFoundError):
            client.get_tool("no_such_tool")

    assert catalog["credit_risk"] == one == ToolInfo.model_validate(demo_tools["credit_risk"])
    assert answer["label"] == pinned["label"] == "positive"
    assert {v["tool"] for v in status["versions"] if v["state"] == "live"} >= set(DEMO_MODEL_NAMES)
    assert invalid.value.status == 422
    assert [(p.field, p.expected) for p in invalid.value.problems] == [("age", "integer")]
    assert "forty" in invalid.value.message


def test_an_unreachable_server_is_a_connection_error() -> None:
    with ToolbridgeClient(f"http://127.0.0.1:{free_port()}", timeout=5) as client, \
            pytest.raises(ToolbridgeConnectionError, match="could not be reached"):
        client.list_tools()


def test_the_async_client_and_async_tools_work(toolbridge: ToolbridgeProcess,
                                               demo_tools: dict[str, Any]) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with AsyncToolbridgeClient(toolbridge.url, api_key=toolbridge.admin_key) as client:
            catalog = await client.list_tools()
            one = await client.get_tool("fin_sentiment")
            answer = await client.invoke("fin_sentiment", {"headline": BAD_NEWS})
            status = await client.status()
            with pytest.raises(ToolCallError) as invalid:
                await client.invoke("fin_sentiment", {"headline": 42})
        async with ToolbridgeToolkit(toolbridge.url, api_key=toolbridge.admin_key,
                                     names=["fin_sentiment"]) as toolkit:
            (tool,) = await toolkit.aget_tools()
            # Several calls at once share the toolkit's one async connection pool.
            results = await asyncio.gather(*(tool.ainvoke({"headline": GOOD_NEWS}) for _ in range(3)))
        return catalog, one, answer, status, invalid.value, results

    catalog, one, answer, status, invalid, results = asyncio.run(scenario())

    assert set(DEMO_MODEL_NAMES) <= {tool.name for tool in catalog}
    assert one.model.name == "fin_sentiment"
    assert answer["label"] == "negative"
    assert status["sync"]["state"] == "ok"
    assert invalid.status == 422 and invalid.problems[0].field == "headline"
    assert [r["label"] for r in results] == ["positive"] * 3
