"""HostPool's spare hosts, on fake processes: a dedicated host takes a ready spare and a new spare follows; a
spare that crashes or fails to start is replaced; shared hosts never take one; stop ends the spares."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

import bridge.host_pool
from bridge.host_pool import SPARE_PREIMPORT, HostPool
from bridge.hosts import HostStartError

pytestmark = pytest.mark.anyio
_pids = itertools.count(1000)


class FakeProcess:
    """Stands in for bridge.hosts.HostProcess: no process, just the states the pool looks at."""

    fail_starts = 0
    made: list[FakeProcess] = []

    def __init__(self, name: str, log_dir: Path, env: dict[str, str], **options: object) -> None:
        self.name, self.env, self.port = name, env, 1
        self.pid: int | None = None
        self.alive = False
        self.stopped = False
        FakeProcess.made.append(self)

    @property
    def base_url(self) -> str:
        return "http://127.0.0.1:1"

    async def start(self, timeout: float) -> None:
        await asyncio.sleep(0)
        if FakeProcess.fail_starts > 0:
            FakeProcess.fail_starts -= 1
            raise HostStartError(f"model host {self.name} exited during start-up")
        self.pid, self.alive = next(_pids), True

    def adopt(self, name: str) -> None:
        self.name = name

    def stop(self) -> None:
        self.alive, self.stopped = False, True


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HostPool:
    monkeypatch.setattr(bridge.host_pool, "HostProcess", FakeProcess)
    FakeProcess.made, FakeProcess.fail_starts = [], 0
    return HostPool(tmp_path, {"MLFLOW_TRACKING_URI": "x"}, shared_hosts=1, call_timeout=5, start_timeout=5,
                    spare_hosts=1)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def spare_pids(pool: HostPool) -> set[int | None]:
    return {process.pid for process in pool.spares.values()}


async def test_a_dedicated_host_takes_the_ready_spare_and_a_new_spare_follows(pool: HostPool) -> None:
    await pool.start()
    await until(lambda: len(pool.spares) == 1)
    (spare,) = pool.spares.values()
    assert spare.env["TOOLBRIDGE_HOST_PREIMPORT"] == SPARE_PREIMPORT
    assert "TOOLBRIDGE_HOST_PREIMPORT" not in pool.processes["shared-0"].env  # type: ignore[attr-defined]

    client = await pool.client("dedicated-fraud")
    assert pool.processes["dedicated-fraud"] is spare and spare.name == "dedicated-fraud"
    assert client.base_url == spare.base_url
    await until(lambda: len(pool.spares) == 1)
    assert spare.pid not in spare_pids(pool)
    assert set(pool.roles()) == {"shared-0", "dedicated-fraud", *pool.spares}
    assert {role for role, _, _ in pool.roles().values()} == {"shared", "dedicated", "spare"}
    await pool.stop()


async def test_without_a_ready_spare_a_dedicated_host_starts_cold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bridge.host_pool, "HostProcess", FakeProcess)
    pool = HostPool(tmp_path, {}, shared_hosts=1, call_timeout=5, start_timeout=5, spare_hosts=0)
    await pool.start()
    await pool.client("dedicated-fraud")
    assert pool.processes["dedicated-fraud"].name == "dedicated-fraud"
    assert pool.spares == {} and {role for role, _, _ in pool.roles().values()} == {"shared", "dedicated"}
    await pool.stop()


async def test_a_crashed_spare_is_replaced_and_stopped(pool: HostPool) -> None:
    await pool.start()
    await until(lambda: len(pool.spares) == 1)
    (crashed,) = pool.spares.values()
    crashed.alive = False  # type: ignore[misc]
    await until(lambda: len(pool.spares) == 1 and crashed.pid not in spare_pids(pool))
    assert crashed.stopped  # type: ignore[attr-defined]
    assert set(pool.processes) == {"shared-0"}  # never a routed host
    await pool.stop()


async def test_a_spare_that_fails_to_start_is_tried_again_and_never_blocks_a_dedicated_host(
    pool: HostPool,
) -> None:
    await pool.start()
    FakeProcess.fail_starts = 1  # the first spare fails (the shared host has started by now)
    await asyncio.sleep(0.05)
    await pool.client("dedicated-fraud")  # no spare ready: a cold start, no error
    await until(lambda: len(pool.spares) == 1, timeout=15)
    failed = [p for p in FakeProcess.made if p.name.startswith("spare-") and p.stopped]
    assert failed and all(p.pid is None for p in failed)
    await pool.stop()


async def test_stop_ends_the_spares(pool: HostPool) -> None:
    await pool.start()
    await until(lambda: len(pool.spares) == 1)
    (spare,) = pool.spares.values()
    await pool.stop()
    assert spare.stopped and pool.spares == {}  # type: ignore[attr-defined]
    assert all(p.stopped for p in FakeProcess.made)
