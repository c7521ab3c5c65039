"""Usage counts: counted per model and version, added to the registry's `toolbridge.usage.*` tags, kept when
MLflow is down, and never taken for a change of the tool (no reload)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.invoker import InvokeResult, ModelFailure
from bridge.toolspec import ToolSpec
from registry_sync import (
    ApprovalPolicy,
    InMemoryRegistry,
    RegisteredModelInfo,
    RegistryWatcher,
    VersionDetails,
    diff,
)
from registry_sync.usage import (
    TAG_CALLS,
    TAG_ERRORS,
    TAG_LAST_CALL,
    ModelUsage,
    VersionUsage,
    merged_model_tags,
)
from tool_server.access.audit import AuditLog
from tool_server.access.db import make_engine
from tool_server.access.limits import RateLimiter
from tool_server.access.scopes import Principal
from tool_server.api.errors import error_code
from tool_server.calls import CallContext, Gateway
from tool_server.ops.usage import FileWriterLock, UsageWriteback

T0 = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
SIGNATURE = {"inputs": [{"type": "string", "name": "text", "required": True}], "outputs": None,
             "params": None}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def registry(model_tags: dict[str, str] | None = None) -> InMemoryRegistry:
    found = InMemoryRegistry()
    found.put_model(RegisteredModelInfo(name="credit", tags=model_tags or {}, aliases={"champion": "2"},
                                        last_updated_timestamp=1))
    for version in ("1", "2"):
        found.put_version(VersionDetails(name="credit", version=version, uri=f"models:/credit/{version}",
                                         signature=SIGNATURE, tags={"owner": "risk-team"}))
    return found


def test_calls_are_counted_per_model_and_version_and_refused_keys_are_not() -> None:
    clock = Clock()
    usage = UsageWriteback(registry(), 60, clock)
    usage.record("credit", "2", "ok")
    clock.now = T0 + timedelta(seconds=5)
    usage.record("credit", "1", "ok")  # a pinned or canary call
    usage.record("credit", None, "invalid")  # refused before it reached a version
    usage.record("credit", None, "denied")  # the key may not call it: not usage
    usage.record("fraud", "3", "error")
    assert usage.pending() == [
        ModelUsage(name="credit", calls=3, errors=1, last_call=T0 + timedelta(seconds=5),
                   versions={"1": VersionUsage(calls=1, last_call=T0 + timedelta(seconds=5)),
                             "2": VersionUsage(calls=1, last_call=T0)}),
        ModelUsage(name="fraud", calls=1, errors=1, last_call=T0 + timedelta(seconds=5),
                   versions={"3": VersionUsage(calls=1, last_call=T0 + timedelta(seconds=5))}),
    ]


def test_off_counts_nothing() -> None:
    usage = UsageWriteback(registry(), 0)
    usage.record("credit", "2", "ok")
    assert not usage.enabled and usage.pending() == []


def test_a_write_adds_the_new_calls_to_the_counts_already_in_the_registry() -> None:
    source = registry({TAG_CALLS: "40", TAG_ERRORS: "2", TAG_LAST_CALL: "2026-01-01T00:00:00Z",
                       "team": "risk"})
    clock = Clock()
    usage = UsageWriteback(source, 60, clock)
    for outcome in ("ok", "ok", "unavailable"):
        usage.record("credit", "2" if outcome == "ok" else None, outcome)
    assert usage.flush() == 1 and usage.pending() == []
    assert source.models["credit"].tags == {TAG_CALLS: "43", TAG_ERRORS: "3",
                                            TAG_LAST_CALL: "2026-05-04T09:30:00Z", "team": "risk"}
    assert source.versions[("credit", "2")].tags == {TAG_CALLS: "2", TAG_LAST_CALL: "2026-05-04T09:30:00Z",
                                                     "owner": "risk-team"}
    assert TAG_CALLS not in source.versions[("credit", "1")].tags  # no call reached it
    clock.now = T0 + timedelta(hours=1)
    usage.record("credit", "2", "ok")
    usage.flush()
    assert source.models["credit"].tags[TAG_CALLS] == "44"
    assert source.versions[("credit", "2")].tags[TAG_CALLS] == "3"
    assert source.models["credit"].tags[TAG_LAST_CALL] == "2026-05-04T10:30:00Z"
    assert usage.flush() == 0 and source.usage_writes == 2  # nothing counted: no write at all


def test_merging_keeps_the_later_last_call_and_restarts_an_unreadable_count() -> None:
    later = "2027-01-01T00:00:00Z"  # another replica wrote a more recent call
    tags = merged_model_tags({TAG_CALLS: "lots", TAG_LAST_CALL: later},
                             ModelUsage(name="credit", calls=2, errors=0, last_call=T0))
    assert tags == {TAG_CALLS: "2", TAG_ERRORS: "0", TAG_LAST_CALL: later}


def test_when_mlflow_is_down_the_counts_wait_for_the_next_write_and_none_is_lost() -> None:
    source = registry({TAG_CALLS: "10"})
    usage = UsageWriteback(source, 60)
    usage.record("credit", "2", "ok")
    usage.record("credit", "2", "error")
    source.available = False
    assert usage.flush() == 0 and usage.flush() == 0  # twice: kept counts are not doubled by a retry
    assert source.models["credit"].tags == {TAG_CALLS: "10"}
    usage.record("credit", "2", "ok")
    source.available = True
    assert usage.flush() == 1
    assert source.models["credit"].tags[TAG_CALLS] == "13" and source.models["credit"].tags[TAG_ERRORS] == "1"
    assert source.versions[("credit", "2")].tags[TAG_CALLS] == "3"


def test_counts_of_a_model_deleted_from_the_registry_are_dropped_and_the_others_written() -> None:
    source = registry()
    usage = UsageWriteback(source, 60)
    usage.record("gone", "1", "ok")
    usage.record("credit", "9", "ok")  # a version deleted since: skipped, the model still counted
    assert usage.flush() == 1 and usage.pending() == []
    assert source.models["credit"].tags[TAG_CALLS] == "1" and ("credit", "9") not in source.versions


class ReadAddWrite:
    """Usage tags written as MLflow's sink does: read, add, write, with time in between. `meet`: a barrier
    both writers pass between their read and their write (forces the interleaving a lock must prevent)."""

    def __init__(self, meet: threading.Barrier | None = None) -> None:
        self.tags: dict[str, str] = {}
        self.meet = meet

    def write_usage(self, usage: ModelUsage) -> None:
        read = dict(self.tags)
        if self.meet is not None:
            self.meet.wait(timeout=10)
        time.sleep(0.005)
        self.tags = {**read, **merged_model_tags(read, usage)}


def flush_together(writers: list[UsageWriteback], rounds: int, calls: int) -> None:
    """Each writer in a thread of its own (as each worker flushes from its own process): count, then all flush
    at the same instant, `rounds` times."""
    start = threading.Barrier(len(writers))

    def work(usage: UsageWriteback) -> None:
        for _ in range(rounds):
            for _ in range(calls):
                usage.record("credit", "2", "ok")
            start.wait(timeout=10)
            usage.flush()

    threads = [threading.Thread(target=work, args=(usage,)) for usage in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def test_two_unlocked_writers_lose_counts() -> None:
    """The race the lock is for: both read 0, both write their own count."""
    sink = ReadAddWrite(meet=threading.Barrier(2))
    flush_together([UsageWriteback(sink, 60), UsageWriteback(sink, 60)], rounds=1, calls=10)
    assert sink.tags[TAG_CALLS] == "10"  # 20 calls made


def test_workers_without_redis_write_one_at_a_time_and_no_count_is_lost(tmp_path: Path) -> None:
    """`--workers N` without Redis: each worker's writer takes the state dir's file lock around its
    read-add-write, so the registry ends with every call of every worker."""
    sink = ReadAddWrite()
    writers = [UsageWriteback(sink, 60, lock=FileWriterLock(tmp_path / "usage.lock")) for _ in range(3)]
    flush_together(writers, rounds=5, calls=7)
    assert sink.tags[TAG_CALLS] == str(3 * 5 * 7)
    assert all(usage.pending() == [] for usage in writers)


def test_the_file_lock_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    first, second = FileWriterLock(tmp_path / "usage.lock"), FileWriterLock(tmp_path / "usage.lock")
    assert first.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(second.acquire()))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and got == []  # waits for the holder's write
    first.release()
    waiter.join(10)
    assert got == [True]
    second.release()


@pytest.mark.anyio
async def test_stopping_writes_what_was_counted_since_the_last_tick(anyio_backend: str) -> None:
    source = registry()
    usage = UsageWriteback(source, 3600)  # the timer never fires in this test: only the final write
    usage.start()
    usage.record("credit", "2", "ok")
    await usage.stop()
    assert source.models["credit"].tags[TAG_CALLS] == "1" and source.usage_writes == 1


def test_usage_tags_written_back_are_no_change_to_the_tool() -> None:
    """A write-back must not reload the model: usage tags stay out of the refs the reconciler compares."""
    source = registry({"toolbridge.description": "Credit risk"})
    before = RegistryWatcher(source, ApprovalPolicy(), poll_interval=1)
    asyncio.run(before.sync_once())
    usage = UsageWriteback(source, 60)
    usage.record("credit", "2", "ok")
    usage.flush()
    after = RegistryWatcher(source, ApprovalPolicy(), poll_interval=1)  # reads model and version tags afresh
    asyncio.run(after.sync_once())
    assert source.models["credit"].tags[TAG_CALLS] == "1" and source.versions[("credit", "2")].tags[TAG_CALLS]
    assert diff(before.snapshot, after.snapshot).empty
    ref = after.snapshot.refs["credit/2"]
    assert ref.model_tags == {"toolbridge.description": "Credit risk"}
    assert ref.version_tags == {"owner": "risk-team"}
    source.put_model(source.models["credit"].model_copy(update={"tags": {"toolbridge.description": "New"}}))
    changed = asyncio.run(after.sync_once()).changed
    assert [c.reason for c in changed] == ["changed: model_tags"]  # any other tag still counts


class FailingOnDemand:
    async def invoke(self, tool: str, arguments: Any, version: str | None = None) -> InvokeResult:
        if arguments.get("fail"):
            raise ModelFailure("model raised")
        return InvokeResult(tool=tool, model_name="credit", model_version="2", role="champion", output={})


@pytest.mark.anyio
async def test_the_gateway_counts_every_channel_into_the_usage(tmp_path: Path, anyio_backend: str) -> None:
    spec = ToolSpec(name="credit_risk", description="d", model_name="credit", model_version="2",
                    model_uri="models:/credit/2", input_schema={"type": "object"},
                    output_schema={"type": "object"}, signature={})
    usage = UsageWriteback(registry(), 60)
    engine = make_engine(f"sqlite:///{tmp_path / 'usage.db'}")
    gateway = Gateway(lambda: [spec], {"credit_risk": spec}.get, FailingOnDemand(), None,  # type: ignore[arg-type]
                      AuditLog(engine), RateLimiter(1e6), error_code, on_usage=usage.record)
    agent = Principal(key_id="k1", name="agent", scopes=frozenset({"credit_*"}))
    stranger = Principal(key_id="k2", name="stranger", scopes=frozenset({"fraud_*"}))
    await gateway.invoke(agent, "credit_risk", CallContext("r1", "http"), arguments={})
    await gateway.invoke(agent, "credit_risk", CallContext("r2", "mcp"), arguments={})
    with pytest.raises(ModelFailure):
        await gateway.invoke(agent, "credit_risk", CallContext("r3", "http"), arguments={"fail": True})
    with pytest.raises(Exception, match="may not call"):
        await gateway.invoke(stranger, "credit_risk", CallContext("r4", "http"), arguments={})
    [counted] = usage.pending()
    assert (counted.name, counted.calls, counted.errors) == ("credit", 3, 1)
    assert counted.versions["2"].calls == 2  # the failed call got no answer from a version
