"""Remote host pools: model-host replicas reached by URL, never started or stopped by Toolbridge.

`TOOLBRIDGE_HOST_POOLS='{"shared": "http://hosts.ml.svc:3000", "gpu": "http://a:3000,http://b:3000"}'`: a pool
is one URL (a Kubernetes Service balancing its replicas) or several (balanced here, round-robin). Any replica
answers any version: every predict carries the version's model URI, so a replica that does not hold it loads
it on that call (bridge.model_host.service), within its own memory budget. A replica that refuses the
connection is skipped for a few seconds and the call goes to the next one; when none answers, the call fails
with HostUnavailable (503 + Retry-After for the caller), after at most one short connect timeout per replica.

The same object can come from a file instead, `TOOLBRIDGE_HOST_POOLS_FILE=<path>` (JSON, or TOML when the name
ends in .toml), e.g. a ConfigMap key mounted as a file; it is read once, at start.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

from bridge.errors import BridgeError
from bridge.host_client import HostClient, HostTimeout, HostUnavailable

__all__ = ["POOL_NAME", "REPLICA_COOLDOWN", "HostPools", "RemotePool", "UnknownPool", "parse_pools",
           "pools_setting", "read_pools_file"]

POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")  # also a Kubernetes object name part
REPLICA_COOLDOWN = 5.0  # seconds a replica that refused a connection is skipped
_EXAMPLE = '{"shared": "http://toolbridge-hosts:3000"}'


class UnknownPool(BridgeError):
    """A version asks (tag `toolbridge.pool`) for a host pool that is not configured."""


def _urls(pool: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"pool {pool!r}: expected a URL, comma-separated URLs or a list of URLs, "
                         f"got {value!r}")
    urls = tuple(item.strip().rstrip("/") for item in items if item.strip())
    if not urls:
        raise ValueError(f"pool {pool!r}: no URL; give one like \"http://toolbridge-hosts:3000\"")
    for url in urls:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
            raise ValueError(f"pool {pool!r}: {url!r} is not an http(s) URL; expected e.g. "
                             "\"http://toolbridge-hosts.ml.svc:3000\"")
    return urls


def parse_pools(value: str | Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """TOOLBRIDGE_HOST_POOLS (a JSON object: pool name → URL, comma-separated URLs, or a list) as
    {name: urls}. Raises ValueError saying what was wrong and what is expected."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc}); expected an object like {_EXAMPLE}") from exc
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a JSON object of pool name → URL(s), got {type(value).__name__}")
    pools: dict[str, tuple[str, ...]] = {}
    for name, urls in value.items():
        if not isinstance(name, str) or not POOL_NAME.match(name):
            raise ValueError(f"pool name {name!r}: expected lowercase letters, digits and '-' (at most 40, "
                             "as in a Kubernetes name), e.g. \"gpu\"")
        pools[name] = _urls(name, urls)
    return pools


def read_pools_file(path: Path) -> dict[str, tuple[str, ...]]:
    """TOOLBRIDGE_HOST_POOLS_FILE: the object of TOOLBRIDGE_HOST_POOLS in a JSON file (TOML if it ends in
    .toml), checked as parse_pools checks the variable. Raises ValueError naming the file and the mistake."""
    where = f"TOOLBRIDGE_HOST_POOLS_FILE={path}"
    toml = path.suffix.lower() == ".toml"
    expected = ('a TOML table like shared = "http://toolbridge-hosts:3000"' if toml
                else f"a JSON object like {_EXAMPLE}")
    if path.is_dir():  # a ConfigMap volume is a directory of files, one per key
        raise ValueError(f"{where}: is a directory; name the file in it (a ConfigMap mounted as a volume "
                         "holds one file per key, e.g. /etc/toolbridge/host-pools.json)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file; expected {expected}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ValueError(f"{where}: cannot be read ({exc.strerror}); the tool server's user must be able to "
                         "read it") from exc
    if not text.strip():
        raise ValueError(f"{where}: the file is empty; expected {expected} ({{}} for no remote pool)")
    value: Any
    if toml:
        try:
            value = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{where}: not TOML ({exc}); expected {expected}") from exc
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
                             f"expected {expected}") from exc
    try:
        return parse_pools(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def pools_setting(inline: Mapping[str, tuple[str, ...]], file: Path | None) -> dict[str, tuple[str, ...]]:
    """The pools from TOOLBRIDGE_HOST_POOLS (already parsed) or TOOLBRIDGE_HOST_POOLS_FILE, never both: two
    sources would leave the reader guessing which one the server runs with."""
    if file is None:
        return dict(inline)
    if inline:
        raise ValueError(f"TOOLBRIDGE_HOST_POOLS and TOOLBRIDGE_HOST_POOLS_FILE={file} are both set; keep "
                         "one: unset TOOLBRIDGE_HOST_POOLS to use the file (in Kubernetes, drop that "
                         "ConfigMap key), or unset TOOLBRIDGE_HOST_POOLS_FILE to keep the variable")
    return read_pools_file(file)


# The settings field: parsed here, not by pydantic-settings' JSON decoding, so a mistake reads as a sentence.
HostPools = Annotated[dict[str, tuple[str, ...]], NoDecode, BeforeValidator(parse_pools)]


class RemotePool(HostClient):
    """The client of one remote pool: the host contract of HostClient, spread over the pool's URLs."""

    def __init__(self, name: str, urls: tuple[str, ...], timeout: float = 30.0,
                 max_output_bytes: int | None = None, connect_timeout: float = 3.0) -> None:
        super().__init__(", ".join(urls), timeout, max_output_bytes, connect_timeout)
        self.name = name
        self.replicas = [HostClient(url, timeout, max_output_bytes, connect_timeout) for url in urls]
        self._next = -1  # the first call goes to the first URL
        self._down_until = [0.0] * len(urls)
        self._uris: dict[str, str] = {}  # key → model URI, so a smoke test names it too

    def _order(self) -> list[int]:
        """Replica indexes to try: round-robin over those answering lately, then those that refused a
        connection in the last REPLICA_COOLDOWN seconds (tried last, in case they are back)."""
        now = time.monotonic()
        up = [i for i, until in enumerate(self._down_until) if until <= now]
        down = [i for i, until in enumerate(self._down_until) if until > now]
        self._next += 1
        start = self._next % len(up) if up else 0
        return up[start:] + up[:start] + down

    async def _post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        failures: list[str] = []
        for index in self._order():
            try:
                result = await self.replicas[index]._post(path, body, timeout)
            except HostTimeout:
                raise  # the replica has the call and may still run it: not sent twice
            except HostUnavailable as exc:
                self._down_until[index] = time.monotonic() + REPLICA_COOLDOWN
                failures.append(str(exc))
                continue
            self._down_until[index] = 0.0
            return result
        raise HostUnavailable(f"host pool {self.name!r} is unreachable: {'; '.join(failures)}")

    async def load(self, key: str, uri: str, timeout: float = 300.0) -> dict[str, Any]:
        """Loaded on one replica; the others load the version on their first call for it."""
        self._uris[key] = uri
        return await super().load(key, uri, timeout)

    async def unload(self, key: str) -> None:
        """Best effort on every URL (each replica also evicts by its memory budget)."""
        self._uris.pop(key, None)
        await asyncio.gather(*(replica.unload(key) for replica in self.replicas), return_exceptions=True)

    async def predict(self, key: str, payload: dict[str, Any], uri: str | None = None
                      ) -> list[dict[str, Any]]:
        return await super().predict(key, payload, uri or self._uris.get(key))

    async def health(self) -> list[dict[str, Any]]:
        """Each URL: `/readyz`, and what the replica answering it holds (loaded versions, memory)."""
        async def one(replica: HostClient) -> dict[str, Any]:
            row: dict[str, Any] = {"url": replica.base_url, "ready": await replica.ready()}
            if row["ready"]:
                try:
                    row.update(await replica.host_info())
                except BridgeError as exc:
                    row["error"] = str(exc)
            else:
                row["error"] = f"{replica.base_url}/readyz did not answer 200"
            return row

        return list(await asyncio.gather(*(one(replica) for replica in self.replicas)))

    async def close(self) -> None:
        await asyncio.gather(*(replica.close() for replica in self.replicas))
        await super().close()
