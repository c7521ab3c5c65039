"""Reconciler passes over a fake host pool: keep-warm rollback, unload after the grace,
retire dedicated hosts."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.errors import BridgeError
from bridge.reconciler import Reconciler
from registry_sync import ModelVersionRef, Snapshot

SIGNATURE = {"inputs": [{"type": "string", "name": "text", "required": True}], "outputs": None,
             "params": None}
UNLOAD_AFTER = 0.2


class FakeHost:
    """Records loads and unloads; predicts one label per row."""

    def __init__(self) -> None:
        self.loaded: set[str] = set()
        self.unloads: list[str] = []

    async def load(self, key: str, uri: str) -> dict[str, Any]:
        self.loaded.add(key)
        return {"kind": "other"}

    async def unload(self, key: str) -> None:
        self.unloads.append(key)
        self.loaded.discard(key)

    async def predict(
        self, key: str, payload: dict[str, Any], uri: str | None = None
    ) -> list[dict[str, Any]]:
        assert key in self.loaded, f"{key} predicted while unloaded"
        return [{"prediction": "ok"}]


class FakePool:
    def __init__(self, dedicated: bool = False) -> None:
        self.host = FakeHost()
        self.dedicated = dedicated
        self.retired: list[str] = []

    @staticmethod
    def is_dedicated(name: str) -> bool:
        return name.startswith("dedicated-")

    def name_for(self, ref: ModelVersionRef) -> str:
        return f"dedicated-{ref.name}" if self.dedicated else "shared-0"

    async def client(self, name: str) -> FakeHost:
        return self.host

    async def retire(self, name: str) -> None:
        self.retired.append(name)


def champion(version: str) -> Snapshot:
    ref = ModelVersionRef(name="m", version=version, uri=f"models:/m/{version}", aliases=("champion",),
                          tool_name="m", signature=SIGNATURE, input_example=[{"text": "hello"}])
    return Snapshot(refs={ref.key: ref})


def test_rollback_within_keep_warm_keeps_the_version_loaded_after_the_timer() -> None:
    async def scenario() -> FakePool:
        pool = FakePool()
        reconciler = Reconciler(pool, unload_after=UNLOAD_AFTER)  # type: ignore[arg-type]
        await reconciler.apply(champion("1"))
        await reconciler.apply(champion("2"))  # v1 becomes warm, its unload timer starts
        await reconciler.apply(champion("1"))  # rollback before the timer fires
        await asyncio.sleep(UNLOAD_AFTER * 3)
        assert reconciler.routes["m"].champion.spec.model_version == "1"
        assert "m/1" in pool.host.loaded, "the rolled-back champion was unloaded by its stale keep-warm timer"
        await reconciler.routes["m"].champion.host.predict("m/1", {})
        return pool

    pool = asyncio.run(scenario())
    assert pool.host.unloads == ["m/2"]


def test_withdrawn_version_is_unloaded_after_the_grace_and_reported_warm_meanwhile() -> None:
    async def scenario() -> tuple[FakePool, list[str], list[str]]:
        pool = FakePool()
        reconciler = Reconciler(pool, unload_after=UNLOAD_AFTER)  # type: ignore[arg-type]
        await reconciler.apply(champion("1"))
        empty = Snapshot()
        await reconciler.apply(empty)
        during = [row.state for row in reconciler.status(empty)]
        await asyncio.sleep(UNLOAD_AFTER * 3)
        after = [row.state for row in reconciler.status(empty)]
        return pool, during, after

    pool, during, after = asyncio.run(scenario())
    assert during == ["warm"] and after == []
    assert pool.host.unloads == ["m/1"] and not pool.host.loaded


def test_dedicated_host_is_retired_with_its_last_version_not_on_rollback() -> None:
    async def scenario() -> FakePool:
        pool = FakePool(dedicated=True)
        reconciler = Reconciler(pool, unload_after=UNLOAD_AFTER)  # type: ignore[arg-type]
        await reconciler.apply(champion("1"))
        await reconciler.apply(Snapshot())
        await reconciler.apply(champion("1"))  # back before the grace: the host must survive
        await asyncio.sleep(UNLOAD_AFTER * 3)
        assert pool.retired == []
        await reconciler.apply(Snapshot())
        await asyncio.sleep(UNLOAD_AFTER * 3)
        return pool

    assert asyncio.run(scenario()).retired == ["dedicated-m"]


def test_calls_to_a_restarting_host_fail_fast_with_503_and_retry_after() -> None:
    from bridge.invoker import Invoker, ToolUnavailable

    async def scenario() -> tuple[str, int, str]:
        pool = FakePool()
        reconciler = Reconciler(pool, unload_after=UNLOAD_AFTER)  # type: ignore[arg-type]
        await reconciler.apply(champion("1"))
        restarting: set[str] = {"shared-0"}
        invoker = Invoker(lambda: reconciler.routes, restarting=restarting.__contains__)
        try:
            await invoker.invoke("m", {"text": "hello"})
        except ToolUnavailable as exc:
            message, retry_after = str(exc), exc.retry_after
        restarting.clear()
        answered = await invoker.invoke("m", {"text": "hello"})
        return message, retry_after, answered.model_version

    message, retry_after, version = asyncio.run(scenario())
    assert "its model host crashed and is restarting" in message and retry_after == 5
    assert version == "1"



class Concurrency:
    """How many loads run at once, across every host."""

    def __init__(self) -> None:
        self.running = self.most = 0
        self.hosts_at_once: set[frozenset[str]] = set()


class SlowHost(FakeHost):
    """Loads take a while and are counted while they run; versions of models named `bad-*` fail to load."""

    def __init__(self, name: str, counter: Concurrency, running: dict[str, int]) -> None:
        super().__init__()
        self.name, self.counter, self.per_host = name, counter, running

    async def load(self, key: str, uri: str) -> dict[str, Any]:
        self.counter.running += 1
        self.per_host[self.name] += 1
        self.counter.most = max(self.counter.most, self.counter.running)
        self.counter.hosts_at_once.add(frozenset(h for h, n in self.per_host.items() if n))
        try:
            await asyncio.sleep(0.01)
            if key.startswith("bad-"):
                raise BridgeError(f"could not load {uri}")
            return await super().load(key, uri)
        finally:
            self.counter.running -= 1
            self.per_host[self.name] -= 1


class ManyHostsPool(FakePool):
    """Four shared hosts, each model always on the same one."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = Concurrency()
        running = {f"shared-{i}": 0 for i in range(4)}
        self.slow_hosts = {name: SlowHost(name, self.counter, running) for name in running}

    def name_for(self, ref: ModelVersionRef) -> str:
        return f"shared-{int(ref.name.rsplit('-', 1)[1]) % 4}"

    async def client(self, name: str) -> SlowHost:  # type: ignore[override]
        return self.slow_hosts[name]

    def memory_breach(self, name: str, error: str = "") -> str | None:
        return None


def many(count: int, bad_every: int = 7) -> Snapshot:
    refs = {}
    for i in range(count):
        name = f"bad-{i}" if i % bad_every == 0 else f"model-{i}"
        ref = ModelVersionRef(name=name, version="1", uri=f"models:/{name}/1", aliases=("champion",),
                              tool_name=name, signature=SIGNATURE, input_example=[{"text": "hello"}])
        refs[ref.key] = ref
    return Snapshot(refs=refs)


def test_a_cold_start_loads_in_parallel_never_more_than_the_bound_and_each_version_ends_live_or_failed(
) -> None:
    snapshot = many(60)

    async def scenario() -> tuple[Reconciler, ManyHostsPool, list[int]]:
        pool = ManyHostsPool()
        reconciler = Reconciler(pool, unload_after=UNLOAD_AFTER, max_parallel_loads=5)  # type: ignore[arg-type]
        routed: list[int] = []

        async def watch() -> None:
            while True:
                routed.append(len(reconciler.routes))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        await reconciler.apply(snapshot)
        watcher.cancel()
        return reconciler, pool, routed

    reconciler, pool, routed = asyncio.run(scenario())
    assert pool.counter.running == 0
    assert pool.counter.most == 5, f"{pool.counter.most} loads ran at once with a bound of 5"
    assert max(len(hosts) for hosts in pool.counter.hosts_at_once) > 1, "never two hosts loading at once"
    states = {row.model: row.state for row in reconciler.status(snapshot)}
    bad = {name for name in states if name.startswith("bad-")}
    assert len(bad) == 9 and {states[name] for name in bad} == {"failed"}
    assert {state for name, state in states.items() if name not in bad} == {"live"}
    progress = reconciler.progress
    assert (progress.total, progress.live, progress.failed, progress.loading) == (60, 51, 9, 0)
    assert sorted(reconciler.routes) == sorted(name for name in states if name not in bad)
    assert any(0 < count < 51 for count in routed), "no tool was routed before the whole pass ended"
