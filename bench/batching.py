"""Adaptive batching in the model host, on vs off, and the cost of the host's input validation; one run.

Two real `toolbridge up --mlflow-uri` on one MLflow, identical but for `TOOLBRIDGE_HOST_BATCHING` (1 / 0),
each with its own model host serving the `credit_risk` demo (sklearn pipeline, 5 typed columns). Every way
scores the same sequence of real applicants, one row per call:

- tool calls, `POST /tools/credit_risk/invoke` (tool server → model host), batching on / off;
- the model host's own `POST /v1/predict` (what the tool server calls), batching on / off.

Sequential latency (one keep-alive client, interleaved rounds) shows what batching costs a lone call;
throughput with concurrent clients (threads, one keep-alive client each, interleaved rounds) shows what it
buys; the host's own counters say how many calls each batch merged. In-process: what checking each row with
the version's pydantic models costs per call (`PayloadValidator.validate`, `ModelStore.predict` with and
without it), beside the tool server's jsonschema check of the same call, and the vectorised one-row DataFrame
build (`loader._frame`) against the former one.

    .venv/bin/python -m bench.batching [--calls 1000] [--warmup 100] [--rounds 5] [--clients 16]
        [--duration 24] [--rounds-load 3] [--rows 256] [--checks 5000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd

from bench.call_latency import (
    Load,
    applicant_rows,
    http_way,
    interleaved_throughput,
    latency,
    parsed_signature,
)
from bench.servers import ToolbridgeUp, wait_for
from bench.stats import add_call_load_arguments, ms, ratio, summarize, table
from bridge.hosts import free_port
from bridge.model_host.loader import _NUMPY_DTYPES, ModelStore, _frame
from bridge.model_host.payload import validator_for
from bridge.schema import input_schema, to_model_input
from bridge.validation import compile_validator
from tool_server.demo import register_demo_models
from tool_server.ops.embedded_mlflow import EmbeddedMlflow

MODEL, VERSION = "credit_risk", "1"
KEY, URI = f"{MODEL}/{VERSION}", f"models:/{MODEL}/{VERSION}"
TOOL_ON, TOOL_OFF, HOST_ON, HOST_OFF = ("tool call, batching on", "tool call, batching off",
                                        "host /v1/predict, batching on", "host /v1/predict, batching off")
PAIRS = ((TOOL_ON, TOOL_OFF), (HOST_ON, HOST_OFF))


def toolbridges(tmp: Path, uri: str) -> list[ToolbridgeUp]:
    """Batching on, then off; the bench measures the model path, so no rate limit gets in the way."""
    return [ToolbridgeUp(tmp / name, ["--mlflow-uri", uri], {"TOOLBRIDGE_RATE_LIMIT_PER_MINUTE": "100000000",
                                                          "TOOLBRIDGE_HOST_BATCHING": flag})
            for name, flag in (("on", "1"), ("off", "0"))]


def wait_live(server: ToolbridgeUp) -> None:
    server.wait_healthy()
    wait_for(lambda: MODEL in server.tools(), 240, f"tool {MODEL} live on {server.url}")


def host_of(toolbridge: ToolbridgeUp) -> dict[str, Any]:
    host: dict[str, Any] = next(h for h in toolbridge.status()["hosts"]
                                if any(m["key"] == KEY for m in h.get("models", [])))
    return host


def batching_stats(host_url: str) -> dict[str, int]:
    return dict(httpx.post(f"{host_url}/v1/models/list", json={}, timeout=30).json()["batching"])


def per_call(fn: Callable[[], Any], calls: int, rounds: int = 5) -> list[float]:
    samples = []
    for _ in range(rounds):
        for _ in range(calls // rounds):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
    return samples


def former_frame(records: list[dict[str, Any]], columns: list[dict[str, Any]]) -> pd.DataFrame:
    """The baseline: `loader._frame` before it was vectorised (from_records, then isna/astype per column)."""
    names = [c["name"] for c in columns if "name" in c] or None
    frame = pd.DataFrame.from_records(records, columns=names)
    for column in columns:
        dtype = _NUMPY_DTYPES.get(str(column.get("type")))
        name = column.get("name")
        if dtype is None or name not in frame:
            continue
        if frame[name].isna().any() and dtype.startswith("int"):
            dtype = "float64"
        frame[name] = frame[name].astype(dtype)
    return frame


def validation_cost(store: ModelStore, signature: dict[str, Any], rows: list[dict[str, Any]],
                    checks: int) -> None:
    """In-process: the per-call price of the host's pydantic check, beside the tool server's jsonschema
    check."""
    checked = store.get(KEY)
    assert checked.validator is not None
    unchecked = ModelStore()
    unchecked.load(KEY, URI).validator = None
    payloads = [to_model_input(signature, row) for row in rows]
    validator, jsonschema_check = checked.validator, compile_validator(input_schema(signature))
    built = per_call(lambda: validator_for(signature, KEY), 50)
    counter = iter(range(10**12))

    def cycle(fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], Any]:
        return lambda: fn(items[next(counter) % len(items)])

    predicts = max(50, checks // 10)
    columns = checked.columns
    records = [payload["records"] for payload in payloads]
    ways = {  # name → (one call, calls per round)
        "one-row DataFrame, `loader._frame` (vectorised)": (cycle(lambda r: _frame(r, columns), records),
                                                            checks),
        "one-row DataFrame, former `_frame` (baseline)": (cycle(lambda r: former_frame(r, columns), records),
                                                          checks),
        "pydantic check, host (PayloadValidator.validate)": (cycle(validator.validate, payloads), checks),
        "jsonschema check, tool server (InputValidator.validate)": (cycle(jsonschema_check.validate, rows),
                                                                    checks),
        "ModelStore.predict with the check": (cycle(lambda p: store.predict(KEY, p), payloads), predicts),
        "ModelStore.predict without it": (cycle(lambda p: unchecked.predict(KEY, p), payloads), predicts),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(5):  # interleaved rounds
        for name, (fn, calls) in ways.items():
            samples[name] += per_call(fn, calls, 1)
    s = {name: summarize(v) for name, v in samples.items()}
    with_check, without = s["ModelStore.predict with the check"], s["ModelStore.predict without it"]
    frame, former = (s[name].median for name in list(s)[:2])
    print(table(["in-process, per call", "p50 µs", "p99 µs", "n"],
                [[name, f"{x.median * 1e6:.1f}", f"{x.p99 * 1e6:.1f}", x.n] for name, x in s.items()]))
    print(f"the check adds {(with_check.median - without.median) * 1e6:.0f} µs to ModelStore.predict's p50 "
          f"({ratio(with_check.median, without.median)}); building the version's models at load: "
          f"{ms(summarize(built).median)} ms p50; the vectorised DataFrame build is {ratio(frame, former)} "
          "the former one's p50")


def report_latency(samples: dict[str, list[float]]) -> None:
    s = {name: summarize(values) for name, values in samples.items()}
    rows = [[name, ms(x.median), ms(x.p99),
             ratio(x.median, s[off].median) if name == on else "1.00×"]
            for on, off in PAIRS for name, x in ((on, s[on]), (off, s[off]))]
    print(table(["way (sequential, one client)", "p50 ms", "p99 ms", "p50 on ÷ off"], rows))
    for on, off in PAIRS:
        print(f"{on}: lone call p50 {(s[on].median - s[off].median) * 1000:+.2f} ms against batching off")


def report_throughput(loads: dict[str, Load], stats: dict[str, dict[str, int]]) -> None:
    rows = []
    for on, off in PAIRS:
        for name in (on, off):
            load, x = loads[name], summarize(loads[name].latencies)
            spread = f"{min(load.rates):.0f}–{max(load.rates):.0f}"
            rows.append([name, f"{load.rate:.0f}", spread, ratio(load.rate, loads[off].rate), ms(x.median),
                         ms(x.p99), load.errors])
    print(table(["way (concurrent clients)", "calls/s", "calls/s per round", "÷ batching off", "p50 ms",
                 "p99 ms", "errors"], rows))
    for name, delta in stats.items():
        per_batch = delta["calls"] / delta["batches"] if delta["batches"] else 0.0
        print(f"host with batching on, during the {name} load: {delta['calls']} calls in {delta['batches']} "
              f"batches ({per_batch:.1f} calls per batch, {delta['merged_batches']} merged), largest so far "
              f"{delta['largest_batch']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_call_load_arguments(parser, calls=1000, warmup=100, duration=24.0)
    parser.add_argument("--checks", type=int, default=5000, help="in-process checks per way and round")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp_name:
        tmp = Path(tmp_name)
        mlflow_server = EmbeddedMlflow(tmp / "mlflow-state", free_port())
        mlflow_server.start()
        servers: list[ToolbridgeUp] = []
        try:
            uri = mlflow_server.uri
            register_demo_models(uri, models=[MODEL])
            on, off = servers = toolbridges(tmp, uri)
            for server in servers:
                server.spawn()
            for server in servers:
                wait_live(server)
            host_on, host_off = host_of(on), host_of(off)
            print(f"servers up: batching on {on.url} (host {host_on['url']}), off {off.url} "
                  f"(host {host_off['url']})")
            mlflow.set_tracking_uri(uri)
            store = ModelStore()
            signature = parsed_signature(store.load(KEY, URI).pyfunc)
            rows = applicant_rows(args.rows)
            print(f"\nthe host's input check, in-process ({args.checks} checks per way and round, 5 "
                  "interleaved rounds)")
            validation_cost(store, signature, rows, args.checks)
            bodies = [{"key": KEY, "payload": to_model_input(signature, row), "uri": URI} for row in rows]
            ways = [http_way(TOOL_ON, on.url, f"/tools/{MODEL}/invoke", rows, on.auth),
                    http_way(TOOL_OFF, off.url, f"/tools/{MODEL}/invoke", rows, off.auth),
                    http_way(HOST_ON, host_on["url"], "/v1/predict", bodies),
                    http_way(HOST_OFF, host_off["url"], "/v1/predict", bodies)]
            print(f"\nlatency: {args.calls} sequential single-row calls per way after {args.warmup} warm-up, "
                  f"{args.rounds} interleaved rounds")
            report_latency(latency(ways, args.calls, args.warmup, args.rounds))
            print(f"\nthroughput: {args.clients} concurrent clients, {args.duration:.0f} s per way in "
                  f"{args.rounds_load} interleaved rounds")
            loads: dict[str, Load] = {}
            stats: dict[str, dict[str, int]] = {}
            for on_way, off_way in zip(ways[::2], ways[1::2], strict=True):
                before = batching_stats(host_on["url"])
                loads.update(interleaved_throughput([on_way, off_way], args.clients, args.duration,
                                                    args.rounds_load))
                after = batching_stats(host_on["url"])
                stats[on_way.name] = {k: after[k] - before[k] for k in ("calls", "batches", "merged_batches")}
                stats[on_way.name]["largest_batch"] = after["largest_batch"]
            report_throughput(loads, stats)
        finally:
            for server in servers:
                server.stop()
            mlflow_server.stop()
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
