"""Where the tool server's CPU goes while it answers `POST /tools/credit_risk/invoke` under load.

A real `toolbridge up --mlflow-uri` (tool server + model host, 1 process each) serving the `credit_risk`
demo; `wrk` keeps 16 keep-alive connections busy while `py-spy` samples the tool server process (not the
host). Prints the throughput in that run and the frames with the most samples: inclusive ("in it or below")
and self ("in it").

    .venv/bin/pip install py-spy     # a profiler, not a project dependency
    .venv/bin/python -m bench.profile_hot_path [--seconds 20] [--top 25] [--connections 16] [--raw FILE]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.call_latency import MODEL, applicant_rows
from bench.servers import ToolbridgeUp, wait_for
from bench.wrk import require_wrk, run_wrk
from bridge.hosts import free_port
from tool_server.demo import register_demo_models
from tool_server.ops.embedded_mlflow import EmbeddedMlflow


def _frame_name(frame: str) -> str:
    """`handle (tool_server/calls.py:123)` → `handle (tool_server/calls.py)`: one row per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/", str(Path.cwd()) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


# The frames every sample holds (thread start, the CLI, asyncio's run loop): they say nothing.
_FRAMING = ("Thread.", "_run_code", "_run_module_as_main", "<module>", "Typer", "Command.", "Context.invoke",
            "_main (typer", "get_callback", "up (tool_server", "run (uvicorn", "Server.run", "asyncio_run",
            "Runner.run (", "run (asyncio/runners")


# Leaf frames that are waiting, though py-spy counts them active: a thread-pool thread in its `queue.get`, the
# event loop inside uvloop's C `run_forever` (epoll). Reported apart, so that the percentages are of work.
_WAITING = ("_worker (concurrent/futures/thread.py)", "Runner.run (asyncio/runners.py)")


def summarize(raw: str, top: int) -> str:
    """Top frames of py-spy's collapsed stacks (`frame;frame;... count` lines), inclusive and self, as shares
    of the samples that were doing work."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[-1] in _WAITING:
            waiting += count
            continue
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    total = max(total, 1)
    lines = [f"{total} samples doing work, % below are of those ({waiting} more were waiting: thread-pool "
             "threads idle, the event loop in epoll)", "", "inclusive % | self % | frame"]
    for name, count in [item for item in inclusive.most_common() if not item[0].startswith(_FRAMING)][:top]:
        lines.append(f"{100 * count / total:10.1f} | {100 * own[name] / total:6.1f} | {name}")
    lines += ["", "self %  | frame"]
    for name, count in own.most_common(top):
        lines.append(f"{100 * count / total:6.1f} | {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for toolbridge up")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks in this file")
    args = parser.parse_args()
    require_wrk()
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed (a profiler, not a project dependency): "
                         f"{Path(sys.executable).parent}/pip install py-spy")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp_name:
        tmp = Path(tmp_name)
        mlflow_server = EmbeddedMlflow(tmp / "mlflow-state", free_port())
        mlflow_server.start()
        env = dict(item.split("=", 1) for item in args.env)
        toolbridge = ToolbridgeUp(tmp / "toolbridge", ["--mlflow-uri", mlflow_server.uri],
                                  {"TOOLBRIDGE_LOG_FORMAT": "json",
                                   "TOOLBRIDGE_RATE_LIMIT_PER_MINUTE": "1e9", **env})
        try:
            register_demo_models(mlflow_server.uri, models=[MODEL])
            toolbridge.spawn()
            toolbridge.wait_healthy()
            wait_for(lambda: MODEL in toolbridge.tools(), 180, f"tool {MODEL} live")
            assert toolbridge.process is not None
            headers = {"Authorization": f"Bearer {toolbridge.auth._read()}"}
            rows = applicant_rows(256)
            run_wrk(toolbridge.url, f"/tools/{MODEL}/invoke", rows, headers, args.connections, duration=3)
            raw = tmp / "profile.txt"
            spy = subprocess.Popen([py_spy, "record", "--pid", str(toolbridge.process.pid), "--rate", "250",
                                    "--duration", str(args.seconds), "--format", "raw", "--nonblocking",
                                    "--output", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            result = run_wrk(toolbridge.url, f"/tools/{MODEL}/invoke", rows, headers, args.connections,
                             duration=args.seconds)
            _, error = spy.communicate(timeout=args.seconds + 60)
            if not raw.exists():
                raise SystemExit(f"py-spy wrote no profile: {error.decode(errors='replace')[-2000:]}")
            print(f"wrk -c{args.connections}: {result.rate:.0f} calls/s, p50 {result.p50 * 1000:.1f} ms, "
                  f"p99 {result.p99 * 1000:.1f} ms, {result.errors} errors\n")
            print(summarize(raw.read_text(), args.top))
            if args.raw is not None:
                shutil.copyfile(raw, args.raw)
        finally:
            toolbridge.stop()
            mlflow_server.stop()
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
