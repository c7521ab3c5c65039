"""The progress bar `toolbridge up` shows on a terminal while the first registry pass brings the approved
versions live (a cold start at registry scale loads hundreds)."""

from __future__ import annotations

import atexit
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from tool_server.runtime import Runtime

__all__ = ["show_load_progress"]

POLL_SECONDS = 0.2


def show_load_progress(runtime: Runtime, console: Console, stream: TextIO | None = None) -> bool:
    """A bar of live + failed of the approved versions, in a thread, until the first pass has brought every
    one live or failed; only when `stream` (stderr) is a terminal. Whether it shows."""
    if not (stream or sys.stderr).isatty():
        return False
    # With stdout on the terminal too, the bar shares the console the log lines use: they print above it.
    bar_console = console if console.is_terminal else Console(stderr=True)
    stop = threading.Event()
    thread = threading.Thread(target=_follow, args=(runtime, bar_console, stop), daemon=True,
                              name="toolbridge-load-progress")
    thread.start()

    def finish() -> None:  # at exit (Ctrl-C before the end): stop the bar cleanly, cursor back
        stop.set()
        thread.join(2.0)

    atexit.register(finish)
    return True


def _follow(runtime: Runtime, console: Console, stop: threading.Event) -> None:
    watcher = runtime.watcher
    if watcher is None:  # a worker process: its controller runs the sync
        return
    columns = (TextColumn("[bold]Loading approved versions"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("load", total=None, detail="reading the registry")
        while not stop.wait(POLL_SECONDS):
            sync = watcher.status
            # Both read without a lock: each is replaced whole by the event loop, never changed in place.
            approved = len(watcher.snapshot.refs)
            done = runtime.bridge.reconciler.progress
            if not sync.passes:
                detail = f"reading the registry ({sync.fetches} versions read)"
                if sync.last_error:
                    detail = f"registry unreachable, retrying: {sync.last_error[:80]}"
                bar.update(task, detail=detail)
                continue
            bar.update(task, total=approved, completed=min(done.live + done.failed, approved),
                       detail=f"{done.live} live, {done.failed} failed")
            if done.total == approved and done.loading == 0:
                bar.update(task, detail=f"{done.live} live, {done.failed} failed (toolbridge status: why)"
                           if done.failed else f"{done.live} live")
                return
