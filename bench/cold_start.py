"""Cold start at registry scale: `toolbridge up` → every approved version live, for a registry of N approved
small models (default 200; each version a copy of the `fin_sentiment` demo pipeline, loaded separately).

Each set-up is a fresh `toolbridge up --mlflow-uri` on the same MLflow server, started and stopped in turn,
in interleaved rounds: loads one at a time (`TOOLBRIDGE_MAX_PARALLEL_LOADS=1`, what the reconciler did before)
against the default (8 at once), on one shared host and on two. Timed from the spawn of `toolbridge up`:
healthy, first tool live, and all versions live or failed (from `GET /status` → sync counts).

    .venv/bin/python -m bench.cold_start [--models 200] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.registry_scale import populate
from bench.servers import ToolbridgeUp
from bench.stats import table
from bridge.hosts import free_port
from tool_server.ops.embedded_mlflow import EmbeddedMlflow

SETUPS = {
    "1 load at a time, 1 shared host": {"TOOLBRIDGE_MAX_PARALLEL_LOADS": "1"},
    "8 loads at once, 1 shared host (default)": {"TOOLBRIDGE_MAX_PARALLEL_LOADS": "8"},
    "8 loads at once, 2 shared hosts": {"TOOLBRIDGE_MAX_PARALLEL_LOADS": "8", "TOOLBRIDGE_SHARED_HOSTS": "2"},
}


def cold_start(state_dir: Path, mlflow_uri: str, env: dict[str, str], approved: int
               ) -> tuple[float, float, float, dict[str, int]]:
    """Seconds from spawn to healthy, to the first live version, to all live or failed; the final counts."""
    toolbridge = ToolbridgeUp(state_dir, ["--mlflow-uri", mlflow_uri],
                              {"TOOLBRIDGE_POLL_INTERVAL": "600", **env})
    started = time.perf_counter()
    toolbridge.spawn()
    try:
        toolbridge.wait_healthy(timeout=300)
        healthy = time.perf_counter() - started
        first: float | None = None
        while True:
            toolbridge.check_alive()
            try:
                sync = httpx.get(f"{toolbridge.url}/status", timeout=30, auth=toolbridge.auth).json()["sync"]
            except (httpx.HTTPError, KeyError, ValueError):
                time.sleep(0.5)
                continue
            now = time.perf_counter() - started
            if first is None and sync.get("live"):
                first = now
            if sync.get("total") == approved and sync["live"] + sync["failed"] == approved:
                counts = {k: sync[k] for k in ("live", "failed", "loading", "total")}
                return healthy, first or now, now, counts
            if now > 900:
                raise RuntimeError(f"not all live after 900 s: {sync}")
            time.sleep(0.5)
    finally:
        toolbridge.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=200, help="approved models (one version each)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    results: dict[str, list[tuple[float, float, float, dict[str, int]]]] = {name: [] for name in SETUPS}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp_name:
        tmp = Path(tmp_name)
        server = EmbeddedMlflow(tmp / "mlflow-state", free_port())
        server.start()
        try:
            print(f"populating {args.models} approved models...")
            populate(server.uri, args.models, args.models)
            for round_index in range(args.rounds):
                for index, (name, env) in enumerate(SETUPS.items()):
                    run = cold_start(tmp / f"toolbridge-{round_index}-{index}", server.uri, env, args.models)
                    print(f"round {round_index + 1}, {name}: healthy {run[0]:.1f} s, first live "
                          f"{run[1]:.1f} s, all {run[2]:.1f} s, {run[3]}", flush=True)
                    results[name].append(run)
        finally:
            server.stop()
    base = statistics.median(r[2] for r in results[next(iter(SETUPS))])
    rows = []
    for name, runs in results.items():
        all_live = statistics.median(r[2] for r in runs)
        rows.append([name, f"{statistics.median(r[0] for r in runs):.1f}",
                     f"{statistics.median(r[1] for r in runs):.1f}", f"{all_live:.1f}",
                     f"{base / all_live:.2f}×", f"{runs[-1][3]['live']}/{runs[-1][3]['failed']}"])
    print(table(["set-up", "healthy s", "first live s", f"all {args.models} live s",
                 "speed-up vs 1 at a time", "live/failed"], rows))
    default = statistics.median(r[2] for r in results["8 loads at once, 1 shared host (default)"])
    print(f"target: {args.models} models live within 60 s of toolbridge up: {default:.1f} s "
          f"({'met' if default <= 60 else 'MISSED'})")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
