"""The tool server's own database: API keys and the audit log (SQLAlchemy Core; SQLite or PostgreSQL).

The only state Toolbridge keeps that MLflow cannot rebuild. Several tool-server replicas share it by URL.
The tables below mirror the newest migration (`migrations/versions/`); `make_engine` applies the
migrations. `access_state.key_version` moves with every key written: replicas poll it to know when to reload
their key cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tool_server.access.migrate import upgrade

__all__ = ["DatabaseUnavailable", "access_state", "api_keys", "audit_log", "make_engine", "metadata"]

metadata = sa.MetaData()


class DatabaseUnavailable(RuntimeError):
    """At start: the database URL is unusable, or the server does not answer (the message says which)."""


api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # public handle, safe to show and log
    sa.Column("name", sa.String(64), nullable=False, index=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex; never the key itself
    sa.Column("scopes", sa.Text, nullable=False),  # space-separated
    sa.Column("rate_limit_per_minute", sa.Float, nullable=True),  # none = the server's default
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(128), nullable=False, index=True),
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.Column("key_name", sa.String(64), nullable=True, index=True),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error", sa.String(64), nullable=True),  # an error kind, never a message (messages echo inputs)
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("input_bytes", sa.Integer, nullable=False),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("inputs", sa.Text, nullable=True),  # only if TOOLBRIDGE_AUDIT_INPUTS=true, never if restricted
    # Made when the call is recorded: a batch retried after a lost commit acknowledgement is written once.
    sa.Column("record_id", sa.String(32), nullable=True, unique=True),
)

access_state = sa.Table(
    "access_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # one row, id 1
    sa.Column("key_version", sa.BigInteger, nullable=False),
)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL: the CLI (`keys revoke`) and the audit writer write while the server reads; busy_timeout waits for
    # the other writer instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _driver(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; we ship psycopg (3)."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine on a migrated database; for SQLite, the file's folder too. `pool_size` connections per
    process (and as many again in bursts) on PostgreSQL."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # audit inputs: owner only (WAL follows)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        # A short connect timeout: while the database restarts, the key cache refresh and the audit writer
        # retry instead of hanging.
        try:
            engine = sa.create_engine(_driver(url), pool_pre_ping=True, pool_size=pool_size,
                                      max_overflow=pool_size, connect_args={"connect_timeout": 3})
        except (sa.exc.ArgumentError, ImportError) as exc:  # a scheme we have no driver for
            raise DatabaseUnavailable(f"TOOLBRIDGE_DATABASE_URL is not a database URL Toolbridge can use "
                                      f"({exc}); use postgresql+psycopg://user:password@host:5432/name, or "
                                      "unset it for SQLite in the state dir") from exc
    try:
        upgrade(engine)
    except sa.exc.OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = " ".join(str(exc.orig).split())[:300]
        raise DatabaseUnavailable(f"the keys and audit database {where} cannot be reached or migrated "
                                  f"({reason}); check TOOLBRIDGE_DATABASE_URL and that the server "
                                  "runs") from exc
    return engine
