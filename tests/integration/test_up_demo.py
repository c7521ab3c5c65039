"""`toolbridge up --demo` exactly as the README runs it: embedded MLflow, demo models, Ctrl-C stops all."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from examples.demo_models import DEMO_MODEL_NAMES
from tests.conftest import ToolbridgeProcess, admin_headers, wait_for

pytestmark = pytest.mark.integration


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_demo_serves_the_demo_tools_and_sigint_stops_every_child(tmp_path: Path) -> None:
    server = ToolbridgeProcess(["--demo"], tmp_path / "state", {"TOOLBRIDGE_POLL_INTERVAL": "1"})
    try:
        server.wait_healthy()
        tools = wait_for(lambda: {t["name"] for t in httpx.get(f"{server.url}/tools", headers=admin_headers(server.url), timeout=5).json()}
                         >= set(DEMO_MODEL_NAMES), 120, f"demo tools\n{server.log()}")
        assert tools
        answer = httpx.post(f"{server.url}/tools/fin_sentiment/invoke", headers=admin_headers(server.url), timeout=30,
                            json={"headline": "Globex shares plunge after profit warning and CEO exit"})
        assert answer.status_code == 200 and answer.json()["label"] == "negative", answer.text
        assert (tmp_path / "state" / "mlflow" / "mlflow.db").is_file()
        assert (tmp_path / "state" / "logs" / "host-shared-0.log").is_file()
        assert hosts_running_from(tmp_path), "the model host should run while toolbridge is up"
    finally:
        code = server.stop()
    assert code == 0, server.log()
    # The embedded MLflow server and the model host run in process groups of their own: all must be gone.
    log = server.log()
    assert "Traceback" not in log, log
    assert not process_group_alive(server.process.pid)
    processes = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    left = [line for line in processes.splitlines() if str(tmp_path) in line]
    assert left == [], f"left behind: {left}"
    assert hosts_running_from(tmp_path) == []


def hosts_running_from(state: Path) -> list[int]:
    """Model host processes carry their log path (under the state dir) in their environment."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(state).encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found
