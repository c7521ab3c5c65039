"""Catalog and OpenAPI build time for 50 and 500 tools (pure, in-process), then memory per loaded model and
per model host on a real `toolbridge up`.

Build: synthetic approved versions with realistic MLflow signatures (tabular 4-30 typed columns, some
optional, some with params; text; tensors), field descriptions and descriptions, turned into ToolSpecs
(`build_tool_spec`), input validators (`compile_validator`, once per version), the tool list (`GET /tools`),
OpenAPI (`build_openapi`, JSON and YAML) and OpenAI tools (`openai_tools`). Baseline in the same run:
FastAPI building the OpenAPI of a hand-written app with one typed route per tool (pydantic body models).

Memory: the three demo models plus a dedicated copy of `credit_risk`, live on `toolbridge up`; the numbers
come from `GET /status` → hosts (RSS added by each load, the worker's RSS) and from the process groups;
baseline: `mlflow models serve` of `credit_risk`, one process group per model.

    .venv/bin/python -m bench.catalog_build [--sizes 50 500] [--repeats 15] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from pydantic import create_model

from bench.stats import ms, ratio, summarize, table
from bridge.toolspec import ModelFacts, ToolSpec, build_tool_spec
from bridge.validation import compile_validator
from registry_sync import ModelVersionRef
from tool_server.api.wire import ModelRefPublic, ToolPublic
from tool_server.exports.openai_tools import openai_tools
from tool_server.exports.openapi_doc import build_openapi, to_yaml

BASE_URL = "http://127.0.0.1:8000"
WORDS = ["income", "debt", "ratio", "age", "tenure", "balance", "score", "region", "segment", "channel",
         "product", "amount", "count", "days", "rate", "limit", "utilisation", "history", "inquiries",
         "default", "churn", "temperature", "pressure", "vibration", "speed"]
COLUMN_TYPES = ("long", "double", "double", "string", "boolean", "datetime", "integer", "float")
BASELINE = "baseline: FastAPI app.openapi(), one typed route per tool"
_PY = {"integer": int, "number": float, "string": str, "boolean": bool}


def _parsed(signature: ModelSignature) -> dict[str, Any]:
    """As MLmodel stores it, parsed: what the registry sync hands the bridge."""
    return {part: json.loads(text) if text else None for part, text in signature.to_dict().items()}


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def synthetic_version(i: int, rng: random.Random) -> tuple[ModelVersionRef, ModelFacts]:
    shape = i % 20
    params = None
    if shape < 12:  # tabular: the common case
        count = rng.randint(4, 30)
        names = [f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{c}" for c in range(count)]
        inputs = Schema([ColSpec(rng.choice(COLUMN_TYPES), n, required=rng.random() > 0.2) for n in names])
        if shape % 4 == 0:
            params = ParamSchema([ParamSpec("threshold", "double", 0.5), ParamSpec("top_k", "long", 3)])
    elif shape < 17:  # text
        names = ["headline"] if shape % 2 else ["subject", "body"]
        inputs = Schema([ColSpec("string", n) for n in names])
    else:  # tensor
        names = ["inputs"]
        inputs = Schema([TensorSpec(np.dtype("float32"), (-1, rng.choice((4, 16, 64))))])
    kind = ("classifier", "regressor", "other")[i % 3]
    classes = tuple(rng.sample(["low", "medium", "high", "very_high", "unknown"], rng.randint(2, 5))) \
        if kind == "classifier" else None
    outputs = Schema([ColSpec("double" if kind == "regressor" else "long")])
    ref = ModelVersionRef(
        name=f"model_{i:04d}", version=str(rng.randint(1, 40)), uri=f"models:/model_{i:04d}/1",
        aliases=("champion",), tool_name=f"model_{i:04d}",
        model_tags={"toolbridge.description": _sentence(rng, 14),
                    "toolbridge.field_descriptions": json.dumps({n: _sentence(rng, 10) for n in names})},
        model_description=" ".join(_sentence(rng, 12) for _ in range(5)),
        version_description=" ".join(_sentence(rng, 12) for _ in range(2)),
        signature=_parsed(ModelSignature(inputs=inputs, outputs=outputs, params=params)),
    )
    return ref, ModelFacts(kind=kind, classes=classes)


def tool_list(specs: list[ToolSpec]) -> bytes:
    """The body of `GET /tools`."""
    return orjson.dumps([
        ToolPublic(name=s.name, description=s.description, kind=s.kind,
                   model=ModelRefPublic(name=s.model_name, version=s.model_version),
                   input_schema=s.input_schema, output_schema=s.output_schema,
                   invoke_url=f"{BASE_URL}/tools/{s.name}/invoke").model_dump()
        for s in specs])


def fastapi_app(specs: list[ToolSpec]) -> FastAPI:
    """Baseline: the glue a user writes by hand, one typed FastAPI route per model."""
    app = FastAPI(title="hand-written tools")
    for spec in specs:
        fields: dict[str, Any] = {}
        required = set(spec.input_schema.get("required", []))
        for name, prop in spec.input_schema["properties"].items():
            kinds = prop.get("type", "string")
            kind = next((k for k in ([kinds] if isinstance(kinds, str) else kinds) if k != "null"), "string")
            annotation: Any = list[Any] if kind == "array" else _PY.get(kind, str)
            fields[name] = (annotation, ...) if name in required else (annotation | None, None)
        body = create_model(f"{spec.name}_input", **fields)

        def invoke(arguments: Any) -> dict[str, Any]:
            return {}

        invoke.__annotations__ = {"arguments": body, "return": dict[str, Any]}  # real types, not strings
        app.post(f"/tools/{spec.name}/invoke", operation_id=spec.name, summary=spec.description[:120])(invoke)
    return app


def fastapi_openapi(app: FastAPI) -> bytes:
    app.openapi_schema = None  # FastAPI caches it: rebuild, as after a catalog change
    return orjson.dumps(app.openapi())


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def build_bench(sizes: list[int], repeats: int) -> None:
    rows = []
    per_tool: dict[str, dict[int, float]] = {}
    for size in sizes:
        rng = random.Random(size)
        versions = [synthetic_version(i, rng) for i in range(size)]
        specs = [build_tool_spec(ref, facts) for ref, facts in versions]
        app = fastapi_app(specs)
        steps: dict[str, Callable[[], Any]] = {
            "ToolSpecs (build_tool_spec)": lambda v=versions: [build_tool_spec(r, f) for r, f in v],
            "input validators (compile_validator)":
                lambda s=specs: [compile_validator(x.input_schema, trusted=True) for x in s],
            "tool list (GET /tools body)": lambda s=specs: tool_list(s),
            "OpenAPI JSON (build_openapi + orjson)": lambda s=specs: orjson.dumps(build_openapi(s, BASE_URL)),
            "OpenAPI YAML (GET /openapi.yaml)": lambda s=specs: to_yaml(build_openapi(s, BASE_URL)),
            "OpenAI tools (openai_tools + orjson)": lambda s=specs: orjson.dumps(openai_tools(s)),
            BASELINE: lambda a=app: fastapi_openapi(a),
        }
        samples = {name: timed(fn, repeats) for name, fn in steps.items()}
        parts = [samples[name] for name in steps if "YAML" not in name and "baseline" not in name]
        samples["whole catalog (all but YAML and baseline)"] = [sum(run) for run in zip(*parts, strict=True)]
        base = summarize(samples[BASELINE]).median
        size_json = len(orjson.dumps(build_openapi(specs, BASE_URL)))
        for name, values in samples.items():
            s = summarize(values)
            per_tool.setdefault(name, {})[size] = s.median / size
            rows.append([size, name, ms(s.median), ms(s.p99), f"{s.median / size * 1e6:.0f}",
                         ratio(s.median, base)])
        print(f"{size} tools: OpenAPI JSON {size_json / 1024:.0f} KiB")
    print(table(["tools", "step", "p50 ms", "p99 ms", "µs per tool", "p50 ÷ FastAPI openapi()"], rows))
    if len(sizes) >= 2:
        low, high = min(sizes), max(sizes)
        print(f"per-tool cost at {high} ÷ at {low} tools (1.00× = linear): " + ", ".join(
            f"{name.split(' (')[0]} {costs[high] / costs[low]:.2f}×" for name, costs in per_tool.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    build_bench(args.sizes, args.repeats)
    if not args.skip_memory:
        from bench.memory import memory_bench

        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            memory_bench(Path(tmp))
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
