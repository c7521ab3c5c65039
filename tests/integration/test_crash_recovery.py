"""A Toolbridge killed with SIGKILL leaves nothing running for long, and the next start is not blocked."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import ToolbridgeProcess, admin_headers, tools_by_name, wait_for
from tests.integration.test_up_demo import hosts_running_from, process_group_alive

pytestmark = pytest.mark.integration


def servers_under(state: Path) -> list[int]:
    """Pids of the embedded MLflow (its command line names the state dir) and of the model hosts."""
    found = set(hosts_running_from(state))
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(state).encode() in (proc / "cmdline").read_bytes():
                found.add(int(proc.name))
        except OSError:
            continue
    return sorted(found)


def test_sigkill_of_toolbridge_then_restart_on_the_same_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = ToolbridgeProcess(["--demo"], state, {"TOOLBRIDGE_POLL_INTERVAL": "1"})
    try:
        first.wait_healthy()
        wait_for(lambda: "fin_sentiment" in tools_by_name(first.url), 180, f"demo tools\n{first.log()}")
        assert servers_under(state)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        # Direct children die with their parent; whatever survives is reaped by the next start.
        second = ToolbridgeProcess([], state, {"TOOLBRIDGE_POLL_INTERVAL": "1"})
        try:
            second.wait_healthy()
            tools = wait_for(lambda: tools_by_name(second.url), 180, f"tools after restart\n{second.log()}")
            assert {"fin_sentiment", "credit_risk", "machine_failure"} <= tools.keys()
            answer = httpx.post(f"{second.url}/tools/fin_sentiment/invoke", headers=admin_headers(second.url), timeout=30,
                                json={"headline": "Acme shares soar on record profit"})
            assert answer.status_code == 200, answer.text
        finally:
            assert second.stop() == 0, second.log()
        wait_for(lambda: servers_under(state) == [], 30, "every server of both runs stopped")
        assert not process_group_alive(first.process.pid)
    finally:
        first.stop()
