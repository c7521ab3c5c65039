"""`toolbridge deploy kubernetes`: write the manifests of a Toolbridge on Kubernetes (tool_server.deploy)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tool_server.deploy.kubernetes import ARTIFACTS_SECRET, DeployPlan, host_memory_limit_mb, render_text

__all__ = ["deploy_app"]

deploy_app = typer.Typer(help="Render deployment manifests for the engines you already run.",
                         no_args_is_help=True)
console = Console(stderr=True)


@deploy_app.callback()
def _deploy() -> None:
    """Render deployment manifests for the engines you already run."""


@deploy_app.command("kubernetes")
def kubernetes(
    out: Annotated[Path, typer.Option(help="folder to write the manifests into")] = Path("k8s"),
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace of every object")] = "toolbridge",
    image: Annotated[str, typer.Option(help="the tool-server image")] = "toolbridge:latest",
    host_image: Annotated[str, typer.Option(help="the model-host image (`toolbridge bento build-host`, then "
                                                 "`bentoml containerize`)")] = "toolbridge-model-host:latest",
    replicas: Annotated[int, typer.Option(help="tool-server pods")] = 2,
    workers: Annotated[int, typer.Option(help="tool-server worker processes per pod")] = 2,
    pool: Annotated[list[str] | None, typer.Option(help="a model-host pool (repeat for several); versions "
                                                        "choose one with the tag toolbridge.pool "
                                                        "[default: shared]")] = None,
    host_memory_budget_mb: Annotated[int, typer.Option(
        help="MB of models each host keeps loaded (LRU); the pod's memory limit adds the host's baseline")
    ] = 2048,
    host_min_replicas: Annotated[int, typer.Option(help="model-host pods per pool, at least")] = 2,
    host_max_replicas: Annotated[int, typer.Option(help="model-host pods per pool, at most (HPA, CPU)")] = 10,
    mlflow_uri: Annotated[str, typer.Option(help="the MLflow tracking server, as pods reach it")
                          ] = "http://mlflow.mlflow.svc:5000",
    public_url: Annotated[str, typer.Option(help="the URL clients reach the tool server at "
                                                 "(TOOLBRIDGE_PUBLIC_URL); its host is accepted")] = "",
    allowed_host: Annotated[list[str] | None, typer.Option(
        help="another name clients reach the tool server by (repeat; .example.com = it and its subdomains); "
             "its Service names in the cluster are always accepted")] = None,
    cluster_domain: Annotated[str, typer.Option(help="the cluster's DNS domain, for the Service's full name")
                              ] = "cluster.local",
) -> None:
    """Write Deployments, Services, HPAs, PodDisruptionBudgets, ConfigMap, Secret template and a
    kustomization.yaml: `kubectl apply -k OUT` after filling in OUT/secret.yaml."""
    plan = DeployPlan(namespace=namespace, image=image, host_image=host_image, replicas=replicas,
                      workers=workers, pools=tuple(pool or ("shared",)),
                      host_memory_budget_mb=host_memory_budget_mb, host_min_replicas=host_min_replicas,
                      host_max_replicas=host_max_replicas, mlflow_uri=mlflow_uri, public_url=public_url,
                      allowed_hosts=tuple(allowed_host or ()), cluster_domain=cluster_domain)
    try:
        files = render_text(plan)
    except ValueError as exc:
        console.print(f"[red]cannot render: {exc}[/red]")
        raise typer.Exit(2) from exc
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    console.print(f"Wrote {len(files)} files to {out}/: tool server ({replicas} pods x {workers} workers), "
                  f"host pools {', '.join(plan.pools)} ({host_min_replicas}-{host_max_replicas} pods, "
                  f"{host_memory_limit_mb(host_memory_budget_mb)} Mi each).\n"
                  f"Fill in {out}/secret.yaml (or manage the Secret elsewhere and drop it from "
                  f"kustomization.yaml); in direct artifact mode, create the Secret {ARTIFACTS_SECRET} "
                  f"(see {out}/secret.yaml). Then: kubectl apply -k {out}")


if __name__ == "__main__":
    deploy_app()
