"""The research assistant: a tool-calling loop over a chat model, a notes retriever and Toolbridge's
`fin_sentiment` tool, in langchain-core only.

The model decides which notes to read (``search_notes``) and calls the sentiment tool once per headline;
the loop runs every tool call, feeds the results back, and stops at the model's first answer without tool
calls. The report pairs that answer with the evidence the tools actually returned, so a reader can check
each claimed sentiment against the model version that produced it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage, ToolCall, ToolMessage
from langchain_core.messages.tool import tool_call
from langchain_core.tools import BaseTool
from pydantic import ValidationError

from examples.research_assistant.notes_store import Note, NoteRetriever, search_notes_tool

__all__ = ["SYSTEM_PROMPT", "Finding", "ResearchAssistant", "ResearchReport"]

SYSTEM_PROMPT = """You are an equity research assistant. Answer the user's question from the research notes.
1. Call `search_notes` to find the relevant notes.
2. Call `{sentiment}` once for EACH note you use, with the note's headline exactly as written.
3. Then answer without calling tools: list the events (date, what happened, how the stock reacted) with the
sentiment label `{sentiment}` returned for each, and end with a one-sentence overall view. Never invent a
sentiment: use the tool's label. If a tool call fails, read the error, fix the arguments and call it again."""


@dataclass(frozen=True)
class Finding:
    """One call of the sentiment tool: the headline sent and what came back (or the error)."""

    headline: str
    note: Note | None
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    model: str = ""  # "fin_sentiment v3": the version that answered
    error: str | None = None

    @property
    def confidence(self) -> float | None:
        return self.probabilities.get(self.label) if self.label is not None else None


@dataclass
class ResearchReport:
    question: str
    answer: str
    findings: list[Finding]
    tool_calls: int = 0

    def render(self) -> str:
        """The answer, then the evidence from the tool calls, newest note first."""
        lines = [f"Question: {self.question}", "", self.answer.strip() or "(no answer)", ""]
        if not self.findings:
            return "\n".join([*lines, "Evidence: the sentiment tool was not called."])
        models = sorted({f.model for f in self.findings if f.model})
        lines.append(f"Evidence (sentiment from Toolbridge, model {', '.join(models) or 'n/a'}):")
        for f in sorted(self.findings, key=lambda f: f.note.date.isoformat() if f.note else "", reverse=True):
            when = f.note.date.isoformat() if f.note else "(no note)"
            if f.error is not None:
                lines.append(f"  {when}  error       {f.headline}\n      {f.error}")
            else:
                score = f" ({f.confidence:.2f})" if f.confidence is not None else ""
                lines.append(f"  {when}  {f'{f.label}{score}':<16}  {f.headline}")
        return "\n".join(lines)


def _validation_text(name: str, exc: ValidationError) -> str:
    problems = "; ".join(f"`{'.'.join(str(p) for p in e['loc']) or 'arguments'}`: {e['msg']}"
                         for e in exc.errors())
    return f"Invalid arguments for `{name}`: {problems}. Fix them and call the tool again."


def _settled(findings: Sequence[Finding]) -> list[Finding]:
    """Drop failed calls the model later got right (same headline), keep the rest in call order."""
    answered = {f.headline for f in findings if f.error is None}
    return [f for f in findings if f.error is None or f.headline not in answered]


class ResearchAssistant:
    """Answers a question from the notes with the help of a Toolbridge sentiment tool (`chat_model` may be
    None for `run_without_llm`)."""

    def __init__(self, chat_model: BaseChatModel | None, sentiment_tool: BaseTool, retriever: NoteRetriever,
                 *, max_turns: int = 8) -> None:
        self.sentiment = sentiment_tool
        self.retriever = retriever
        self.tools = {t.name: t for t in (search_notes_tool(retriever), sentiment_tool)}
        self.chat_model = chat_model
        self.max_turns = max_turns

    def _call(self, call: ToolCall) -> ToolMessage:
        tool = self.tools.get(call["name"])
        if tool is None:
            return ToolMessage(f"There is no tool `{call['name']}`; use one of: {', '.join(self.tools)}.",
                               tool_call_id=call["id"] or "", name=call["name"], status="error")
        try:
            message = tool.invoke(call)
        except ValidationError as exc:  # LangChain checked the arguments against the tool's schema
            return ToolMessage(_validation_text(tool.name, exc), tool_call_id=call["id"] or "",
                               name=tool.name, status="error")
        assert isinstance(message, ToolMessage)  # a ToolCall in gives a ToolMessage out
        return message

    def _finding(self, call: ToolCall, message: ToolMessage) -> Finding:
        args = call["args"]  # a misnamed argument still names the headline it was meant for
        headline = str(args.get("headline") or next((v for v in args.values() if isinstance(v, str)),
                                                    json.dumps(args)))
        note = self.retriever.find(headline)
        if message.status == "error":
            return Finding(headline, note, error=message.text)
        result: dict[str, Any] = json.loads(message.text)
        model = result.get("model") or {}
        return Finding(headline, note, label=str(result.get("label")),
                       probabilities=dict(result.get("probabilities") or {}),
                       model=f"{model.get('name')} v{model.get('version')}")

    def run(self, question: str) -> ResearchReport:
        if self.chat_model is None:
            raise ValueError("run() needs a chat model; run_without_llm() does without")
        llm = self.chat_model.bind_tools(list(self.tools.values()))
        messages: list[AnyMessage] = [SystemMessage(SYSTEM_PROMPT.format(sentiment=self.sentiment.name)),
                                      HumanMessage(question)]
        findings: list[Finding] = []
        calls = 0
        for _ in range(self.max_turns):
            reply = llm.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return ResearchReport(question, reply.text, _settled(findings), calls)
            for call in reply.tool_calls:
                calls += 1
                message = self._call(call)
                messages.append(message)
                if call["name"] == self.sentiment.name:
                    findings.append(self._finding(call, message))
        answer = f"(stopped after {self.max_turns} model turns without a final answer)"
        return ResearchReport(question, answer, _settled(findings), calls)

    def run_without_llm(self, question: str, k: int = 6) -> ResearchReport:
        """Retrieval and one sentiment call per note, no chat model: the evidence without the prose."""
        notes: Sequence[Note] = self.retriever.search(question, k)
        findings = []
        for i, note in enumerate(notes):
            call = tool_call(name=self.sentiment.name, args={"headline": note.title}, id=f"offline-{i}")
            findings.append(self._finding(call, self._call(call)))
        labels = [f.label for f in findings if f.label]
        counts = ", ".join(f"{labels.count(label)} {label}" for label in sorted(set(labels))) or "no labels"
        answer = (f"{len(notes)} notes match the question ({counts}). No chat model was used: this is the "
                  "evidence only.")
        return ResearchReport(question, answer, findings, len(findings))
