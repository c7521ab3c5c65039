"""Text a model makes is data, never instructions (pure): strings in a model's answer and in its host's error
messages lose their control and invisible characters and are capped in length.

Answers stay JSON string fields (the agent reads them as values of `prediction` or `label`); error text is
capped harder, as it is read by the LLM inside our own sentence. Nothing a model returns is ever written into
a tool's description.
"""

from __future__ import annotations

import unicodedata
from typing import Any

__all__ = ["MAX_ERROR_CHARS", "MAX_STRING_CHARS", "as_data", "plain_text"]

MAX_STRING_CHARS = 8192  # per string of an answer
MAX_ERROR_CHARS = 300  # of a model host's error message quoted in ours
_KEPT = frozenset("\n\t")


def plain_text(text: str, limit: int = MAX_STRING_CHARS) -> str:
    """`text` without control, format (zero-width, bidirectional) or private-use characters, at most `limit`
    characters (the cut says how much was left out)."""
    if text.isascii() and text.isprintable():
        cleaned = text
    else:
        cleaned = "".join(c for c in text if c in _KEPT or unicodedata.category(c) not in
                          ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"))
    if len(cleaned) > limit:
        return f"{cleaned[:limit]}… ({len(cleaned) - limit} more characters left out)"
    return cleaned


def as_data(value: Any) -> Any:
    """A model's answer with every string (keys included) made plain text."""
    if isinstance(value, str):
        return plain_text(value)
    if isinstance(value, dict):
        return {plain_text(k) if isinstance(k, str) else k: as_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_data(v) for v in value]
    return value
