"""Usage counts per model and version, written back to MLflow as `toolbridge.usage.*` tags on a slow timer.

Off unless TOOLBRIDGE_USAGE_WRITEBACK_SECONDS > 0. Counting is an add under a lock on the event loop; the
write goes through registry_sync (the one package that talks to the registry) in a thread, as MlflowClient
blocks. A write that fails because MLflow cannot be reached keeps its counts for the next one; the last write
runs when the server stops. Which calls count: every call that reached a model's tool, except those refused to
the key (`denied`); `errors` are the counted calls that got no answer. Version tags count the calls a version
answered (a call refused as invalid never reached a version).

Several replicas: each counts its own calls, and a `WriterLock` (Redis, ops/shared_state.py) lets one write at
a time, since a write reads the tags, adds and writes them back. A replica that finds the lock taken (or Redis
down) keeps its counts for its next turn: counts wait, none are lost. Without Redis, the workers of one
`toolbridge up` share its state dir: a `FileWriterLock` there makes them write one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from registry_sync.errors import MalformedEntry
from registry_sync.source import UsageSink
from registry_sync.usage import ModelUsage, VersionUsage

__all__ = ["FileWriterLock", "UsageWriteback", "WriterLock"]

log = logging.getLogger(__name__)

FINAL_FLUSH_TIMEOUT = 30.0  # seconds shutdown waits for the last write (MLflow requests time out after 10)


class WriterLock(Protocol):
    def acquire(self) -> bool: ...

    def release(self) -> None: ...


class FileWriterLock:
    """One writer at a time among the processes (or threads) sharing `path`: an exclusive `flock`, as the
    migrations take on SQLite. `acquire()` waits for the holder's write (seconds at most) rather than skip a
    turn, so that the last write at shutdown is not dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        try:  # a descriptor of its own each time: flock excludes every other open of the file
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:  # an unwritable state dir: write unlocked, as a single process would
            log.warning("usage write lock %s unavailable, writing without it: %s", self.path, exc)
            return True
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Tally:
    """Mutable counts of one model since the last take: cheaper per call than frozen models."""

    calls: int = 0
    errors: int = 0
    last_call: datetime | None = None
    versions: dict[str, tuple[int, datetime]] = field(default_factory=dict)

    def usage(self, name: str) -> ModelUsage:
        versions = {v: VersionUsage(calls=n, last_call=t) for v, (n, t) in self.versions.items()}
        return ModelUsage(name=name, calls=self.calls, errors=self.errors, last_call=self.last_call,
                          versions=versions)


class UsageWriteback:
    """Counts calls per model and version; every `interval` seconds adds them to the registry's usage tags."""

    def __init__(self, sink: UsageSink, interval: float, clock: Callable[[], datetime] = _now,
                 lock: WriterLock | None = None) -> None:
        self.sink, self.interval, self._clock, self.lock = sink, interval, clock, lock
        self._tallies: dict[str, _Tally] = {}
        self._unsent: dict[str, ModelUsage] = {}  # taken for a write that failed: first in the next one
        self._lock = threading.Lock()  # record() runs on the event loop, flush() in a worker thread
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def record(self, model: str, version: str | None, outcome: str) -> None:
        """One call to `model`'s tool (`version`: the one that answered, if any). The Gateway's usage hook."""
        if not self.enabled or outcome == "denied":
            return
        now = self._clock()
        with self._lock:
            tally = self._tallies.setdefault(model, _Tally())
            tally.calls += 1
            tally.errors += outcome != "ok"
            tally.last_call = now
            if version is not None:
                calls, _ = tally.versions.get(version, (0, now))
                tally.versions[version] = (calls + 1, now)

    def pending(self) -> list[ModelUsage]:
        """The counts not written yet (a snapshot, for tests and diagnostics)."""
        with self._lock:
            return self._merged(dict(self._unsent), self._tallies)

    def take(self) -> list[ModelUsage]:
        """Everything counted and not yet written; the counters start again from zero."""
        with self._lock:
            taken = self._merged(self._unsent, self._tallies)
            self._unsent, self._tallies = {}, {}
        return taken

    def keep(self, usages: list[ModelUsage]) -> None:
        """Hand back counts a write could not deliver: the next write sends them."""
        with self._lock:
            for usage in usages:
                earlier = self._unsent.get(usage.name)
                self._unsent[usage.name] = earlier.plus(usage) if earlier else usage

    @staticmethod
    def _merged(unsent: dict[str, ModelUsage], tallies: dict[str, _Tally]) -> list[ModelUsage]:
        merged = dict(unsent)
        for name, tally in tallies.items():
            fresh = tally.usage(name)
            merged[name] = merged[name].plus(fresh) if name in merged else fresh
        return [merged[name] for name in sorted(merged)]

    def flush(self) -> int:
        """Write the pending counts (blocking); how many models were written. Never raises."""
        if self.lock is None:
            return self._write()
        if not self.lock.acquire():
            log.info("usage counts not written this time: another replica holds the write lock (or Redis is "
                     "down); kept for the next write")
            return 0
        try:
            return self._write()
        finally:
            self.lock.release()

    def _write(self) -> int:
        batch = self.take()
        written = 0
        for index, usage in enumerate(batch):
            try:
                self.sink.write_usage(usage)
            except MalformedEntry as exc:  # the model is gone from the registry: nowhere to write its counts
                log.warning("usage counts of %s dropped (%d calls): %s", usage.name, usage.calls, exc)
                continue
            except Exception as exc:  # MLflow down (RegistryUnavailable) or anything else: nothing is lost
                self.keep(batch[index:])
                log.warning("usage counts not written to MLflow, kept for the next try: %s", exc,
                            extra={"models_pending": len(batch) - index})
                break
            written += 1
        if written:
            log.info("usage counts written to MLflow for %d model(s)", written, extra={"models": written})
        return written

    def start(self) -> None:
        if self.enabled and self._task is None:
            log.info("usage write-back to MLflow tags every %gs", self.interval)
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the timer after one last write of what was counted."""
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(self._task, FINAL_FLUSH_TIMEOUT)
        except TimeoutError:
            log.warning("the last usage write to MLflow did not finish within %gs; its counts are lost",
                        FINAL_FLUSH_TIMEOUT)
        self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            await asyncio.to_thread(self.flush)
            if self._stopping.is_set():  # checked after the write: a stop always gets its final one
                return
