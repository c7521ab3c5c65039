"""`toolbridge up --demo` exactly as the README runs it; then killed with SIGKILL, started again on the same
state directory, and stopped with Ctrl-C: nothing left running, nothing blocking the next start."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from examples.demo_models import DEMO_MODEL_NAMES
from tests.conftest import ToolbridgeProcess, tools_by_name, wait_for

pytestmark = pytest.mark.integration


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def servers_under(state: Path) -> list[int]:
    """The embedded MLflow (its command line names the state dir) and the model hosts (their environment
    carries their log path, under the state dir)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (str(state).encode() in (proc / "cmdline").read_bytes()
                                        or str(state).encode() in (proc / "environ").read_bytes()):
                found.add(int(proc.name))
        except OSError:
            continue
    return sorted(found)


def test_up_demo_then_sigkill_then_restart_on_the_same_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = ToolbridgeProcess(["--demo"], state, {"TOOLBRIDGE_POLL_INTERVAL": "1"})
    try:
        first.wait_healthy()
        wait_for(lambda: set(DEMO_MODEL_NAMES) <= tools_by_name(first.url).keys(), 180,
                 f"demo tools\n{first.log()}")
        answer = httpx.post(f"{first.url}/tools/fin_sentiment/invoke", headers=first.headers, timeout=30,
                            json={"headline": "Globex shares plunge after profit warning and CEO exit"})
        assert answer.status_code == 200 and answer.json()["label"] == "negative", answer.text
        assert (state / "mlflow" / "mlflow.db").is_file()
        assert (state / "logs" / "host-shared-0.log").is_file()
        assert servers_under(state), "MLflow and the model host run while toolbridge is up"

        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        # Direct children die with their parent; whatever survives is reaped by the next start.
        second = ToolbridgeProcess([], state, {"TOOLBRIDGE_POLL_INTERVAL": "1"})
        try:
            second.wait_healthy()
            tools = wait_for(lambda: tools_by_name(second.url), 180, f"tools after restart\n{second.log()}")
            assert set(DEMO_MODEL_NAMES) <= tools.keys()
            answer = httpx.post(f"{second.url}/tools/fin_sentiment/invoke", headers=second.headers, timeout=30,
                                json={"headline": "Acme shares soar on record profit"})
            assert answer.status_code == 200, answer.text
        finally:
            assert second.stop() == 0, second.log()
        assert "Traceback" not in second.log(), second.log()
        assert not process_group_alive(second.process.pid)
        wait_for(lambda: servers_under(state) == [], 30, "every server of both runs stopped")
        assert not process_group_alive(first.process.pid)
    finally:
        first.stop()
