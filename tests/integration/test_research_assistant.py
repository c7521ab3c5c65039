"""The research assistant example end to end: a scripted chat model makes REAL tool calls through the
LangChain toolkit against the real tool server, and the report carries the labels the real model gave."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from examples.research_assistant import NoteRetriever, ResearchAssistant
from examples.research_assistant.__main__ import DEFAULT_QUESTION
from tests.conftest import ToolbridgeProcess
from toolbridge_client import ToolbridgeClient
from toolbridge_client.langchain import ToolbridgeToolkit

pytestmark = pytest.mark.integration

K = 5


class ScriptedChatModel(GenericFakeChatModel):
    """GenericFakeChatModel (replays its AIMessages) that accepts `bind_tools`, keeping the tool schemas a
    real model would be shown, and records every conversation it is handed."""

    bound_tools: list[dict[str, Any]] = Field(default_factory=list)
    conversations: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        self.bound_tools[:] = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=self.bound_tools, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        self.conversations.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def tool_call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


@pytest.fixture(scope="module")
def sentiment_tool(toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]) -> Iterator[BaseTool]:
    with ToolbridgeToolkit(toolbridge.url, api_key=toolbridge.admin_key, names=["fin_sentiment"]) as toolkit:
        (tool,) = toolkit.get_tools()
        yield tool


def test_the_agent_calls_the_real_tool_per_note_and_reports_its_labels(
        toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any], sentiment_tool: BaseTool) -> None:
    retriever = NoteRetriever.bundled()
    headlines = [note.title for note in retriever.search(DEFAULT_QUESTION, K)]
    assert len(headlines) == K
    script = iter([
        AIMessage("", tool_calls=[tool_call("search_notes", {"query": DEFAULT_QUESTION, "k": K}, "s1")]),
        # One call per note, plus a misnamed argument the model must fix after reading the error.
        AIMessage("", tool_calls=[tool_call("fin_sentiment", {"headline": h}, f"f{i}")
                                  for i, h in enumerate(headlines[1:])]
                  + [tool_call("fin_sentiment", {"title": headlines[0]}, "bad")]),
        AIMessage("", tool_calls=[tool_call("fin_sentiment", {"headline": headlines[0]}, "fixed")]),
        AIMessage("Kestrel's stock moved on its Q3 beat and the Army contract (positive) and on the "
                  "downgrade (negative); the other notes are scheduling news (neutral)."),
    ])
    chat = ScriptedChatModel(messages=script)

    report = ResearchAssistant(chat, sentiment_tool, retriever).run(DEFAULT_QUESTION)

    # The labels in the report are the ones the real model gives for each headline.
    with ToolbridgeClient(toolbridge.url, api_key=toolbridge.admin_key) as client:
        truth = {h: client.invoke("fin_sentiment", {"headline": h})["label"] for h in headlines}
    assert {f.headline: f.label for f in report.findings} == truth
    assert {"positive", "negative"} <= set(truth.values())
    version = demo_tools["fin_sentiment"]["model"]["version"]
    assert {f.model for f in report.findings} == {f"fin_sentiment v{version}"}
    assert all(f.note is not None and f.error is None for f in report.findings)
    assert report.tool_calls == 1 + K + 1
    text = report.render()
    for headline, label in truth.items():
        line = next(line for line in text.splitlines() if headline in line)
        assert label in line, line
    assert report.answer in text and f"fin_sentiment v{version}" in text

    # The chat model was shown the server's schema, and every tool result, the rejected call included.
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in chat.bound_tools}
    assert schemas["fin_sentiment"]["properties"] == demo_tools["fin_sentiment"]["input_schema"]["properties"]
    last = chat.conversations[-1]
    results = {m.tool_call_id: m for m in last if isinstance(m, ToolMessage)}
    assert all(h in results["s1"].text for h in headlines)
    assert results["bad"].status == "error" and "headline" in results["bad"].text
    assert all(f'"label": "{truth[h]}"' in results[f"f{i}"].text for i, h in enumerate(headlines[1:]))
    assert f'"label": "{truth[headlines[0]]}"' in results["fixed"].text


def test_without_an_llm_the_assistant_reports_the_evidence(sentiment_tool: BaseTool) -> None:
    retriever = NoteRetriever.bundled()

    report = ResearchAssistant(None, sentiment_tool, retriever).run_without_llm(DEFAULT_QUESTION, k=K)

    assert [f.note for f in report.findings] == retriever.search(DEFAULT_QUESTION, K)
    assert all(f.label in ("negative", "neutral", "positive") for f in report.findings)
    assert "No chat model was used" in report.render()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run([sys.executable, "-m", "examples.research_assistant", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_the_command_line_prints_the_evidence_or_says_how_to_configure_an_llm(
        toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]) -> None:
    offline = run_cli("--url", toolbridge.url, "--api-key", toolbridge.admin_key, "--no-llm",
                      DEFAULT_QUESTION)
    unconfigured = run_cli("--url", toolbridge.url, "--api-key", toolbridge.admin_key, DEFAULT_QUESTION)

    assert offline.returncode == 0, offline.stderr
    assert "Evidence (sentiment from Toolbridge, model fin_sentiment v" in offline.stdout
    assert unconfigured.returncode == 2
    assert "OPENAI_API_KEY" in unconfigured.stderr and "--no-llm" in unconfigured.stderr
