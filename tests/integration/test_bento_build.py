"""`toolbridge bento build`: a tool packaged as a self-contained Bento answers exactly like the tool server.

Real everything: the shared MLflow server and Toolbridge, the CLI in its own process, `bentoml serve` of the
built Bento from a temporary BENTOML_HOME.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bridge.hosts import free_port
from tests.conftest import ToolbridgeProcess, wait_for

pytestmark = pytest.mark.integration

TOOL = "credit_risk"
ARGUMENTS = [
    {"age": 42, "annual_income": 58000.0, "debt_to_income": 0.31, "late_payments_12m": 1,
     "employment_years": 6.5},
    {"age": 23, "annual_income": 21000.0, "debt_to_income": 0.62, "late_payments_12m": 4},  # optional missing
]
REPO = Path(__file__).resolve().parents[2]


def _env(bentoml_home: Path) -> dict[str, str]:
    """The developer's Toolbridge/MLflow settings removed (module fixtures run outside `clean_environ`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLBRIDGE_", "MLFLOW_TRACKING"))}
    return {**env, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}


def run_build(bentoml_home: Path, *args: str) -> dict[str, Any]:
    """`bento build ... --json` as a user runs it; its JSON result."""
    done = subprocess.run([sys.executable, "-m", "tool_server.cli.bento", "build", *args, "--json"],
                          capture_output=True, text=True, timeout=180, env=_env(bentoml_home), cwd=REPO)
    assert done.returncode == 0, f"bento build failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bentoml-home")


@pytest.fixture(scope="module")
def built(demo_tools: dict[str, Any], toolbridge: ToolbridgeProcess, bentoml_home: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The Bento of the live credit_risk tool, resolved through Toolbridge, exported as an archive too."""
    export_dir = tmp_path_factory.mktemp("bento-export")
    return run_build(bentoml_home, TOOL, "--url", toolbridge.url, "--api-key", toolbridge.admin_key,
                     "--output", str(export_dir))


def live_version(toolbridge: ToolbridgeProcess) -> str:
    version_: str = httpx.get(f"{toolbridge.url}/tools/{TOOL}", headers=toolbridge.headers,
                              timeout=10).json()["model"]["version"]
    return version_


def test_bento_holds_the_live_version_with_labels_pins_and_model(
        built: dict[str, Any], toolbridge: ToolbridgeProcess, mlflow_server: str, bentoml_home: Path) -> None:
    model_version = live_version(toolbridge)
    expected_labels = {"toolbridge.tool": TOOL, "toolbridge.model_name": TOOL,
                       "toolbridge.model_version": model_version,
                       "toolbridge.model_uri": f"models:/{TOOL}/{model_version}",
                       "toolbridge.tracking_uri": mlflow_server}  # learnt from Toolbridge's /status
    assert built["labels"] == expected_labels
    bento_dir = Path(built["path"])
    assert bento_dir.is_relative_to(bentoml_home / "bentos")
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert info["labels"] == expected_labels
    assert [m["tag"] for m in info["services"][0]["models"]] == [built["model_tag"]]
    model_name, model_tag_version = built["model_tag"].split(":")
    assert (bentoml_home / "models" / model_name / model_tag_version / "mlflow_model" / "MLmodel").is_file()
    # The model host's own loader, not a fork of it.
    vendored = bento_dir / "src" / "toolbridge_tool" / "loader.py"
    assert vendored.read_text() == (REPO / "bridge" / "model_host" / "loader.py").read_text()
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text().split()
    for package in ("mlflow", "scikit-learn", "numpy", "pandas", "bentoml"):
        assert f"{package}=={version(package)}" in requirements
    # The archive a platform team ships is self-contained: the model travels inside it.
    with tarfile.open(built["archive"]) as archive:
        names = set(archive.getnames())
    assert {"bento.yaml", f"models/{model_name}/{model_tag_version}/mlflow_model/MLmodel"} <= {
        n.removeprefix("./") for n in names}


@pytest.fixture
def served(built: dict[str, Any], bentoml_home: Path, tmp_path: Path) -> Iterator[str]:
    """`bentoml serve <tag>` of the built Bento on a free port, in its own process group; its base URL."""
    port = free_port()
    log_path = tmp_path / "bento-serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", built["tag"], "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env(bentoml_home),
            cwd=tmp_path,  # away from the repository: the Bento must run on its own source
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"bentoml serve exited:\n{log_path.read_text(errors='replace')[-4000:]}")
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200

    try:
        wait_for(ready, 90, f"the Bento's /readyz\n{log_path}")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_served_bento_answers_like_the_tool_server(built: dict[str, Any], served: str,
                                                   toolbridge: ToolbridgeProcess) -> None:
    model_version = built["labels"]["toolbridge.model_version"]
    assert httpx.get(f"{served}/livez", timeout=5).status_code == 200
    for arguments in ARGUMENTS:
        tool_answer = httpx.post(f"{toolbridge.url}/tools/{TOOL}/versions/{model_version}/invoke",
                                 headers=toolbridge.headers, json=arguments, timeout=30)
        assert tool_answer.status_code == 200, tool_answer.text
        bento_answer = httpx.post(f"{served}/v1/predict", timeout=30,
                                  json={"payload": {"kind": "records", "records": [arguments]}})
        assert bento_answer.status_code == 200, bento_answer.text
        body = bento_answer.json()
        assert body["key"] == f"{TOOL}/{model_version}"
        expected = {k: v for k, v in tool_answer.json().items() if k != "model"}
        assert body["outputs"] == [expected]
    # The model host's contract, key included: another version is not here.
    other = httpx.post(f"{served}/v1/predict", json={"key": f"{TOOL}/999", "payload": {"records": []}},
                       timeout=10)
    assert other.status_code == 404


def test_build_from_mlflow_directly_packages_the_champion_and_reuses_the_imported_model(
        built: dict[str, Any], mlflow_server: str, bentoml_home: Path, toolbridge: ToolbridgeProcess) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # proves Toolbridge is not consulted
    again = run_build(bentoml_home, TOOL, "--model", TOOL, "--mlflow-uri", mlflow_server, "--url", closed)
    assert again["labels"]["toolbridge.model_version"] == live_version(toolbridge)  # the champion
    assert again["labels"] == built["labels"]
    assert again["model_reused"] is True
    assert again["model_tag"] == built["model_tag"]
    assert again["tag"] != built["tag"]
