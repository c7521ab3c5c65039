"""HTTP client of the model host API, over one pooled keep-alive connection set per host."""

from __future__ import annotations

from typing import Any

import httpx

from bridge.errors import BridgeError

__all__ = ["HostClient", "HostError", "HostTimeout", "HostUnavailable"]


class HostUnavailable(BridgeError):
    """The model host did not answer (down, restarting, or timed out)."""


class HostTimeout(HostUnavailable):
    """The model host did not answer within the call timeout (it may still be working on the call)."""


class HostError(BridgeError):
    """The model host answered with an error about this call (bad input, model fault)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, list):  # BentoML answers its errors as [{"error": "..."}]
        return "; ".join(str(item.get("error", item)) if isinstance(item, dict) else str(item)
                         for item in body)
    return str(body.get("error") or body.get("detail") or body) if isinstance(body, dict) else str(body)


class HostClient:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=body, timeout=timeout or self._http.timeout)
        except httpx.TimeoutException as exc:
            raise HostTimeout(f"model host {self.base_url} timed out on {path}") from exc
        except httpx.TransportError as exc:
            raise HostUnavailable(f"model host {self.base_url} is unreachable: {exc}") from exc
        if response.status_code in (502, 503, 504):  # host busy or restarting, not a fault of this call
            raise HostUnavailable(f"model host {self.base_url} answered {response.status_code}")
        if response.status_code >= 400:
            raise HostError(response.status_code, _error_text(response))
        result: dict[str, Any] = response.json()
        return result

    async def load(self, key: str, uri: str, timeout: float = 300.0) -> dict[str, Any]:
        return await self._post("/v1/models/load", {"key": key, "uri": uri}, timeout=timeout)

    async def unload(self, key: str) -> None:
        await self._post("/v1/models/unload", {"key": key})

    async def list_models(self) -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = (await self.host_info())["models"]
        return models

    async def host_info(self) -> dict[str, Any]:
        """Loaded versions with their memory, the budget, evictions and the host's resident memory."""
        return await self._post("/v1/models/list", {}, timeout=5.0)

    async def predict(self, key: str, payload: dict[str, Any], uri: str | None = None) -> list[dict[str, Any]]:
        """The output rows for `payload`. The host batches concurrent calls of one version by itself (same
        endpoint, each call keeps its own status): HostError carries a bad row's 400 naming its fields."""
        body = {"key": key, "payload": payload, "uri": uri}
        outputs: list[dict[str, Any]] = (await self._post("/v1/predict", body))["outputs"]
        return outputs
