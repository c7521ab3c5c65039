"""One worker process (`python -m tool_server.workers.worker`, started by the controller): the tool server's
HTTP API on the listening socket it inherited, routing by the table its controller publishes.

Every answer carries `X-Toolbridge-Worker: <pid>`, so an operator (or a test) sees which worker answered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from types import FrameType

import uvicorn
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.runtime import BridgeSettings
from registry_sync import SyncSettings
from tool_server.api.app import create_app, server_options
from tool_server.ops.logs import configure_logging
from tool_server.runtime import Runtime
from tool_server.settings import CacheSettings, ObservabilitySettings, SecuritySettings, ServerSettings
from tool_server.workers.follower import ControlClient

__all__ = ["WORKER_HEADER", "WorkerHeader", "WorkerSettings", "main"]

WORKER_HEADER = "X-Toolbridge-Worker"


class WorkerSettings(BaseSettings):
    """What the controller hands each worker it starts (not user settings)."""

    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_WORKER_", extra="ignore")

    control_url: str
    control_token: SecretStr
    listen_fd: int
    index: int = 0


class WorkerHeader:
    """Pure ASGI: adds this worker's pid to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (WORKER_HEADER.lower().encode(), str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_worker(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_worker)


async def _exit_with_controller(server: uvicorn.Server, controller_pid: int) -> None:
    """PDEATHSIG ends a worker whose controller died; this also covers platforms without it."""
    while not server.should_exit:
        if os.getppid() != controller_pid:
            server.should_exit = True
        await asyncio.sleep(1.0)


class _WorkerServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Ctrl-C in a terminal reaches every worker with the controller; the controller then stops its
        # workers with SIGTERM, after which they finish their calls. Obeying SIGINT too would force-quit
        # (uvicorn's second signal) and skip writing the audit records.
        if sig != signal.SIGINT:
            super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._watch = asyncio.create_task(_exit_with_controller(self, os.getppid()))


def main() -> None:
    observability = ObservabilitySettings()
    configure_logging(observability, Console(stderr=True))
    own = WorkerSettings()  # type: ignore[call-arg]  # from the environment the controller set
    server = ServerSettings()
    assert server.mlflow_uri is not None  # the controller passes the tracking URI it resolved
    runtime = Runtime(server, server.mlflow_uri, sync=SyncSettings(), bridge=BridgeSettings(),
                      security=SecuritySettings(), cache=CacheSettings(), observability=observability,
                      control=ControlClient(own.control_url, own.control_token.get_secret_value()))
    listener = socket.socket(fileno=own.listen_fd)  # the controller's socket: the family is read from it
    config = uvicorn.Config(WorkerHeader(create_app(runtime)), **server_options())
    _WorkerServer(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
