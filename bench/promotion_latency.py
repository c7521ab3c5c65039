"""Promotion latency: `champion` alias set in MLflow → first successful tool call answered by that version.

Two set-ups, each a real `toolbridge up`:
- webhooks: the embedded default (no --mlflow-uri: `toolbridge up` registers MLflow's webhook itself), with
  TOOLBRIDGE_POLL_INTERVAL=300 so that only the webhook can explain a change within seconds;
- polling only: `toolbridge up --mlflow-uri` on an external MLflow, TOOLBRIDGE_POLL_INTERVAL=1, no webhook.

Three promotions in each, repeated:
- new version: `champion` moves to a version of `credit_risk` not loaded yet; it loads into the running
  shared host (and is smoke-tested with its input example) before it answers;
- cold dedicated host: `champion` set on a model tagged `toolbridge.isolation=dedicated`: a host process
  starts;
- warm rollback: `champion` moves back to the previous version, still loaded (TOOLBRIDGE_KEEP_WARM, 300 s).

Baseline in the same run: the same promotion with `mlflow models serve -m models:/credit_risk@champion`,
which resolves the alias once, at start: a restart, timed from stop to its first answer.

    .venv/bin/python -m bench.promotion_latency [--repeats 5] [--dedicated 3] [--baseline 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from mlflow import MlflowClient

from bench.servers import MlflowModelsServe, ToolbridgeUp, wait_for
from bench.stats import ms, ratio, summarize, table
from bridge.host_client import HostClient
from bridge.hosts import HostProcess, free_port
from registry_sync.mlflow_source import MlflowRegistry
from tool_server.demo import register_demo_models
from tool_server.ops.embedded_mlflow import EmbeddedMlflow

MODEL = "credit_risk"
ROW = {"age": 41, "annual_income": 58000.0, "debt_to_income": 0.31, "late_payments_12m": 1,
       "employment_years": 4.5}
PROBE_EVERY = 0.02  # seconds between two probe calls
TIMEOUT = 120.0
NEW, DEDICATED, ROLLBACK = "new version → running shared host", "new model → cold dedicated host", \
    "warm rollback"
TARGETS = {NEW: 1.0, DEDICATED: 5.0, ROLLBACK: 0.3}


def first_answer(client: httpx.Client, tool: str, version: str, started: float) -> float:
    """Seconds from `started` until the tool answers a call with `version` (bounded by TIMEOUT)."""
    while time.perf_counter() - started < TIMEOUT:
        try:
            response = client.post(f"/tools/{tool}/invoke", json=ROW, timeout=10.0)
            if response.status_code == 200 and response.headers.get("x-toolbridge-model-version") == version:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(PROBE_EVERY)
    raise RuntimeError(f"tool {tool} did not answer with version {version} within {TIMEOUT:.0f}s")


def promote(mlflow: MlflowClient, client: httpx.Client, model: str, version: str) -> float:
    started = time.perf_counter()
    mlflow.set_registered_model_alias(model, "champion", version)
    return first_answer(client, model, version, started)


def load_seconds(tb: ToolbridgeUp, key: str) -> float | None:
    for host in tb.status()["hosts"]:
        for model in host.get("models", []):
            if model["key"] == key:
                return float(model["load_seconds"])
    return None


def run_setup(label: str, tb: ToolbridgeUp, uri: str, args: argparse.Namespace) -> dict[str, Any]:
    """The three promotions on one running `toolbridge up`; seconds per repetition, and host load times."""
    register_demo_models(uri, models=[MODEL])
    wait_for(lambda: MODEL in tb.tools(), TIMEOUT, f"{label}: tool {MODEL} live")
    mlflow = MlflowClient(tracking_uri=uri, registry_uri=uri)
    first = mlflow.get_model_version_by_alias(MODEL, "champion")
    model_tags = mlflow.get_registered_model(MODEL).tags
    # New versions share the first one's artifacts: as costly to load, and no training in the timed part.
    same = {"source": f"models:/{MODEL}/{first.version}"}
    versions = [mlflow.create_model_version(MODEL, **same).version for _ in range(args.repeats)]
    dedicated = [f"{MODEL}_dedicated_{i}" for i in range(args.dedicated)]
    for name in dedicated:
        mlflow.create_registered_model(name, tags={**model_tags, "toolbridge.isolation": "dedicated"})
        mlflow.create_model_version(name, **same)
    time.sleep(args.settle)  # let the passes these creations cause finish
    results: dict[str, list[float]] = {NEW: [], DEDICATED: [], ROLLBACK: []}
    loads: dict[str, list[float]] = {NEW: [], DEDICATED: []}
    with tb.client() as client:
        for version in versions:
            results[NEW].append(promote(mlflow, client, MODEL, str(version)))
            if (seconds := load_seconds(tb, f"{MODEL}/{version}")) is not None:
                loads[NEW].append(seconds)
            time.sleep(args.settle)
        warm = [str(first.version), *map(str, versions)][-2:]
        for i in range(args.repeats):  # back and forth between the last two versions, both loaded
            results[ROLLBACK].append(promote(mlflow, client, MODEL, warm[i % 2]))
            time.sleep(args.settle)
        for name in dedicated:
            results[DEDICATED].append(promote(mlflow, client, name, "1"))
            if (seconds := load_seconds(tb, f"{name}/1")) is not None:
                loads[DEDICATED].append(seconds)
            time.sleep(args.settle)
    for kind, values in results.items():
        print(f"  {label}, {kind}: " + ", ".join(f"{v:.2f}" for v in values) + " s")
    return {"results": results, "loads": loads}


def breakdown(label: str, uri: str, log_dir: Path, version: str) -> dict[str, float]:
    """The parts of a promotion, timed alone with Toolbridge's own code against the same MLflow."""
    registry = MlflowRegistry(uri)
    parts = {
        "registry list pass (search_registered_models)": summarize(
            [timed(registry.list_models) for _ in range(10)]).median,
        "version fetch (version + MLmodel + input example)": summarize(
            [timed(lambda: registry.fetch_version(MODEL, version)) for _ in range(10)]).median,
    }
    host = HostProcess(f"bench-{label.split()[0]}", log_dir, {"MLFLOW_TRACKING_URI": uri})

    async def host_parts() -> None:
        client: HostClient | None = None
        try:
            parts["model host process start (bentoml serve → /readyz)"] = await atimed(host.start(TIMEOUT))
            client = HostClient(host.base_url)
            parts["first model load in a fresh host (imports its flavor)"] = await atimed(
                client.load("bench/1", f"models:/{MODEL}/1"))
            parts["model load in a warm host"] = await atimed(
                client.load("bench/2", f"models:/{MODEL}/{version}"))
        finally:
            if client is not None:
                await client.close()
            host.stop()

    asyncio.run(host_parts())
    return parts


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def atimed(awaitable: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await awaitable
    return time.perf_counter() - started


def webhooks_setup(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    tb = ToolbridgeUp(tmp / "webhooks", [], {"TOOLBRIDGE_POLL_INTERVAL": "300",
                                             "TOOLBRIDGE_MLFLOW_PORT": str(free_port())})
    try:
        tb.spawn()
        tb.wait_healthy()
        uri = tb.status()["sync"]["mlflow_uri"]
        print(f"webhooks: toolbridge {tb.url}, embedded MLflow {uri}, polling every 300 s")
        setup = run_setup("webhooks", tb, uri, args)
        setup["parts"] = breakdown("webhooks", uri, tmp / "logs", str(args.repeats + 1))
        return setup
    finally:
        tb.stop()


def polling_setup(tmp: Path, args: argparse.Namespace) -> tuple[dict[str, Any], list[float]]:
    mlflow_server = EmbeddedMlflow(tmp / "external-mlflow", free_port())
    mlflow_server.start()
    tb = ToolbridgeUp(tmp / "polling", ["--mlflow-uri", mlflow_server.uri], {"TOOLBRIDGE_POLL_INTERVAL": "1"})
    try:
        tb.spawn()
        tb.wait_healthy()
        print(f"polling: toolbridge {tb.url}, external MLflow {mlflow_server.uri}, polling every 1 s, "
              "no webhook")
        setup = run_setup("polling", tb, mlflow_server.uri, args)
        setup["parts"] = breakdown("polling", mlflow_server.uri, tmp / "logs", str(args.repeats + 1))
        tb.stop()  # the baseline runs alone
        return setup, serve_restarts(mlflow_server.uri, tmp / "logs", args.baseline)
    finally:
        tb.stop()
        mlflow_server.stop()


def serve_restarts(uri: str, log_dir: Path, repeats: int) -> list[float]:
    """`mlflow models serve` of `models:/credit_risk@champion`: stop, start → first answer, per promotion."""
    seconds = []
    for _ in range(repeats):
        serve = MlflowModelsServe(f"models:/{MODEL}@champion", uri, log_dir)
        started = time.perf_counter()
        try:
            serve.spawn()

            def answered(serve: MlflowModelsServe = serve) -> bool:
                serve.check_alive()
                return httpx.post(f"{serve.url}/invocations", json={"dataframe_records": [ROW]},
                                  timeout=5.0).status_code == 200

            wait_for(answered, TIMEOUT, "mlflow models serve's first answer", interval=PROBE_EVERY)
            seconds.append(time.perf_counter() - started)
        finally:
            serve.stop()
    print("  baseline, mlflow models serve restart: " + ", ".join(f"{v:.2f}" for v in seconds) + " s")
    return seconds


def report(setups: dict[str, dict[str, Any]], baseline: list[float]) -> None:
    base = summarize(baseline).median if baseline else 0.0
    rows = []
    for label, setup in setups.items():
        for kind, values in setup["results"].items():
            s = summarize(values)
            target = TARGETS[kind]
            loads = setup["loads"].get(kind)
            met = "met" if s.median <= target else "MISSED"
            verdict = f"≤ {target:g} s: {met} ({s.median / target:.1f}×)"
            rows.append([label, kind, len(values), ms(s.median), ms(s.p99),
                         ms(summarize(loads).median) if loads else "—", ratio(s.median, base),
                         verdict if label == "webhooks" else "—"])
    if baseline:
        s = summarize(baseline)
        rows.append(["—", "mlflow models serve restart (baseline)", len(baseline), ms(s.median), ms(s.p99),
                     "—", "1.00×", "—"])
    print(table(["sync", "promotion", "n", "p50 ms", "p99 ms", "host load p50 ms", "p50 ÷ serve restart",
                 "target (webhooks, p50)"], rows))
    print("\nparts, timed alone on the same servers (median of 10 for MLflow reads, one host start):")
    labels = list(setups)
    parts = [[name, *(ms(setups[label]["parts"][name]) for label in labels)]
             for name in setups[labels[0]]["parts"]]
    print(table(["part", *(f"{label} ms" for label in labels)], parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="new versions, and rollbacks, per set-up")
    parser.add_argument("--dedicated", type=int, default=3, help="dedicated models (cold hosts) per set-up")
    parser.add_argument("--baseline", type=int, default=3, help="mlflow models serve restarts")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between two promotions")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-promotion-") as tmp_name:
        tmp = Path(tmp_name)
        webhooks = webhooks_setup(tmp, args)
        polling, baseline = polling_setup(tmp, args)
    report({"webhooks": webhooks, "polling (1 s)": polling}, baseline)
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
