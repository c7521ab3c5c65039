"""Shadow traffic: what a caller pays when its calls are mirrored to a shadow version, measured in one run.

One `toolbridge up --mlflow-uri` serves the `fin_sentiment` demo model as two tools on one model host:
`fin_sentiment` (champion version 1, and version 2, the same artifact, holding the alias `shadow`: every call
mirrored) and `fin_plain` (the same artifact, no shadow). Both score the same headlines, one per call.

1. latency: sequential single-row calls, one keep-alive client, rounds interleaving the two tools (before
   each round the shadow queue is drained, so no round pays for the previous one's mirroring);
2. throughput: concurrent clients for a few seconds per tool, interleaved rounds; the shadow queue is small
   (`--queue-size`), so overload shows as dropped shadow calls (counted), not as slower callers.

    .venv/bin/python -m bench.shadow [--calls 500] [--warmup 100] [--rounds 5] [--clients 8]
        [--duration 20] [--rounds-load 3] [--queue-size 64] [--quiet-ms MS] [--no-yield]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from bench.servers import ToolbridgeUp, wait_for
from bench.stats import ms, ratio, summarize, table
from bridge.hosts import free_port
from tool_server.demo import DATA_DIR, register_demo_models
from tool_server.ops.embedded_mlflow import EmbeddedMlflow

SHADOWED, PLAIN = "fin_sentiment", "fin_plain"


def headlines(n: int) -> list[dict[str, str]]:
    frame = pd.read_csv(DATA_DIR / "financial_headlines.csv")
    return [{"headline": str(h)} for h in frame["headline"].head(n)]


def shadow_row(server: ToolbridgeUp) -> dict[str, Any]:
    with server.client() as http:
        body = http.get("/shadow", params={"model": SHADOWED}).json()
    row: dict[str, Any] = body["shadows"][0] if body["shadows"] else {}
    row["queued"] = body["queued"]
    return row


def seen(row: dict[str, Any]) -> dict[str, int]:
    totals, open_window = row["totals"], row["open_window"] or {}
    return {name: totals[total] + open_window.get(part, 0) for name, total, part in (
        ("compared", "calls_compared", "compared"), ("errors", "shadow_errors", "shadow_errors"),
        ("dropped", "dropped", "dropped"))}


def drained(server: ToolbridgeUp) -> None:
    """Until the shadow queue is empty and the counts stop moving (the last call mirrored)."""
    last: dict[str, int] = {}

    def still() -> bool:
        nonlocal last
        row = shadow_row(server)
        now = seen(row)
        done = row["queued"] == 0 and now == last
        last = now
        return done

    wait_for(still, 120, "the shadow queue drained", interval=0.3)


def sequential(server: ToolbridgeUp, tool: str, rows: list[dict[str, str]], calls: int) -> list[float]:
    samples = []
    with server.client() as http:
        for n in range(calls):
            started = time.perf_counter()
            response = http.post(f"/tools/{tool}/invoke", json=rows[n % len(rows)])
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
    return samples


def concurrent(server: ToolbridgeUp, tool: str, rows: list[dict[str, str]], clients: int,
               seconds: float) -> tuple[list[float], float]:
    samples: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(offset: int) -> None:
        mine = []
        with server.client() as http:
            n = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                http.post(f"/tools/{tool}/invoke", json=rows[n % len(rows)]).raise_for_status()
                mine.append(time.perf_counter() - started)
                n += clients
        with lock:
            samples.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    return samples, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500, help="measured sequential calls per tool and round")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per tool, in all")
    parser.add_argument("--rounds-load", type=int, default=3)
    parser.add_argument("--queue-size", type=int, default=64, help="TOOLBRIDGE_SHADOW_QUEUE_SIZE")
    parser.add_argument("--quiet-ms", type=float, default=None,
                        help="TOOLBRIDGE_SHADOW_QUIET_MS (default: the setting's default)")
    parser.add_argument("--no-yield", action="store_true",
                        help="TOOLBRIDGE_SHADOW_YIELD_TO_CALLERS=false, CONCURRENCY=4: shadow calls compete")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; shadow calls "
          + ("compete with callers (4 at once)" if args.no_yield else "on spare capacity (1 at once)")
          + ("" if args.quiet_ms is None else f", quiet {args.quiet_ms:g} ms"))
    rows = headlines(256)
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp_name:
        tmp = Path(tmp_name)
        mlflow_server = EmbeddedMlflow(tmp / "mlflow-state", free_port())
        mlflow_server.start()
        server = ToolbridgeUp(tmp / "toolbridge", ["--mlflow-uri", mlflow_server.uri], {
            "TOOLBRIDGE_POLL_INTERVAL": "1", "TOOLBRIDGE_SHADOW_QUEUE_SIZE": str(args.queue_size),
            "TOOLBRIDGE_SHADOW_WINDOW_SECONDS": "10", "TOOLBRIDGE_SHADOW_WRITEBACK_SECONDS": "5",
            "TOOLBRIDGE_RATE_LIMIT_PER_MINUTE": "100000000", "TOOLBRIDGE_LOG_LEVEL": "WARNING",
            **({} if args.quiet_ms is None else {"TOOLBRIDGE_SHADOW_QUIET_MS": str(args.quiet_ms)}),
            **({"TOOLBRIDGE_SHADOW_YIELD_TO_CALLERS": "false", "TOOLBRIDGE_SHADOW_CONCURRENCY": "4"}
               if args.no_yield else {})})
        try:
            uri = mlflow_server.uri
            register_demo_models(uri, models=[SHADOWED])
            client = MlflowClient(uri, uri)
            shadow = client.create_model_version(SHADOWED, f"models:/{SHADOWED}/1").version
            client.create_registered_model(PLAIN)
            plain = client.create_model_version(PLAIN, f"models:/{SHADOWED}/1").version
            client.set_registered_model_alias(PLAIN, "champion", plain)
            client.set_registered_model_alias(SHADOWED, "shadow", shadow)
            server.spawn()
            server.wait_healthy()
            wait_for(lambda: {SHADOWED, PLAIN} <= server.tools().keys()
                     and shadow_row(server).get("mirroring"), 240, "both tools live and the shadow mirrored")
            for tool in (SHADOWED, PLAIN):
                sequential(server, tool, rows, args.warmup)
            drained(server)
            start = seen(shadow_row(server))
            latencies: dict[str, list[float]] = {SHADOWED: [], PLAIN: []}
            for _ in range(args.rounds):
                for tool in (SHADOWED, PLAIN):
                    latencies[tool] += sequential(server, tool, rows, args.calls)
                    drained(server)
            print(f"\nlatency: {args.calls} sequential calls per tool and round after {args.warmup} warm-up, "
                  f"{args.rounds} interleaved rounds")
            base = summarize(latencies[PLAIN])
            report = []
            for tool, label in ((PLAIN, "no shadow (baseline)"), (SHADOWED, "every call mirrored")):
                found = summarize(latencies[tool])
                report.append([label, found.n, ms(found.median), ms(found.p99),
                               ratio(found.median, base.median), ratio(found.p99, base.p99)])
            print(table(["tool", "calls", "p50 ms", "p99 ms", "p50 vs baseline", "p99 vs baseline"], report))
            end = seen(shadow_row(server))
            mirrored = end["compared"] - start["compared"] + end["errors"] - start["errors"]
            print(f"shadow, sequential: {mirrored} calls mirrored (in the gaps and after each round), "
                  f"{end['dropped'] - start['dropped']} dropped, of {len(latencies[SHADOWED])} offered")

            before = seen(shadow_row(server))
            loads: dict[str, list[float]] = {SHADOWED: [], PLAIN: []}
            elapsed = {SHADOWED: 0.0, PLAIN: 0.0}
            for _ in range(args.rounds_load):
                for tool in (SHADOWED, PLAIN):
                    samples, seconds = concurrent(server, tool, rows, args.clients,
                                                  args.duration / args.rounds_load)
                    loads[tool] += samples
                    elapsed[tool] += seconds
                    drained(server)
            after = seen(shadow_row(server))
            print(f"\nthroughput: {args.clients} concurrent clients, {args.duration:.0f} s per tool in "
                  f"{args.rounds_load} interleaved rounds; shadow queue of {args.queue_size}")
            base = summarize(loads[PLAIN])
            report = []
            for tool, label in ((PLAIN, "no shadow (baseline)"), (SHADOWED, "every call offered")):
                found = summarize(loads[tool])
                report.append([label, f"{found.n / elapsed[tool]:.0f}", ms(found.median), ms(found.p99),
                               ratio(found.median, base.median), ratio(found.p99, base.p99)])
            print(table(["tool", "calls/s", "p50 ms", "p99 ms", "p50 vs baseline", "p99 vs baseline"],
                        report))
            mirrored = after["compared"] - before["compared"] + after["errors"] - before["errors"]
            dropped = after["dropped"] - before["dropped"]
            print(f"shadow under load: {mirrored} calls mirrored, {dropped} dropped (queue full), "
                  f"of {len(loads[SHADOWED])} offered")
            totals = shadow_row(server)["totals"]
            print(f"agreement (the same artifact twice): {totals['agreement']}")
        finally:
            server.stop()
            mlflow_server.stop()
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
