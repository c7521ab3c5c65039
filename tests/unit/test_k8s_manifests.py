"""`toolbridge deploy kubernetes`: every manifest validates against the Kubernetes schemas (strict: no unknown
field) of two Kubernetes versions, the objects reference each other correctly (selectors, Secret and
ConfigMap keys, HPA targets, the kustomization's file list), `kubectl kustomize` builds them, and the tool
server they configure answers under its Service's names (its real Host guard, built from the ConfigMap)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import kubernetes_validate
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from typer.testing import CliRunner

from bridge.hosting.remote_pool import parse_pools
from tool_server.api.host_policy import HostPolicy
from tool_server.api.middleware import HostGuard
from tool_server.api.webhooks import WEBHOOK_PATH
from tool_server.cli.deploy import deploy_app
from tool_server.deploy.kubernetes import ARTIFACTS_SECRET, HOST_BASELINE_MB, DeployPlan, render
from tool_server.settings import ServerSettings

# The oldest and the newest the installed kubernetes-validate has strict schemas for, within upstream support.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
PLAN = DeployPlan(namespace="ml-tools", pools=("shared", "gpu"), workers=3, host_memory_budget_mb=3000,
                  public_url="https://tools.example.com/", allowed_hosts=("toolbridge.corp.example",))
FILES = render(PLAN)
MANIFESTS = {name: doc for name, doc in FILES.items() if name != "kustomization.yaml"}


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in MANIFESTS.values() if doc["kind"] == kind]


def pod_labels() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in of_kind("Deployment")}


def matching(selector: dict[str, str]) -> list[str]:
    return [name for name, labels in pod_labels().items() if selector.items() <= labels.items()]


def containers() -> list[dict[str, Any]]:
    return [c for d in of_kind("Deployment") for c in d["spec"]["template"]["spec"]["containers"]]


def mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity.removesuffix("Mi"))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_every_manifest_validates_strictly(name: str, version: str) -> None:
    kubernetes_validate.validate(MANIFESTS[name], version, strict=True)


def test_strict_validation_refuses_an_unknown_field() -> None:
    """The check above can fail: a misspelt field is an error, not silently dropped."""
    broken = copy.deepcopy(MANIFESTS["tool-server-deployment.yaml"])
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_each_deployment_selects_its_own_pods_and_each_service_and_budget_one_deployment() -> None:
    for deployment in of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert matching(selector) == [deployment["metadata"]["name"]]
    for obj in of_kind("Service"):
        assert matching(obj["spec"]["selector"]) == [obj["metadata"]["name"]]
    for obj in of_kind("PodDisruptionBudget"):
        assert matching(obj["spec"]["selector"]["matchLabels"]) == [obj["metadata"]["name"]]


def test_one_deployment_service_and_autoscaler_per_pool_reachable_at_the_configured_url() -> None:
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind("HorizontalPodAutoscaler")}
    config = of_kind("ConfigMap")[0]["data"]
    pools = parse_pools(config["TOOLBRIDGE_HOST_POOLS"])  # what the tool server will read
    assert sorted(pools) == sorted(PLAN.pools)
    for pool, (url,) in pools.items():
        address = urlsplit(url)
        service_name, namespace = address.hostname.split(".")[:2]  # type: ignore[union-attr]
        assert namespace == PLAN.namespace
        assert services[service_name]["spec"]["ports"][0]["port"] == address.port
        assert service_name in targets and service_name in pod_labels()
        assert pod_labels()[service_name]["toolbridge.pool"] == pool


def test_secret_and_config_keys_referenced_exist_in_the_rendered_objects() -> None:
    secret = of_kind("Secret")[0]
    config = of_kind("ConfigMap")[0]
    referenced = 0
    for container in containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] == config["metadata"]["name"]
            else:  # created by the operator in direct artifact mode only (next test)
                assert source["secretRef"] == {"name": ARTIFACTS_SECRET, "optional": True}
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {})
            if "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["name"] == secret["metadata"]["name"]
                assert ref["secretKeyRef"]["key"] in secret["stringData"]
                referenced += 1
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["name"] == config["metadata"]["name"]
                assert ref["configMapKeyRef"]["key"] in config["data"]
    server_env = {v["name"] for v in containers()[0]["env"]}
    assert {"TOOLBRIDGE_DATABASE_URL", "TOOLBRIDGE_REDIS_URL", "TOOLBRIDGE_WEBHOOK_SECRET"} <= server_env
    assert referenced == 3
    namespaces = {doc["metadata"].get("namespace", PLAN.namespace) for doc in MANIFESTS.values()}
    assert namespaces == {PLAN.namespace}


def test_probes_workers_and_host_memory_follow_the_plan() -> None:
    server = MANIFESTS["tool-server-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert server["args"][-2:] == ["--workers", "3"]
    assert {server[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")} == {
        "/healthz"}
    for pool in PLAN.pools:
        host = MANIFESTS[f"host-{pool}-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
        assert host["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert host["livenessProbe"]["httpGet"]["path"] == "/livez"
        env = {v["name"]: v.get("value") for v in host["env"]}
        assert env["TOOLBRIDGE_HOST_MEMORY_BUDGET_MB"] == str(PLAN.host_memory_budget_mb)
        limit = mebibytes(host["resources"]["limits"]["memory"])
        # The LRU keeps the models within the budget; the host process itself needs its baseline on top.
        assert limit == PLAN.host_memory_budget_mb + HOST_BASELINE_MB
        assert mebibytes(host["resources"]["requests"]["memory"]) == limit


def test_cli_writes_every_file_the_kustomization_lists(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = CliRunner().invoke(deploy_app, ["kubernetes", "--out", str(out), "--pool", "shared",
                                             "--pool", "gpu", "--namespace", "ml-tools"])
    assert result.exit_code == 0, result.output
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    written = {path.name for path in out.iterdir()} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(written)
    assert kustomization["namespace"] == "ml-tools"
    for name in written:
        document = yaml.safe_load((out / name).read_text())
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[1], strict=True)
    pools = json.loads(yaml.safe_load((out / "configmap.yaml").read_text())["data"]["TOOLBRIDGE_HOST_POOLS"])
    assert sorted(pools) == ["gpu", "shared"]


@pytest.mark.parametrize(("args", "message"), [
    (["--pool", "GPU_1"], "pool 'GPU_1': expected lowercase letters, digits and '-'"),
    (["--pool", "a", "--pool", "a"], "name one pool twice"),
    (["--host-min-replicas", "5", "--host-max-replicas", "2"], "host max replicas 2 is below the minimum 5"),
    (["--allowed-host", "https://tools.example.com"], "allowed host 'https://tools.example.com': a URL"),
    (["--public-url", "tools.example.com"], "public URL 'tools.example.com': expected the http(s) URL"),
])
def test_bad_options_are_refused_with_the_reason(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(deploy_app, ["kubernetes", "--out", str(tmp_path / "k8s"), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "k8s").exists()


# --- the tool server as the cluster reaches it -------------------------------------------------------------

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def rendered_server_settings(monkeypatch: pytest.MonkeyPatch) -> ServerSettings:
    """The settings `toolbridge up` builds in a tool-server pod: the ConfigMap as environment, then the
    container's own flags (--host, --port)."""
    for name, value in of_kind("ConfigMap")[0]["data"].items():
        monkeypatch.setenv(name, value)
    args = MANIFESTS["tool-server-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=True))
    return ServerSettings(host=flags["--host"], port=int(flags["--port"]))


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["toolbridge", "toolbridge.ml-tools", "toolbridge.ml-tools.svc",
                                  "toolbridge.ml-tools.svc.cluster.local", "toolbridge.ml-tools.svc:80",
                                  "tools.example.com", "toolbridge.corp.example"])
async def test_the_tool_server_answers_under_its_service_names_public_and_extra_hosts(
        anyio_backend: str, monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """Agents in the cluster and MLflow's webhook deliveries reach the Service by name: the DNS-rebinding
    guard must not answer them 421 (the /healthz probes are exempt from it, so they would not notice)."""
    guard = HostGuard(Starlette(routes=[Route("/tools", _ok), Route(WEBHOOK_PATH, _ok, methods=["POST"])]),
                      HostPolicy.of(rendered_server_settings(monkeypatch)))
    transport = httpx.ASGITransport(app=guard)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        assert (await client.get("/tools")).status_code == 200
        assert (await client.post(WEBHOOK_PATH, content=b"{}")).status_code == 200
        foreign = await client.get("/tools", headers={"Host": "toolbridge.attacker.example"})
    assert foreign.status_code == 421, "the guard is still on for every other name"


def test_artifact_credentials_come_from_an_optional_secret_named_in_the_secret_template(
        tmp_path: Path) -> None:
    """Direct artifact mode: hosts load models from the bucket and the tool server reads each MLmodel there,
    so both take AWS_* and MLFLOW_S3_ENDPOINT_URL from the operator's Secret; without it, pods still start."""
    for name in ("tool-server-deployment.yaml", *(f"host-{pool}-deployment.yaml" for pool in PLAN.pools)):
        sources = MANIFESTS[name]["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": ARTIFACTS_SECRET, "optional": True}} in sources, name
    result = CliRunner().invoke(deploy_app, ["kubernetes", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    template = (tmp_path / "secret.yaml").read_text()
    assert f"create secret generic {ARTIFACTS_SECRET}" in template
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        assert key in template
    assert yaml.safe_load(template)["metadata"]["name"] == "toolbridge-secrets"  # the notes are comments


def test_kubectl_kustomize_builds_every_object_in_the_namespace(tmp_path: Path) -> None:
    """The folder is what `kubectl apply -k` reads: kustomize itself (not our reading of it) finds every
    object, of the expected kinds, all in the namespace."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed (Debian: apt-get install kubernetes-client; .ci/run installs it)"
    out = tmp_path / "k8s"
    result = CliRunner().invoke(deploy_app, ["kubernetes", "--out", str(out), "--pool", "shared",
                                             "--pool", "gpu", "--namespace", "ml-tools"])
    assert result.exit_code == 0, result.output
    built = subprocess.run([kubectl, "kustomize", str(out)], capture_output=True, text=True, timeout=120,
                           check=False)
    assert built.returncode == 0, built.stderr
    objects = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    assert len(objects) == len(list(out.iterdir())) - 1  # every file but kustomization.yaml
    assert Counter(doc["kind"] for doc in objects) == {
        "Namespace": 1, "ConfigMap": 1, "Secret": 1, "Deployment": 3, "Service": 3,
        "PodDisruptionBudget": 3, "HorizontalPodAutoscaler": 2}
    for doc in objects:
        where = doc["metadata"]["name"] if doc["kind"] == "Namespace" else doc["metadata"]["namespace"]
        assert where == "ml-tools", doc["metadata"]
