"""`toolbridge bento build-host`: the generic model host as a Bento, with no model inside, served by
`bentoml serve` from its own source (away from the repository) answers /readyz, then loads a version from the
shared test MLflow on its first call for it, as a remote pool replica does."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bridge.hosts import free_port
from tests.conftest import wait_for
from tool_server.demo import register_trained_model, train_fin_sentiment

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _env(bentoml_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOOLBRIDGE_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")) and k != "PYTHONPATH"}
    return {**env, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true", **extra}


@pytest.fixture(scope="module")
def host_bento(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    home = tmp_path_factory.mktemp("bentoml-host")
    done = subprocess.run([sys.executable, "-m", "tool_server.cli.bento", "build-host", "--flavor", "sklearn",
                           "--json"], capture_output=True, text=True, timeout=180, env=_env(home), cwd=REPO)
    assert done.returncode == 0, f"build-host failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    built: dict[str, Any] = json.loads(done.stdout)
    return built, home


def test_the_host_bento_holds_the_host_service_and_its_code_but_no_model(
        host_bento: tuple[dict[str, Any], Path]) -> None:
    built, home = host_bento
    bento_dir = Path(built["path"])
    assert bento_dir.is_relative_to(home / "bentos")
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert info["labels"] == {"toolbridge.role": "model-host", "toolbridge.flavors": "sklearn"}
    assert [s["models"] for s in info["services"]] == [[]]  # loads models by URI at runtime
    assert info["service"] == "bridge.model_host.service:ModelHost"
    for module in ("bridge/model_host/service.py", "bridge/model_host/loader.py", "bridge/schema.py",
                   "toolbridge_client/pydantic_models.py"):  # copies, not forks
        assert (bento_dir / "src" / module).read_text() == (
            REPO / ("client/" if module.startswith("toolbridge_client") else "") / module).read_text()
    assert not (bento_dir / "src" / "tool_server").exists()  # the server stays out of the image
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text().split()
    for package in ("mlflow", "scikit-learn", "pandas", "pydantic", "bentoml"):
        assert f"{package}=={version(package)}" in requirements


@pytest.fixture(scope="module")
def served(host_bento: tuple[dict[str, Any], Path], mlflow_server: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    built, home = host_bento
    where = tmp_path_factory.mktemp("host-bento-serve")
    port = free_port()
    with (where / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", built["tag"], "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=where, start_new_session=True,
            env=_env(home, MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_REGISTRY_URI=mlflow_server))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"bentoml serve exited:\n{(where / 'serve.log').read_text()[-4000:]}")
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200

    try:
        wait_for(ready, 120, "the host Bento's /readyz")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_served_host_bento_loads_a_version_on_its_first_call(served: str, mlflow_server: str) -> None:
    trained = dataclasses.replace(train_fin_sentiment(), name="host_bento_sentiment")
    model_version = str(register_trained_model(trained, tracking_uri=mlflow_server, aliases=()).version)
    key = f"host_bento_sentiment/{model_version}"
    assert httpx.post(f"{served}/v1/models/list", json={}, timeout=10).json()["models"] == []
    answer = httpx.post(f"{served}/v1/predict", timeout=120, json={
        "key": key, "uri": f"models:/host_bento_sentiment/{model_version}",
        "payload": {"kind": "records", "records": [{"headline": "Acme beats estimates, raises guidance"}]}})
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert output["label"] in {"negative", "neutral", "positive"}
    loaded = httpx.post(f"{served}/v1/models/list", json={}, timeout=10).json()["models"]
    assert [m["key"] for m in loaded] == [key]
