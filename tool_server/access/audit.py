"""The audit log: one record per tool call, written to the database off the call path, losing none.

`record()` only appends to an in-memory queue (never blocks a call); one writer task inserts what is queued
in batches. `stop()` (the app's shutdown) drains the queue before returning. A failed insert is retried with
backoff, never dropped: an audit trail with holes is worse than a late one. While the database is down
(a PostgreSQL restart) records wait in the queue and are written when it answers again. Each record carries
a `record_id` made when it is recorded; the insert skips ids already stored, so a batch retried after its
commit went through (the acknowledgement lost with the connection) is not written twice. A hard kill
(SIGKILL, power loss) loses what was queued and not yet written: at most one batch interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from tool_server.access.db import audit_log

__all__ = ["AuditLog", "AuditRecord", "read_records"]

log = logging.getLogger(__name__)

BATCH = 500
LINGER = 0.02  # seconds a batch waits for more records once one arrives: one commit for many calls under load
OUTCOMES = ("ok", "invalid", "denied", "unavailable", "error")
MAX_RETRY_DELAY = 5.0  # seconds between two tries while the database is down: rows land soon after it returns


# A record id: this process's random prefix and a counter (unique across workers and replicas, which the
# idempotent insert relies on) at the cost of a counter step, not 16 random bytes, per call.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count()


def _record_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


@dataclass(frozen=True)
class AuditRecord:
    time: datetime
    request_id: str
    key_id: str | None
    key_name: str | None
    tool: str
    model_version: str | None
    channel: str  # http | mcp
    outcome: str  # one of OUTCOMES
    status: int  # the HTTP status of the answer (for MCP: the status the same call gets over HTTP)
    error: str | None
    latency_ms: float
    input_bytes: int
    input_sha256: str
    inputs: str | None = None
    record_id: str = field(default_factory=_record_id)

    def public(self) -> dict[str, Any]:
        return {**asdict(self), "time": self.time.isoformat()}


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.written = 0
        self._queue: asyncio.Queue[AuditRecord | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def record(self, record: AuditRecord) -> None:
        """Queue a record: no I/O, no await; the writer task inserts it shortly."""
        self._queue.put_nowait(record)

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="audit-writer")

    async def stop(self) -> None:
        """Write everything queued, then end the writer (the app's shutdown, after the last request)."""
        if self._writer is None:
            return
        self._queue.put_nowait(None)
        await self._writer
        self._writer = None

    async def flush(self) -> None:
        """Wait until everything queued so far is in the database."""
        await self._queue.join()

    async def _write_forever(self) -> None:
        stopping = False
        while not stopping:
            batch: list[AuditRecord] = []
            item = await self._queue.get()
            taken = 1
            if item is None:
                stopping = True
            else:
                batch.append(item)
                await asyncio.sleep(LINGER)
            while len(batch) < BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                taken += 1
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            await self._insert_until_done(batch)
            for _ in range(taken):
                self._queue.task_done()

    async def _insert_until_done(self, batch: list[AuditRecord]) -> None:
        delay = 0.5
        while batch:
            try:
                await asyncio.to_thread(self._insert, batch)
                self.written += len(batch)
                return
            except sa.exc.SQLAlchemyError as exc:
                log.error("audit: writing %d records failed (%s); retrying in %.1fs", len(batch),
                          type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    def _insert(self, batch: list[AuditRecord]) -> None:
        with self.engine.begin() as conn:
            # vars(): the record's own field dict, only read; asdict() would deep-copy every field.
            conn.execute(_insert_once(self.engine.dialect.name), [vars(r) for r in batch])


def _insert_once(dialect: str) -> sa.Insert:
    """An insert that skips a record whose id is stored already (both dialects say ON CONFLICT DO NOTHING)."""
    if dialect == "postgresql":
        return postgresql.insert(audit_log).on_conflict_do_nothing(index_elements=["record_id"])
    if dialect == "sqlite":
        return sqlite.insert(audit_log).on_conflict_do_nothing(index_elements=["record_id"])
    return audit_log.insert()


def _record(row: sa.Row[tuple[object, ...]]) -> AuditRecord:
    values = {k: v for k, v in row._mapping.items() if k != "id"}
    values["record_id"] = values["record_id"] or ""  # rows written before record ids existed
    moment: datetime = values["time"]
    values["time"] = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return AuditRecord(**values)


def read_records(engine: Engine, since: datetime | None = None, last: int | None = None,
                 key_name: str | None = None, batch: int = 5000) -> Iterator[AuditRecord]:
    """Records in time order: from `since`, or only the `last` N; streamed in batches of `batch` rows."""
    filters = []
    if since is not None:
        filters.append(audit_log.c.time >= since)
    if key_name is not None:
        filters.append(audit_log.c.key_name == key_name)
    query = sa.select(audit_log).where(*filters)
    if last is not None:
        ids = sa.select(audit_log.c.id).where(*filters).order_by(audit_log.c.id.desc()).limit(last)
        query = query.where(audit_log.c.id.in_(ids.scalar_subquery()))
    with engine.connect() as conn, contextlib.closing(
            conn.execution_options(yield_per=batch).execute(query.order_by(audit_log.c.id))) as rows:
        for row in rows:
            yield _record(row)
