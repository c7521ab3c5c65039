"""Adaptive micro-batching in the model host: calls for one model version that arrive together run as ONE
model call on their concatenated rows; each caller gets its own rows back, or its own error.

Policy (adaptive, no timer): per version, a call that finds the version idle runs at once, so a lone call
waits for nothing; calls that arrive while a batch runs queue up and run together as the next batch, up to
`max_rows` rows. Batches follow the load: one call when idle, about arrival rate × model time when busy.

Why not BentoML's own `@bentoml.api(batchable=True)` (read in bentoml 1.4.39, `_bentoml_impl/server/app.py`
`batch_infer` and `_internal/marshal/dispatcher.py` `CorkDispatcher`): its batch function takes one list
and returns one list per merged batch, so an exception fails every caller in the batch, and a per-caller
error can only travel as an in-band item under the batch's shared 200 (`batch_to_batches` slices the
output list; only a whole-job Exception is re-raised); its `max_latency_ms` is a deadline that answers 503
"process is overloaded" to requests that waited longer; and one dispatcher per endpoint runs one batch at a
time for every model, so a slow model delays the calls of all the others. Here each caller keeps its own
HTTP status, nothing is dropped, and each version batches on its own.

The pure part (`predict_jobs`, `merge`, `split`) validates each call first, groups those that can share a
model call, and falls back to one model call per caller when a merged call fails, so that a fault stays
with the caller whose rows caused it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchOutcome", "BatchStats", "MicroBatcher", "merge", "merge_key", "predict_jobs", "rows_of",
           "split"]

ModelInput = dict[str, Any]
Rows = list[dict[str, Any]]
Result = Rows | Exception


def rows_of(payload: ModelInput) -> int:
    """Input rows in a payload: records, or samples along a tensor's first axis; 1 when it cannot say."""
    data = payload.get("records") if payload.get("kind", "records") == "records" else payload.get("data")
    return len(data) if isinstance(data, list) and data else 1


def merge_key(payload: ModelInput, batch_axis: bool) -> Hashable | None:
    """Payloads with equal keys can share one model call; None: this one runs alone.

    Same kind, dtype and params (params apply to a whole model call). Named tensors and tensors without a
    batch axis (a fixed first dimension) have no rows to stack.
    """
    kind = payload.get("kind", "records")
    if not batch_axis or kind not in ("records", "tensor"):
        return None
    try:
        params = json.dumps(payload.get("params") or {}, sort_keys=True)
    except (TypeError, ValueError):
        return None
    return kind, str(payload.get("dtype")), params


def merge(payloads: Sequence[ModelInput]) -> ModelInput:
    """One payload holding every row of `payloads` (all with one `merge_key`), in order."""
    first = payloads[0]
    if first.get("kind", "records") == "records":
        records = [row for payload in payloads for row in payload["records"]]
        return {"kind": "records", "records": records, "params": first.get("params") or {}}
    data = [row for payload in payloads for row in payload["data"]]  # numpy stacks it on axis 0
    return {"kind": "tensor", "data": data, "dtype": first.get("dtype"), "params": first.get("params") or {}}


def split(rows: Sequence[dict[str, Any]], counts: Sequence[int]) -> list[Rows]:
    """The merged call's output rows cut back into each caller's share; ValueError if they do not add up."""
    if len(rows) != sum(counts):
        raise ValueError(f"the model returned {len(rows)} rows for {sum(counts)} input rows")
    parts, start = [], 0
    for count in counts:
        parts.append(list(rows[start:start + count]))
        start += count
    return parts


@dataclass(frozen=True)
class BatchOutcome:
    model_calls: int  # predict calls made for the batch
    fallbacks: int  # merged calls that failed and were re-run one caller at a time


def predict_jobs(payloads: Sequence[ModelInput], validate: Callable[[ModelInput], None],
                 predict: Callable[[ModelInput], Rows], batch_axis: bool = True
                 ) -> tuple[list[Result], BatchOutcome]:
    """Each payload's output rows, or the exception that is its own: one model call per group of mergeable
    valid payloads, one call per payload for the rest and for a group whose merged call failed."""
    results: list[Result | None] = [None] * len(payloads)
    groups: dict[Hashable, list[int]] = {}
    for i, payload in enumerate(payloads):
        try:
            validate(payload)
        except Exception as exc:  # a bad row fails its own call, before any model call
            results[i] = exc
            continue
        key = merge_key(payload, batch_axis)
        groups.setdefault(("alone", i) if key is None else key, []).append(i)
    calls = fallbacks = 0
    for members in groups.values():
        if len(members) > 1:
            calls += 1
            try:
                merged = predict(merge([payloads[i] for i in members]))
                parts = split(merged, [rows_of(payloads[i]) for i in members])
            except Exception:  # whose rows? Only one call per caller can tell
                fallbacks += 1
            else:
                for i, part in zip(members, parts, strict=True):
                    results[i] = part
                continue
        for i in members:
            calls += 1
            try:
                results[i] = predict(payloads[i])
            except Exception as exc:
                results[i] = exc
    done: list[Result] = [r if r is not None else RuntimeError("no result") for r in results]
    return done, BatchOutcome(calls, fallbacks)


@dataclass
class BatchStats:
    """What batching did since the host started (reported by `/v1/models/list`)."""

    calls: int = 0  # predict calls submitted
    batches: int = 0  # batches run (each one `run` of one version's queued calls)
    merged_batches: int = 0  # batches holding more than one call
    largest_batch: int = 0  # most calls in one batch

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "batches": self.batches, "merged_batches": self.merged_batches,
                "largest_batch": self.largest_batch}


@dataclass
class _Job:
    payload: ModelInput
    future: asyncio.Future[Rows]
    rows: int = field(default=1)


class MicroBatcher:
    """Queues concurrent calls per model version and hands each batch to `run` (which returns one result or
    exception per payload, in order: `predict_jobs` in a worker thread)."""

    def __init__(self, run: Callable[[str, list[ModelInput]], Awaitable[Sequence[Result]]],
                 max_rows: int = 64) -> None:
        self._run = run
        self.max_rows = max_rows
        self.stats = BatchStats()
        self._queues: dict[str, list[_Job]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}

    async def submit(self, key: str, payload: ModelInput) -> Rows:
        """The output rows of `payload` on version `key`; raises that call's own error."""
        job = _Job(payload, asyncio.get_running_loop().create_future(), rows_of(payload))
        self._queues.setdefault(key, []).append(job)
        self.stats.calls += 1
        if key not in self._drains:  # idle version: run now
            self._drains[key] = asyncio.create_task(self._drain(key))
        return await job.future

    def _next_batch(self, key: str) -> list[_Job]:
        queue = self._queues[key]
        taken, rows = 1, queue[0].rows
        while taken < len(queue) and rows + queue[taken].rows <= self.max_rows:
            rows += queue[taken].rows
            taken += 1
        batch, self._queues[key] = queue[:taken], queue[taken:]
        return batch

    async def _drain(self, key: str) -> None:
        batch: list[_Job] = []
        try:
            while self._queues.get(key):
                batch = self._next_batch(key)
                self.stats.batches += 1
                self.stats.merged_batches += int(len(batch) > 1)
                self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
                try:
                    results: Sequence[Result] = await self._run(key, [job.payload for job in batch])
                except Exception as exc:  # `run` itself failed (e.g. the version is gone): everyone's error
                    results = [exc] * len(batch)
                for job, result in zip(batch, results, strict=True):
                    if job.future.done():  # its caller went away
                        continue
                    if isinstance(result, Exception):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
                batch = []
        finally:  # empty after a normal exit; else (cancelled at shutdown, a bug) nobody may wait forever
            for job in [*batch, *self._queues.pop(key, [])]:
                if not job.future.done():
                    job.future.set_exception(RuntimeError(f"the model host stopped batching {key}"))
            self._drains.pop(key, None)
