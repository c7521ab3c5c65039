"""`toolbridge up --demo` exactly as the README runs it; then killed with SIGKILL, started again on the same
state directory (keys, revocations and audit records survive; tools rebuilt from MLflow), and stopped with
SIGTERM under load (in-flight calls answered, every answered call audited): nothing left running, nothing
blocking the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import ToolbridgeProcess, tools_by_name, wait_for
from tool_server.demo import DEMO_MODEL_NAMES

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


def toolbridge_cli(state: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tool_server", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def create_key(state: Path, name: str, scopes: str) -> dict[str, str]:
    key = toolbridge_cli(state, "keys", "create", "--name", name, "--scopes", scopes).strip().splitlines()[-1]
    return {"Authorization": f"Bearer {key}"}


def invoke(url: str, headers: dict[str, str], tool: str, arguments: dict[str, object],
           request_id: str | None = None) -> httpx.Response:
    extra = {"X-Request-ID": request_id} if request_id else {}
    return httpx.post(f"{url}/tools/{tool}/invoke", headers={**headers, **extra}, json=arguments, timeout=30)


def audited_ids(url: str, admin: dict[str, str], key_name: str) -> set[str]:
    records = httpx.get(f"{url}/audit", params={"key_name": key_name, "limit": 100000}, headers=admin,
                        timeout=30).json()
    return {record["request_id"] for record in records}


HEADLINE = {"headline": "Acme shares soar on record profit"}


def calls_until_sigterm(server: ToolbridgeProcess, headers: dict[str, str]) -> tuple[list[str], list[str]]:
    """8 clients call until SIGTERM stops the server; the request ids answered 200, and the other outcomes."""
    answered: list[str] = []
    other: list[str] = []
    lock = threading.Lock()
    started = threading.Barrier(9)

    def caller(n: int) -> None:
        started.wait()
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            for i in range(100_000):
                request_id = f"drain-{n}-{i}"
                try:
                    response = http.post("/tools/fin_sentiment/invoke", json=HEADLINE,
                                         headers={"X-Request-ID": request_id})
                except httpx.TransportError as exc:  # refused or closed once the server stops listening
                    with lock:
                        other.append(type(exc).__name__)
                    return
                with lock:
                    (answered.append(request_id) if response.status_code == 200
                     else other.append(f"{response.status_code} {response.text[:200]}"))

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    started.wait()
    wait_for(lambda: len(answered) >= 40, 60, "calls under way before SIGTERM")
    server.process.send_signal(signal.SIGTERM)
    # After its graceful shutdown uvicorn ends by the signal it got (exit status -15), as init systems expect.
    assert server.process.wait(90) in (0, -signal.SIGTERM), server.log()
    for thread in threads:
        thread.join(60)
    return answered, other


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
        agent = create_key(state, "agent-a", "fin_sentiment")
        revoked = create_key(state, "agent-b", "fin_sentiment")
        toolbridge_cli(state, "keys", "revoke", "agent-b")
        before = [f"before-kill-{i}" for i in range(5)]
        for request_id in before:
            assert invoke(first.url, agent, "fin_sentiment", HEADLINE, request_id).status_code == 200
        wait_for(lambda: invoke(first.url, revoked, "fin_sentiment", HEADLINE).status_code == 401, 1.0,
                 "the revocation seen by the key cache")
        assert audited_ids(first.url, first.headers, "agent-a") == set(before)
        admin_key = first.admin_key

        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        # Direct children die with their parent; whatever survives is reaped by the next start.
        second = ToolbridgeProcess([], state, {"TOOLBRIDGE_POLL_INTERVAL": "1"})
        try:
            second.wait_healthy()
            # Loads run in parallel: each tool is listed as soon as its own version is up.
            wait_for(lambda: set(DEMO_MODEL_NAMES) <= tools_by_name(second.url).keys(), 180,
                     f"every demo tool after restart\n{second.log()}")
            answer = invoke(second.url, second.headers, "fin_sentiment", HEADLINE)
            assert answer.status_code == 200, answer.text
            # Keys, scopes, revocations and audit records came through the SIGKILL; the admin key too.
            assert second.admin_key == admin_key
            assert invoke(second.url, agent, "fin_sentiment", HEADLINE, "after-restart").status_code == 200
            assert invoke(second.url, agent, "credit_risk", {"income": 1}, "denied").status_code == 403
            assert invoke(second.url, revoked, "fin_sentiment", HEADLINE).status_code == 401
            assert audited_ids(second.url, second.headers, "agent-a") == {*before, "after-restart", "denied"}
            answered, other = calls_until_sigterm(second, agent)
        finally:
            second.stop()
        assert second.process.returncode in (0, -signal.SIGTERM), second.log()
        assert all(not outcome[:1].isdigit() for outcome in other), other  # no 4xx/5xx: only closed sockets
        exported = toolbridge_cli(state, "audit", "export", "--out", "-")
        audited = {json.loads(line)["request_id"] for line in exported.splitlines()}
        missing = set(answered) - audited
        assert not missing, f"{len(missing)} answered calls missing from the audit"
        print(f"SIGTERM under load: {len(answered)} calls answered, all audited; other outcomes: {other}")
        assert "Traceback" not in second.full_log(), second.log()
        assert not process_group_alive(second.process.pid)
        wait_for(lambda: servers_under(state) == [], 30, "every server of both runs stopped")
        assert not process_group_alive(first.process.pid)
    finally:
        first.stop()
