"""The shadow mirror: after the champion answered a caller, the call is offered to a bounded queue; worker
tasks send it to the shadow version, compare both answers and add them to the version's window.

The caller never waits on any of it: `offer` is a sampling draw and a `put_nowait` on the event loop (no
lock, no await); a full queue drops the call and counts it. The shadow runs on spare capacity: by default a
worker sends its call only once no caller's call has been in progress in this process for `quiet_ms`, so
under sustained load the queue fills and shadow calls are dropped (counted) rather than slowing callers down.
A shadow that fails, times out or refuses the arguments is counted as a shadow error, never raised. Closed
windows and disagreements go to listeners (the tool server writes them to MLflow and to its database, off the
call path).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.live import LiveVersion, Route, ShadowTarget
from bridge.schema import to_model_input
from bridge.shadow.compare import Comparison, ShadowHistory, WindowCounter, compare
from bridge.toolspec import RESTRICTED
from registry_sync import ModelVersionRef
from registry_sync.shadow import TAG_SHADOW_RESTRICTED, ShadowWindow

__all__ = ["Disagreement", "MirroredCall", "ShadowMirror", "ShadowSettings", "shadow_target"]

log = logging.getLogger(__name__)


class ShadowSettings(BaseSettings):
    """Shadow traffic (docs/reliability.md "Shadow traffic"), from `TOOLBRIDGE_SHADOW_*` variables; the alias
    itself is TOOLBRIDGE_SHADOW_ALIAS (registry_sync.SyncSettings)."""

    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_SHADOW_", extra="ignore")

    queue_size: int = Field(default=1000, ge=1, le=1_000_000, description="calls waiting for the shadow; "
                            "past it new ones are dropped (counted)")
    concurrency: int = Field(default=1, ge=1, le=256, description="shadow calls in flight at once")
    yield_to_callers: bool = Field(default=True, description="a shadow call starts only when no caller's "
                                   "call has been in progress in this process for quiet_ms")
    # 20 ms (bench/README.md "Shadow traffic"): a back-to-back caller's gaps are shorter, so it never meets a
    # shadow call; 2 ms compared twice as many of its calls but cost it up to 1.4x at p50, 0 ms 1.7x.
    quiet_ms: float = Field(default=20.0, ge=0, le=60_000, description="how long this process must have "
                            "answered no caller before a shadow call starts")
    window_calls: int = Field(default=500, ge=1, description="a comparison window closes after this many "
                              "mirrored calls...")
    window_seconds: float = Field(default=60.0, gt=0, description="...or after this many seconds")
    examples: int = Field(default=50, ge=0, le=100_000, description="disagreements kept per shadow version "
                          "(input hash and both answers) for admins")
    writeback_seconds: float = Field(default=10.0, ge=0, description="seconds between two writes of the "
                                     "closed windows to MLflow; 0 = not written")


def shadow_target(live: LiveVersion, ref: ModelVersionRef) -> ShadowTarget:
    """How a live shadow version is mirrored: its rate, or why a restricted tool's calls are not."""
    allowed = ref.model_tags.get(TAG_SHADOW_RESTRICTED, "").strip().lower() == "true"
    blocked = None
    if live.spec.sensitivity == RESTRICTED and not allowed:
        blocked = (f"restricted tool: its calls are mirrored only with the model tag "
                   f"{TAG_SHADOW_RESTRICTED}=true")
    return ShadowTarget(live=live, rate=ref.shadow_rate, blocked=blocked)


@dataclass(frozen=True)
class MirroredCall:
    tool: str
    champion: LiveVersion
    target: ShadowTarget
    arguments: Any  # as the caller sent them, before the champion's coercion
    champion_output: dict[str, Any]
    champion_seconds: float | None  # None: answered from the response cache


@dataclass(frozen=True)
class Disagreement:
    """A call both versions answered differently (or the shadow failed): for admins, never for MLflow."""

    time: float
    tool: str
    model: str
    champion_version: str
    shadow_version: str
    input_sha256: str  # of the sorted-key JSON arguments, as the audit log hashes them
    arguments: Any
    restricted: bool
    champion_output: dict[str, Any]
    shadow_output: dict[str, Any]  # {"error": "..."} when the shadow failed


def _sha256(arguments: Any) -> str:
    try:
        canonical = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = repr(arguments).encode()
    return hashlib.sha256(canonical).hexdigest()


class ShadowMirror:
    def __init__(self, settings: ShadowSettings, routes: Callable[[], Mapping[str, Route]],
                 rng: random.Random | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._routes = routes
        self._rng = rng or random.Random()
        self._clock = clock
        self.window_listeners: list[Callable[[ShadowWindow], None]] = []
        self.disagreement_listeners: list[Callable[[Disagreement], None]] = []
        self._queue: asyncio.Queue[MirroredCall] | None = None
        self._counters: dict[str, WindowCounter] = {}  # by shadow key (name/version)
        self._history: dict[str, ShadowHistory] = {}
        self._examples: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._callers = 0
        self._idle: asyncio.Event | None = None
        self._last_answer = 0.0  # time.monotonic() when the last caller's call ended

    def caller_started(self) -> None:
        self._callers += 1
        if self._idle is not None:
            self._idle.clear()

    def caller_finished(self) -> None:
        self._callers -= 1
        self._last_answer = time.monotonic()
        if self._callers == 0 and self._idle is not None:
            self._idle.set()

    def offer(self, call: MirroredCall) -> None:
        """On the call path, after the champion answered: a draw and a put_nowait, nothing awaited."""
        target = call.target
        if self._queue is None or target.blocked is not None or self._rng.random() >= target.rate:
            return
        try:
            self._queue.put_nowait(call)
        except asyncio.QueueFull:
            self._counter(call).drop()

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.settings.queue_size)
        self._idle = asyncio.Event()
        if self._callers == 0:
            self._idle.set()
        self._tasks = [asyncio.create_task(self._work(), name=f"shadow-{n}")
                       for n in range(self.settings.concurrency)]
        self._tasks.append(asyncio.create_task(self._tick(), name="shadow-windows"))

    async def stop(self) -> None:
        """End the workers (calls still queued are not mirrored) and close the open windows."""
        self._queue = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for counter in self._counters.values():
            if counter.calls or counter.dropped:
                self._emit(counter.close())

    async def drain(self) -> None:
        """Wait until every queued call is mirrored (tests, benchmarks)."""
        if self._queue is not None:
            await self._queue.join()

    def _counter(self, call: MirroredCall) -> WindowCounter:
        spec = call.target.live.spec
        counter = self._counters.get(spec.key)
        if counter is None:
            counter = self._counters[spec.key] = WindowCounter(
                model=spec.model_name, tool=call.tool, shadow_version=spec.model_version,
                window_calls=self.settings.window_calls, window_seconds=self.settings.window_seconds,
                clock=self._clock, champion_version=call.champion.spec.model_version)
        return counter

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            call = await queue.get()
            try:
                if self.settings.yield_to_callers:
                    await self._quiet()
                await self._mirror(call)
            except Exception:  # a bug here must not end the worker: the next call is mirrored
                log.exception("shadow call of %s failed unexpectedly", call.target.live.spec.key)
            finally:
                queue.task_done()

    async def _quiet(self) -> None:
        """Until no caller has been answered for `quiet_ms` (a back-to-back caller's gaps are mostly
        shorter)."""
        assert self._idle is not None
        quiet = self.settings.quiet_ms / 1000
        while True:
            await self._idle.wait()
            left = quiet - (time.monotonic() - self._last_answer)
            if left <= 0 and self._callers == 0:
                return
            await asyncio.sleep(max(left, 0.001))

    async def _mirror(self, call: MirroredCall) -> None:
        shadow = call.target.live
        started = time.perf_counter()
        comparison: Comparison | None = None
        try:
            arguments = shadow.validator.coerce(call.arguments)
            shadow.validator.validate(arguments)
            outputs = await shadow.host.predict(shadow.spec.key, to_model_input(shadow.spec.signature,
                                                                                 arguments),
                                                shadow.spec.model_uri)
            if len(outputs) != 1:
                raise ValueError(f"returned {len(outputs)} rows for one input row")
            answer: dict[str, Any] = dict(outputs[0])
            comparison = compare(call.champion_output, answer)
        except Exception as exc:  # any failure of the shadow is its own: counted, never raised
            answer = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            log.debug("shadow %s failed: %s", shadow.spec.key, exc)
        counter = self._counter(call)
        counter.add(call.champion.spec.model_version, comparison, call.champion_seconds,
                    time.perf_counter() - started)
        if comparison is None or not comparison.agree:
            self._keep_example(call, answer)
        if counter.due():
            self._emit(counter.close())

    def _keep_example(self, call: MirroredCall, answer: dict[str, Any]) -> None:
        spec = call.target.live.spec
        if self._examples.get(spec.key, 0) >= self.settings.examples or not self.disagreement_listeners:
            return
        self._examples[spec.key] = self._examples.get(spec.key, 0) + 1
        example = Disagreement(
            time=self._clock(), tool=call.tool, model=spec.model_name,
            champion_version=call.champion.spec.model_version, shadow_version=spec.model_version,
            input_sha256=_sha256(call.arguments), arguments=call.arguments,
            restricted=call.champion.spec.sensitivity == RESTRICTED,
            champion_output={k: v for k, v in call.champion_output.items() if k != "model"},
            shadow_output=answer)
        for listener in self.disagreement_listeners:
            listener(example)

    def _emit(self, window: ShadowWindow) -> None:
        self._history.setdefault(window.key, ShadowHistory()).add(window)
        for listener in self.window_listeners:
            try:
                listener(window)
            except Exception:
                log.exception("shadow window listener failed")

    async def _tick(self) -> None:
        """Close windows that are M seconds old though not full (a quiet tool still reports)."""
        while True:
            await asyncio.sleep(min(1.0, self.settings.window_seconds / 4))
            for counter in list(self._counters.values()):
                if counter.due():
                    self._emit(counter.close())

    def status(self) -> list[dict[str, Any]]:
        """Each shadow version routed now or seen by this process: its state, totals and last windows."""
        rows: dict[str, dict[str, Any]] = {}
        for tool, route in sorted(self._routes().items()):
            if route.shadow is not None:
                spec = route.shadow.live.spec
                rows[spec.key] = {"tool": tool, "model": spec.model_name,
                                  "shadow_version": spec.model_version,
                                  "champion_version": route.champion.spec.model_version, "mirroring": True,
                                  "rate": route.shadow.rate, "blocked": route.shadow.blocked}
        for key in sorted({*self._counters, *self._history} - set(rows)):
            counter = self._counters.get(key)
            window = self._history[key].windows[-1] if key in self._history else None
            model, version = key.rsplit("/", 1)
            rows[key] = {"tool": counter.tool if counter else window.tool if window else "", "model": model,
                         "shadow_version": version, "mirroring": False, "rate": None, "blocked": None,
                         "champion_version": counter.champion_version if counter else
                         window.champion_version if window else ""}
        for key, row in rows.items():
            history = self._history.get(key, ShadowHistory())
            open_window = self._counters.get(key)
            row["totals"] = history.totals()
            row["open_window"] = open_window.snapshot() if open_window else None
            row["windows"] = [{"sequence": w.sequence, "ended_at": w.ended_at, **w.metrics(),
                               "confusion": w.confusion} for w in history.windows]
        return list(rows.values())

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0
