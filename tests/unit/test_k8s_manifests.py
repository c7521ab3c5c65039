"""`toolbridge deploy kubernetes`: every manifest validates against the Kubernetes schemas (strict: no unknown
field) of two Kubernetes versions, and the objects reference each other correctly (selectors, Secret and
ConfigMap keys, HPA targets, the kustomization's file list)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from bridge.hosting.remote_pool import parse_pools
from tool_server.cli.deploy import deploy_app
from tool_server.deploy.kubernetes import HOST_BASELINE_MB, DeployPlan, render

# The oldest and the newest the installed kubernetes-validate has strict schemas for, within upstream support.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
PLAN = DeployPlan(namespace="ml-tools", pools=("shared", "gpu"), workers=3, host_memory_budget_mb=3000)
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
            assert source["configMapRef"]["name"] == config["metadata"]["name"]
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
])
def test_bad_options_are_refused_with_the_reason(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(deploy_app, ["kubernetes", "--out", str(tmp_path / "k8s"), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "k8s").exists()
