"""Child servers (model hosts, the embedded MLflow) as process groups that never outlive Toolbridge.

Each child gets a session of its own, dies with its parent where Linux allows (PR_SET_PDEATHSIG), and leaves a
`.pgid` file, so that after a crash or SIGKILL of Toolbridge the next start can reap the leftovers instead of
tripping over them. BentoML starts its worker in a session of its own, out of reach of the group signal and of
PDEATHSIG: every process of a group carries a marker in its environment, and a stop ends the marked ones too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

__all__ = ["GROUP_MARKER", "marked_processes", "reap_stale_groups", "spawn_group", "stop_group"]

_PR_SET_PDEATHSIG = 1
GROUP_MARKER = "TOOLBRIDGE_PROCESS_GROUP"  # inherited by every descendant, whatever session it moves to


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _ChildSetup:
    """Runs in the child between fork and exec, after any user switch (a user switch clears PDEATHSIG)."""

    def __init__(self, then: Callable[[], None] | None) -> None:
        self.then = then

    def __call__(self) -> None:
        if sys.platform == "linux":
            _die_with_parent()
        if self.then is not None:
            self.then()


def spawn_group(command: list[str], log_path: Path, env: dict[str, str], pgid_file: Path,
                cwd: Path | None = None, user: int | None = None, group: int | None = None,
                preexec: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
    """Start `command` in a new session, logging to `log_path`, and record its process group.

    `user`/`group` start it as another OS user (root only); `preexec` runs in the child before the command
    (e.g. resource limits). The log file is opened here, by the caller's user, and stays 0600."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**env, GROUP_MARKER: str(pgid_file.resolve())}
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(log_fd, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True, preexec_fn=_ChildSetup(preexec),
            user=user, group=group, extra_groups=[] if user is not None else None,
        )
    pgid_file.write_text(str(process.pid))
    return process


def _kill_group(pgid: int, grace: float, leader: subprocess.Popen[bytes] | None = None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()  # reap it: a zombie leader still counts as a member of its group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def marked_processes(pgid_file: Path) -> list[psutil.Process]:
    """The live processes started in the group behind `pgid_file`, in whatever session they are now."""
    marker = str(pgid_file.resolve())
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and proc.environ().get(GROUP_MARKER) == marker:
                found.append(proc)
    return found


def _end_stragglers(pgid_file: Path, grace: float) -> None:
    """Stop the marked processes the group signal did not reach (e.g. a worker whose arbiter was killed)."""
    stragglers = marked_processes(pgid_file)
    for proc in stragglers:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(stragglers, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def stop_group(process: subprocess.Popen[bytes] | None, pgid_file: Path, grace: float = 10.0) -> None:
    """SIGTERM the group, SIGKILL what is left after `grace` seconds, end stragglers, forget the group."""
    if process is not None:
        _kill_group(process.pid, grace, leader=process)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    _end_stragglers(pgid_file, grace)
    pgid_file.unlink(missing_ok=True)


def reap_stale_groups(state_dir: Path, grace: float = 10.0) -> list[int]:
    """Stop the process groups an earlier, crashed run left behind under `state_dir`; return them."""
    reaped = []
    for pgid_file in state_dir.rglob("*.pgid"):
        with contextlib.suppress(ValueError, OSError):
            if int(pgid_file.read_text().strip()) == os.getpgrp():
                continue  # our own group, recorded by whoever started us (bench/servers.py): not stale
        with contextlib.suppress(ValueError, OSError):
            pgid = int(pgid_file.read_text().strip())
            cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes()
            if b"mlflow" in cmdline or b"bentoml" in cmdline:  # never a stranger who reused the number
                _kill_group(pgid, grace)
                reaped.append(pgid)
        _end_stragglers(pgid_file, grace)
        pgid_file.unlink(missing_ok=True)
    return reaped
