"""Remote host pools without a network: the setting's parsing and its messages (from the variable or its
file), which pool a version goes to, and how a pool spreads calls over its replicas (fake replicas standing in
for HostClient's HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.host_client import HostClient, HostTimeout, HostUnavailable
from bridge.host_pool import HostPool
from bridge.hosting.remote_pool import RemotePool, UnknownPool, parse_pools
from bridge.runtime import BridgeSettings
from registry_sync import ModelVersionRef


def test_pools_parse_from_one_url_comma_separated_urls_or_a_list() -> None:
    assert parse_pools('{"shared": "http://hosts:3000/", "gpu": "http://a:1, http://b:1", "cpu": ["http://c"]}'
                       ) == {"shared": ("http://hosts:3000",), "gpu": ("http://a:1", "http://b:1"),
                             "cpu": ("http://c",)}
    assert parse_pools("") == {} and parse_pools(None) == {}


@pytest.mark.parametrize(("value", "message"), [
    ("{shared: 1}", "not JSON"),
    ('["http://a"]', "expected a JSON object of pool name → URL(s), got list"),
    ('{"GPU": "http://a"}', "pool name 'GPU': expected lowercase letters, digits and '-'"),
    ('{"gpu": "ftp://a"}', "pool 'gpu': 'ftp://a' is not an http(s) URL"),
    ('{"gpu": " , "}', "pool 'gpu': no URL"),
    ('{"gpu": 3}', "pool 'gpu': expected a URL, comma-separated URLs or a list of URLs, got 3"),
])
def test_a_bad_pool_setting_is_refused_with_what_was_expected(
        monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv("TOOLBRIDGE_HOST_POOLS", value)
    with pytest.raises(ValidationError, match="host_pools") as caught:
        BridgeSettings()
    assert message in str(caught.value)


POOLS_JSON = '{"shared": "http://hosts:3000/",\n "gpu": ["http://a:1", "http://b:1"]}'
POOLS_TOML = 'shared = "http://hosts:3000/"\ngpu = ["http://a:1", "http://b:1"]\n'
POOLS = {"shared": ("http://hosts:3000",), "gpu": ("http://a:1", "http://b:1")}


def settings_from_file(monkeypatch: pytest.MonkeyPatch, path: Path) -> BridgeSettings:
    monkeypatch.setenv("TOOLBRIDGE_HOST_POOLS_FILE", str(path))
    return BridgeSettings()


@pytest.mark.parametrize(("name", "text"), [("pools.json", POOLS_JSON), ("pools", POOLS_JSON),
                                            ("pools.toml", POOLS_TOML)])
def test_pools_come_from_a_json_or_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str,
                                             text: str) -> None:
    (tmp_path / name).write_text(text)
    assert settings_from_file(monkeypatch, tmp_path / name).host_pools == POOLS


@pytest.mark.parametrize(("name", "text", "message"), [
    ("pools.json", "", "the file is empty; expected a JSON object like {\"shared\""),
    ("pools.json", '{"shared": "http://a",\n "gpu": }', "not JSON at line 2, column 9: Expecting value"),
    ("pools.toml", "shared = http://a\n", "not TOML (Invalid value (at line 1, column 10))"),
    # The shape is checked as the variable's is, with the same words.
    ("pools.json", '["http://a"]', "expected a JSON object of pool name → URL(s), got list"),
    ("pools.json", '{"GPU": "http://a"}', "pool name 'GPU': expected lowercase letters, digits and '-'"),
    ("pools.toml", 'gpu = "ftp://a"', "pool 'gpu': 'ftp://a' is not an http(s) URL"),
    ("pools.toml", "gpu = 3", "pool 'gpu': expected a URL, comma-separated URLs or a list of URLs, got 3"),
])
def test_a_bad_pools_file_is_refused_naming_the_file_and_what_was_wrong(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ValidationError) as caught:
        settings_from_file(monkeypatch, tmp_path / name)
    assert f"TOOLBRIDGE_HOST_POOLS_FILE={tmp_path / name}: {message}" in str(caught.value)


def test_a_pools_file_that_cannot_be_read_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cases = {tmp_path / "absent.json": "no such file; expected a JSON object like",
             tmp_path: "is a directory; name the file in it (a ConfigMap mounted as a volume",
             tmp_path / "absent.toml": "no such file; expected a TOML table like shared = ",
             tmp_path / "not-utf8.json": "not UTF-8 text (invalid start byte at byte 0)"}
    (tmp_path / "not-utf8.json").write_bytes(b"\xff{}")
    (tmp_path / "plain").write_text("{}")
    cases[tmp_path / "plain" / "pools.json"] = "cannot be read (Not a directory)"  # an OSError, not absent
    for path, message in cases.items():
        with pytest.raises(ValidationError) as caught:
            settings_from_file(monkeypatch, path)
        assert f"TOOLBRIDGE_HOST_POOLS_FILE={path}: {message}" in str(caught.value)


def test_pools_in_both_the_variable_and_a_file_are_refused_saying_which_to_unset(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pools.json").write_text(POOLS_JSON)
    monkeypatch.setenv("TOOLBRIDGE_HOST_POOLS", '{"shared": "http://elsewhere"}')
    with pytest.raises(ValidationError, match="TOOLBRIDGE_HOST_POOLS and TOOLBRIDGE_HOST_POOLS_FILE=.* are "
                       "both set; keep one: unset TOOLBRIDGE_HOST_POOLS to use the file .* or unset "
                       "TOOLBRIDGE_HOST_POOLS_FILE to keep the variable"):
        settings_from_file(monkeypatch, tmp_path / "pools.json")
    # Empty values are unset, as a compose file's `${POOLS:-}` gives them.
    monkeypatch.setenv("TOOLBRIDGE_HOST_POOLS", "")
    assert settings_from_file(monkeypatch, tmp_path / "pools.json").host_pools == POOLS
    monkeypatch.setenv("TOOLBRIDGE_HOST_POOLS_FILE", "")
    assert BridgeSettings().host_pools == {}


def ref(model_tags: dict[str, str] | None = None, version_tags: dict[str, str] | None = None
        ) -> ModelVersionRef:
    return ModelVersionRef(name="m", version="1", uri="models:/m/1", model_tags=model_tags or {},
                           version_tags=version_tags or {})


def pool(remote: dict[str, tuple[str, ...]] | None = None) -> HostPool:
    return HostPool(log_dir=None, env={}, shared_hosts=1, call_timeout=5.0,  # type: ignore[arg-type]
                    start_timeout=5.0, remote_pools=remote)


def test_a_version_goes_to_the_pool_its_tags_name() -> None:
    hosts = pool({"gpu": ("http://g",)})
    assert hosts.name_for(ref()) == "shared-0"  # local processes stay the default
    assert hosts.name_for(ref({"toolbridge.pool": "gpu"})) == "pool:gpu"
    assert hosts.name_for(ref({"toolbridge.pool": "gpu"}, {"toolbridge.pool": "shared"})) == "shared-0"
    dedicated = {"toolbridge.pool": "gpu", "toolbridge.isolation": "dedicated"}
    assert hosts.name_for(ref(dedicated)) == "dedicated-m"
    assert pool({"shared": ("http://s",)}).name_for(ref()) == "pool:shared"


def test_an_unknown_pool_is_that_versions_error_naming_the_configured_pools() -> None:
    hosts = pool({"gpu": ("http://g",)})
    with pytest.raises(UnknownPool, match=r"host pool 'nope' \(tag toolbridge.pool\).*pools: gpu, shared"):
        asyncio.run(hosts.client(hosts.name_for(ref({"toolbridge.pool": "nope"}))))


class FakeReplica(HostClient):
    def __init__(self, name: str, fails: type[Exception] | None = None) -> None:
        super().__init__(f"http://{name}")
        self.fails = fails
        self.bodies: list[dict[str, Any]] = []

    async def _post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        self.bodies.append(body)
        if self.fails is not None:
            raise self.fails(f"{self.base_url} down")
        return {"key": body.get("key"), "outputs": [{"by": self.base_url}]}


def remote(*replicas: FakeReplica) -> RemotePool:
    pool_ = RemotePool("gpu", tuple(r.base_url for r in replicas))
    pool_.replicas = list(replicas)
    return pool_


def test_calls_go_round_robin_and_skip_a_replica_that_is_down() -> None:
    a, b, c = FakeReplica("a"), FakeReplica("b", fails=HostUnavailable), FakeReplica("c")
    pool_ = remote(a, b, c)

    async def answers(n: int) -> list[str]:
        return [(await pool_.predict("m/1", {}, "models:/m/1"))[0]["by"] for _ in range(n)]

    # b fails once, then is left out of the rotation while it cools down: a and c share its calls evenly.
    assert asyncio.run(answers(6)) == ["http://a", "http://c", "http://a", "http://c", "http://a", "http://c"]
    assert len(b.bodies) == 1


def test_a_timeout_is_not_sent_to_another_replica_and_all_down_names_the_pool() -> None:
    slow, other = FakeReplica("slow", fails=HostTimeout), FakeReplica("other")
    with pytest.raises(HostTimeout):
        asyncio.run(remote(slow, other).predict("m/1", {}))
    assert other.bodies == []  # the slow replica may still run the call: never twice
    with pytest.raises(HostUnavailable, match="host pool 'gpu' is unreachable: http://x down; http://y down"):
        asyncio.run(remote(FakeReplica("x", fails=HostUnavailable),
                           FakeReplica("y", fails=HostUnavailable)).predict("m/1", {}))


def test_a_smoke_test_names_the_uri_the_version_was_loaded_from() -> None:
    a, b = FakeReplica("a"), FakeReplica("b")
    pool_ = remote(a, b)
    asyncio.run(pool_.load("m/1", "models:/m/1"))
    asyncio.run(pool_.predict("m/1", {"records": []}))  # the reconciler's smoke test passes no URI
    assert b.bodies[-1]["uri"] == "models:/m/1"  # so the other replica can load it on that call
