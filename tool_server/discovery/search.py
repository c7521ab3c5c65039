"""Tool search: BM25 (bm25s) over each tool's name, description, field names and descriptions, output labels
and toolsets; per caller through a mask of the tools it may call. No model download, ever.

An optional embedding ranker (TOOLBRIDGE_EMBEDDINGS=sentence-transformers:<local folder>, run in numpy by
sentence_encoder.py) blends its cosine similarity with the normalised BM25 score.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import numpy.typing as npt

from bridge.toolspec import ToolSpec
from tool_server.discovery.stemmer import stem

__all__ = ["EMBEDDING_WEIGHT", "EmbeddingRanker", "SearchIndex", "embedding_text", "tokens", "tool_text"]

log = logging.getLogger(__name__)

# Words that say nothing about which tool fits (English, plus what every tool description repeats).
_STOPWORDS = frozenset(re.findall(r"\w+", """
a an and are as at be by can for from has have how i in into is it its me my of on or our that the their
this to was we what when which who will with you your find tool tools model models mlflow version returns
predict predicts prediction given use using based per one"""))
_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
# Repetitions weight a field in BM25: a word of the name counts as much as three of the description.
_NAME_WEIGHT, _TOOLSET_WEIGHT, _LABEL_WEIGHT = 3, 2, 1
EMBEDDING_WEIGHT = 0.7  # of the cosine similarity; picked among 0.3, 0.5, 0.7 (bench/README.md, "Discovery")
_PREFIX = 4  # letters of a word's prefix token


def tokens(text: str) -> list[str]:
    """Lower-cased, split on anything not a letter or digit (snake_case and camelCase too), Porter-stemmed;
    a longer word also gives its first letters (`japa~`): `japanese` then meets `japan`, `electricity`
    `electric` (on bench/discovery.py's queries: recall@5 0.815 → 0.84)."""
    found = []
    for word in _WORD.findall(_CAMEL.sub(" ", text).lower()):
        if word not in _STOPWORDS:
            found.append(stem(word))
            if len(word) > _PREFIX:
                found.append(word[:_PREFIX] + "~")
    return found


def _labels(spec: ToolSpec) -> list[str]:
    props = spec.output_schema.get("properties") or {}
    label = props.get("label") or {}
    labels = [str(v) for v in label.get("enum") or []]
    labels += list((props.get("probabilities") or {}).get("properties") or {})
    return list(dict.fromkeys(labels))


def _description(spec: ToolSpec) -> str:
    return spec.description.rsplit("\n\n(MLflow model ", 1)[0]  # the provenance line is noise


def tool_text(spec: ToolSpec) -> list[str]:
    """The tokens a tool is found by, weighted by repetition."""
    words = tokens(spec.name) * _NAME_WEIGHT
    words += tokens(" ".join(spec.toolsets)) * _TOOLSET_WEIGHT
    words += tokens(_description(spec))
    for name, schema in (spec.input_schema.get("properties") or {}).items():
        words += tokens(name) + tokens(str(schema.get("description", "")))
    words += tokens(" ".join(_labels(spec))) * _LABEL_WEIGHT
    return words


def embedding_text(spec: ToolSpec) -> str:
    """What a tool's vector is computed from: its name as words and its description."""
    return f"{' '.join(_WORD.findall(_CAMEL.sub(' ', spec.name).lower()))}: {_description(spec)}"


class EmbeddingRanker:
    """Unit vectors from a local sentence-transformers BERT folder (never downloaded), run in numpy. A tool's
    vector is kept while its text is unchanged: a sync that changes one tool encodes one text."""

    def __init__(self, folder: Path) -> None:
        from tool_server.discovery.sentence_encoder import SentenceEncoder

        self._encoder = SentenceEncoder(folder)
        self._known: dict[str, npt.NDArray[np.float32]] = {}

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._encoder.encode(texts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # cosine, even without Normalize
        unit: npt.NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def encode_tools(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        new = [text for text in dict.fromkeys(texts) if text not in self._known]
        known = {text: self._known[text] for text in texts if text in self._known}
        if new:
            known.update(zip(new, self.encode(new), strict=True))
        self._known = known  # only the current catalog's texts
        return np.stack([known[text] for text in texts])


class SearchIndex:
    """One index per catalog version; `search` ranks for one caller's mask of callable tools."""

    def __init__(self, specs: Sequence[ToolSpec], embeddings: EmbeddingRanker | None = None,
                 embedding_weight: float = EMBEDDING_WEIGHT) -> None:
        self.specs = list(specs)
        corpus = [tool_text(spec) or ["_"] for spec in self.specs]  # bm25s needs a token per document
        self._bm25 = bm25s.BM25()
        if corpus:
            self._bm25.index(corpus, show_progress=False)
        self._vocab = set(self._bm25.vocab_dict) if corpus else set()
        self._embeddings, self._weight = embeddings, embedding_weight
        self._vectors = (embeddings.encode_tools([embedding_text(s) for s in self.specs])
                         if embeddings is not None and self.specs else None)

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """Relevance of every tool to `query`: BM25 (0 = no shared word), or with an embedding ranker
        (1 - w) × BM25 / the best BM25 + w × cosine similarity."""
        words = [w for w in tokens(query) if w in self._vocab]
        lexical = (np.asarray(self._bm25.get_scores(words), dtype=np.float32) if words
                   else np.zeros(len(self.specs), dtype=np.float32))
        if self._vectors is None or self._embeddings is None:
            return lexical
        top = float(lexical.max()) if lexical.size else 0.0
        normalised = lexical / top if top > 0 else lexical
        similarity = self._vectors @ self._embeddings.encode([query])[0]
        blended: npt.NDArray[np.float32] = ((1 - self._weight) * normalised
                                            + self._weight * similarity).astype(np.float32)
        return blended

    def search(self, query: str, limit: int, allowed: npt.NDArray[np.bool_] | None = None
               ) -> list[tuple[ToolSpec, float]]:
        """The best `limit` tools among `allowed` (a mask over `specs`), best first; only tools that match."""
        if not self.specs:
            return []
        scores = self.scores(query)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if candidates.size > limit:
            candidates = candidates[np.argpartition(-scores[candidates], limit - 1)[:limit]]
        ranked = sorted(candidates.tolist(), key=lambda i: (-float(scores[i]), self.specs[i].name))
        return [(self.specs[i], float(scores[i])) for i in ranked]
