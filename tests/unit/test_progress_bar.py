"""The progress bar of `toolbridge up`: only on a terminal, and it ends once the first registry pass has
brought every approved version live or failed."""

from __future__ import annotations

import io
import threading
import time
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from bridge.reconciler import LoadProgress
from tool_server.cli.progress import _follow, show_load_progress


def fake_runtime() -> Any:
    status = SimpleNamespace(passes=0, fetches=3, last_error=None)
    watcher = SimpleNamespace(status=status, snapshot=SimpleNamespace(refs={}))
    return SimpleNamespace(watcher=watcher, bridge=SimpleNamespace(reconciler=SimpleNamespace(
        progress=LoadProgress())))


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    assert show_load_progress(fake_runtime(), Console(file=io.StringIO()), io.StringIO()) is False


def test_the_bar_counts_live_and_failed_and_ends_when_none_is_loading() -> None:
    runtime = fake_runtime()
    out = io.StringIO()
    follower = threading.Thread(target=_follow, args=(runtime, Console(file=out, force_terminal=True,
                                                                        width=150), threading.Event()))
    follower.start()
    time.sleep(0.3)
    runtime.watcher.snapshot = SimpleNamespace(refs={str(i): i for i in range(10)})
    runtime.watcher.status.passes = 1
    runtime.bridge.reconciler.progress = LoadProgress(total=10, live=4)
    time.sleep(0.3)
    assert follower.is_alive(), "the bar ended while versions were still loading"
    runtime.bridge.reconciler.progress = LoadProgress(total=10, live=9, failed=1)
    follower.join(5)
    assert not follower.is_alive()
    text = out.getvalue()
    assert "reading the registry" in text and "4 live, 0 failed" in text
    assert "10/10" in text and "9 live, 1 failed (toolbridge status: why)" in text
