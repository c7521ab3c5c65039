"""The routing table a controller publishes to its workers: what a worker rebuilds routes exactly as the
controller's, through JSON, and reuses what did not change."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import orjson
import pytest

from bridge.host_client import HostClient
from bridge.hosting.remote_pool import RemotePool
from bridge.live import LiveVersion, Route, ShadowTarget
from bridge.toolspec import ModelFacts, build_tool_spec
from bridge.validation import ToolInputError, compile_validator
from registry_sync import ModelVersionRef, Snapshot
from tool_server.workers.table import FORMAT, TableError, decode_table, encode_table

SIGNATURE = {"inputs": [{"type": "double", "name": "income", "required": True},
                        {"type": "string", "name": "region", "required": False}],
             "outputs": None, "params": None}


def ref(version: str, role: str = "champion", tags: dict[str, str] | None = None) -> ModelVersionRef:
    return ModelVersionRef(name="credit", version=version, uri=f"models:/credit/{version}",
                           tool_name="credit", role=role, canary_weight=0.25 if role == "canary" else 0.0,
                           signature=SIGNATURE,
                           model_tags=tags or {"toolbridge.cache": "true"}, input_example=[{"income": 1.0}])


def live(model_ref: ModelVersionRef, host: HostClient, host_name: str = "shared-0") -> LiveVersion:
    spec = build_tool_spec(model_ref, ModelFacts(kind="classifier", classes=("no", "yes")))
    return LiveVersion(spec=spec, host=host, host_name=host_name,
                       validator=compile_validator(spec.input_schema, trusted=True), smoke_tested=True)


class Connections:
    """The worker's `connect`: one client per host, recorded."""

    def __init__(self) -> None:
        self.made: dict[tuple[str, tuple[str, ...]], HostClient] = {}

    def __call__(self, name: str, urls: tuple[str, ...]) -> HostClient:
        return self.made.setdefault((name, urls), HostClient(urls[0]))


def published() -> tuple[dict[str, Route], Snapshot]:
    champion, canary = ref("3"), ref("4", role="canary")
    host = HostClient("http://127.0.0.1:3001")
    first, second = live(champion, host), live(canary, host)
    routes = {"credit": Route(champion=first, canary=second, canary_weight=0.25,
                              pinned={"3": first, "4": second})}
    return routes, Snapshot(refs={champion.key: champion, canary.key: canary})


def through_json(table: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(table))
    return decoded


def test_a_worker_rebuilds_the_controllers_routes_through_json() -> None:
    routes, snapshot = published()
    connect = Connections()
    followed = decode_table(through_json(encode_table(routes, snapshot, ["shared-1"])), connect)

    route = followed.routes["credit"]
    original = routes["credit"]
    assert route.champion.spec == original.champion.spec
    assert route.canary is not None and original.canary is not None
    assert route.canary.spec == original.canary.spec
    assert route.canary_weight == 0.25
    assert sorted(route.pinned) == ["3", "4"] and route.pinned["4"] is route.canary
    assert route.champion.host_name == "shared-0" and route.champion.smoke_tested
    assert route.champion.host.base_url == "http://127.0.0.1:3001"
    assert route.champion.host is route.canary.host, "one client per host, shared by its versions"
    assert followed.snapshot.refs == snapshot.refs, "the cache decision reads the same tags"
    assert followed.restarting == frozenset({"shared-1"})


def test_the_rebuilt_validator_refuses_what_the_controllers_refuses() -> None:
    routes, snapshot = published()
    followed = decode_table(through_json(encode_table(routes, snapshot, [])), Connections())
    validator = followed.routes["credit"].champion.validator
    validator.validate({"income": 1.5, "region": None})
    with pytest.raises(ToolInputError, match="income"):
        validator.validate({"income": "a lot"})


def test_a_shadow_version_travels_with_its_rate_and_the_reason_it_is_blocked() -> None:
    routes, snapshot = published()
    shadow = ref("5", role="shadow")
    target = ShadowTarget(live=live(shadow, routes["credit"].champion.host), rate=0.5,
                          blocked="restricted tool")
    routes["credit"] = dataclasses.replace(routes["credit"], shadow=target)
    table = through_json(encode_table(routes, Snapshot(refs={**snapshot.refs, shadow.key: shadow}), []))
    followed = decode_table(table, Connections()).routes["credit"]
    assert followed.shadow is not None
    assert (followed.shadow.live.spec, followed.shadow.rate, followed.shadow.blocked) == (
        target.live.spec, 0.5, "restricted tool")
    assert "5" not in followed.pinned, "a shadow version answers no caller"


def test_the_canary_split_survives_the_trip() -> None:
    routes, snapshot = published()
    route = decode_table(through_json(encode_table(routes, snapshot, [])), Connections()).routes["credit"]
    rng = random.Random(7)
    picked = [route.pick(rng).spec.model_version for _ in range(2000)]
    assert abs(picked.count("4") / 2000 - 0.25) < 0.05


def test_unchanged_versions_keep_their_live_version_and_a_changed_one_is_rebuilt() -> None:
    routes, snapshot = published()
    connect = Connections()
    first = decode_table(through_json(encode_table(routes, snapshot, [])), connect)
    again = decode_table(through_json(encode_table(routes, snapshot, [])), connect, first.lives)
    assert again.routes["credit"].champion is first.routes["credit"].champion

    moved = ref("3", tags={"toolbridge.cache": "false"})  # a tag edit: the version is published anew
    routes["credit"] = Route(champion=live(moved, routes["credit"].champion.host))
    changed = decode_table(through_json(encode_table(routes, Snapshot(refs={moved.key: moved}), [])),
                           connect, again.lives)
    assert changed.routes["credit"].champion is not first.routes["credit"].champion
    assert changed.snapshot.refs[moved.key].model_tags == {"toolbridge.cache": "false"}
    assert changed.routes["credit"].canary is None and list(changed.routes["credit"].pinned) == []


def test_an_unchanged_table_encodes_to_the_same_bytes() -> None:
    """The controller publishes a new generation only when the bytes differ."""
    routes, snapshot = published()
    assert orjson.dumps(encode_table(routes, snapshot, ["b", "a"])) == orjson.dumps(
        encode_table(dict(reversed(list(routes.items()))), snapshot, ["a", "b"]))


def test_a_remote_pool_is_published_with_every_replica() -> None:
    champion = ref("3")
    pool = RemotePool("gpu", ("http://10.0.0.1:3000", "http://10.0.0.2:3000"))
    routes = {"credit": Route(champion=live(champion, pool, host_name="pool:gpu"))}
    table = encode_table(routes, Snapshot(refs={champion.key: champion}), [])
    assert table["versions"]["credit/3"]["host"] == {"name": "pool:gpu",
                                                      "urls": ["http://10.0.0.1:3000", "http://10.0.0.2:3000"]}
    connect = Connections()
    decode_table(through_json(table), connect)
    assert list(connect.made) == [("pool:gpu", ("http://10.0.0.1:3000", "http://10.0.0.2:3000"))]


def test_a_version_routed_while_absent_from_the_snapshot_has_no_ref() -> None:
    """A tool keeps its old route while its next version loads: that version is not cached, here as there."""
    routes, _ = published()
    followed = decode_table(through_json(encode_table(routes, Snapshot(), [])), Connections())
    assert followed.snapshot.refs == {} and "credit" in followed.routes


@pytest.mark.parametrize(("table", "message"), [
    ({"format": FORMAT + 1, "versions": {}, "routes": {}, "restarting": []}, "routing table format"),
    ({"format": FORMAT, "versions": {}, "routes": {"credit": {"champion": "credit/3"}}, "restarting": []},
     "malformed routing table: KeyError"),
    ({"format": FORMAT, "routes": {}, "restarting": []}, "malformed routing table: KeyError: 'versions'"),
])
def test_a_table_the_worker_cannot_read_is_refused_with_the_reason(table: dict[str, Any],
                                                                   message: str) -> None:
    with pytest.raises(TableError, match=message):
        decode_table(table, Connections())
