"""The pure and database-level parts of security: scopes, token buckets, keys, the audit writer,
the gateway."""

from __future__ import annotations

import asyncio
import hashlib
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bridge.invoker import InvokeResult, ToolNotFound
from bridge.toolspec import ToolSpec
from tool_server.access.audit import AuditLog, read_records
from tool_server.access.db import make_engine
from tool_server.access.keys import KEY_PREFIX, KeyStore, ensure_admin_key, hash_key, new_key
from tool_server.access.limits import RateLimiter, TokenBucket
from tool_server.access.scopes import (
    Forbidden,
    Principal,
    RateLimited,
    Unauthenticated,
    may_call,
    parse_scopes,
    presented_key,
)
from tool_server.api.errors import error_code
from tool_server.calls import CallContext, Gateway


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def spec(name: str, sensitivity: str = "normal") -> ToolSpec:
    return ToolSpec(name=name, description="d", model_name=name, model_version="1", model_uri="models:/x/1",
                    input_schema={"type": "object"}, output_schema={"type": "object"}, signature={},
                    sensitivity=sensitivity)


def principal(*scopes: str, rate: float | None = None) -> Principal:
    return Principal(key_id="k1", name="alice", scopes=frozenset(scopes), rate_limit_per_minute=rate)


# --- scopes -------------------------------------------------------------------------------------------------

def test_scopes_are_tool_names_or_globs_and_roles_grant_no_tool() -> None:
    who = principal("credit_*", "fin_sentiment", "admin")
    assert may_call(who, spec("credit_risk")) and may_call(who, spec("fin_sentiment"))
    assert not may_call(who, spec("machine_failure"))
    assert not may_call(principal("admin", "restricted"), spec("admin"))  # roles are not tool scopes
    assert not may_call(principal("Credit_*"), spec("credit_risk"))  # case-sensitive, like tool names


def test_restricted_tools_need_the_restricted_scope_even_under_a_star() -> None:
    secret = spec("patient_risk", "restricted")
    assert not may_call(principal("*"), secret)
    assert may_call(principal("*", "restricted"), secret)
    assert not may_call(principal("credit_*", "restricted"), secret)


def test_parse_scopes_splits_commas_and_spaces_and_refuses_junk() -> None:
    assert parse_scopes(["credit_*, fin_sentiment", "admin"]) == {"credit_*", "fin_sentiment", "admin"}
    with pytest.raises(ValueError, match="at least one scope"):
        parse_scopes([" , "])
    with pytest.raises(ValueError, match="'a/b'"):
        parse_scopes(["a/b"])


def test_the_key_comes_from_x_api_key_or_a_bearer_authorization() -> None:
    assert presented_key({"x-api-key": " tb_1 "}) == "tb_1"
    assert presented_key({"authorization": "Bearer tb_2"}) == "tb_2"
    assert presented_key({"authorization": "bearer tb_3"}) == "tb_3"
    assert presented_key({"authorization": "Basic dXNlcg=="}) is None
    assert presented_key({}) is None


# --- rate limits --------------------------------------------------------------------------------------------

def test_a_token_bucket_allows_a_burst_then_one_call_per_refill() -> None:
    bucket = TokenBucket.per_minute(3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(20.0)  # 3 a minute: one token every 20 s
    assert bucket.take(10.0) == pytest.approx(10.0)
    assert bucket.take(20.0) == 0.0


@pytest.mark.anyio
async def test_the_rate_limiter_keeps_one_bucket_per_key_and_rounds_retry_after_up() -> None:
    now = [0.0]
    limiter = RateLimiter(default_per_minute=2, clock=lambda: now[0])
    assert [await limiter.take_async("a") for _ in range(3)] == [0, 0, 30]
    assert await limiter.take_async("b") == 0  # another key, another bucket
    assert await limiter.take_async("c", per_minute=120) == 0
    now[0] = 29.5
    assert await limiter.take_async("a") == 1  # never 0 while refused: Retry-After is at least 1


# --- keys ---------------------------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(make_engine(f"sqlite:///{tmp_path / 'tb.db'}"))


def test_keys_are_random_prefixed_and_stored_only_as_sha256(store: KeyStore) -> None:
    key, info = store.create("alice", {"credit_*"})
    assert key.startswith(KEY_PREFIX) and len(key) > 40 and new_key() != new_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    with store.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(sa.text("select * from api_keys")) for v in row)
    assert key not in dump and hash_key(key) in dump
    assert store.authenticate(key) == Principal(key_id=info.id, name="alice", scopes=frozenset({"credit_*"}))


def test_unknown_revoked_and_expired_keys_are_refused_without_echoing_them(store: KeyStore) -> None:
    key, _ = store.create("bob", {"*"})
    short, _ = store.create("carol", {"*"}, expires_in=timedelta(microseconds=1))
    for bad in (None, "", "tb_nope", short):
        with pytest.raises(Unauthenticated) as refused:
            store.authenticate(bad)
        assert not bad or bad not in str(refused.value)
    assert store.authenticate(key).name == "bob"
    assert [k.name for k in store.revoke("bob")] == ["bob"]
    with pytest.raises(Unauthenticated):
        store.authenticate(key)  # at once: no cache
    assert store.revoke("bob") == []


def test_names_are_unique_among_active_keys(store: KeyStore) -> None:
    store.create("dave", {"*"})
    with pytest.raises(ValueError, match="active key named 'dave'"):
        store.create("dave", {"*"})
    store.revoke("dave")
    store.create("dave", {"*"})


def test_the_admin_key_file_is_written_once_with_mode_0600(store: KeyStore, tmp_path: Path) -> None:
    path = tmp_path / "state" / "admin.key"
    info = ensure_admin_key(store, path)
    assert info is not None and info.scopes == {"admin", "restricted", "*"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.authenticate(path.read_text().strip()).is_admin
    assert ensure_admin_key(store, path) is None


# --- audit and the gateway ----------------------------------------------------------------------------------

class FakeInvoker:
    def __init__(self) -> None:
        self.calls = 0

    async def invoke(self, tool: str, arguments: Any, version: str | None = None) -> InvokeResult:
        self.calls += 1
        if tool == "missing":
            raise ToolNotFound("no tool")
        return InvokeResult(tool=tool, model_name=tool, model_version="7", role="champion", output={"ok": 1})


def make_gateway(tmp_path: Path, audit_inputs: bool = True, rate: float = 1e6) -> Gateway:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    specs = {s.name: s for s in (spec("credit_risk"), spec("patient_risk", "restricted"))}
    return Gateway(lambda: list(specs.values()), specs.get, FakeInvoker(), KeyStore(engine),  # type: ignore[arg-type]
                   AuditLog(engine), RateLimiter(rate), error_code, audit_inputs=audit_inputs)


@pytest.mark.anyio
async def test_n_concurrent_calls_leave_n_records_after_stop(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path)
    await gateway.audit.start()
    who = principal("credit_*")
    await asyncio.gather(*(gateway.invoke(who, "credit_risk", CallContext(f"r{i}", "mcp"), arguments={"i": i})
                           for i in range(1000)))
    await gateway.audit.stop()
    records = list(read_records(gateway.audit.engine))
    assert len(records) == 1000 and {r.request_id for r in records} == {f"r{i}" for i in range(1000)}
    assert records[0].outcome == "ok" and records[0].model_version == "7" and records[0].key_name == "alice"


@pytest.mark.anyio
async def test_denied_calls_read_the_same_whether_the_tool_exists_and_are_audited(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path)
    await gateway.audit.start()
    who = principal("credit_*", "patient_*")
    messages = []
    for name in ("patient_risk", "patient_nothing", "other"):
        with pytest.raises(Forbidden) as denied:
            await gateway.invoke(who, name, CallContext("r", "http"), raw=b'{"a": 1}')
        messages.append(str(denied.value).replace(repr(name), "NAME"))
    assert len(set(messages)) == 1
    assert [s.name for s in gateway.visible(who)] == ["credit_risk"]
    with pytest.raises(ToolNotFound):  # a key that would see any such tool may learn it does not exist
        gateway.tool(principal("*", "restricted"), "nothing")
    await gateway.audit.stop()
    records = list(read_records(gateway.audit.engine))
    assert [(r.outcome, r.status, r.inputs) for r in records] == [("denied", 403, None)] * 3


@pytest.mark.anyio
async def test_inputs_are_kept_only_when_asked_and_never_for_restricted_tools(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, audit_inputs=True)
    await gateway.audit.start()
    boss = principal("*", "restricted")
    await gateway.invoke(boss, "credit_risk", CallContext("a", "http"), raw=b'{"b": 2, "a": 1}')
    await gateway.invoke(boss, "patient_risk", CallContext("b", "http"), raw=b'{"a": 1, "b": 2}')
    await gateway.audit.stop()
    normal, restricted = read_records(gateway.audit.engine)
    assert normal.inputs == '{"a":1,"b":2}' and restricted.inputs is None
    assert normal.input_sha256 == restricted.input_sha256 == hashlib.sha256(b'{"a":1,"b":2}').hexdigest()


@pytest.mark.anyio
async def test_rate_limited_and_invalid_calls_get_their_outcomes(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, rate=1)
    await gateway.audit.start()
    who = principal("*")
    with pytest.raises(Exception, match="not valid JSON"):
        await gateway.invoke(who, "credit_risk", CallContext("a", "http"), raw=b"{nope")
    with pytest.raises(RateLimited) as limited:
        await gateway.invoke(who, "credit_risk", CallContext("b", "http"), raw=b"{}")
    assert limited.value.retry_after >= 1
    await gateway.audit.stop()
    assert [(r.outcome, r.status, r.error) for r in read_records(gateway.audit.engine)] == [
        ("invalid", 422, "invalid_body"), ("denied", 429, "rate_limited")]
