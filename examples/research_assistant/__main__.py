"""``python -m examples.research_assistant [--url URL] [--no-llm] "question"``.

The chat model is any OpenAI-compatible endpoint, through ``langchain-openai`` when it is installed (it is not
a Toolbridge dependency): ``OPENAI_BASE_URL`` (e.g. a local Ollama or vLLM server), ``OPENAI_API_KEY`` and
``OPENAI_MODEL`` (default gpt-4o-mini).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel

from examples.research_assistant.agent import ResearchAssistant
from examples.research_assistant.notes_store import NoteRetriever
from toolbridge_client import ToolbridgeError
from toolbridge_client.langchain import ToolbridgeToolkit

__all__ = ["DEFAULT_QUESTION", "chat_model_from_env", "main"]

DEFAULT_QUESTION = "what recent events move the stock?"
NO_LLM = """\
No chat model is configured, so the assistant cannot write its answer.
  pip install langchain-openai     (not a Toolbridge dependency)
  export OPENAI_API_KEY=...        and, for another OpenAI-compatible server, OPENAI_BASE_URL=http://host:port/v1
  export OPENAI_MODEL=...          (default gpt-4o-mini; it must support tool calling)
Or run with --no-llm to see the retrieved notes and their sentiment from Toolbridge without an answer."""


class ChatModelMissing(RuntimeError):
    """langchain-openai is not installed, or no endpoint is configured."""


def chat_model_from_env(model: str | None = None) -> BaseChatModel:
    """A ChatOpenAI for the endpoint the OPENAI_* variables describe; ChatModelMissing when there is none."""
    base_url, api_key = os.environ.get("OPENAI_BASE_URL"), os.environ.get("OPENAI_API_KEY")
    try:
        from langchain_openai import ChatOpenAI  # optional: imported only when an LLM is wanted
    except ImportError as exc:
        raise ChatModelMissing(f"langchain-openai is not installed.\n{NO_LLM}") from exc
    if not (base_url or api_key):
        raise ChatModelMissing(f"neither OPENAI_API_KEY nor OPENAI_BASE_URL is set.\n{NO_LLM}")
    chat: BaseChatModel = ChatOpenAI(model=model or os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
                                     base_url=base_url, api_key=api_key or "unused", temperature=0)
    return chat


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.research_assistant", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument("--url", default=os.environ.get("TOOLBRIDGE_URL", "http://127.0.0.1:8000"),
                        help="Toolbridge tool server (default: $TOOLBRIDGE_URL or http://127.0.0.1:8000)")
    parser.add_argument("--api-key", default=os.environ.get("TOOLBRIDGE_API_KEY"), help="Toolbridge API key")
    parser.add_argument("--tool", default="fin_sentiment", help="the sentiment tool's name in the catalog")
    parser.add_argument("--model", help="chat model name (default: $OPENAI_MODEL or gpt-4o-mini)")
    parser.add_argument("--no-llm", action="store_true", help="skip the chat model: evidence only")
    args = parser.parse_args(argv)

    try:
        chat = None if args.no_llm else chat_model_from_env(args.model)
    except ChatModelMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    with ToolbridgeToolkit(args.url, args.api_key, names=[args.tool]) as toolkit:
        try:
            tools = toolkit.get_tools()
        except ToolbridgeError as exc:
            print(f"cannot read the Toolbridge catalog: {exc}", file=sys.stderr)
            return 1
        if not tools:
            print(f"no tool named {args.tool!r} at {args.url}/tools: is the model registered with the "
                  "`champion` alias? (`toolbridge up --demo` registers fin_sentiment)", file=sys.stderr)
            return 1
        assistant = ResearchAssistant(chat, tools[0], NoteRetriever.bundled())
        report = assistant.run(args.question) if chat else assistant.run_without_llm(args.question)
    print(report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
