"""The bundled research notes and a small TF-IDF retriever over them, plus the `search_notes` LangChain tool.

A note is a Markdown file with a front matter block (``title`` = the news headline, ``date``, ``source``)
and a short summary as body. All companies in the notes are fictional.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["NOTES_DIR", "Note", "NoteRetriever", "load_notes", "search_notes_tool"]

NOTES_DIR = Path(__file__).resolve().parent / "notes"
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
                   "it", "its", "of", "on", "or", "the", "to", "was", "what", "which", "who", "will", "with"})


def _terms(text: str) -> list[str]:
    """Lower-case words with a crude stem ("moved", "moves", "move" → "mov"), so a question in everyday words
    finds notes written in past tense; a real system would use embeddings."""
    terms = []
    for word in _WORD.findall(text.lower()):
        if word in _STOP:
            continue
        for suffix in ("ing", "ed", "es", "s", "e"):
            if len(word) > len(suffix) + 2 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        terms.append(word)
    return terms


@dataclass(frozen=True)
class Note:
    id: str  # the file name without .md
    title: str  # the headline, as a news wire would write it
    date: date
    source: str
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "date": self.date.isoformat(), "headline": self.title, "source": self.source,
                "summary": self.summary}


def _parse(path: Path) -> Note:
    text = path.read_text(encoding="utf-8")
    _, front, body = text.split("---", 2)
    pairs = (line.partition(":") for line in front.splitlines())
    meta = {key.strip(): value.strip() for key, _, value in pairs}
    try:
        return Note(id=path.stem, title=meta["title"], date=date.fromisoformat(meta["date"]),
                    source=meta.get("source", ""), summary=" ".join(body.split()))
    except KeyError as exc:
        raise ValueError(f"note {path} has no {exc.args[0]!r} in its front matter") from exc


def load_notes(directory: Path = NOTES_DIR) -> list[Note]:
    """Every ``*.md`` note in `directory`, newest first."""
    notes = [_parse(p) for p in sorted(directory.glob("*.md"))]
    if not notes:
        raise FileNotFoundError(f"no research notes (*.md) in {directory}")
    return sorted(notes, key=lambda n: n.date, reverse=True)


class NoteRetriever:
    """TF-IDF over headline + summary; `search` ranks by cosine similarity, newer first on ties."""

    def __init__(self, notes: Sequence[Note]) -> None:
        self.notes = list(notes)
        # The headline counts twice: it names the event, the summary mostly explains it.
        self._vectorizer = TfidfVectorizer(analyzer=_terms, sublinear_tf=True)
        texts = [f"{n.title} {n.title} {n.summary}" for n in self.notes]
        self._matrix = self._vectorizer.fit_transform(texts)

    @classmethod
    def bundled(cls) -> NoteRetriever:
        return cls(load_notes())

    def search(self, query: str, k: int = 5) -> list[Note]:
        """Up to `k` notes sharing at least one term with `query`, best first."""
        scores = (self._matrix @ self._vectorizer.transform([query]).T).toarray().ravel()
        order = sorted(range(len(self.notes)), key=lambda i: (-scores[i], -self.notes[i].date.toordinal()))
        return [self.notes[i] for i in order[:k] if scores[i] > 0]

    def find(self, headline: str) -> Note | None:
        """The note whose headline this is (the LLM may change case or spacing)."""
        wanted = " ".join(headline.lower().split())
        return next((n for n in self.notes if " ".join(n.title.lower().split()) == wanted), None)


class SearchNotesArgs(BaseModel):
    query: str = Field(description="What to look for, in plain words, e.g. 'events that moved the stock'.")
    k: int = Field(default=5, ge=1, le=10, description="How many notes to return (1-10).")


def search_notes_tool(retriever: NoteRetriever) -> BaseTool:
    """The retriever as a LangChain tool returning notes as ``{id, date, headline, source, summary}``."""

    def search_notes(query: str, k: int = 5) -> list[dict[str, Any]]:
        return [note.as_dict() for note in retriever.search(query, k)]

    return StructuredTool.from_function(
        func=search_notes, name="search_notes", args_schema=SearchNotesArgs,
        description="Search the research notes about the company (news, filings, broker research). Returns "
                    "the best-matching notes, each with its date, headline, source and a short summary.")
