"""Process groups on real processes: a stop also ends a descendant that moved to a session of its own."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from bridge.process_group import marked_processes, reap_stale_groups, spawn_group, stop_group

# Like BentoML's arbiter: starts a worker in a new session (out of reach of the group signal), then waits.
ARBITER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
time.sleep(120)
"""


def spawn_arbiter(tmp_path: Path) -> tuple[object, Path, list[psutil.Process]]:
    pgid_file = tmp_path / "host-x.pgid"
    process = spawn_group([sys.executable, "-c", ARBITER], tmp_path / "host-x.log", {"PATH": "/usr/bin:/bin"},
                          pgid_file)
    deadline = time.monotonic() + 30
    while len(marked_processes(pgid_file)) < 2:
        assert time.monotonic() < deadline, "the arbiter did not start its worker"
        time.sleep(0.05)
    return process, pgid_file, marked_processes(pgid_file)


def test_stop_ends_the_worker_in_its_own_session(tmp_path: Path) -> None:
    process, pgid_file, members = spawn_arbiter(tmp_path)
    assert len({psutil.Process(p.pid).ppid() for p in members}) == 2  # arbiter, and its worker
    stop_group(process, pgid_file, grace=5)  # type: ignore[arg-type]
    psutil.wait_procs(members, timeout=5)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in members)
    assert not pgid_file.exists()


def test_worker_orphaned_by_a_killed_arbiter_is_reaped_at_next_start(tmp_path: Path) -> None:
    process, pgid_file, members = spawn_arbiter(tmp_path)
    process.kill()  # type: ignore[attr-defined]
    process.wait()  # type: ignore[attr-defined]
    orphans = marked_processes(pgid_file)
    assert len(orphans) == 1, "the worker should have outlived its arbiter"
    reap_stale_groups(tmp_path, grace=5)
    psutil.wait_procs(orphans, timeout=5)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
