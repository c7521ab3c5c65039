"""Shadow comparisons leave the process on a timer, never on the call path: closed windows as metrics on the
shadow version's MLflow run (through registry_sync, the one package that writes to the registry), and
disagreement examples into the database.

The mirror hands windows and examples over on the event loop (a list append under a lock); the timer writes
them in a worker thread. A write MLflow or the database cannot take is logged and kept for the next tick;
windows of a version gone from the registry are dropped. `stop()` writes what is left. Several replicas or
workers: a `WriterLock` (Redis) lets one write to MLflow at a time, as the summary tag is read, added to and
written back; without Redis each process writes its own windows (documented in docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bridge.shadow.mirror import Disagreement
from registry_sync.errors import MalformedEntry
from registry_sync.shadow import ShadowSink, ShadowWindow
from tool_server.ops.usage import WriterLock
from tool_server.shadow.examples import store_examples

__all__ = ["SHADOW_LOCK", "ShadowWriteback"]

log = logging.getLogger(__name__)

SHADOW_LOCK = "toolbridge:lock:shadow-writeback"  # Redis key of the one-writer-at-a-time lock
DATABASE_TICK = 2.0  # seconds between two writes of examples when MLflow write-back is off
MAX_PENDING_WINDOWS = 10_000  # while MLflow is down, the oldest past this are dropped (logged)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class ShadowWriteback:
    def __init__(self, sink: ShadowSink, engine: Engine, interval: float, keep_examples: int,
                 audit_inputs: bool = False, lock: WriterLock | None = None) -> None:
        self.sink, self.engine, self.interval = sink, engine, interval
        self.keep_examples = keep_examples
        self.audit_inputs = audit_inputs
        self.lock = lock
        self.run_ids: dict[str, str] = {}  # shadow key → MLflow run id, once written
        self.windows_written = 0
        self._windows: list[ShadowWindow] = []
        self._examples: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # appends on the event loop, takes in a worker thread
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add_window(self, window: ShadowWindow) -> None:
        """The mirror's window listener."""
        if self.interval <= 0:
            return
        with self._lock:
            self._windows.append(window)
            if len(self._windows) > MAX_PENDING_WINDOWS:
                del self._windows[0]
                log.warning("shadow windows pending for MLflow past %d: the oldest is dropped",
                            MAX_PENDING_WINDOWS)

    def add_disagreement(self, example: Disagreement) -> None:
        """The mirror's disagreement listener: inputs only if the audit may keep them."""
        keep_inputs = self.audit_inputs and not example.restricted
        row = {"time": datetime.fromtimestamp(example.time, UTC), "tool": example.tool[:128],
               "model": example.model, "champion_version": example.champion_version,
               "shadow_version": example.shadow_version, "input_sha256": example.input_sha256,
               "inputs": _json(example.arguments) if keep_inputs else None,
               "champion_output": _json(example.champion_output),
               "shadow_output": _json(example.shadow_output)}
        with self._lock:
            self._examples.append(row)

    def flush(self) -> None:
        """Write what is pending (blocking; in a worker thread). Never raises."""
        self.flush_examples()
        if self.lock is not None and not self.lock.acquire():
            return  # another replica is writing: these windows wait for the next tick
        try:
            self._write_windows()
        finally:
            if self.lock is not None:
                self.lock.release()

    def _write_windows(self) -> None:
        with self._lock:
            windows, self._windows = self._windows, []
        by_key: dict[str, list[ShadowWindow]] = {}
        for window in windows:
            by_key.setdefault(window.key, []).append(window)
        unsent: list[ShadowWindow] = []
        for key, batch in by_key.items():
            try:
                self.run_ids[key] = self.sink.write_shadow(batch)
                self.windows_written += len(batch)
            except MalformedEntry as exc:
                log.warning("shadow windows of %s dropped: %s", key, exc)
            except Exception as exc:  # MLflow down or anything else: kept for the next tick
                log.warning("shadow windows of %s not written to MLflow, kept for the next try: %s", key, exc)
                unsent.extend(batch)
        if unsent:
            with self._lock:
                self._windows[:0] = unsent

    def flush_examples(self) -> None:
        with self._lock:
            rows, self._examples = self._examples, []
        try:
            store_examples(self.engine, rows, self.keep_examples)
        except sa.exc.SQLAlchemyError as exc:
            log.error("shadow: %d disagreement examples not stored (%s); retrying later", len(rows),
                      type(exc).__name__)
            with self._lock:
                self._examples[:0] = rows

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shadow-writeback")

    async def stop(self) -> None:
        """One last write, after the mirror closed its windows."""
        if self._task is None:
            return
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._task, 30.0)
        self._task = None

    async def _run(self) -> None:
        tick = self.interval if self.interval > 0 else DATABASE_TICK
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), tick)
            await asyncio.to_thread(self.flush)
            if self._stopping.is_set():
                return
