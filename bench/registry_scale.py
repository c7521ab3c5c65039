"""Registry sync at scale: a full and an idle pass over 1,000 registered models (200 approved) on a real
`mlflow server`, against a naive per-model poll measured in the same run.

    .venv/bin/python -m bench.registry_scale [--models 1000] [--approved 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from bridge.hosts import free_port
from registry_sync import ApprovalPolicy, RegistryWatcher
from registry_sync.mlflow_source import MlflowRegistry
from registry_sync.types import RegisteredModelInfo, VersionDetails
from tool_server.demo import register_trained_model, train_fin_sentiment
from tool_server.ops.embedded_mlflow import EmbeddedMlflow


class CountingRegistry:
    """MlflowRegistry that counts the MLflow calls a pass makes."""

    def __init__(self, inner: MlflowRegistry) -> None:
        self.inner = inner
        self.list_calls = 0
        self.fetches = 0

    def list_models(self) -> list[RegisteredModelInfo]:
        self.list_calls += 1
        return self.inner.list_models()

    def fetch_version(self, name: str, version: str) -> VersionDetails:
        self.fetches += 1
        return self.inner.fetch_version(name, version)


def populate(uri: str, models: int, approved: int) -> None:
    client = MlflowClient(tracking_uri=uri)
    registered = register_trained_model(train_fin_sentiment(), tracking_uri=uri, aliases=())
    source = f"models:/{registered.name}/{registered.version}"  # every version shares one artifact

    def one(i: int) -> None:
        name = f"scale_model_{i:04d}"
        client.create_registered_model(name, tags={"team": f"team-{i % 7}"}, description=f"Model {i}.")
        if i < approved:
            version = client.create_model_version(name, source=source)
            client.set_registered_model_alias(name, "champion", version.version)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(models)))


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def naive_poll(uri: str, names: list[str]) -> int:
    """What a per-model poller does: read each model, then its champion version."""
    client = MlflowClient(tracking_uri=uri)
    calls = 0
    for name in names:
        model = client.get_registered_model(name)
        calls += 1
        if "champion" in model.aliases:
            client.get_model_version_by_alias(name, "champion")
            calls += 1
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--approved", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedMlflow(Path(tmp), free_port())
        server.start()
        try:
            print(f"populating {args.models} registered models ({args.approved} approved)...")
            populate(server.uri, args.models, args.approved)
            source = CountingRegistry(MlflowRegistry(server.uri))
            watcher = RegistryWatcher(source, ApprovalPolicy(), poll_interval=60)
            full = timed(lambda: asyncio.run(watcher.sync_once()))
            full_calls = (source.list_calls, source.fetches)
            approved = len(watcher.snapshot.refs)
            idle_times, idle_fetches = [], []
            for _ in range(args.repeats):
                before = source.fetches
                idle_times.append(timed(lambda: asyncio.run(watcher.sync_once())))
                idle_fetches.append(source.fetches - before)
            names = [f"scale_model_{i:04d}" for i in range(args.models)]
            naive_times = []
            naive_calls = 0
            for _ in range(max(1, args.repeats // 2)):
                started = time.perf_counter()
                naive_calls = naive_poll(server.uri, names)
                naive_times.append(time.perf_counter() - started)
        finally:
            server.stop()
    idle, naive = statistics.median(idle_times), statistics.median(naive_times)
    print(f"approved versions in snapshot: {approved}")
    print(f"full pass:  {full:.2f} s, {full_calls[0]} list pass(es) + {full_calls[1]} version fetches")
    print(f"idle pass:  median {idle * 1000:.0f} ms over {args.repeats}, version fetches {idle_fetches}")
    print(f"naive poll: median {naive * 1000:.0f} ms, {naive_calls} MLflow calls per pass")
    print(f"idle pass / naive poll: {idle / naive:.3f}x time")


if __name__ == "__main__":
    main()
