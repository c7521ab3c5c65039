"""The generic model host as a Bento: the image every replica of a remote host pool runs.

Unlike a per-tool Bento (bridge.bento_build), it holds no model: it is `bridge.model_host.service:ModelHost`
itself, the service Toolbridge spawns locally, with its own source (the modules it imports, found by walking
its imports, copied as they are), the Python packages it needs pinned to this machine's versions, and the
packages of the MLflow flavors the operator lists, so the models of those flavors load. Each replica loads a
version on its first call for it, from the MLflow named by MLFLOW_TRACKING_URI, within
TOOLBRIDGE_HOST_MEMORY_BUDGET_MB. `bentoml containerize toolbridge-model-host:<version>` makes it an image.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import bentoml
from bentoml.exceptions import BentoMLException

from bridge.bento_build import BentoBuildError, _bentoml_home, _home

__all__ = ["FLAVOR_PACKAGES", "HOST_BENTO", "HOST_PACKAGES", "HostBentoResult", "build_host_bento",
           "host_modules"]

HOST_BENTO = "toolbridge-model-host"  # the service's own name (bridge.model_host.service)
SERVICE = "bridge.model_host.service:ModelHost"
# What the host's own code imports (besides BentoML, which adds its own pin).
HOST_PACKAGES = ("mlflow", "numpy", "pandas", "psutil", "pydantic", "pydantic-settings", "jsonschema",
                 "anyio", "httpx")
# MLflow flavor → the packages its models need to load.
FLAVOR_PACKAGES: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn", "skops"), "xgboost": ("xgboost",), "lightgbm": ("lightgbm",),
    "catboost": ("catboost",), "statsmodels": ("statsmodels",), "prophet": ("prophet",),
    "pytorch": ("torch",), "tensorflow": ("tensorflow",), "keras": ("keras",),
    "transformers": ("transformers",), "sentence_transformers": ("sentence-transformers",),
    "onnx": ("onnx", "onnxruntime"), "spacy": ("spacy",), "pyfunc": (),
}
_OURS = ("bridge", "toolbridge_client")


@dataclass(frozen=True)
class HostBentoResult:
    tag: str
    path: Path
    labels: dict[str, str]
    python_packages: list[str]
    python_version: str
    modules: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise BentoBuildError(f"{module} is not importable; reinstall Toolbridge")
    return Path(spec.origin)


def host_modules(root: str = SERVICE.split(":")[0]) -> list[str]:
    """Our modules the model host imports, at any depth, with the packages that hold them."""
    found: set[str] = set()
    pending = [root]
    while pending:
        module = pending.pop()
        if module in found:
            continue
        found.add(module)
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # its packages' __init__
        for node in ast.walk(ast.parse(_source(module).read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                if name.split(".")[0] in _OURS and importlib.util.find_spec(name) is not None:
                    pending.append(name)
    return sorted(found)


def _copy_sources(modules: Sequence[str], ctx: Path) -> None:
    for module in modules:
        source = _source(module)
        parts = module.split(".")
        target = ctx.joinpath(*parts, "__init__.py") if source.name == "__init__.py" else ctx.joinpath(
            *parts[:-1], f"{parts[-1]}.py")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def _pinned(names: Sequence[str], notes: list[str]) -> list[str]:
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            notes.append(f"{name} is not installed here: the image gets the latest release")
            pins.append(name)
    return pins


def _readme(flavors: str) -> str:
    return ("# Toolbridge model host\n\n"
            f"Loads MLflow models ({flavors}) by URI on their first call (`POST /v1/predict` with `key`, "
            "`payload`, `uri`), within TOOLBRIDGE_HOST_MEMORY_BUDGET_MB; MLflow from MLFLOW_TRACKING_URI. "
            "No model inside. Probes: /readyz, /livez.\n")


def build_host_bento(flavors: Sequence[str], *, bentoml_home: Path | None = None,
                     extra_packages: Sequence[str] = ()) -> HostBentoResult:
    """Build the model-host Bento for models of `flavors` (e.g. ["sklearn"]); `extra_packages` are added
    as given (pip requirement strings)."""
    unknown = sorted(set(flavors) - set(FLAVOR_PACKAGES))
    if unknown:
        raise BentoBuildError(f"unknown MLflow flavor(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(FLAVOR_PACKAGES))} (any other package: --package NAME)")
    started = time.perf_counter()
    notes: list[str] = []
    flavor_packages = [p for flavor in flavors for p in FLAVOR_PACKAGES[flavor]]
    packages = sorted(set(_pinned([*HOST_PACKAGES, *flavor_packages], notes)) | set(extra_packages),
                      key=str.lower)
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    labels = {"toolbridge.role": "model-host", "toolbridge.flavors": ",".join(sorted(set(flavors)))}
    modules = host_modules()
    try:
        with _bentoml_home(_home(bentoml_home)), tempfile.TemporaryDirectory(prefix="tb-host-") as tmp:
            ctx = Path(tmp)
            _copy_sources(modules, ctx)
            bento = bentoml.bentos.build(
                SERVICE, name=HOST_BENTO, labels=labels, build_ctx=str(ctx),
                description=_readme(labels["toolbridge.flavors"]),
                python={"packages": packages, "lock_packages": False},  # exact pins: no resolver, no index
                docker={"python_version": python_version},
            )
    except (BentoMLException, OSError, ValueError) as exc:
        raise BentoBuildError(f"could not build the model-host Bento: {type(exc).__name__}: {exc}") from exc
    return HostBentoResult(tag=str(bento.tag), path=Path(bento.path), labels=labels, python_packages=packages,
                           python_version=python_version, modules=modules,
                           seconds=time.perf_counter() - started, notes=notes)
