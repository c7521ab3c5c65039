"""Memory per loaded model and per model host on a real `toolbridge up` (part of `bench.catalog_build`).

The three demo models (shared host) and a copy of `credit_risk` tagged `toolbridge.isolation=dedicated`
(its own host). Baseline in the same run: `mlflow models serve` of `credit_risk`, one process group per model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from bench.servers import MlflowModelsServe, ToolbridgeUp, tree_memory, wait_for
from bench.stats import mib, ratio, table
from bridge.hosts import free_port
from tool_server.demo import DEMO_MODEL_NAMES, register_demo_models

__all__ = ["memory_bench"]

DEDICATED = "credit_risk_dedicated"


def memory_bench(tmp: Path) -> None:
    tb = ToolbridgeUp(tmp / "toolbridge", [], {"TOOLBRIDGE_MLFLOW_PORT": str(free_port())})
    serve: MlflowModelsServe | None = None
    try:
        tb.spawn()
        tb.wait_healthy()
        uri = tb.status()["sync"]["mlflow_uri"]
        register_demo_models(uri)
        mlflow = MlflowClient(tracking_uri=uri, registry_uri=uri)
        tags = mlflow.get_registered_model("credit_risk").tags
        mlflow.create_registered_model(DEDICATED, tags={**tags, "toolbridge.isolation": "dedicated"})
        version = mlflow.create_model_version(DEDICATED, source="models:/credit_risk/1").version
        mlflow.set_registered_model_alias(DEDICATED, "champion", version)
        wanted = {*DEMO_MODEL_NAMES, DEDICATED}
        wait_for(lambda: wanted <= tb.tools().keys(), 240, f"tools {sorted(wanted)} live", interval=0.5)
        serve = MlflowModelsServe("models:/credit_risk/1", uri, tmp / "logs")
        serve.spawn()
        serve.wait_ready()
        report(tb, tb.status()["hosts"], serve.memory()["rss"])
    finally:
        if serve is not None:
            serve.stop()
        tb.stop()


def report(tb: ToolbridgeUp, hosts: list[dict[str, Any]], serve_rss: int) -> None:
    assert tb.process is not None
    model_rows, group_rows = [], []
    for host in hosts:
        for model in host.get("models", []):
            model_rows.append([host["name"], model["key"], model["kind"], mib(model["memory_bytes"]),
                               f"{model['load_seconds']:.2f}"])
        pid = tb.host_pid(host)
        total = tree_memory(pid) if pid else {"rss": 0, "pss": 0}
        models = host.get("models", [])
        group_rows.append([f"model host {host['name']} ({len(models)} model{'s' * (len(models) != 1)})",
                           mib(host.get("process_rss_bytes", 0)), mib(host.get("memory_bytes", 0)),
                           mib(total["rss"]), mib(total["pss"]), ratio(total["rss"], serve_rss)])
    tool_server = tree_memory(tb.process.pid, children=False)
    group_rows.append(["tool server", "—", "—", mib(tool_server["rss"]), mib(tool_server["pss"]),
                       ratio(tool_server["rss"], serve_rss)])
    if embedded_pid := tb.child_pid("mlflow server"):
        embedded = tree_memory(embedded_pid)
        group_rows.append(["embedded MLflow server (uvicorn + job consumers)", "—", "—", mib(embedded["rss"]),
                           mib(embedded["pss"]), ratio(embedded["rss"], serve_rss)])
    group_rows.append(["baseline: mlflow models serve, credit_risk", "—", "—", mib(serve_rss), "—", "1.00×"])
    print("\nmemory per loaded model (RSS the load added to its host's worker; the first load on a host also "
          "pays for importing its flavor, e.g. sklearn):")
    print(table(["host", "model version", "kind", "MiB", "load s"], model_rows))
    print("\nmemory per host, summed over its processes (MiB):")
    print(table(["processes", "worker RSS (host-reported)", "models' RSS deltas", "RSS, all processes",
                 "PSS, all processes", "RSS ÷ mlflow models serve"], group_rows))
