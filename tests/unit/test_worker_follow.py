"""A worker follows its controller in process (the control app over ASGI, no sockets): a new routing table
reaches the worker's Bridge at the next long-poll answer, catalog listeners hear of it, the restarting hosts
are updated in place, sync requests reach the controller, and a stopping controller or a wrong token leave the
worker on its last table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.host_client import HostClient
from bridge.live import LiveVersion, Route
from bridge.runtime import Bridge, BridgeSettings
from bridge.toolspec import ModelFacts, build_tool_spec
from bridge.validation import compile_validator
from registry_sync import ModelVersionRef, Snapshot
from tool_server.workers.control import Controller
from tool_server.workers.follower import ControlClient, ControllerUnavailable, RouteFollower

pytestmark = pytest.mark.anyio

TOKEN = "test-token-0123456789"
SIGNATURE = {"inputs": [{"type": "double", "name": "income", "required": True}], "outputs": None,
             "params": None}


@dataclass
class FakeControllerRuntime:
    """What the Controller reads of its Runtime: the bridge, sync requests, status, metrics."""

    bridge: Bridge
    syncs: int = 0
    metrics: Any = None
    status_body: dict[str, Any] = field(default_factory=lambda: {"sync": {"state": "ok"}})

    def request_sync(self) -> None:
        self.syncs += 1

    async def status(self) -> dict[str, Any]:
        return dict(self.status_body)


def bridge(tmp_path: Path, name: str) -> Bridge:
    return Bridge(BridgeSettings(), tmp_path / name / "logs", "http://127.0.0.1:9")


def route(version: str) -> tuple[dict[str, Route], Snapshot]:
    ref = ModelVersionRef(name="credit", version=version, uri=f"models:/credit/{version}", tool_name="credit",
                          signature=SIGNATURE)
    spec = build_tool_spec(ref, ModelFacts(kind="regressor"))
    live = LiveVersion(spec=spec, host=HostClient("http://127.0.0.1:3001"), host_name="shared-0",
                       validator=compile_validator(spec.input_schema, trusted=True), smoke_tested=True)
    return {"credit": Route(champion=live, pinned={version: live})}, Snapshot(refs={ref.key: ref})


def client(controller: Controller, token: str = TOKEN) -> ControlClient:
    control = ControlClient("http://control", token)
    control._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=controller.app()),
                                      base_url="http://control", headers={"Authorization": f"Bearer {token}"})
    return control


async def eventually(check: Any, what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@dataclass
class Pair:
    runtime: FakeControllerRuntime
    controller: Controller
    worker: Bridge
    follower: RouteFollower
    heard: list[int]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    runtime = FakeControllerRuntime(bridge(tmp_path, "controller"))
    controller = Controller(runtime, TOKEN)  # type: ignore[arg-type]
    controller.publish_if_changed()
    worker = bridge(tmp_path, "worker")
    heard: list[int] = []

    async def listener() -> None:
        heard.append(len(worker.catalog()))

    worker.catalog_listeners.append(listener)
    follower = RouteFollower(client(controller), worker)
    await follower.start()
    yield Pair(runtime, controller, worker, follower, heard)
    controller.stop()
    await follower.stop()


async def test_a_promotion_published_by_the_controller_is_routed_by_the_worker(pair: Pair) -> None:
    assert pair.worker.catalog() == [] and pair.follower.generation == 1
    routes, snapshot = route("3")
    pair.runtime.bridge.snapshot, pair.runtime.bridge.reconciler.routes = snapshot, routes
    assert pair.controller.publish_if_changed()

    await eventually(lambda: pair.follower.generation == 2, "table 2 followed")
    assert [spec.model_version for spec in pair.worker.catalog()] == ["3"]
    assert pair.worker.snapshot.refs.keys() == {"credit/3"}
    assert pair.heard == [1], "catalog listeners (MCP list_changed) hear of the new tool once"
    assert pair.controller.following, "the controller knows which table the worker follows"

    routes, snapshot = route("4")
    pair.runtime.bridge.snapshot, pair.runtime.bridge.reconciler.routes = snapshot, routes
    pair.controller.publish_if_changed()
    await eventually(lambda: pair.follower.generation == 3, "table 3 followed")
    assert pair.worker.reconciler.routes["credit"].champion.spec.model_version == "4"


async def test_an_unchanged_table_is_not_published_again(pair: Pair) -> None:
    routes, snapshot = route("3")
    pair.runtime.bridge.snapshot, pair.runtime.bridge.reconciler.routes = snapshot, routes
    assert pair.controller.publish_if_changed()
    pair.runtime.bridge.reconciler.routes = dict(routes)  # a new pass, the same routes
    assert not pair.controller.publish_if_changed()
    assert pair.controller.generation == 2


async def test_restarting_hosts_reach_the_worker_in_the_set_its_invoker_reads(pair: Pair) -> None:
    restarting = pair.worker.restarting
    pair.runtime.bridge.restarting.add("shared-0")
    pair.controller.publish_if_changed()
    await eventually(lambda: "shared-0" in pair.worker.restarting, "shared-0 restarting in the worker")
    assert pair.worker.restarting is restarting
    pair.runtime.bridge.restarting.clear()
    pair.controller.publish_if_changed()
    await eventually(lambda: not pair.worker.restarting, "shared-0 back")


async def test_a_sync_request_in_a_worker_reaches_the_controller(pair: Pair) -> None:
    pair.follower.request_sync()
    await eventually(lambda: pair.runtime.syncs == 1, "a registry pass asked of the controller")


async def test_status_comes_from_the_controller_with_its_workers(pair: Pair) -> None:
    pair.controller.workers = lambda: [{"index": 0, "pid": 1234, "alive": True, "restarts": 0}]
    status = await pair.follower.control.status()
    assert status["sync"] == {"state": "ok"} and status["table"] == 1
    assert status["workers"] == [{"index": 0, "pid": 1234, "alive": True, "restarts": 0, "table": None}]


async def test_a_stopping_controller_leaves_the_worker_on_its_last_table(pair: Pair) -> None:
    routes, snapshot = route("3")
    pair.runtime.bridge.snapshot, pair.runtime.bridge.reconciler.routes = snapshot, routes
    pair.controller.publish_if_changed()
    await eventually(lambda: pair.follower.generation == 2, "table 2 followed")
    pair.controller.stop()
    with pytest.raises(ControllerUnavailable, match="503"):
        await pair.follower.control.table(after=2)
    assert [spec.model_version for spec in pair.worker.catalog()] == ["3"]


async def test_only_the_controllers_workers_may_use_the_control_endpoint(pair: Pair) -> None:
    stranger = client(pair.controller, token="not-the-token")
    with pytest.raises(ControllerUnavailable, match="401"):
        await stranger.table(after=-1)
    with pytest.raises(ControllerUnavailable, match="401"):
        await stranger.request_sync()
    assert pair.runtime.syncs == 0
    await stranger.close()
