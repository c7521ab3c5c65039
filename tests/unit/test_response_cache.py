"""The response cache: LRU and TTL of the in-process backend, keys, what is never cached, faults that never
fail a call. The invoker runs for real over a fake model host (a counter, so a hit is told from a miss)."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.host_client import HostError
from bridge.invoker import Invoker, ModelFailure
from bridge.live import LiveVersion, Route
from bridge.response_cache import FAULT_PAUSE, MemoryBackend, ResponseCache, cache_allowed
from bridge.runtime import Bridge, BridgeSettings
from bridge.schema import input_schema
from bridge.toolspec import ToolSpec
from bridge.validation import compile_validator
from registry_sync import ModelVersionRef, Snapshot
from tool_server.settings import CacheSettings

pytestmark = pytest.mark.anyio

SIGNATURE = {"inputs": [{"type": "long", "name": "a", "required": True},
                        {"type": "string", "name": "b", "required": False}], "outputs": None, "params": None}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingHost:
    """Answers call n with prediction n; can be told to fail or to answer two rows."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.fail: Exception | None = None
        self.rows = 1

    async def predict(self, key: str, payload: dict[str, Any],
                      uri: str | None = None) -> list[dict[str, Any]]:
        self.payloads.append(payload)
        if self.fail is not None:
            raise self.fail
        return [{"prediction": len(self.payloads)}] * self.rows


class BrokenBackend:
    """A Redis that went away: every request raises, as redis-py's ConnectionError does."""

    def __init__(self) -> None:
        self.requests = 0

    async def get(self, key: str) -> bytes | None:
        self.requests += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self.requests += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    async def close(self) -> None:
        pass


def spec(version: str = "1", name: str = "scorer", sensitivity: str = "normal") -> ToolSpec:
    return ToolSpec(name=name, description="d", model_name="scorer_model", model_version=version,
                    model_uri=f"models:/scorer_model/{version}", input_schema=input_schema(SIGNATURE),
                    output_schema={"type": "object"}, signature=SIGNATURE, sensitivity=sensitivity)


def live(tool_spec: ToolSpec, host: CountingHost) -> LiveVersion:
    return LiveVersion(spec=tool_spec, host=host, host_name="shared-0",  # type: ignore[arg-type]
                       validator=compile_validator(tool_spec.input_schema), smoke_tested=True)


def route(*versions: LiveVersion, canary_weight: float = 0.0) -> Route:
    return Route(champion=versions[0], canary=versions[1] if len(versions) > 1 else None,
                 canary_weight=canary_weight, pinned={v.spec.model_version: v for v in versions})


def invoker(routes: dict[str, Route], cache: ResponseCache, **kwargs: Any) -> Invoker:
    return Invoker(lambda: routes, rng=random.Random(0), cache=cache, **kwargs)


# --- the in-process backend ---------------------------------------------------------------------------------

async def test_lru_evicts_the_least_recently_used_entry_first() -> None:
    backend = MemoryBackend(max_entries=2)
    await backend.set("a", b"1", ttl=60)
    await backend.set("b", b"2", ttl=60)
    assert await backend.get("a") == b"1"  # a is now more recent than b
    await backend.set("c", b"3", ttl=60)
    assert [await backend.get(k) for k in ("a", "b", "c")] == [b"1", None, b"3"]
    assert len(backend) == 2


async def test_entries_expire_after_their_ttl_on_the_injected_clock() -> None:
    clock = Clock()
    backend = MemoryBackend(max_entries=10, clock=clock)
    await backend.set("k", b"v", ttl=30)
    clock.now += 29.9
    assert await backend.get("k") == b"v"
    clock.now += 0.1
    assert await backend.get("k") is None
    assert len(backend) == 0, "an expired entry must be dropped, not kept until evicted"


def test_a_memory_backend_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MemoryBackend(max_entries=0)


# --- keys ---------------------------------------------------------------------------------------------------

async def test_a_missing_optional_field_and_a_null_one_and_any_key_order_share_one_entry() -> None:
    host = CountingHost()
    calls = invoker({"scorer": route(live(spec(), host))}, ResponseCache(MemoryBackend(100), ttl=60))
    first = await calls.invoke("scorer", {"a": 1, "b": None})
    again = [await calls.invoke("scorer", args) for args in ({"a": 1}, {"b": None, "a": 1}, {"a": 1.0})]
    assert first.cached is False and [r.cached for r in again] == [True, True, True]
    assert len(host.payloads) == 1
    expected = {"prediction": 1, "model": {"name": "scorer_model", "version": "1"}}
    assert first.output == expected and all(r.output == expected for r in again)
    other = await calls.invoke("scorer", {"a": 1, "b": "x"})
    assert other.cached is False and other.output["prediction"] == 2


def test_the_key_names_model_and_version_not_the_tool_and_is_namespaced() -> None:
    cache = ResponseCache(MemoryBackend(10), ttl=60, registry="http://mlflow:5000")
    model_input = {"kind": "records", "records": [{"a": 1, "b": None}], "params": {}}
    key = cache.key(spec("1"), model_input)
    assert key is not None and key.startswith("toolbridge:cache:v1:") and ":scorer_model:1:" in key
    assert cache.key(spec("1", name="renamed_tool"), model_input) == key
    assert cache.key(spec("2"), model_input) != key
    elsewhere = ResponseCache(MemoryBackend(10), ttl=60, registry="http://staging-mlflow:5000")
    assert elsewhere.key(spec("1"), model_input) != key, "two registries may both hold scorer_model v1"
    assert cache.key(spec("1"), {"records": [{"a": 2**70}]}) is None  # no canonical JSON: not cached


async def test_a_canary_and_a_pinned_version_never_answer_from_the_champions_entries() -> None:
    v1, v2 = CountingHost(), CountingHost()
    routes = {"scorer": route(live(spec("1"), v1), live(spec("2"), v2), canary_weight=1.0)}
    calls = invoker(routes, ResponseCache(MemoryBackend(100), ttl=60))
    canary = await calls.invoke("scorer", {"a": 1})  # weight 1: the canary is picked first, then cached
    pinned_v1 = await calls.invoke("scorer", {"a": 1}, version="1")
    assert canary.model_version == "2" and canary.cached is False
    assert pinned_v1.model_version == "1" and pinned_v1.cached is False
    assert (await calls.invoke("scorer", {"a": 1}, version="2")).cached is True
    assert (len(v1.payloads), len(v2.payloads)) == (1, 1)


# --- never cached -------------------------------------------------------------------------------------------

async def test_restricted_tools_are_never_cached() -> None:
    host, backend = CountingHost(), MemoryBackend(100)
    restricted = spec(sensitivity="restricted")
    calls = invoker({"scorer": route(live(restricted, host))}, ResponseCache(backend, ttl=60),
                    cacheable=lambda s: cache_allowed(s, {}))
    results = [await calls.invoke("scorer", {"a": 1}) for _ in range(2)]
    assert [r.cached for r in results] == [None, None] and len(host.payloads) == 2 and len(backend) == 0


@pytest.mark.parametrize(("tag", "allowed"), [(None, True), ("true", True), (" TRUE ", True),
                                              ("false", False), ("no", False), ("flase", False)])
def test_models_tagged_toolbridge_cache_false_are_not_cached_and_a_typo_fails_closed(
        tag: str | None, allowed: bool) -> None:
    tags = {} if tag is None else {"toolbridge.cache": tag}
    assert cache_allowed(spec(), tags) is allowed


async def test_the_bridge_reads_the_opt_out_tag_from_the_latest_snapshot(tmp_path: Path) -> None:
    host, backend = CountingHost(), MemoryBackend(100)
    bridge = Bridge(BridgeSettings(), tmp_path, "http://mlflow:5000", cache=ResponseCache(backend, ttl=60))
    bridge.reconciler.routes = {"scorer": route(live(spec(), host))}

    def snapshot(tags: dict[str, str]) -> Snapshot:
        ref = ModelVersionRef(name="scorer_model", version="1", uri="models:/scorer_model/1",
                              tool_name="scorer", model_tags=tags, signature=SIGNATURE)
        return Snapshot(refs={ref.key: ref})

    bridge.snapshot = snapshot({})
    assert [(await bridge.invoker.invoke("scorer", {"a": 1})).cached for _ in range(2)] == [False, True]
    bridge.snapshot = snapshot({"toolbridge.cache": "false"})  # the data scientist: not deterministic
    assert [(await bridge.invoker.invoke("scorer", {"a": 1})).cached for _ in range(2)] == [None, None]
    bridge.snapshot = Snapshot()  # a draining version, gone from the snapshot: not cached either
    assert (await bridge.invoker.invoke("scorer", {"a": 1})).cached is None
    assert len(host.payloads) == 4
    await bridge.stop()
    assert len(backend) == 0, "stop() closes (here: empties) the cache"


async def test_errors_are_never_cached() -> None:
    host, backend = CountingHost(), MemoryBackend(100)
    calls = invoker({"scorer": route(live(spec(), host))}, ResponseCache(backend, ttl=60))
    host.fail = HostError(500, "model raised ValueError")
    with pytest.raises(ModelFailure):
        await calls.invoke("scorer", {"a": 1})
    host.fail, host.rows = None, 2
    with pytest.raises(ModelFailure, match="2 rows"):
        await calls.invoke("scorer", {"a": 1})
    assert len(backend) == 0
    host.rows = 1
    result = await calls.invoke("scorer", {"a": 1})
    assert result.cached is False and result.output["prediction"] == 3


# --- faults -------------------------------------------------------------------------------------------------

async def test_a_broken_cache_never_fails_a_call_warns_once_and_pauses(
        caplog: pytest.LogCaptureFixture) -> None:
    host, backend, clock, events = CountingHost(), BrokenBackend(), Clock(), []
    cache = ResponseCache(backend, ttl=60, clock=clock, observer=lambda event, tool: events.append(event))
    calls = invoker({"scorer": route(live(spec(), host))}, cache)
    with caplog.at_level(logging.WARNING, logger="bridge.response_cache"):
        first = await calls.invoke("scorer", {"a": 1})
        paused = await calls.invoke("scorer", {"a": 1})
        clock.now += FAULT_PAUSE
        retried = await calls.invoke("scorer", {"a": 1})
    assert [r.output["prediction"] for r in (first, paused, retried)] == [1, 2, 3]
    assert {first.cached, paused.cached, retried.cached} == {False}
    assert backend.requests == 2, "one read per try; no write after a failed read, nothing while paused"
    assert events == ["error", "miss", "miss", "error", "miss"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ConnectionError" in warnings[0] and "uncached" in warnings[0]


# --- settings -----------------------------------------------------------------------------------------------

def test_cache_settings_default_to_off_and_a_url_alone_turns_redis_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert CacheSettings().mode == "off"
    monkeypatch.setenv("TOOLBRIDGE_CACHE", "Memory")
    assert CacheSettings().mode == "memory" and CacheSettings().cache_max_entries == 10_000
    monkeypatch.delenv("TOOLBRIDGE_CACHE")
    monkeypatch.setenv("TOOLBRIDGE_CACHE_URL", "redis://:s3cret@cache.internal:6379/2")
    settings = CacheSettings()
    assert settings.mode == "redis" and settings.cache_ttl_seconds == 300 and "s3cret" not in repr(settings)
    monkeypatch.setenv("TOOLBRIDGE_CACHE", "off")
    assert CacheSettings().mode == "off"


@pytest.mark.parametrize(("env", "message"), [
    ({"TOOLBRIDGE_CACHE_URL": "http://:s3cret@cache:6379"}, "must be a Redis URL like redis://127.0.0.1:6379"),
    ({"TOOLBRIDGE_CACHE_URL": "redis:///0"}, "it has no host"),
    ({"TOOLBRIDGE_CACHE": "redsi"}, "'redsi' is not a cache mode; use one of off, memory, redis"),
    ({"TOOLBRIDGE_CACHE": "redis"}, "TOOLBRIDGE_CACHE=redis needs TOOLBRIDGE_CACHE_URL"),
    ({"TOOLBRIDGE_CACHE_MAX_ENTRIES": "-5"}, "TOOLBRIDGE_CACHE_MAX_ENTRIES=-5 must be greater than 0"),
    ({"TOOLBRIDGE_CACHE_TTL_SECONDS": "0"}, "TOOLBRIDGE_CACHE_TTL_SECONDS=0.0 must be greater than 0"),
])
def test_bad_cache_settings_fail_with_an_actionable_message_that_never_shows_the_password(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        CacheSettings()
    assert message in str(caught.value) and "s3cret" not in str(caught.value)
