"""Schema migrations at start: Alembic's revisions in `migrations/`, applied by one process at a time.

No alembic.ini and no env.py: the revisions ship inside the package and run on the engine's own connection.
One process at a time: on PostgreSQL a transaction-scoped advisory lock (replicas and workers starting
together wait for the first one; PostgreSQL's DDL is transactional, so a crash leaves the old schema); on
SQLite an exclusive lock on a file beside the database (a single machine's workers and CLI commands).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

__all__ = ["HEAD", "current_revision", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0003"
_LOCK_ID = 0x70_6F_6C_62_72_69_64_67  # any constant shared by every Toolbridge: "toolbridg" in hex


def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


@contextlib.contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(connection: Connection, script: ScriptDirectory) -> None:
    def steps(heads: tuple[str, ...], _: MigrationContext) -> list[object]:
        # What `alembic upgrade head` runs; alembic passes the current heads as a tuple (typed as one str).
        return list(script._upgrade_revs("head", heads))  # type: ignore[arg-type]

    with EnvironmentContext(Config(), script, fn=steps, destination_rev="head") as env:
        env.configure(connection=connection)
        with env.begin_transaction():
            env.run_migrations()


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest revision (a no-op when it is there already)."""
    script = _script()
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            _run(connection, script)
        return
    with _sqlite_lock(engine), engine.begin() as connection:
        _run(connection, script)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
