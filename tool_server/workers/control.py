"""The controller's side: publish the routing table of its Runtime, and answer its workers on a loopback
control endpoint (a long-poll for the table, status, the sync and host metrics, sync requests).

Only the controller's workers may call it: it listens on 127.0.0.1 and wants the token it gave them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tool_server.runtime import Runtime
from tool_server.workers.follower import LONG_POLL_SECONDS
from tool_server.workers.table import encode_table

__all__ = ["PUBLISH_CHECK_SECONDS", "Controller"]

log = logging.getLogger(__name__)

PUBLISH_CHECK_SECONDS = 0.05  # how often the controller looks for a new routing table (an identity check)


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


class Controller:
    """Publishes `runtime`'s routing table, numbered by generation, to the workers that long-poll it."""

    def __init__(self, runtime: Runtime, token: str) -> None:
        self.runtime = runtime
        self._token = f"Bearer {token}".encode()
        self.generation = 0
        self._body = b""
        self._changed = asyncio.Event()
        self._routes: object = None
        self._restarting: frozenset[str] = frozenset()
        self._table = b""
        self._stopping = False
        self.following: dict[int, int] = {}  # worker pid → the table generation it routes with
        self.workers: Callable[[], list[dict[str, Any]]] = list

    def publish_if_changed(self) -> bool:
        """A new generation if the routes or the restarting hosts changed since the last one."""
        bridge = self.runtime.bridge
        routes, restarting = bridge.reconciler.routes, frozenset(bridge.restarting)
        if routes is self._routes and restarting == self._restarting and self.generation:
            return False  # the reconciler swaps its routes in one assignment: same object, same routes
        self._routes, self._restarting = routes, restarting
        table = orjson.dumps(encode_table(routes, bridge.snapshot, restarting))
        if table == self._table:
            return False
        self.generation += 1
        self._table = table
        self._body = b'{"generation":%d,"table":%s}' % (self.generation, table)
        self._changed.set()
        self._changed = asyncio.Event()
        log.debug("routing table %d published (%d tools)", self.generation, len(routes))
        return True

    async def publish_forever(self) -> None:
        while True:
            self.publish_if_changed()
            await asyncio.sleep(PUBLISH_CHECK_SECONDS)

    def stop(self) -> None:
        """Answer every waiting long-poll now: workers are about to stop."""
        self._stopping = True
        self._changed.set()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/control/table", self._table_endpoint),
                                 Route("/control/status", self._status_endpoint),
                                 Route("/control/metrics", self._metrics_endpoint),
                                 Route("/control/sync", self._sync_endpoint, methods=["POST"])])

    def _authorised(self, request: Request) -> bool:
        return hmac.compare_digest(request.headers.get("authorization", "").encode(), self._token)

    async def _table_endpoint(self, request: Request) -> Response:
        if not self._authorised(request):
            return _json({"error": "unauthorised"}, 401)
        try:
            after = int(request.query_params.get("after", "-1"))
            worker = int(request.query_params.get("worker", "0"))
        except ValueError:
            return _json({"error": "after and worker must be integers"}, 422)
        self.following[worker] = after
        if after == self.generation and not self._stopping:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), LONG_POLL_SECONDS)
        if self._stopping:  # a 503 makes a worker back off until its own SIGTERM, never spin on the table
            return _json({"error": "stopping", "message": "the controller is stopping"}, 503)
        return Response(self._body, media_type="application/json")

    async def _status_endpoint(self, request: Request) -> Response:
        if not self._authorised(request):
            return _json({"error": "unauthorised"}, 401)
        status = await self.runtime.status()
        status["workers"] = [{**worker, "table": self.following.get(worker["pid"])}
                             for worker in self.workers()]
        status["table"] = self.generation
        return _json(status)

    async def _metrics_endpoint(self, request: Request) -> Response:
        if not self._authorised(request):
            return _json({"error": "unauthorised"}, 401)
        return Response(self.runtime.metrics.render_state(), media_type="text/plain")

    async def _sync_endpoint(self, request: Request) -> Response:
        if not self._authorised(request):
            return _json({"error": "unauthorised"}, 401)
        self.runtime.request_sync()
        return _json({"accepted": True}, 202)
