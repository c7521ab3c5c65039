"""State replicas share, in isolation: the key cache (fake clock, SQLite), migrations of an old state dir,
idempotent audit inserts, the Redis token bucket's Lua (against a real redis-server: fast), the Redis link's
fallback and recovery, shared webhook replay ids, and the usage write-back lock."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry_sync.errors import WebhookRejected
from registry_sync.usage import ModelUsage
from registry_sync.webhooks import WebhookVerifier, sign
from tests.servers import RedisServer
from tool_server.access.audit import AuditLog, AuditRecord, read_records
from tool_server.access.db import DatabaseUnavailable, api_keys, audit_log, make_engine
from tool_server.access.key_cache import CachedKeyStore, KeySnapshot
from tool_server.access.keys import KeyInfo, KeyStore, hash_key
from tool_server.access.migrate import HEAD, current_revision
from tool_server.access.redis_link import RedisLink
from tool_server.access.scopes import Unauthenticated
from tool_server.access.shared_limits import SharedRateLimiter, take_token
from tool_server.ops.shared_state import RedisReplayStore, RedisWriterLock
from tool_server.ops.usage import UsageWriteback


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the key cache ------------------------------------------------------------------------------------------

def test_the_snapshot_refuses_a_key_once_its_cached_expiry_passes_without_asking_the_database() -> None:
    clock = Clock(1_000.0)
    snapshot = KeySnapshot(clock)
    store_time = datetime.fromtimestamp(1_000.0, UTC)
    key = "tb_" + "x" * 43
    expiring = KeyInfo(id="k1", name="temp", scopes=frozenset({"*"}), rate_limit_per_minute=None,
                       created_at=store_time, expires_at=store_time + timedelta(seconds=30),
                       last_used_at=None, revoked_at=None)
    revoked = dataclasses.replace(expiring, id="k2", expires_at=None, revoked_at=store_time)
    snapshot.replace(7, [("h" * 64, revoked), (hash_key(key), expiring)])
    assert snapshot.version == 7 and len(snapshot) == 1  # the revoked key is not kept at all
    found = snapshot.lookup(key)
    assert found is not None and found.key_id == "k1"
    clock.now += 29.9
    assert snapshot.lookup(key) is not None
    clock.now += 0.1
    assert snapshot.lookup(key) is None  # expired at its time, read from the cache alone


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return make_engine(f"sqlite:///{tmp_path / 'tb.db'}")


@pytest.mark.anyio
async def test_the_cache_follows_keys_written_by_another_process_through_the_change_counter(
        engine: sa.Engine) -> None:
    server = CachedKeyStore(engine, refresh_seconds=60)  # no background poll: refreshes are driven here
    other = KeyStore(engine)  # another replica, or the CLI
    await server.start()
    try:
        key, info = other.create("alice", {"*"})
        # Unknown to the snapshot: one refresh before refusing, so a key just made by the CLI works at once.
        assert (await server.authenticate_async(key)).key_id == info.id
        assert server.load_if_changed() is False  # nothing moved: one cheap read, no reload
        other.revoke("alice")
        assert (await server.authenticate_async(key)).key_id == info.id  # until the next refresh...
        server.refresh()
        with pytest.raises(Unauthenticated, match="unknown, expired or revoked"):
            await server.authenticate_async(key)
        with pytest.raises(Unauthenticated, match="API key is required"):
            await server.authenticate_async(None)
    finally:
        await server.stop()


@pytest.mark.anyio
async def test_keys_made_or_revoked_through_the_server_change_its_cache_at_once(engine: sa.Engine) -> None:
    server = CachedKeyStore(engine, refresh_seconds=60)
    await server.start()
    try:
        key, _ = server.create("bob", {"*"})
        server.engine.dispose()
        assert (await server.authenticate_async(key)).name == "bob"
        server.revoke("bob")
        with pytest.raises(Unauthenticated):
            await server.authenticate_async(key)
    finally:
        await server.stop()


@pytest.mark.anyio
async def test_while_the_database_is_unreadable_known_keys_work_and_the_outage_is_reported(
        tmp_path: Path) -> None:
    path = tmp_path / "tb.db"
    engine = make_engine(f"sqlite:///{path}")
    reports: list[tuple[str, bool]] = []
    server = CachedKeyStore(engine, refresh_seconds=60, on_degraded=lambda c, d: reports.append((c, d)))
    key, _ = KeyStore(engine).create("carol", {"*"})
    await server.start()
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE access_state RENAME TO access_state_away"))  # reads now fail
    server.refresh()
    assert (await server.authenticate_async(key)).name == "carol"
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE access_state_away RENAME TO access_state"))
    server.refresh()
    assert reports == [("database", True), ("database", False)]
    await server.stop()


@pytest.mark.anyio
async def test_last_used_is_written_in_a_batch_off_the_call_path(engine: sa.Engine) -> None:
    server = CachedKeyStore(engine, refresh_seconds=60)
    key, info = server.create("dave", {"*"})
    await server.start()
    await server.authenticate_async(key)
    assert KeyStore(engine).get(info.id).last_used_at is None  # nothing written by the call itself
    await server.stop()  # the last batch
    assert KeyStore(engine).get(info.id).last_used_at is not None


# --- migrations and the audit ----------------------------------------------------------------------------

def test_a_state_dir_from_before_migrations_upgrades_in_place_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    legacy = sa.MetaData()
    sa.Table("api_keys", legacy, *[sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                                   for c in api_keys.columns])
    sa.Table("audit_log", legacy, *[sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                                    for c in audit_log.columns if c.name != "record_id"])
    old = sa.create_engine(f"sqlite:///{path}")
    legacy.create_all(old)
    with old.begin() as conn:
        conn.execute(sa.text("INSERT INTO audit_log (time, request_id, tool, channel, outcome, status, "
                             "latency_ms, input_bytes, input_sha256) VALUES ('2026-01-01 00:00:00', 'r1', "
                             "'t', 'http', 'ok', 200, 1.0, 2, 'x')"))
    old.dispose()
    engine = make_engine(f"sqlite:///{path}")
    assert current_revision(engine) == HEAD
    (record,) = list(read_records(engine))
    assert record.request_id == "r1" and record.record_id == ""
    assert make_engine(f"sqlite:///{path}") is not None and current_revision(engine) == HEAD  # idempotent


def test_an_unusable_database_url_is_refused_with_what_to_fix_and_no_password() -> None:
    with pytest.raises(DatabaseUnavailable, match=r"not a database URL .*use postgresql\+psycopg://"):
        make_engine("nonsense")
    with pytest.raises(DatabaseUnavailable, match=r"u:\*\*\*@127.0.0.1:1/x cannot be reached") as refused:
        make_engine("postgresql://u:secretpw@127.0.0.1:1/x")  # a bare postgresql:// is read as psycopg
    assert "secretpw" not in str(refused.value)


def _record(request_id: str) -> AuditRecord:
    return AuditRecord(time=datetime.now(UTC), request_id=request_id, key_id="k", key_name="n", tool="t",
                       model_version="1", channel="http", outcome="ok", status=200, error=None,
                       latency_ms=1.0, input_bytes=2, input_sha256="x")


def test_an_audit_batch_written_twice_is_stored_once(engine: sa.Engine) -> None:
    log = AuditLog(engine)
    batch = [_record(f"r{i}") for i in range(3)]
    log._insert(batch)
    log._insert(batch + [_record("r3")])  # the retry of a batch whose commit went through, plus a new one
    assert [r.request_id for r in read_records(engine)] == ["r0", "r1", "r2", "r3"]


# --- Redis: the bucket, the link, replay ids, the writer lock -----------------------------------------

def test_the_lua_bucket_bursts_a_minute_of_calls_then_refills_evenly(redis_server: RedisServer) -> None:
    client = redis_server.client()
    bucket = "toolbridge:bucket:test-lua"
    client.delete(bucket)
    assert [take_token(client, bucket, 60, now=100.0) for _ in range(60)] == [0.0] * 60
    assert take_token(client, bucket, 60, now=100.0) == pytest.approx(1.0)  # empty: one token a second
    assert take_token(client, bucket, 60, now=100.5) == pytest.approx(0.5)  # nothing taken while refused
    assert take_token(client, bucket, 60, now=101.0) == 0.0
    assert take_token(client, bucket, 60, now=1_000.0) == 0.0  # refilled, never past the capacity
    assert [take_token(client, bucket, 60, now=1_000.0) for _ in range(59)] == [0.0] * 59
    assert take_token(client, bucket, 60, now=1_000.0) > 0
    assert 0 < client.pttl(bucket) <= 61_000  # a quiet key's bucket expires once it would be full anyway


@pytest.mark.anyio
async def test_two_limiters_on_one_redis_share_the_bucket(redis_server: RedisServer) -> None:
    link = RedisLink(redis_server.url, 1.0)
    first, second = SharedRateLimiter(1e6, link), SharedRateLimiter(1e6, link)
    link.client.delete(*link.client.keys("toolbridge:bucket:shared-key:*") or ["none"])
    answers = [await (first if i % 2 else second).take_async("shared-key", per_minute=10) for i in range(11)]
    assert answers[:10] == [0] * 10 and answers[10] >= 1
    await link.aclose()


@pytest.mark.anyio
async def test_a_dead_redis_falls_back_to_the_process_limits_and_backs_off(tmp_path: Path) -> None:
    clock = Clock(0.0)
    reports: list[tuple[str, bool]] = []
    dead = RedisServer(tmp_path)  # never started: connection refused
    link = RedisLink(dead.url, 0.2, on_degraded=lambda c, d: reports.append((c, d)), clock=clock)
    limiter = SharedRateLimiter(1e6, link, clock=clock)
    assert [await limiter.take_async("k", per_minute=2) for _ in range(3)] == [0, 0, 30]  # per process
    assert link.degraded and reports == [("redis", True)]
    dead.start()
    try:
        clock.now += 0.1
        await limiter.take_async("k2", per_minute=100)
        assert link.degraded  # still in backoff: not even tried
        clock.now += 10
        assert await limiter.take_async("k3", per_minute=100) == 0
        assert not link.degraded and reports == [("redis", True), ("redis", False)]
        assert link.client.exists("toolbridge:bucket:k3:100")
    finally:
        await link.aclose()
        dead.stop()


@pytest.mark.anyio
async def test_a_stalled_redis_holds_up_only_the_take_never_the_event_loop(tmp_path: Path) -> None:
    """redis-server frozen (SIGSTOP): the connection is open but nothing answers, the worst case for a
    blocking client. While the take waits out its timeout the loop runs other coroutines; then the take
    falls back to the process's bucket, and later ones skip Redis during the backoff."""
    clock = Clock(0.0)
    server = RedisServer(tmp_path)
    server.start()
    assert server.process is not None
    link = RedisLink(server.url, 0.2, clock=clock)
    limiter = SharedRateLimiter(1e6, link, clock=clock)
    events: list[str] = []

    async def ticker() -> None:
        while True:
            events.append("tick")
            await asyncio.sleep(0.01)

    try:
        assert await limiter.take_async("k", per_minute=100) == 0  # connected, script loaded
        os.kill(server.process.pid, signal.SIGSTOP)
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        events.append("take")
        assert await limiter.take_async("k", per_minute=100) == 0  # the process's own bucket answered
        events.append("taken")
        ticking.cancel()
        during = events[events.index("take") + 1:events.index("taken")]
        assert during.count("tick") >= 2  # the loop kept running while Redis did not answer
        assert link.degraded
        assert await limiter.take_async("k", per_minute=100) == 0  # in backoff: Redis not even asked
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    try:
        clock.now += 10
        assert await limiter.take_async("k-back", per_minute=100) == 0
        assert not link.degraded  # thawed: shared again
    finally:
        await link.aclose()
        server.stop()


def test_a_delivery_replayed_to_another_replica_is_refused_there(redis_server: RedisServer) -> None:
    secret, now = "s3cret", 1_700_000_000
    body = b'{"entity": "model_version", "action": "created", "data": {}}'
    first = WebhookVerifier(secret, clock=lambda: now, shared_replays=RedisReplayStore(
        RedisLink(redis_server.url, 1.0)))
    second = WebhookVerifier(secret, clock=lambda: now, shared_replays=RedisReplayStore(
        RedisLink(redis_server.url, 1.0)))
    headers = ("delivery-shared-1", str(now), sign(secret, "delivery-shared-1", str(now), body))
    first.verify(*headers, body)
    with pytest.raises(WebhookRejected, match="already accepted"):
        second.verify(*headers, body)
    assert 0 < redis_server.client().ttl("toolbridge:webhook-delivery:delivery-shared-1") <= 301


class Sink:
    def __init__(self) -> None:
        self.written: list[ModelUsage] = []

    def write_usage(self, usage: ModelUsage) -> None:
        self.written.append(usage)


def test_one_usage_writer_at_a_time_and_the_other_keeps_its_counts(redis_server: RedisServer) -> None:
    link = RedisLink(redis_server.url, 1.0)
    link.client.delete("toolbridge:test-usage-lock")
    sinks = Sink(), Sink()
    writers = [UsageWriteback(sink, 60, lock=RedisWriterLock(link, "toolbridge:test-usage-lock"))
               for sink in sinks]
    for writer in writers:
        writer.record("credit_risk", "1", "ok")
    holder = RedisWriterLock(link, "toolbridge:test-usage-lock")
    assert holder.acquire()  # a third replica is writing
    assert writers[0].flush() == 0 and writers[0].pending()[0].calls == 1  # kept, not lost
    holder.release()
    assert [writer.flush() for writer in writers] == [1, 1]
    assert [s.written[0].calls for s in sinks] == [1, 1]
    assert not link.client.exists("toolbridge:test-usage-lock")


@pytest.mark.anyio
async def test_concurrent_cache_misses_share_refreshes(engine: sa.Engine) -> None:
    server = CachedKeyStore(engine, refresh_seconds=60)
    await server.start()
    reads = 0
    original = server.refresh

    def counting() -> None:
        nonlocal reads
        reads += 1
        original()

    server.refresh = counting  # type: ignore[method-assign]
    results = await asyncio.gather(*(server.authenticate_async(f"tb_bad{i}") for i in range(50)),
                                   return_exceptions=True)
    assert all(isinstance(r, Unauthenticated) for r in results)
    assert 1 <= reads <= 2  # one refresh in flight when the misses arrive, at most one more after it
    await server.stop()
