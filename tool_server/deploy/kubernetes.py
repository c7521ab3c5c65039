"""Kubernetes manifests for Toolbridge, as plain dicts: `render(plan)` → {file name: manifest}.

What runs where (docs/deploy.md):
- the tool server: a Deployment of `replicas` pods, each `toolbridge up --workers N` on port 8000 (probes on
  /healthz), a Service, a PodDisruptionBudget; configuration from the ConfigMap, secrets from the Secret. The
  ConfigMap's TOOLBRIDGE_ALLOWED_HOSTS names the Service in every form a pod resolves (`toolbridge`,
  `toolbridge.<ns>`, `….svc`, `….svc.<cluster domain>`): the DNS-rebinding guard answers 421 to any other
  name, MLflow's webhook deliveries included (the probes on /healthz are exempt, so pods look healthy anyway);
- per host pool: a Deployment of the generic model-host image (`toolbridge bento build-host`), probes on
  /readyz and /livez, a memory limit of the pool's budget (TOOLBRIDGE_HOST_MEMORY_BUDGET_MB, what its LRU
  keeps in models) plus the host process' own baseline, a Service the tool server reaches it by (its URL goes
  into TOOLBRIDGE_HOST_POOLS), a HorizontalPodAutoscaler on CPU and a PodDisruptionBudget;
- the artifact store's credentials (direct artifact mode: AWS_*, MLFLOW_S3_ENDPOINT_URL) from the optional
  Secret `toolbridge-artifacts`, which the operator creates: hosts load models from the bucket and the tool
  server reads each version's MLmodel there; in proxied mode nobody but MLflow needs it;
- a kustomization.yaml listing every file, so that `kubectl apply -k DIR` applies them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from tool_server.settings import ANY, host_name, web_origin

__all__ = ["ARTIFACTS_SECRET", "HOST_BASELINE_MB", "HOST_PORT", "SECRET_KEYS", "SERVER_NAME", "SERVER_PORT",
           "DeployPlan", "host_memory_limit_mb", "pool_service", "render", "render_text", "server_hosts",
           "to_yaml"]

SERVER_NAME = "toolbridge"  # the tool server's Deployment, Service and PodDisruptionBudget
SERVER_PORT = 8000
HOST_PORT = 3000  # `bentoml serve`'s default, what a containerized Bento listens on
# A model host's own resident memory before any model: measured ~490 MB (DESIGN.md), with headroom.
HOST_BASELINE_MB = 640
CONFIG_NAME = "toolbridge-config"
SECRET_NAME = "toolbridge-secrets"
# Created by the operator, not rendered: in proxied mode it is not needed, and placeholder credentials applied
# by `kubectl apply -k` would be worse than none.
ARTIFACTS_SECRET = "toolbridge-artifacts"
# Secret key → the tool-server variable it becomes. The Secret is rendered with placeholders to replace.
SECRET_KEYS = {"database-url": "TOOLBRIDGE_DATABASE_URL", "redis-url": "TOOLBRIDGE_REDIS_URL",
               "webhook-secret": "TOOLBRIDGE_WEBHOOK_SECRET"}
_PLACEHOLDERS = {"database-url": "postgresql+psycopg://toolbridge:CHANGE-ME@postgres.example:5432/toolbridge",
                 "redis-url": "redis://:CHANGE-ME@redis.example:6379/0",
                 "webhook-secret": "CHANGE-ME-to-a-long-random-string"}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class DeployPlan:
    """What to render; every field has the default `toolbridge deploy kubernetes` uses."""

    namespace: str = "toolbridge"
    image: str = "toolbridge:latest"
    host_image: str = "toolbridge-model-host:latest"
    replicas: int = 2
    workers: int = 2
    pools: tuple[str, ...] = ("shared",)
    host_memory_budget_mb: int = 2048
    host_min_replicas: int = 2
    host_max_replicas: int = 10
    host_cpu_target: int = 70  # percent of the CPU request, averaged over the pool's pods
    mlflow_uri: str = "http://mlflow.mlflow.svc:5000"
    public_url: str = ""
    allowed_hosts: tuple[str, ...] = ()  # more names clients reach the tool server by (an Ingress host...)
    cluster_domain: str = "cluster.local"
    labels: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/part-of": "toolbridge"})

    def check(self) -> None:
        """Raises ValueError naming each bad value and what is expected."""
        problems = [f"{what} {value!r}: expected lowercase letters, digits and '-' (a Kubernetes name)"
                    for what, value in [("namespace", self.namespace), *(("pool", p) for p in self.pools)]
                    if not _NAME.match(value) or len(value) > 40]
        if not self.pools:
            problems.append("at least one host pool is needed (--pool shared)")
        if len(set(self.pools)) != len(self.pools):
            problems.append(f"pools {list(self.pools)} name one pool twice")
        for what, value, low in (("replicas", self.replicas, 1), ("workers", self.workers, 1),
                                 ("host memory budget (MB)", self.host_memory_budget_mb, 64),
                                 ("host min replicas", self.host_min_replicas, 1)):
            if value < low:
                problems.append(f"{what} {value}: expected at least {low}")
        if self.host_max_replicas < self.host_min_replicas:
            problems.append(f"host max replicas {self.host_max_replicas} is below the minimum "
                            f"{self.host_min_replicas}")
        problems.extend(problem for problem in map(_host_problem, self.allowed_hosts) if problem)
        if self.public_url and _public_host(self.public_url) is None:
            problems.append(f"public URL {self.public_url!r}: expected the http(s) URL clients reach the "
                            "tool server at, e.g. https://tools.example.com")
        if not all(_NAME.match(label) for label in self.cluster_domain.split(".")):
            problems.append(f"cluster domain {self.cluster_domain!r}: expected a DNS domain like "
                            "cluster.local")
        if problems:
            raise ValueError("; ".join(problems))


def _host_problem(entry: str) -> str | None:
    if entry == ANY:
        return None
    try:
        if "://" in entry:
            raise ValueError("a URL, not a host name")
        host_name(entry.removeprefix("."))
    except ValueError as exc:
        return (f"allowed host {entry!r}: {exc}; expected a host name as clients type it (tb.example.com, or "
                ".example.com for a domain and its subdomains)")
    return None


def _public_host(url: str) -> str | None:
    """The host name of an http(s) URL, as the tool server's Host check derives it; None if it is none."""
    parts = urlsplit(url)
    try:
        web_origin(f"{parts.scheme}://{parts.netloc}")
        return host_name(parts.netloc)
    except ValueError:
        return None


def server_hosts(plan: DeployPlan) -> list[str]:
    """Every Host the tool server must accept: its Service as pods in the cluster name it (short names work
    through the pod's DNS search list), the public URL's host, and the extra names given."""
    namespaced = f"{SERVER_NAME}.{plan.namespace}"
    names = [SERVER_NAME, namespaced, f"{namespaced}.svc", f"{namespaced}.svc.{plan.cluster_domain}"]
    public = _public_host(plan.public_url) if plan.public_url else None
    extra = [public] if public else []
    return list(dict.fromkeys([*names, *extra, *plan.allowed_hosts]))


def host_memory_limit_mb(budget_mb: int) -> int:
    """A host pod's memory limit: its model budget plus the process' own baseline, so the LRU evicts models
    before the kernel kills the pod."""
    return budget_mb + HOST_BASELINE_MB


def pool_service(pool: str) -> str:
    return f"toolbridge-host-{pool}"


def _meta(plan: DeployPlan, name: str, component: str, **extra: str) -> dict[str, Any]:
    return {"name": name, "namespace": plan.namespace,
            "labels": {**plan.labels, "app.kubernetes.io/name": name,
                       "app.kubernetes.io/component": component, **extra}}


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def _probe(path: str, period: int, failures: int = 3) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def _hardened() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _deployment(plan: DeployPlan, meta: dict[str, Any], replicas: int | None, container: dict[str, Any]
                ) -> dict[str, Any]:
    pod = {"containers": [container], "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}
    spec: dict[str, Any] = {} if replicas is None else {"replicas": replicas}
    spec.update({"selector": {"matchLabels": _selector(meta["name"])},
                 "template": {"metadata": {"labels": {**meta["labels"]}}, "spec": pod}})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def _service(meta: dict[str, Any], port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"selector": _selector(meta["name"]),
                     "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]}}


def _pdb(meta: dict[str, Any], **budget: int) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
            "spec": {**budget, "selector": {"matchLabels": _selector(meta["name"])}}}


def _env_sources() -> list[dict[str, Any]]:
    # optional: pods start without it (proxied artifacts); the kubelet reads it at pod start, so a Secret
    # created later reaches pods as they restart (kubectl rollout restart).
    return [{"configMapRef": {"name": CONFIG_NAME}},
            {"secretRef": {"name": ARTIFACTS_SECRET, "optional": True}}]


def _tool_server(plan: DeployPlan) -> dict[str, dict[str, Any]]:
    name = SERVER_NAME
    env: list[dict[str, Any]] = [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}}}
        for key, variable in SECRET_KEYS.items()]
    container = {
        "name": "tool-server", "image": plan.image,
        "command": ["toolbridge"], "args": ["up", "--host", "0.0.0.0", "--port", str(SERVER_PORT),
                 "--workers", str(plan.workers)],
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "envFrom": _env_sources(), "env": env,
        "resources": {"requests": {"cpu": f"{250 * plan.workers}m",
                                   "memory": f"{256 + 256 * plan.workers}Mi"},
                      "limits": {"memory": f"{512 + 384 * plan.workers}Mi"}},
        "startupProbe": _probe("/healthz", 2, 60), "readinessProbe": _probe("/healthz", 5),
        "livenessProbe": _probe("/healthz", 10),
        "volumeMounts": [{"name": "state", "mountPath": "/var/lib/toolbridge"}],
        # The image runs as a numeric non-root user (Dockerfile): the kubelet can check it.
        "securityContext": {**_hardened(), "runAsNonRoot": True},
    }
    deployment = _deployment(plan, _meta(plan, name, "tool-server"), plan.replicas, container)
    # The state dir holds only what each replica rebuilds (logs): keys and audit live in PostgreSQL.
    deployment["spec"]["template"]["spec"]["volumes"] = [{"name": "state", "emptyDir": {}}]
    return {"tool-server-deployment.yaml": deployment,
            "tool-server-service.yaml": _service(_meta(plan, name, "tool-server"), 80),
            "tool-server-pdb.yaml": _pdb(_meta(plan, name, "tool-server"), minAvailable=1)}


def _host_pool(plan: DeployPlan, pool: str) -> dict[str, dict[str, Any]]:
    name = pool_service(pool)
    limit = host_memory_limit_mb(plan.host_memory_budget_mb)
    container = {
        "name": "model-host", "image": plan.host_image,
        "ports": [{"name": "http", "containerPort": HOST_PORT, "protocol": "TCP"}],
        "envFrom": [{"secretRef": {"name": ARTIFACTS_SECRET, "optional": True}}],
        "env": [*({"name": variable, "valueFrom": {"configMapKeyRef": {"name": CONFIG_NAME,
                                                                         "key": "TOOLBRIDGE_MLFLOW_URI"}}}
                  for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")),
                {"name": "TOOLBRIDGE_HOST_MEMORY_BUDGET_MB", "value": str(plan.host_memory_budget_mb)},
                {"name": "BENTOML_DO_NOT_TRACK", "value": "true"}],
        # Requests = limits for memory: a host is never evicted for using the memory it was promised.
        "resources": {"requests": {"cpu": "500m", "memory": f"{limit}Mi"},
                      "limits": {"memory": f"{limit}Mi"}},
        "startupProbe": _probe("/readyz", 2, 90), "readinessProbe": _probe("/readyz", 5),
        "livenessProbe": _probe("/livez", 10),
        "securityContext": _hardened(),
    }
    meta = _meta(plan, name, "model-host", **{"toolbridge.pool": pool})
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": plan.host_min_replicas, "maxReplicas": plan.host_max_replicas,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": plan.host_cpu_target}}}]}}
    deployment = _deployment(plan, meta, None, container)  # the HPA owns the count
    return {f"host-{pool}-deployment.yaml": deployment,
            f"host-{pool}-service.yaml": _service(meta, HOST_PORT),
            f"host-{pool}-hpa.yaml": hpa, f"host-{pool}-pdb.yaml": _pdb(meta, maxUnavailable=1)}


def _config(plan: DeployPlan) -> dict[str, dict[str, Any]]:
    pools = {pool: f"http://{pool_service(pool)}.{plan.namespace}.svc:{HOST_PORT}" for pool in plan.pools}
    data = {"TOOLBRIDGE_MLFLOW_URI": plan.mlflow_uri, "TOOLBRIDGE_HOST_POOLS": json.dumps(pools),
            "TOOLBRIDGE_STATE_DIR": "/var/lib/toolbridge", "TOOLBRIDGE_LOG_FORMAT": "json",
            "TOOLBRIDGE_ALLOWED_HOSTS": ",".join(server_hosts(plan))}
    if plan.public_url:
        data["TOOLBRIDGE_PUBLIC_URL"] = plan.public_url
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(plan, SECRET_NAME, "config"),
              "type": "Opaque", "stringData": dict(_PLACEHOLDERS)}
    return {"namespace.yaml": {"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": plan.namespace, "labels": dict(plan.labels)}},
            "configmap.yaml": {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": _meta(plan, CONFIG_NAME, "config"), "data": data},
            "secret.yaml": secret}


def render(plan: DeployPlan) -> dict[str, dict[str, Any]]:
    """Every manifest by file name, kustomization.yaml last (it lists the others)."""
    plan.check()
    files = {**_config(plan), **_tool_server(plan)}
    for pool in plan.pools:
        files.update(_host_pool(plan, pool))
    files["kustomization.yaml"] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                   "namespace": plan.namespace, "resources": list(files)}
    return files


def _secret_note(plan: DeployPlan) -> str:
    return f"""\
# Replace every CHANGE-ME below (or manage this Secret elsewhere and drop secret.yaml from
# kustomization.yaml).
#
# Direct artifact mode (MLflow runs with --no-serve-artifacts and an s3:// artifact root): the model hosts
# and the tool server read the bucket themselves. Create the optional Secret {ARTIFACTS_SECRET}; every
# key of it becomes an environment variable of those pods (read at pod start: restart them after a change):
#   kubectl -n {plan.namespace} create secret generic {ARTIFACTS_SECRET} \\
#     --from-literal=AWS_ACCESS_KEY_ID=... --from-literal=AWS_SECRET_ACCESS_KEY=... \\
#     --from-literal=AWS_DEFAULT_REGION=us-east-1 --from-literal=MLFLOW_S3_ENDPOINT_URL=https://s3.example
# Proxied mode (--serve-artifacts) needs none of it: only MLflow holds the bucket's credentials.
"""


_NOTES: dict[str, Callable[[DeployPlan], str]] = {"secret.yaml": _secret_note}


def render_text(plan: DeployPlan) -> dict[str, str]:
    """Every file's text as `toolbridge deploy kubernetes` writes it: the YAML, behind a comment where the
    operator has something to do."""
    return {name: (_NOTES[name](plan) if name in _NOTES else "") + to_yaml(manifest)
            for name, manifest in render(plan).items()}


def to_yaml(manifest: dict[str, Any]) -> str:
    text: str = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text
