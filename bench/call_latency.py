"""One tabular model (`credit_risk`), served four ways and measured in one run: single-row call latency
(sequential, keep-alive, one client) and throughput (16 concurrent clients, one keep-alive client each).

Every way scores the same sequence of real applicants (complete rows of
tool_server/demo/data/credit_applicants.csv), one row per call,
so no response cache can make one of them look faster.

1. a Toolbridge tool call, `POST /tools/credit_risk/invoke`, on a real `toolbridge up --mlflow-uri`, with one
   tool-server process and with `--workers 2`;
2. direct BentoML calls: the model host's own `POST /v1/predict` (what the tool server calls), and a plain
   one-model BentoML service (`bench/plain_bento_service.py`);
3. `mlflow models serve -m models:/credit_risk/1 --env-manager local`, `POST /invocations`;
4. in-process `predict` in this process: the pyfunc (the floor), and the model host's own code path.

Latency rounds interleave the ways, so background load on the machine hits them alike. Throughput is measured
with `wrk -t2 -c16` (a load generator outside Python, bench/wrk.py) on the HTTP ways, in interleaved rounds;
`--load threads` uses the former Python client threads instead (and measures the in-process ways too).

    .venv/bin/python -m bench.call_latency [--calls 2000] [--warmup 200] [--rounds 5] [--clients 16]
        [--duration 30] [--rounds-load 3] [--rows 256] [--skip-throughput] [--load wrk|threads]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mlflow.pyfunc
import orjson
import pandas as pd

from bench.servers import AdminKeyAuth, MlflowModelsServe, PlainBento, ToolbridgeUp, tree_memory, wait_for
from bench.stats import add_call_load_arguments, mib, ms, ratio, summarize, table
from bench.wrk import require_wrk, run_wrk
from bridge.hosts import free_port
from bridge.model_host.loader import ModelStore
from bridge.schema import to_model_input
from tool_server.demo import CREDIT_FEATURES, DATA_DIR, register_demo_models
from tool_server.ops.embedded_mlflow import EmbeddedMlflow

MODEL, VERSION = "credit_risk", "1"
KEY, URI = f"{MODEL}/{VERSION}", f"models:/{MODEL}/{VERSION}"
TOOL, TOOL2, HOST, PLAIN, SERVE, FLOOR, HOST_CODE = (
    "Toolbridge tool call", "Toolbridge tool call, --workers 2", "BentoML model host /v1/predict",
    "plain BentoML service", "mlflow models serve", "in-process pyfunc.predict (floor)",
    "in-process model-host code path")
# Calls for the benches' own admin key, unlimited: the rate limit is not what is measured.
UNLIMITED = {"TOOLBRIDGE_RATE_LIMIT_PER_MINUTE": "1e12"}

Call = Callable[[], None]


@dataclass
class Way:
    name: str
    connect: Callable[[], tuple[Call, Callable[[], None]]]  # → (one call, close); one per client thread
    http: tuple[str, str, list[bytes], dict[str, str]] | None = None  # url, path, bodies, headers: for wrk


def http_way(name: str, url: str, path: str, bodies: list[Any], auth: httpx.Auth | None = None) -> Way:
    contents, headers = [orjson.dumps(body) for body in bodies], {"content-type": "application/json"}

    def connect() -> tuple[Call, Callable[[], None]]:
        client = httpx.Client(base_url=url, auth=auth, timeout=30.0)  # one pooled keep-alive connection
        rows = itertools.cycle(contents)

        def call() -> None:
            response = client.post(path, content=next(rows), headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")

        return call, client.close

    # wrk's headers (its script sets the content type): a name of their own, as `connect` reads `headers`
    key = (auth.key or auth._read()) if isinstance(auth, AdminKeyAuth) else None
    wrk_headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Way(name, connect, (url, path, contents, wrk_headers))


def local_way(name: str, inputs: list[Any], predict: Callable[[Any], Any]) -> Way:
    def connect() -> tuple[Call, Callable[[], None]]:
        rows = itertools.cycle(inputs)
        return (lambda: predict(next(rows))), (lambda: None)

    return Way(name, connect)


def applicant_rows(count: int) -> list[dict[str, Any]]:
    """Real rows of the demo data (complete ones), so that each call scores a different applicant."""
    frame = pd.read_csv(DATA_DIR / "credit_applicants.csv")[CREDIT_FEATURES].dropna().head(count)
    return [{"age": int(r.age), "annual_income": float(r.annual_income),
             "debt_to_income": float(r.debt_to_income), "late_payments_12m": int(r.late_payments_12m),
             "employment_years": float(r.employment_years)} for r in frame.itertuples()]


def latency(ways: list[Way], calls: int, warmup: int, rounds: int) -> dict[str, list[float]]:
    connected = {way.name: way.connect() for way in ways}
    samples: dict[str, list[float]] = {way.name: [] for way in ways}
    errors: dict[str, list[str]] = {way.name: [] for way in ways}

    def attempt(name: str, call: Call) -> bool:
        try:
            call()
        # Shown, not timed; the bench goes on unless a way keeps failing. (A keep-alive connection idle while
        # the other ways run can be closed by its server just as a call goes out: a reset.)
        except (RuntimeError, httpx.HTTPError) as exc:
            errors[name].append(f"{type(exc).__name__}: {str(exc)[:200]}")
            if len(errors[name]) > 20:
                raise RuntimeError(f"{name}: {len(errors[name])} failed calls, first: {errors[name][0]}"
                                   ) from exc
            return False
        return True

    try:
        for name, (call, _) in connected.items():
            for _ in range(warmup):
                attempt(name, call)
        for _ in range(rounds):
            for name, (call, _) in connected.items():
                for _ in range(calls // rounds):
                    started = time.perf_counter()
                    if attempt(name, call):
                        samples[name].append(time.perf_counter() - started)
    finally:
        for _, close in connected.values():
            close()
    for name, failed in errors.items():
        if failed:
            print(f"{name}: {len(failed)} failed calls (not timed), first: {failed[0]}")
    return samples


def throughput(way: Way, clients: int, duration: float) -> tuple[float, list[float], int]:
    """Calls per second over `duration` s with `clients` threads, their latencies, and the errors."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    window = [0.0, 0.0]  # start, end: set by the barrier's action, before any client passes it

    def open_window() -> None:
        window[0] = time.perf_counter()
        window[1] = window[0] + duration

    start = threading.Barrier(clients + 1, action=open_window)

    def client(i: int) -> None:
        call, close = way.connect()
        try:
            for _ in range(5):  # warm the connection
                call()
            start.wait(timeout=60)
            while (now := time.perf_counter()) < window[1]:
                try:
                    call()
                except Exception:  # counted, and the bench goes on: a few 503s should show, not abort
                    errors[i] += 1
                    if errors[i] > 100:
                        return
                    continue
                latencies[i].append(time.perf_counter() - now)
        finally:
            close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait(timeout=120)
    for thread in threads:
        thread.join(duration + 60)
    elapsed = time.perf_counter() - window[0]  # includes the calls in flight at the deadline
    done = [x for per_client in latencies for x in per_client]
    return len(done) / elapsed, done, sum(errors)


@dataclass
class Load:
    """One way under load, pooled over the rounds."""

    calls: int = 0
    seconds: float = 0.0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)  # per round, to show the noise
    p99s: list[float] = field(default_factory=list)  # per round, when the load generator reports only those

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def interleaved_throughput(ways: list[Way], clients: int, duration: float, rounds: int) -> dict[str, Load]:
    """Each way `rounds` times for `duration / rounds` s, round-robin, so that a change in the machine's
    background load hits every way alike."""
    loads = {way.name: Load() for way in ways}
    for _ in range(rounds):
        for way in ways:
            rate, latencies, errors = throughput(way, clients, duration / rounds)
            load = loads[way.name]
            load.calls += len(latencies)
            load.seconds += len(latencies) / rate if rate else duration / rounds
            load.errors += errors
            load.latencies += latencies
            load.rates.append(rate)
    return loads


def wrk_throughput(ways: list[Way], connections: int, duration: float, rounds: int) -> dict[str, Load]:
    """`wrk` on each HTTP way for `duration / rounds` s, round-robin over `rounds` rounds."""
    loads = {way.name: Load() for way in ways if way.http is not None}
    for _ in range(rounds):
        for way in ways:
            if way.http is None:
                continue
            url, path, bodies, headers = way.http
            result = run_wrk(url, path, [orjson.loads(b) for b in bodies], headers, connections,
                             duration=duration / rounds)
            load = loads[way.name]
            load.calls += result.requests
            load.seconds += result.requests / result.rate if result.rate else duration / rounds
            load.errors += result.errors
            load.latencies += [result.p50]  # wrk reports percentiles, not samples: per-round p50s
            load.p99s.append(result.p99)
            load.rates.append(result.rate)
    return loads


def parsed_signature(pyfunc: Any) -> dict[str, Any]:
    """The signature as MLmodel stores it, parsed (what the registry sync hands the bridge)."""
    return {part: json.loads(text) if text else None
            for part, text in pyfunc.metadata.signature.to_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_call_load_arguments(parser, calls=2000, warmup=200, duration=30.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--load", choices=("wrk", "threads"), default="wrk", help="throughput client")
    args = parser.parse_args()
    if not args.skip_throughput and args.load == "wrk":
        require_wrk(", or pass --skip-throughput or --load threads")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp_name:
        tmp = Path(tmp_name)
        mlflow_server = EmbeddedMlflow(tmp / "mlflow-state", free_port())
        mlflow_server.start()
        servers: list[Any] = []
        try:
            uri = mlflow_server.uri
            register_demo_models(uri, models=[MODEL])
            toolbridge = ToolbridgeUp(tmp / "toolbridge", ["--mlflow-uri", uri], UNLIMITED)
            toolbridge2 = ToolbridgeUp(tmp / "toolbridge2", ["--mlflow-uri", uri, "--workers", "2"],
                                       UNLIMITED)
            serve = MlflowModelsServe(URI, uri, tmp / "logs")
            plain = PlainBento(URI, uri, tmp / "logs")
            servers = [toolbridge, toolbridge2, serve, plain]
            for server in servers:
                server.spawn()
            for each in (toolbridge, toolbridge2):
                each.wait_healthy()
            serve.wait_ready()
            plain.wait_ready()
            for each in (toolbridge, toolbridge2):
                wait_for(lambda up=each: MODEL in up.tools(), 180, f"tool {MODEL} live")
            status = toolbridge.status()
            host = next(h for h in status["hosts"] if any(m["key"] == KEY for m in h.get("models", [])))
            print(f"servers up: toolbridge {toolbridge.url} (host {host['url']}), mlflow models serve "
                  f"{serve.url}, plain BentoML {plain.url}")

            mlflow.set_tracking_uri(uri)
            pyfunc = mlflow.pyfunc.load_model(URI)
            store = ModelStore()
            store.load(KEY, URI)
            signature = parsed_signature(pyfunc)
            rows = applicant_rows(args.rows)
            payloads = [to_model_input(signature, row) for row in rows]
            ways = [
                http_way(TOOL, toolbridge.url, f"/tools/{MODEL}/invoke", rows, toolbridge.auth),
                http_way(TOOL2, toolbridge2.url, f"/tools/{MODEL}/invoke", rows, toolbridge2.auth),
                http_way(HOST, host["url"], "/v1/predict",
                         [{"key": KEY, "payload": p, "uri": URI} for p in payloads]),
                http_way(PLAIN, plain.url, "/predict", [{"records": [row]} for row in rows]),
                http_way(SERVE, serve.url, "/invocations", [{"dataframe_records": [row]} for row in rows]),
                local_way(FLOOR, rows, lambda row: pyfunc.predict(pd.DataFrame.from_records([row]))),
                local_way(HOST_CODE, payloads, lambda payload: store.predict(KEY, payload)),
            ]
            show_answers(toolbridge, host["url"], plain.url, serve.url, payloads[0], rows[0])

            print(f"\nlatency: {args.calls} sequential single-row calls per way after {args.warmup} warm-up, "
                  f"{args.rounds} interleaved rounds")
            samples = latency(ways, args.calls, args.warmup, args.rounds)
            report_latency(samples)

            if not args.skip_throughput and args.load == "wrk":
                print(f"\nthroughput: wrk -t2 -c{args.clients} (keep-alive), {args.duration:.0f} s per way "
                      f"in {args.rounds_load} interleaved rounds")
                report_throughput(wrk_throughput(ways, args.clients, args.duration, args.rounds_load))
            elif not args.skip_throughput:
                print(f"\nthroughput: {args.clients} concurrent clients (threads, one keep-alive client "
                      f"each), {args.duration:.0f} s per way in {args.rounds_load} interleaved rounds")
                report_throughput(interleaved_throughput(ways, args.clients, args.duration, args.rounds_load))
            report_memory(toolbridge, host, serve, plain)
        except Exception:
            for server in servers:  # what the servers said, before their logs go with the temporary dir
                if server.log_path.exists():
                    print(f"--- {server.name}, last lines of {server.log_path}:\n"
                          f"{server.log_path.read_text(errors='replace')[-2500:]}")
            raise
        finally:
            for server in reversed(servers):
                server.stop()
            mlflow_server.stop()
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


def show_answers(toolbridge: ToolbridgeUp, host_url: str, plain_url: str, serve_url: str,
                 payload: dict[str, Any], row: dict[str, Any]) -> None:
    """One answer of each way, to show they compute the same prediction."""
    with toolbridge.client() as client:
        tool = client.post(f"/tools/{MODEL}/invoke", json=row).json()
    direct = httpx.post(f"{host_url}/v1/predict", json={"key": KEY, "payload": payload, "uri": URI}).json()
    plain = httpx.post(f"{plain_url}/predict", json={"records": [row]}).json()
    served = httpx.post(f"{serve_url}/invocations", json={"dataframe_records": [row]}).json()
    print(f"answers: tool {tool}\n  host {direct}\n  plain BentoML {plain}, mlflow models serve {served}")


def report_latency(samples: dict[str, list[float]]) -> None:
    s = {name: summarize(values) for name, values in samples.items()}
    rows = [[name, ms(x.median), ms(x.p99), ratio(x.median, s[SERVE].median), ratio(x.median, s[HOST].median),
             ratio(x.median, s[PLAIN].median), ratio(x.median, s[FLOOR].median)] for name, x in s.items()]
    print(table(["way", "p50 ms", "p99 ms", "p50 ÷ mlflow serve", "p50 ÷ host /v1/predict",
                 "p50 ÷ plain BentoML", "p50 ÷ floor"], rows))
    tool, host, serve = s[TOOL].median, s[HOST].median, s[SERVE].median
    print(f"target tool p50 ≤ host /v1/predict + 1.0 ms: +{ms(tool - host)} ms "
          f"({'met' if tool <= host + 0.001 else 'MISSED'})")
    print(f"target tool p50 ≤ 1.0× mlflow models serve: {tool / serve:.2f}× "
          f"({'met' if tool <= serve else 'MISSED'})")
    code = s[HOST_CODE].median
    print(f"where a tool call's p50 goes: model-host code in-process {ms(code)} ms, BentoML HTTP hop + host "
          f"overhead {ms(host - code)} ms, tool server hop {ms(tool - host)} ms")


def report_throughput(loads: dict[str, Load]) -> None:
    serve, host = loads[SERVE].rate, loads[HOST].rate
    rows = []
    for name, load in loads.items():
        s = summarize(load.latencies)
        p99 = max(load.p99s) if load.p99s else s.p99  # wrk: the worst round's p99
        spread = f"{min(load.rates):.0f}–{max(load.rates):.0f}"
        rows.append([name, f"{load.rate:.0f}", spread, ratio(load.rate, host), ratio(load.rate, serve),
                     ms(s.median), ms(p99), load.errors])
    print(table(["way", "calls/s", "calls/s per round", "÷ host", "÷ mlflow serve", "p50 ms", "p99 ms",
                 "errors"], rows))
    for name in (TOOL, TOOL2):
        if name in loads:
            tool = loads[name].rate
            print(f"target {name} ≥ 0.8× host alone: {tool / host:.2f}× "
                  f"({'met' if tool >= 0.8 * host else 'MISSED'}); ≥ 2.5× mlflow models serve: "
                  f"{tool / serve:.2f}× ({'met' if tool >= 2.5 * serve else 'MISSED'})")


def report_memory(toolbridge: ToolbridgeUp, host: dict[str, Any], serve: MlflowModelsServe,
                  plain: PlainBento) -> None:
    assert toolbridge.process is not None
    host_pid = toolbridge.host_pid(host)
    model = next(m for m in toolbridge.status()["hosts"][0]["models"] if m["key"] == KEY)
    tool_server = tree_memory(toolbridge.process.pid, children=False)
    rows = [
        ["tool server (uvicorn, 1 process)", mib(tool_server["rss"]), "—"],
        ["model host (bentoml: arbiter + 1 worker)", mib(tree_memory(host_pid)["rss"]) if host_pid else "?",
         f"{mib(model['memory_bytes'])} for {KEY}"],
        ["mlflow models serve (uvicorn, 1 worker)", mib(serve.memory()["rss"]), "—"],
        ["plain BentoML service (arbiter + 1 worker)", mib(plain.memory()["rss"]), "—"],
    ]
    print("\nmemory (RSS, MiB):")
    print(table(["processes", "RSS MiB", "model's share (host-reported RSS delta)"], rows))


if __name__ == "__main__":
    main()
