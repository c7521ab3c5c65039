"""Calls/s through a remote host pool of two replicas against one.

Two generic model hosts (`bentoml serve bridge.model_host.service:ModelHost`, started here as Kubernetes would
start a pool's pods, outside Toolbridge's control) and two real `toolbridge up --mlflow-uri`, identical but
for TOOLBRIDGE_HOST_POOLS: one names replica A alone, the other A and B (client-side round-robin). Both tool
servers route the `credit_risk` demo tool to their pool; the calls cycle through real applicants, a row each.
Latency (sequential, one client) and throughput (concurrent clients) rounds interleave the two ways, so that
the machine's background load hits both alike; each replica's model calls are counted to show the split.

    .venv/bin/python -m bench.remote_pool            # ~5 min
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

import httpx

from bench.call_latency import Load, applicant_rows, http_way, interleaved_throughput, latency
from bench.servers import ToolbridgeUp, wait_for
from bench.stats import add_call_load_arguments, ms, ratio, summarize, table
from bridge.hosts import HostProcess, free_port
from tool_server.demo import register_demo_models
from tool_server.ops.embedded_mlflow import EmbeddedMlflow

MODEL = "credit_risk"
ONE, TWO = "pool of 1 replica", "pool of 2 replicas"


def model_calls(host: HostProcess) -> int:
    info = httpx.post(f"{host.base_url}/v1/models/list", json={}, timeout=10).json()
    return int(info["batching"]["model_calls"])


async def start_hosts(hosts: list[HostProcess]) -> None:
    for host in hosts:
        host.spawn()
    await asyncio.gather(*(host.wait_ready(180) for host in hosts))


def pooled(tmp: Path, uri: str, name: str, urls: list[str]) -> ToolbridgeUp:
    env = {"TOOLBRIDGE_HOST_POOLS": json.dumps({"shared": ",".join(urls)}), "TOOLBRIDGE_SPARE_HOSTS": "0",
           "TOOLBRIDGE_RATE_LIMIT_PER_MINUTE": "100000000", "TOOLBRIDGE_LOG_LEVEL": "WARNING"}
    return ToolbridgeUp(tmp / name, ["--mlflow-uri", uri], env)


def report_latency(samples: dict[str, list[float]]) -> None:
    s = {name: summarize(values) for name, values in samples.items()}
    print(table(["way (sequential, one client)", "p50 ms", "p99 ms", "p50 ÷ 1 replica"],
                [[name, ms(x.median), ms(x.p99), ratio(x.median, s[ONE].median)] for name, x in s.items()]))


def report_throughput(loads: dict[str, Load], split: dict[str, list[int]]) -> None:
    rows = []
    for name, load in loads.items():
        x = summarize(load.latencies)
        rows.append([name, f"{load.rate:.0f}", f"{min(load.rates):.0f}–{max(load.rates):.0f}",
                     ratio(load.rate, loads[ONE].rate), ms(x.median), ms(x.p99), load.errors,
                     " / ".join(str(n) for n in split[name])])
    print(table(["way (concurrent clients)", "calls/s", "calls/s per round", "÷ 1 replica", "p50 ms",
                 "p99 ms", "errors", "model calls A / B"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_call_load_arguments(parser, calls=1000, warmup=100, duration=36.0)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-remote-pool-") as tmp_name:
        tmp = Path(tmp_name)
        mlflow_server = EmbeddedMlflow(tmp / "mlflow-state", free_port())
        mlflow_server.start()
        env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_REGISTRY_URI": mlflow_server.uri}
        hosts = [HostProcess(f"replica-{letter}", tmp, env) for letter in "ab"]
        servers: list[ToolbridgeUp] = []
        try:
            register_demo_models(mlflow_server.uri, models=[MODEL])
            asyncio.run(start_hosts(hosts))
            servers = [pooled(tmp, mlflow_server.uri, "one", [hosts[0].base_url]),
                       pooled(tmp, mlflow_server.uri, "two", [h.base_url for h in hosts])]
            for server in servers:
                server.spawn()
            for server in servers:
                server.wait_healthy()
                wait_for(lambda s=server: MODEL in s.tools(), 180, f"{MODEL} live at {server.url}")
            print(f"replicas {', '.join(h.base_url for h in hosts)}; tool servers {servers[0].url} (A), "
                  f"{servers[1].url} (A+B)")
            rows = applicant_rows(args.rows)
            ways = [http_way(name, server.url, f"/tools/{MODEL}/invoke", rows, server.auth)
                    for name, server in zip((ONE, TWO), servers, strict=True)]
            print(f"\nlatency: {args.calls} sequential single-row calls per way after {args.warmup} warm-up, "
                  f"{args.rounds} interleaved rounds")
            report_latency(latency(ways, args.calls, args.warmup, args.rounds))
            print(f"\nthroughput: {args.clients} concurrent clients, {args.duration:.0f} s per way in "
                  f"{args.rounds_load} interleaved rounds")
            split: dict[str, list[int]] = {}
            for way in ways:  # each way alone once, for its split between replicas; then interleaved rounds
                before = [model_calls(h) for h in hosts]
                interleaved_throughput([way], args.clients, args.duration / args.rounds_load, 1)
                split[way.name] = [model_calls(h) - b for h, b in zip(hosts, before, strict=True)]
            loads = interleaved_throughput(ways, args.clients, args.duration, args.rounds_load)
            report_throughput(loads, split)
        finally:
            for server in servers:
                server.stop()
            for host in hosts:
                host.stop()
            mlflow_server.stop()
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
