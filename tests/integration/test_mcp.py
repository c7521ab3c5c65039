"""MCP at /mcp on the real tool server, driven by the official SDK's client over streamable HTTP.

Both protocol generations are exercised: `mcp.Client`'s default (auto → 2026-07-28, no session) and the
`initialize` handshake of `ClientSession` (≤ 2025-11-25, what mcp 1.x clients and most hosts speak).
"""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, ClientSession, types
from mcp.client.session import MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ToolsListChanged
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from mlflow import MlflowClient

from tests.conftest import FAST_SYNC, ToolbridgeProcess, admin_headers, tools_by_name
from tool_server.demo import DEMO_MODEL_NAMES, register_trained_model, train_fin_sentiment

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROBE = "mcp_probe"  # a registered model of our own, so the demo tools stay as the other tests expect them
GOOD_NEWS = "Acme Corp beats quarterly earnings estimates and raises full-year guidance"
BAD_CREDIT_CALL = {"age": "forty", "annual_income": 50000.0, "debt_ratio": 0.2}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the SDK and uvicorn run on asyncio; no trio in this project


def http_client(url: str) -> httpx2.AsyncClient:
    # The SDK's transport takes an httpx2 client (the API key goes on it); a long read timeout keeps
    # listen/GET streams open.
    return httpx2.AsyncClient(headers=admin_headers(url), timeout=httpx2.Timeout(30, read=300))


@asynccontextmanager
async def modern_client(url: str) -> AsyncIterator[Client]:
    """The SDK's default client: it discovers the server and speaks 2026-07-28 against mcp 2.x."""
    async with http_client(url) as http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as c:
        yield c


@asynccontextmanager
async def legacy_session(url: str, on_message: MessageHandlerFnT | None = None,
                         ) -> AsyncIterator[tuple[ClientSession, types.InitializeResult]]:
    """The initialize/session protocol, with the standalone GET stream that carries list_changed."""
    async with (
        http_client(url) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write, message_handler=on_message) as session,
    ):
        yield session, await session.initialize()


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent), result.content
    return result.content[0].text


async def test_tools_list_gives_the_http_catalogs_schemas(toolbridge: ToolbridgeProcess,
                                                          demo_tools: dict[str, Any]) -> None:
    async with modern_client(toolbridge.url) as client:
        assert client.protocol_version in MODERN_PROTOCOL_VERSIONS
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    catalog = tools_by_name(toolbridge.url)
    assert set(DEMO_MODEL_NAMES) <= listed.keys() <= catalog.keys()
    for name in DEMO_MODEL_NAMES:
        assert listed[name].input_schema == catalog[name]["input_schema"], name
        assert listed[name].output_schema == catalog[name]["output_schema"], name
        assert listed[name].description == catalog[name]["description"], name


async def test_each_demo_tool_answers_with_structured_content(toolbridge: ToolbridgeProcess,
                                                              demo_tools: dict[str, Any]) -> None:
    applicant = {"age": 41, "annual_income": 72000.0, "debt_to_income": 0.22, "late_payments_12m": 0}
    calls: dict[str, dict[str, Any]] = {"fin_sentiment": {"headline": GOOD_NEWS},
             "credit_risk": applicant,  # `employment_years` left out: optional, as Dify sends it
             "machine_failure": {"inputs": [[70.0, 2.0, 5.0, 1500.0]]}}
    async with modern_client(toolbridge.url) as client:
        for name, arguments in calls.items():
            # The SDK client also checks structuredContent against the tool's outputSchema.
            result = await client.call_tool(name, arguments)
            assert not result.is_error, text_of(result)
            output = result.structured_content
            assert output is not None and output["model"]["name"] == name
            assert {"label", "probabilities"} <= output.keys(), output
            assert json.loads(text_of(result)) == output
            # The same core invoker answers over HTTP: same label for the same arguments.
            over_http = httpx.post(f"{toolbridge.url}/tools/{name}/invoke", json=arguments,
                                   headers=toolbridge.headers, timeout=30).json()
            assert over_http["label"] == output["label"], (over_http, output)
        sentiment = await client.call_tool("fin_sentiment", {"headline": GOOD_NEWS})
    assert sentiment.structured_content is not None and sentiment.structured_content["label"] == "positive"


async def test_bad_calls_are_errors_whose_text_names_each_field(toolbridge: ToolbridgeProcess,
                                                                demo_tools: dict[str, Any]) -> None:
    async with modern_client(toolbridge.url) as client:
        wrong = await client.call_tool("credit_risk", BAD_CREDIT_CALL)
        nothing = await client.call_tool("fin_sentiment", None)
        unknown = await client.call_tool("no_such_tool", {})
        # Valid by the schema (an integer), refused by the model (past int64): still the caller's to fix.
        huge = await client.call_tool("credit_risk", {"age": 2**70, "annual_income": 50000.0,
                                                      "debt_to_income": 0.3, "late_payments_12m": 0})
    assert huge.is_error and "the model rejected these arguments" in text_of(huge), text_of(huge)
    assert "call it again" in text_of(huge)
    assert wrong.is_error and wrong.structured_content is None
    text = text_of(wrong)  # Dify ignores isError: the text alone must tell the LLM what to fix
    assert "field `age`: expected integer, got string 'forty'" in text, text
    assert "field `debt_ratio` is not accepted; accepted fields: age, annual_income" in text, text
    assert "field `debt_to_income` is required" in text, text
    assert "field `late_payments_12m` is required" in text, text
    assert nothing.is_error and "field `headline` is required" in text_of(nothing)
    assert unknown.is_error and "no tool named 'no_such_tool'" in text_of(unknown)
    assert "fin_sentiment" in text_of(unknown)  # the available tools are listed


async def test_initialize_session_protocol_lists_and_calls_tools(toolbridge: ToolbridgeProcess,
                                                                 demo_tools: dict[str, Any]) -> None:
    async with legacy_session(toolbridge.url) as (session, init):
        assert init.protocol_version not in MODERN_PROTOCOL_VERSIONS
        assert init.capabilities.tools is not None and init.capabilities.tools.list_changed is True
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert listed["fin_sentiment"].output_schema == demo_tools["fin_sentiment"]["output_schema"]
        good = await session.call_tool("fin_sentiment", {"headline": GOOD_NEWS})
        bad = await session.call_tool("credit_risk", BAD_CREDIT_CALL)
    assert not good.is_error and good.structured_content is not None
    assert good.structured_content["label"] == "positive"
    assert bad.is_error and "field `age`" in text_of(bad)


async def test_promoted_tool_appears_without_restart_and_both_protocols_hear_it(
    toolbridge: ToolbridgeProcess, mlflow_server: str, demo_tools: dict[str, Any]
) -> None:
    heard, legacy_changes = anyio.create_memory_object_stream[None](max_buffer_size=100)

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            heard.send_nowait(None)

    def promote() -> None:
        trained = dataclasses.replace(train_fin_sentiment(), name=PROBE, tags={})
        register_trained_model(trained, tracking_uri=mlflow_server, aliases=["champion"])

    def withdraw() -> None:
        MlflowClient(mlflow_server).delete_registered_model_alias(PROBE, "champion")

    async with (
        modern_client(toolbridge.url) as client,
        legacy_session(toolbridge.url, on_message) as (session, _),
        client.listen(tools_list_changed=True) as changes,
    ):
        assert changes.honored.tools_list_changed

        async def listed_after_next_change() -> tuple[bool, bool]:
            """Wait for the next list_changed on both connections, then: is the probe listed on each?"""
            assert isinstance(await anext(changes), ToolsListChanged)
            await legacy_changes.receive()
            return (PROBE in {t.name for t in (await client.list_tools()).tools},
                    PROBE in {t.name for t in (await session.list_tools()).tools})

        assert PROBE not in {tool.name for tool in (await client.list_tools()).tools}
        with anyio.fail_after(180):  # train + register + load into the model host + smoke test
            await anyio.to_thread.run_sync(promote)
            listed = await listed_after_next_change()
            while not listed[0]:  # another catalog change came first; a later one brings the probe
                listed = await listed_after_next_change()
        assert listed == (True, True)
        called = await client.call_tool(PROBE, {"headline": GOOD_NEWS})
        assert not called.is_error, text_of(called)
        assert called.structured_content is not None and called.structured_content["model"]["name"] == PROBE

        with anyio.fail_after(60):  # deleting the alias withdraws the tool, after the drain grace
            await anyio.to_thread.run_sync(withdraw)
            listed = await listed_after_next_change()
            while listed[0]:
                listed = await listed_after_next_change()
        assert listed == (False, False)
        gone = await client.call_tool(PROBE, {"headline": GOOD_NEWS})
    heard.close()
    legacy_changes.close()
    assert gone.is_error and f"no tool named {PROBE!r}" in text_of(gone)


async def test_ctrl_c_ends_open_mcp_streams_and_exits_cleanly(mlflow_server: str, tmp_path: Path) -> None:
    """uvicorn lets open responses end before it shuts down: connected MCP clients must not hold up Ctrl-C."""
    server = ToolbridgeProcess(["--mlflow-uri", mlflow_server], tmp_path / "state", FAST_SYNC)
    try:
        await anyio.to_thread.run_sync(server.wait_healthy)
        async with (
            modern_client(server.url) as client,
            legacy_session(server.url),  # its standalone GET stream stays open too
            client.listen(tools_list_changed=True) as changes,
        ):
            server.process.send_signal(signal.SIGINT)
            code = await anyio.to_thread.run_sync(server.process.wait, 30)  # TimeoutExpired if it hangs
            assert [event async for event in changes] == []  # the stream was closed, not dropped
    finally:
        server.stop()
    assert code == 0, server.log()
    assert "Traceback" not in server.full_log(), server.log()
