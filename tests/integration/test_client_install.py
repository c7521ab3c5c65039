"""The client installs alone: `pip install ./client` into a clean venv brings httpx, pydantic and
langchain-core, none of the server's dependencies, and its client and LangChain toolkit call a running
Toolbridge (fixtures `toolbridge`, `demo_tools`)."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ToolbridgeProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ["mlflow", "bentoml", "sklearn", "fastapi", "sqlalchemy", "uvicorn", "bridge", "tool_server",
               "registry_sync"]

# Runs inside the client-only venv, from a folder outside the repository (nothing of the server on sys.path).
AGENT_SCRIPT = """
import importlib.util, json, sys
from toolbridge_client import ToolbridgeClient, ToolCallError
from toolbridge_client.langchain import ToolbridgeToolkit

url, key = sys.argv[1], sys.argv[2]
with ToolbridgeClient(url, api_key=key) as client:
    names = sorted(tool.name for tool in client.list_tools())
    answer = client.invoke("fin_sentiment", {"headline": "Acme beats estimates and raises guidance"})
    try:
        client.invoke("credit_risk", {"age": "forty"})
        problem = None
    except ToolCallError as exc:
        problem = exc.status
with ToolbridgeToolkit(url, api_key=key) as toolkit:
    lc = {tool.name: tool for tool in toolkit.get_tools()}
    lc_answer = lc["credit_risk"].invoke({"age": 41, "annual_income": 72000.0, "debt_to_income": 0.22,
                                          "late_payments_12m": 0})
absent = [name for name in sys.argv[3:] if importlib.util.find_spec(name) is not None or name in sys.modules]
print(json.dumps({"names": names, "answer": answer, "problem": problem, "lc_answer": lc_answer,
                  "importable_server_modules": absent}))
"""


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv that has only what `pip install toolbridge-client` brings (versions from constraints.txt)."""
    where = tmp_path_factory.mktemp("client-venv")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"),
                    str(ROOT / "client")], check=True, timeout=600)
    return python


def test_client_alone_installs_none_of_the_server(client_venv: Path) -> None:
    installed = subprocess.run([str(client_venv), "-m", "pip", "list", "--format=json"], check=True,
                               capture_output=True, text=True).stdout
    names = {package["name"].lower() for package in json.loads(installed)}
    assert {"toolbridge-client", "httpx", "pydantic", "langchain-core"} <= names
    assert not names & {"mlflow", "mlflow-skinny", "bentoml", "scikit-learn", "fastapi", "sqlalchemy",
                        "uvicorn", "toolbridge"}, sorted(names)


def test_client_alone_calls_a_running_toolbridge(client_venv: Path, toolbridge: ToolbridgeProcess,
                                                 demo_tools: dict[str, Any], tmp_path: Path) -> None:
    run = subprocess.run([str(client_venv), "-c", AGENT_SCRIPT, toolbridge.url, toolbridge.admin_key,
                          *SERVER_ONLY], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert {"fin_sentiment", "credit_risk", "machine_failure"} <= set(seen["names"])
    assert seen["answer"]["label"] == "positive" and seen["answer"]["model"]["name"] == "fin_sentiment"
    assert seen["problem"] == 422  # the server's own validation reaches the agent as an error it can read
    assert seen["lc_answer"]["model"]["name"] == "credit_risk"
    assert str(seen["lc_answer"]["label"]) in ("0", "1")
    assert seen["importable_server_modules"] == [], "the client venv can import server code"
    assert sys.executable != str(client_venv)
