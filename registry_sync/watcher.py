"""The registry watch loop: poll (and wake on webhooks), fetch only what changed, stay static on failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from registry_sync.errors import MalformedEntry, RegistryUnavailable
from registry_sync.policy import ApprovalPolicy, Candidate, select_candidates
from registry_sync.snapshot import diff, exclusion, make_ref
from registry_sync.source import RegistrySource
from registry_sync.types import Exclusion, ModelVersionRef, Snapshot, SyncPlan, VersionDetails

__all__ = ["RegistryWatcher", "SyncStatus"]

log = logging.getLogger(__name__)

SnapshotListener = Callable[[Snapshot, SyncPlan], Awaitable[None]]
FULL_REFRESH_EVERY = 60  # passes; catches version-only edits that touch no registered-model timestamp
MAX_BACKOFF = 60.0
FETCH_CONCURRENCY = 8


class SyncStatus(BaseModel):
    state: str = "starting"  # starting | ok | degraded
    passes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_success_at: float | None = None
    last_error: str | None = None
    error_since: float | None = None
    fetches: int = 0


class RegistryWatcher:
    """Keeps `snapshot` equal to the registry's approved versions; tells a listener what changed."""

    def __init__(self, source: RegistrySource, policy: ApprovalPolicy, poll_interval: float,
                 listener: SnapshotListener | None = None) -> None:
        self.source = source
        self.policy = policy
        self.poll_interval = poll_interval
        self.listener = listener
        self.snapshot = Snapshot()
        self.status = SyncStatus()
        self._details: dict[tuple[str, str, int], VersionDetails | str] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def trigger(self) -> None:
        """Run the next pass now (a webhook arrived) instead of at the next poll tick."""
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sync_once()
            except Exception as exc:  # a bug in one pass must not end the watch: log, count, go on
                log.exception("registry pass crashed")
                self._record_failure(f"internal error: {type(exc).__name__}: {exc}")
            delay = self.poll_interval
            if self.status.consecutive_failures:
                backoff = min(MAX_BACKOFF, self.poll_interval * 2 ** min(self.status.consecutive_failures, 6))
                delay = backoff * random.uniform(0.5, 1.0)  # jitter so replicas do not hammer MLflow together
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()

    async def sync_once(self) -> SyncPlan:
        """One pass. On RegistryUnavailable the last snapshot stays in force (fail-static)."""
        async with self._lock:
            self._wake.clear()
            try:
                snapshot = await asyncio.to_thread(self._read_registry)
            except RegistryUnavailable as exc:
                self._record_failure(str(exc))
                return SyncPlan()
            plan = diff(self.snapshot, snapshot)
            self.snapshot = snapshot
            self._record_success()
        if self.listener is not None:
            await self.listener(snapshot, plan)
        return plan

    def _read_registry(self) -> Snapshot:
        models = self.source.list_models()
        candidates, excluded = select_candidates(models, self.policy)
        if self.status.passes % FULL_REFRESH_EVERY == 0:
            self._details.clear()
        refs: dict[str, ModelVersionRef] = {}
        problems: list[Exclusion] = list(excluded)
        keyed = {(c.model.name, c.version, c.model.last_updated_timestamp): c for c in candidates}
        missing = [key for key in keyed if key not in self._details]
        # Fetches are network-bound: a few at once make a cold pass over a large registry several
        # times faster.
        with ThreadPoolExecutor(FETCH_CONCURRENCY) as pool:
            for key, details in zip(missing, pool.map(lambda k: self._fetch(keyed[k]), missing), strict=True):
                self._details[key] = details
        for cache_key, candidate in keyed.items():
            details = self._details[cache_key]
            if isinstance(details, str):
                problems.append(exclusion(candidate, details))
            else:
                ref = make_ref(candidate, details)
                refs[ref.key] = ref
        for stale in set(self._details) - set(keyed):
            del self._details[stale]
        return Snapshot(refs=refs, excluded=tuple(problems))

    def _fetch(self, candidate: Candidate) -> VersionDetails | str:
        self.status.fetches += 1  # racy increments under the pool only blur a diagnostic counter
        try:
            return self.source.fetch_version(candidate.model.name, candidate.version)
        except MalformedEntry as exc:
            return str(exc)

    def _record_success(self) -> None:
        status = self.status
        status.state, status.passes = "ok", status.passes + 1
        status.consecutive_failures, status.last_error, status.error_since = 0, None, None
        status.last_success_at = time.time()

    def _record_failure(self, error: str) -> None:
        status = self.status
        log.warning("registry pass failed, keeping the last snapshot: %s", error)
        status.state = "degraded"
        status.failures += 1
        status.consecutive_failures += 1
        status.last_error = error
        status.error_since = status.error_since or time.time()
