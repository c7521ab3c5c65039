"""The routing table the controller publishes and the workers rebuild (pure: routes ⇄ a JSON-able dict).

What a worker needs to route a call exactly as the controller would: for each routed version its ToolSpec
(what agents see), its registry ref (the cache decision reads its tags), its host's name and URL(s), and
whether it was smoke-tested; for each tool its champion, canary and weight, and pinned versions; and the hosts
being restarted (calls to them fail fast); and its shadow version, rate and why it is blocked, if it has one.
Workers never load a model: a version in the table is already loaded and smoke-tested by the controller's
reconciler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bridge.host_client import HostClient
from bridge.hosting.remote_pool import RemotePool
from bridge.live import LiveVersion, Route, ShadowTarget
from bridge.toolspec import ToolSpec
from bridge.validation import compile_validator
from registry_sync import ModelVersionRef, Snapshot

__all__ = ["FORMAT", "Connect", "FollowedTable", "TableError", "decode_table", "encode_table", "host_urls"]

FORMAT = 2  # bumped when the shape changes: a worker refuses a table it cannot read instead of misrouting

# (host name, its URLs) → the client a worker calls that host with (one per host, kept across tables).
Connect = Callable[[str, tuple[str, ...]], HostClient]
# A version's published entry and the LiveVersion rebuilt from it, by version key: reused while unchanged.
Lives = dict[str, tuple[dict[str, Any], LiveVersion]]


class TableError(ValueError):
    """A published table this worker cannot read (another format, a missing field)."""


@dataclass(frozen=True)
class FollowedTable:
    """A table rebuilt in a worker: what its Bridge routes with."""

    routes: dict[str, Route]
    snapshot: Snapshot
    restarting: frozenset[str]
    lives: Lives = field(default_factory=dict)


def host_urls(host: HostClient) -> list[str]:
    """Where a host answers: a remote pool's replicas, else the one URL."""
    if isinstance(host, RemotePool):
        return [replica.base_url for replica in host.replicas]
    return [host.base_url]


def encode_table(routes: Mapping[str, Route], snapshot: Snapshot, restarting: Iterable[str]
                 ) -> dict[str, Any]:
    """The controller's routing table as JSON-able data (sorted, so an unchanged table encodes the same)."""
    versions: dict[str, dict[str, Any]] = {}

    def entry(live: LiveVersion) -> str:
        key = live.spec.key
        if key not in versions:
            # A route kept while its tool's next version loads may be absent from the snapshot: no ref, and
            # then (as in the controller) its answers are not cached.
            ref = snapshot.refs.get(key)
            versions[key] = {"spec": live.spec.model_dump(mode="json"),
                             "ref": ref.model_dump(mode="json") if ref is not None else None,
                             "host": {"name": live.host_name, "urls": host_urls(live.host)},
                             "smoke_tested": live.smoke_tested}
        return key

    tools = {tool: {"champion": entry(route.champion),
                    "canary": entry(route.canary) if route.canary is not None else None,
                    "canary_weight": route.canary_weight,
                    "pinned": {version: entry(live) for version, live in sorted(route.pinned.items())},
                    "shadow": None if route.shadow is None else {
                        "version": entry(route.shadow.live), "rate": route.shadow.rate,
                        "blocked": route.shadow.blocked}}
             for tool, route in sorted(routes.items())}
    return {"format": FORMAT, "versions": dict(sorted(versions.items())), "routes": tools,
            "restarting": sorted(restarting)}


def decode_table(data: Mapping[str, Any], connect: Connect, previous: Lives | None = None) -> FollowedTable:
    """Rebuild routes from a published table; versions whose entry did not change keep their LiveVersion
    (and compiled validator) from `previous`. TableError if the table cannot be read."""
    if data.get("format") != FORMAT:
        raise TableError(f"routing table format {data.get('format')!r}; this worker reads format {FORMAT} "
                         "(the controller and its workers must run the same Toolbridge)")
    previous = previous or {}
    try:
        lives: Lives = {}
        for key, entry in data["versions"].items():
            kept = previous.get(key)
            lives[key] = kept if kept is not None and kept[0] == entry else (entry, _live(entry, connect))

        def live(key: str) -> LiveVersion:
            return lives[key][1]

        def shadow(published: Mapping[str, Any] | None) -> ShadowTarget | None:
            if published is None:
                return None
            return ShadowTarget(live=live(published["version"]), rate=float(published["rate"]),
                                blocked=published["blocked"])

        routes = {tool: Route(champion=live(route["champion"]),
                              canary=live(route["canary"]) if route["canary"] is not None else None,
                              canary_weight=float(route["canary_weight"]),
                              pinned={version: live(key) for version, key in route["pinned"].items()},
                              shadow=shadow(route["shadow"]))
                  for tool, route in data["routes"].items()}
        refs = {key: ModelVersionRef.model_validate(entry["ref"])
                for key, (entry, _) in lives.items() if entry["ref"] is not None}
        restarting = frozenset(str(name) for name in data["restarting"])
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise TableError(f"malformed routing table: {type(exc).__name__}: {exc}") from exc
    return FollowedTable(routes=routes, snapshot=Snapshot(refs=refs), restarting=restarting, lives=lives)


def _live(entry: Mapping[str, Any], connect: Connect) -> LiveVersion:
    spec = ToolSpec.model_validate(entry["spec"])
    host = entry["host"]
    return LiveVersion(spec=spec, host=connect(str(host["name"]), tuple(str(url) for url in host["urls"])),
                       host_name=str(host["name"]),
                       validator=compile_validator(spec.input_schema, trusted=True),
                       smoke_tested=bool(entry["smoke_tested"]))
