"""Level-triggered reconciler: make the loaded, live versions match the approved snapshot.

Each pass: load what is new on its host, smoke-test it with its input example, at most `max_parallel_loads`
at once (a cold start at registry scale loads hundreds), routing each tool as soon as its versions are up;
the routing table is swapped in one assignment each time. Versions no longer approved finish their in-flight
calls and stay loaded (warm, unrouted) for `unload_after` seconds, so moving an alias back is instant, then
unload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bridge.errors import BridgeError
from bridge.host_pool import HostPool
from bridge.hosting.remote_pool import UnknownPool
from bridge.live import LiveVersion, Route, ShadowTarget
from bridge.schema import arguments_from_record, to_model_input
from bridge.shadow.mirror import shadow_target
from bridge.toolspec import ModelFacts, build_tool_spec
from bridge.validation import compile_validator
from registry_sync import ModelVersionRef, Snapshot

__all__ = ["LoadProgress", "Reconciler", "VersionStatus"]

log = logging.getLogger(__name__)
RETRY_FAILED_AFTER = 30.0  # seconds before a failed version is tried again with unchanged metadata


@dataclass
class VersionStatus:
    tool: str
    model: str
    version: str
    role: str
    state: str  # loading | live | failed | warm (unapproved, still loaded for an instant rollback)
    reason: str | None = None
    since: float = 0.0
    host: str | None = None


@dataclass(frozen=True)
class LoadProgress:
    """How far the approved versions of the latest pass are: live, failed, or still loading."""

    total: int = 0
    live: int = 0
    failed: int = 0

    @property
    def loading(self) -> int:
        return self.total - self.live - self.failed


class Reconciler:
    def __init__(self, hosts: HostPool, unload_after: float = 10.0, max_parallel_loads: int = 8) -> None:
        self.hosts = hosts
        self.unload_after = unload_after
        self.max_parallel_loads = max_parallel_loads
        self.routes: dict[str, Route] = {}
        # Replaced, never mutated: other threads (the CLI's progress bar) read it without a lock.
        self.progress = LoadProgress()
        self._live: dict[str, tuple[ModelVersionRef, LiveVersion]] = {}
        self._failed: dict[str, tuple[ModelVersionRef, str, float]] = {}
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._bringing_up: Counter[str] = Counter()  # by host: a dedicated host loading is not idle
        self._lock = asyncio.Lock()

    async def apply(self, snapshot: Snapshot) -> None:
        async with self._lock:
            slots = asyncio.Semaphore(self.max_parallel_loads)

            async def bring_up(key: str, ref: ModelVersionRef) -> None:
                async with slots:
                    await self._ensure_live(key, ref)
                # Each tool as soon as it is up; a tool whose new version is still loading keeps its old
                # route (its new snapshot has none yet) until that version is live or the pass ends.
                self.routes = {**self.routes, **self._routes_for(snapshot)}
                self._note_progress(snapshot)

            self._note_progress(snapshot)
            # Every load finishes before the pass goes on or fails: none keeps running outside the lock.
            outcomes = await asyncio.gather(*(bring_up(key, ref) for key, ref in snapshot.refs.items()),
                                            return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            self.routes = self._routes_for(snapshot)
            for key in set(self._live) - set(snapshot.refs):
                self._schedule_unload(key)
            for key in set(self._failed) - set(snapshot.refs):
                del self._failed[key]
            self._note_progress(snapshot)

    def _note_progress(self, snapshot: Snapshot) -> None:
        live = sum(1 for key in snapshot.refs if key in self._live)
        failed = sum(1 for key in snapshot.refs if key in self._failed and key not in self._live)
        self.progress = LoadProgress(total=len(snapshot.refs), live=live, failed=failed)

    async def reload_host(self, host_name: str) -> None:
        """After a host restart: load its versions again (routes keep pointing at them meanwhile)."""
        async with self._lock:
            for key, (ref, live) in list(self._live.items()):
                if live.host_name == host_name:
                    try:
                        await live.host.load(key, ref.uri)
                    except BridgeError as exc:
                        log.error("reload of %s on host %s failed: %s", key, host_name, exc)

    async def _ensure_live(self, key: str, ref: ModelVersionRef) -> None:
        if key in self._draining:  # approved again (a rollback): its pending unload must not fire
            self._draining.pop(key).cancel()
        current = self._live.get(key)
        if current is not None and current[0] == ref:
            return
        last_failure = self._failed.get(key)
        if (last_failure is not None and last_failure[0] == ref
                and time.time() - last_failure[2] < RETRY_FAILED_AFTER):
            return
        host_name = self.hosts.name_for(ref)
        self._bringing_up[host_name] += 1
        failed = False
        try:
            self._live[key] = (ref, await self._bring_up(key, ref))
            self._failed.pop(key, None)
            log.info("%s is live as tool %s", key, ref.tool_name)
        except BridgeError as exc:
            failed = True
            breach = self.hosts.memory_breach(host_name, str(exc))
            reason = f"{breach} ({exc})" if breach else str(exc)
            self._failed[key] = (ref, reason, time.time())
            log.warning("%s is not exposed: %s", key, reason)
        finally:
            self._bringing_up[host_name] -= 1
        if failed:
            await self._retire_if_idle(host_name)

    async def _retire_if_idle(self, host_name: str) -> None:
        """A dedicated host left serving nothing (its model failed to load or to pass its smoke test)."""
        if self.hosts.is_dedicated(host_name) and not self._bringing_up[host_name] and not any(
                live.host_name == host_name for _, live in self._live.values()):
            await self.hosts.retire(host_name)

    async def fail_host(self, host_name: str, reason: str, snapshot: Snapshot) -> None:
        """Withdraw every version served by host `host_name` as failed with `reason`, and stop the host (a
        dedicated model that went past its limits). Like any failed version, each is tried again later."""
        async with self._lock:
            for key, (ref, live) in list(self._live.items()):
                if live.host_name == host_name:
                    del self._live[key]
                    if key in self._draining:
                        self._draining.pop(key).cancel()
                    self._failed[key] = (ref, reason, time.time())
                    log.warning("%s is withdrawn: %s", key, reason)
            self.routes = self._routes_for(snapshot)
            await self.hosts.retire(host_name)

    async def _bring_up(self, key: str, ref: ModelVersionRef) -> LiveVersion:
        if ref.problem:
            raise BridgeError(ref.problem)
        if not ref.signature:
            raise BridgeError(f"{key} has no signature; log the model with signature=infer_signature(X, y) "
                              "so agents get a typed input schema")
        host_name = self.hosts.name_for(ref)
        try:
            host = await self.hosts.client(host_name)
        except UnknownPool:
            raise  # the version's own problem, worded for its owner
        except BridgeError as exc:
            raise BridgeError(f"model host {host_name} did not start: {exc}") from exc
        loaded = await host.load(key, ref.uri)
        facts = ModelFacts(kind=loaded.get("kind", "other"), classes=loaded.get("classes"))
        spec = build_tool_spec(ref, facts)
        live = LiveVersion(spec=spec, host=host, host_name=host_name,
                           validator=compile_validator(spec.input_schema, trusted=True),
                           smoke_tested=ref.input_example is not None)
        if ref.input_example is not None:
            await self._smoke_test(live, ref.input_example)
        return live

    async def _smoke_test(self, live: LiveVersion, example: Any) -> None:
        arguments = example_arguments(live.spec.signature, example)
        try:
            live.validator.validate(arguments)
            outputs = await live.host.predict(live.spec.key, to_model_input(live.spec.signature, arguments))
        except BridgeError as exc:
            raise BridgeError(f"smoke test with the version's input example failed: {exc}") from exc
        if not outputs:
            raise BridgeError("smoke test with the version's input example returned no output")

    def _routes_for(self, snapshot: Snapshot) -> dict[str, Route]:
        by_tool: dict[str, dict[str, LiveVersion]] = {}
        weights: dict[str, float] = {}
        shadows: dict[str, ShadowTarget] = {}
        for key, ref in snapshot.refs.items():
            if key in self._live and ref.role == "shadow":  # answers no caller: neither routed nor pinned
                shadows[ref.tool_name] = shadow_target(self._live[key][1], ref)
            elif key in self._live:
                by_tool.setdefault(ref.tool_name, {})[ref.role] = self._live[key][1]
                if ref.role == "canary":
                    weights[ref.tool_name] = ref.canary_weight
        routes: dict[str, Route] = {}
        for tool, roles in by_tool.items():
            champion = roles.get("champion") or roles.get("canary")
            assert champion is not None
            canary = roles.get("canary") if "champion" in roles else None
            pinned = {live.spec.model_version: live for live in roles.values()}
            routes[tool] = Route(champion=champion, canary=canary, canary_weight=weights.get(tool, 0.0),
                                 pinned=pinned, shadow=shadows.get(tool))
        return routes

    def _schedule_unload(self, key: str) -> None:
        if key not in self._draining:
            self._draining[key] = asyncio.create_task(self._unload_after_grace(key))

    async def _unload_after_grace(self, key: str) -> None:
        # In-flight calls routed before the swap finish meanwhile; a rollback finds the version still loaded.
        await asyncio.sleep(self.unload_after)
        # Under the lock: a pass approving the version again must not interleave its load with this unload.
        async with self._lock:
            self._draining.pop(key, None)
            entry = self._live.pop(key, None)
            if entry is None:
                return
            host_name = entry[1].host_name
            if self.hosts.is_dedicated(host_name) and not any(
                    v.host_name == host_name for _, v in self._live.values()):
                await self.hosts.retire(host_name)  # its only model is gone: give the memory back
                return
            try:
                await entry[1].host.unload(key)
            except BridgeError as exc:
                log.warning("unload of %s failed (it will be dropped with its host): %s", key, exc)

    def status(self, snapshot: Snapshot) -> list[VersionStatus]:
        rows: list[VersionStatus] = []
        for key, ref in sorted(snapshot.refs.items()):
            row = VersionStatus(tool=ref.tool_name, model=ref.name, version=ref.version, role=ref.role,
                                state="loading")
            if key in self._live:
                live = self._live[key][1]
                row.state, row.host = "live", live.host_name
                if not live.smoke_tested:
                    row.reason = "live without smoke test: the version has no input example"
            elif key in self._failed:
                row.state, row.reason, row.since = "failed", self._failed[key][1], self._failed[key][2]
            rows.append(row)
        for key in sorted(set(self._draining) & set(self._live)):
            ref = self._live[key][0]
            rows.append(VersionStatus(tool=ref.tool_name, model=ref.name, version=ref.version, role=ref.role,
                                      state="warm", host=self._live[key][1].host_name,
                                      reason="no longer approved; loaded but not routed until unloaded"))
        return rows


def example_arguments(signature: dict[str, Any], example: Any) -> dict[str, Any]:
    """Tool arguments made of the first row (or sample) of a version's input example."""
    inputs = signature.get("inputs") or []
    if inputs and inputs[0].get("type") == "tensor":
        first = example[:1] if isinstance(example, list) else example
        return {"inputs": first}
    if isinstance(example, list):
        example = example[0] if example else {}
    return arguments_from_record(signature, dict(example))
