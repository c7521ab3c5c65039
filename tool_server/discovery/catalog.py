"""Discovery: the catalog of one moment (a *view*), linted, quarantined, grouped into toolsets, searchable,
with what each key sees cached per catalog version and scope.

A view is rebuilt only when the bridge's catalog changes (the same spec objects mean the same catalog), so at
5,000 tools a request for a scoped key costs a dictionary lookup rather than a filter, a sort and a render.
Lint findings go back to MLflow as the version tag `toolbridge.lint` (through a `LintSink`), only when they
changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bridge.toolspec import TAG_TOOLSETS, ToolSpec
from registry_sync import ModelVersionRef
from tool_server.access.scopes import Principal, may_call
from tool_server.discovery.lint import Finding, blocks, lint_tag_value, lint_tool
from tool_server.discovery.search import EmbeddingRanker, SearchIndex
from tool_server.discovery.settings import DiscoverySettings
from tool_server.discovery.toolsets import Toolset, group_toolsets

__all__ = ["CatalogView", "Discovery", "LintSink", "UnknownToolset"]

log = logging.getLogger(__name__)
_MEMO_LIMIT = 512  # rendered documents kept per view (keys × documents); past it, start afresh


class UnknownToolset(LookupError):
    """A toolset no tool this key may call belongs to."""


class LintSink(Protocol):
    def write_lint(self, name: str, version: str, value: str) -> bool:
        """Set (or, for "", remove) the version tag `toolbridge.lint`, unless it holds `value` already."""
        ...


class CatalogView:
    """The catalog at one version. Immutable but for its caches."""

    def __init__(self, specs: list[ToolSpec], settings: DiscoverySettings,
                 ref_of: Callable[[ToolSpec], ModelVersionRef | None],
                 embeddings: EmbeddingRanker | None = None) -> None:
        self.source = specs  # kept: their identities are this view's version
        self.findings: dict[str, tuple[Finding, ...]] = {}
        self.lint_tags: dict[tuple[str, str], str] = {}
        for spec in specs:
            ref = ref_of(spec)
            found = lint_tool(spec, has_input_example=ref is None or ref.input_example is not None,
                              toolsets_tag=ref.model_tags.get(TAG_TOOLSETS, "") if ref else "",
                              max_chars=settings.description_max_chars)
            self.findings[spec.name] = found
            self.lint_tags[(spec.model_name, spec.model_version)] = lint_tag_value(found)
        quarantine = settings.catalog_policy == "quarantine"
        self.quarantined = frozenset(n for n, f in self.findings.items() if quarantine and blocks(f))
        self.specs = [s for s in specs if s.name not in self.quarantined]
        self.by_name = {s.name: s for s in self.specs}

        def model_tag(spec: ToolSpec, tag: str) -> str | None:
            ref = ref_of(spec)
            return ref.model_tags.get(tag) if ref else None

        self.toolsets = group_toolsets(self.specs, settings.toolset_descriptions, model_tag)
        self._embeddings = embeddings
        self._index: SearchIndex | None = None
        self._visible: dict[frozenset[str], tuple[list[ToolSpec], npt.NDArray[np.bool_]]] = {}
        self._memo: dict[Hashable, Any] = {}

    def same_catalog(self, specs: list[ToolSpec]) -> bool:
        return len(specs) == len(self.source) and all(a is b for a, b in zip(specs, self.source, strict=True))

    def _scoped(self, who: Principal) -> tuple[list[ToolSpec], npt.NDArray[np.bool_]]:
        found = self._visible.get(who.scopes)
        if found is None:
            mask = np.fromiter((may_call(who, s) for s in self.specs), dtype=np.bool_, count=len(self.specs))
            found = ([s for s, ok in zip(self.specs, mask, strict=True) if ok], mask)
            self._visible[who.scopes] = found
        return found

    def visible(self, who: Principal, toolset: str | None = None) -> list[ToolSpec]:
        """The tools this key may call (in `toolset`, if given), sorted by name."""
        specs = self._scoped(who)[0]
        if toolset is None:
            return specs
        chosen: list[ToolSpec] = self.memo(("toolset", who.scopes, toolset),
                                           lambda: [s for s in specs if toolset in s.toolsets])
        return chosen

    def visible_toolsets(self, who: Principal) -> list[tuple[Toolset, int]]:
        """The toolsets this key has tools in, each with the number of those tools."""
        def build() -> list[tuple[Toolset, int]]:
            counts: dict[str, int] = {}
            for spec in self._scoped(who)[0]:
                for name in spec.toolsets:
                    counts[name] = counts.get(name, 0) + 1
            return [(self.toolsets[name], counts[name]) for name in sorted(counts)]
        result: list[tuple[Toolset, int]] = self.memo(("toolsets", who.scopes), build)
        return result

    def toolset(self, who: Principal, name: str) -> Toolset:
        """The toolset, if this key has tools in it; else UnknownToolset (the same whether it exists)."""
        for toolset, _ in self.visible_toolsets(who):
            if toolset.name == name:
                return toolset
        known = ", ".join(t.name for t, _ in self.visible_toolsets(who)) or "none"
        raise UnknownToolset(f"no toolset named {name!r} holds a tool this API key may call; its toolsets: "
                             f"{known} (GET /toolsets lists them)")

    @property
    def index(self) -> SearchIndex:
        if self._index is None:  # once per version: on_catalog_changed builds it right after the sync
            self._index = SearchIndex(self.specs, self._embeddings)
        return self._index

    def search(self, who: Principal, query: str, limit: int, toolset: str | None = None
               ) -> list[tuple[ToolSpec, float]]:
        """The `limit` tools this key may call (in `toolset`) that best match `query`, best first."""
        mask = self._scoped(who)[1]
        if toolset is not None:
            mask = mask & np.fromiter((toolset in s.toolsets for s in self.specs), dtype=np.bool_,
                                      count=len(self.specs))
        return self.index.search(query, limit, mask)

    async def search_async(self, who: Principal, query: str, limit: int, toolset: str | None = None
                           ) -> list[tuple[ToolSpec, float]]:
        """`search` off the event loop when an embedding model must encode the query (milliseconds of numpy,
        seconds if the index is still being built); BM25 alone answers in microseconds, in place."""
        if self._embeddings is None:
            return self.search(who, query, limit, toolset)
        return await asyncio.to_thread(self.search, who, query, limit, toolset)

    def memo(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """`build()` once per view and `key` (e.g. a key's scopes and a document's parameters)."""
        if key not in self._memo:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = build()
        return self._memo[key]

    def report(self) -> list[dict[str, Any]]:
        """The lint findings, per tool with any, for /status."""
        return [{"tool": spec.name, "model": spec.model_name, "version": spec.model_version,
                 "quarantined": spec.name in self.quarantined,
                 "findings": [f.public() for f in self.findings[spec.name]]}
                for spec in self.source if self.findings.get(spec.name)]


class Discovery:
    """The live catalog as agents discover it. `catalog()` is the bridge's; `version()` changes whenever it
    may have (the routing table's identity); `ref_of` gives a spec's registry facts."""

    def __init__(self, settings: DiscoverySettings, catalog: Callable[[], list[ToolSpec]],
                 version: Callable[[], object], ref_of: Callable[[ToolSpec], ModelVersionRef | None],
                 lint_sink: LintSink | None = None) -> None:
        self.settings = settings
        self._catalog, self._version, self._ref_of = catalog, version, ref_of
        self._sink = lint_sink
        path = settings.embeddings_path
        self._embeddings = EmbeddingRanker(path) if path is not None else None
        self._token: object = None
        self._view = CatalogView([], settings, ref_of, self._embeddings)
        self._written: dict[tuple[str, str], str] = {}  # lint tags as last written (or found) in MLflow
        self._writing = asyncio.Lock()

    def view(self) -> CatalogView:
        token = self._version()
        if token is self._token:
            return self._view
        specs = self._catalog()
        if not self._view.same_catalog(specs):
            self._view = CatalogView(specs, self.settings, self._ref_of, self._embeddings)
        self._token = token
        return self._view

    def tools(self) -> list[ToolSpec]:
        """The exported catalog: quarantined tools left out."""
        return self.view().specs

    def tool(self, name: str) -> ToolSpec | None:
        return self.view().by_name.get(name)

    async def on_catalog_changed(self) -> None:
        """A catalog listener (runs after each sync that changed the catalog): build the new version's search
        index off the event loop (~1 s at 5,000 tools, not on an agent's first search), then write the lint
        tags that changed."""
        view = self.view()
        await asyncio.to_thread(lambda: view.index)
        await self.write_lint_tags()

    async def write_lint_tags(self) -> None:
        """Bring each live version's `toolbridge.lint` tag in MLflow up to date; only what changed since the
        last write is written."""
        if self._sink is None:
            return
        async with self._writing:
            pending = {key: value for key, value in self.view().lint_tags.items()
                       if self._written.get(key) != value}
            for (name, version), value in pending.items():
                try:
                    await asyncio.to_thread(self._sink.write_lint, name, version, value)
                    self._written[(name, version)] = value
                except Exception as exc:  # MLflow down or the version gone: tried again after the next change
                    log.warning("could not write the lint tag of %s/%s: %s", name, version, exc)
