"""HTTP client of the model host API, over one pooled keep-alive connection set per host."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bridge.errors import BridgeError

__all__ = ["HostClient", "HostError", "HostTimeout", "HostUnavailable", "OutputTooLarge"]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _limits(timeout: float, connect_timeout: float | None = None) -> aiohttp.ClientTimeout:
    # As httpx did: each connect (pool wait included) and each read gets `timeout`, not the whole call.
    # `connect_timeout` bounds the TCP connect alone: a remote replica that is gone fails fast.
    return aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout, sock_connect=connect_timeout)


class HostUnavailable(BridgeError):
    """The model host did not answer (down, restarting, or timed out)."""


class HostTimeout(HostUnavailable):
    """The model host did not answer within the call timeout (it may still be working on the call)."""


class HostError(BridgeError):
    """The model host answered with an error about this call (bad input, model fault)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OutputTooLarge(HostError):
    """The host's answer is larger than TOOLBRIDGE_MAX_OUTPUT_BYTES: dropped unread past the cap."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(502, f"the model's answer to {path} is larger than {limit} bytes, the most "
                              "Toolbridge accepts (TOOLBRIDGE_MAX_OUTPUT_BYTES); it was dropped")


def _error_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]
    if isinstance(body, list):  # BentoML answers its errors as [{"error": "..."}]
        return "; ".join(str(item.get("error", item)) if isinstance(item, dict) else str(item)
                         for item in body)
    return str(body.get("error") or body.get("detail") or body) if isinstance(body, dict) else str(body)


async def _read_capped(response: aiohttp.ClientResponse, path: str, limit: int | None) -> bytes:
    """The body, or OutputTooLarge as soon as it passes `limit` bytes: a model's answer is untrusted data,
    and a huge one must not fill the tool server's memory."""
    if limit is None:
        return await response.read()
    body = bytearray()
    if (response.content_length or 0) <= limit:
        async for chunk in response.content.iter_chunked(65536):
            body += chunk
            if len(body) > limit:
                break
        else:
            return bytes(body)
    response.close()  # the connection, with the rest unread: never waits for the body's end
    raise OutputTooLarge(path, limit)


class HostClient:
    # aiohttp, not httpx: a call through it costs the tool server markedly less CPU (measured, issue #7).
    def __init__(self, base_url: str, timeout: float = 30.0, max_output_bytes: int | None = None,
                 connect_timeout: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_output_bytes = max_output_bytes
        self._connect_timeout = connect_timeout
        self._limits = _limits(timeout, connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the loop it is created in.
        if self._closed:
            raise RuntimeError(f"the client of model host {self.base_url} is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30.0),
                timeout=self._limits, json_serialize=_dumps, raise_for_status=False, auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        # A load may take minutes: its own timeout.
        limits = _limits(timeout, self._connect_timeout) if timeout else self._limits
        try:
            async with self._client().post(self.base_url + path, json=body, timeout=limits) as response:
                status, raw = response.status, await _read_capped(response, path, self.max_output_bytes)
        except aiohttp.ConnectionTimeoutError as exc:  # the call was never sent: another replica may take it
            raise HostUnavailable(f"model host {self.base_url} did not accept a connection in time") from exc
        except TimeoutError as exc:  # aiohttp's read timeouts subclass TimeoutError
            raise HostTimeout(f"model host {self.base_url} timed out on {path}") from exc
        except aiohttp.ClientError as exc:  # refused, reset, disconnected, broken body
            raise HostUnavailable(f"model host {self.base_url} is unreachable: {exc}") from exc
        if status in (502, 503, 504):  # host busy or restarting, not a fault of this call
            raise HostUnavailable(f"model host {self.base_url} answered {status}")
        if status >= 400:
            raise HostError(status, _error_text(raw))
        result: dict[str, Any] = json.loads(raw)
        return result

    async def load(self, key: str, uri: str, timeout: float = 300.0) -> dict[str, Any]:
        return await self._post("/v1/models/load", {"key": key, "uri": uri}, timeout=timeout)

    async def unload(self, key: str) -> None:
        await self._post("/v1/models/unload", {"key": key})

    async def list_models(self) -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = (await self.host_info())["models"]
        return models

    async def ready(self) -> bool:
        """Whether the host's `/readyz` answers 200 within a few seconds."""
        try:
            async with self._client().get(self.base_url + "/readyz", timeout=_limits(3.0, 3.0)) as response:
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def host_info(self) -> dict[str, Any]:
        """Loaded versions with their memory, the budget, evictions and the host's resident memory."""
        return await self._post("/v1/models/list", {}, timeout=5.0)

    async def predict(
        self, key: str, payload: dict[str, Any], uri: str | None = None
    ) -> list[dict[str, Any]]:
        """The output rows for `payload`. The host batches concurrent calls of one version by itself (same
        endpoint, each call keeps its own status): HostError carries a bad row's 400 naming its fields."""
        body = {"key": key, "payload": payload, "uri": uri}
        outputs: list[dict[str, Any]] = (await self._post("/v1/predict", body))["outputs"]
        return outputs
