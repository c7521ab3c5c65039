"""Structured logs: JSON lines with time, level, logger, message, the request id being served, extra fields;
one access line per tool call that names the key by its id and never holds the key or the inputs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge.invoker import InvokeResult
from bridge.toolspec import ToolSpec
from tool_server.access.audit import AuditLog
from tool_server.access.db import make_engine
from tool_server.access.keys import KeyStore
from tool_server.access.limits import RateLimiter
from tool_server.api.errors import error_code
from tool_server.api.middleware import RequestId
from tool_server.calls import CallContext, Gateway
from tool_server.ops.logs import REQUEST_ID, JsonLineFormatter, RequestIdFilter, configure_logging, log_format
from tool_server.settings import ObservabilitySettings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """A JSON handler on the root logger writing to a buffer; the root logger is restored afterwards."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


def parsed(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Our lines (httpx, the test client, logs each request too)."""
    found = (json.loads(line) for line in buffer.getvalue().splitlines())
    return [line for line in found if line["logger"].startswith(("toolbridge.", "tool_server."))]


def test_a_json_line_has_time_level_logger_message_and_the_extra_fields(lines: io.StringIO) -> None:
    logging.getLogger("toolbridge.test").warning("host %s is slow", "shared-0",
                                                 extra={"host": "shared-0", "latency_ms": 12.5})
    [line] = parsed(lines)
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["level"] == "WARNING" and line["logger"] == "toolbridge.test"
    assert line["message"] == "host shared-0 is slow"
    assert line["host"] == "shared-0" and line["latency_ms"] == 12.5
    assert line["time"].endswith("Z")
    moment = datetime.fromisoformat(line["time"])
    assert moment.tzinfo is not None and moment.utcoffset() == UTC.utcoffset(None)
    assert "request_id" not in line  # logged outside any request


def test_an_exception_is_logged_with_its_traceback_in_one_line(lines: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("toolbridge.test").exception("pass crashed")
    [line] = parsed(lines)
    assert line["message"] == "pass crashed" and "RuntimeError: boom" in line["exc_info"]
    assert len(lines.getvalue().splitlines()) == 1  # the traceback's newlines are escaped inside the line


@pytest.mark.anyio
async def test_lines_logged_while_serving_a_request_carry_its_id_and_only_those(lines: io.StringIO,
                                                                                  anyio_backend: str) -> None:
    async def endpoint(request: Request) -> PlainTextResponse:
        logging.getLogger("toolbridge.test").info("serving")
        return PlainTextResponse("ok")

    app = RequestId(Starlette(routes=[Route("/", endpoint)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        given = await client.get("/", headers={"X-Request-ID": "agent-run-42.step-3"})
        minted = await client.get("/", headers={"X-Request-ID": "bad id with spaces"})
    logging.getLogger("toolbridge.test").info("after the requests")
    first, second, after = [line for line in parsed(lines) if line["logger"] != "tool_server.access"]
    assert first["message"] == "serving" and first["request_id"] == "agent-run-42.step-3"
    assert given.headers["X-Request-ID"] == "agent-run-42.step-3"
    assert second["request_id"] == minted.headers["X-Request-ID"] != "bad id with spaces"
    assert "request_id" not in after and REQUEST_ID.get() is None


class LoggingInvoker:
    """Logs while it works, as the real invoker's callees may: that line must carry the call's request id."""

    async def invoke(self, tool: str, arguments: Any, version: str | None = None) -> InvokeResult:
        logging.getLogger("toolbridge.test.invoker").info("predicting")
        return InvokeResult(tool=tool, model_name="credit_model", model_version="7", role="champion",
                            output={"prediction": 1})


def spec(name: str) -> ToolSpec:
    return ToolSpec(name=name, description="d", model_name="credit_model", model_version="7",
                    model_uri="models:/credit_model/7", input_schema={"type": "object"},
                    output_schema={"type": "object"}, signature={})


@pytest.mark.anyio
async def test_a_tool_call_logs_one_access_line_with_the_key_id_but_never_the_key_or_inputs(
        lines: io.StringIO, tmp_path: Path, anyio_backend: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'logs.db'}")
    keys = KeyStore(engine)
    key, info = keys.create("agent", {"credit_*"})
    specs = {"credit_risk": spec("credit_risk")}
    gateway = Gateway(lambda: list(specs.values()), specs.get, LoggingInvoker(), keys,  # type: ignore[arg-type]
                      AuditLog(engine), RateLimiter(1e6), error_code)
    who = keys.authenticate(key)
    # MCP: no middleware sets the id here, the Gateway does (the SDK runs calls in its session's task).
    await gateway.invoke(who, "credit_risk", CallContext("mcp-req-1", "mcp"),
                         arguments={"applicant": "Jane Q. Secret", "income": 123456})
    text = lines.getvalue()
    predicting, access = parsed(lines)
    assert predicting["message"] == "predicting" and predicting["request_id"] == "mcp-req-1"
    assert access["logger"] == "tool_server.access" and access["request_id"] == "mcp-req-1"
    assert {k: access[k] for k in ("tool", "version", "channel", "outcome", "status", "error", "key_id")} == {
        "tool": "credit_risk", "version": "7", "channel": "mcp", "outcome": "ok", "status": 200,
        "error": None, "key_id": info.id}
    assert isinstance(access["latency_ms"], float) and access["latency_ms"] >= 0
    assert key not in text and "Jane Q. Secret" not in text and "123456" not in text
    assert REQUEST_ID.get() is None  # reset after the call


def test_the_format_is_text_on_a_terminal_and_json_otherwise_unless_set() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert log_format(ObservabilitySettings(), Terminal()) == "text"
    assert log_format(ObservabilitySettings(), io.StringIO()) == "json"
    assert log_format(ObservabilitySettings(log_format="JSON"), Terminal()) == "json"
    assert log_format(ObservabilitySettings(log_format="text"), io.StringIO()) == "text"


def test_bad_log_settings_are_refused_with_the_accepted_values() -> None:
    with pytest.raises(ValidationError, match="TOOLBRIDGE_LOG_FORMAT='xml' is not a log format; use json or"):
        ObservabilitySettings(log_format="xml")
    with pytest.raises(ValidationError, match="TOOLBRIDGE_LOG_LEVEL='loud' .* DEBUG, INFO, WARNING, ERROR"):
        ObservabilitySettings(log_level="loud")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ObservabilitySettings(usage_writeback_seconds=-1)
    assert ObservabilitySettings(log_level="debug").log_level == "DEBUG"


def test_the_environment_sets_format_level_and_write_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBRIDGE_LOG_FORMAT", "json")
    monkeypatch.setenv("TOOLBRIDGE_LOG_LEVEL", "warning")
    monkeypatch.setenv("TOOLBRIDGE_USAGE_WRITEBACK_SECONDS", "300")
    settings = ObservabilitySettings()
    assert settings.log_format == "json" and settings.log_level == "WARNING"
    assert settings.usage_writeback_seconds == 300


@pytest.fixture
def restored_logging() -> Iterator[None]:
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore", "urllib3")
    loggers = {n: logging.getLogger(n) for n in names}
    saved = {n: (list(log.handlers), log.level, log.propagate) for n, log in loggers.items()}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_uvicorns_access_and_error_lines_come_out_as_json_with_the_request_id(restored_logging: None) -> None:
    stream = io.StringIO()
    logging.getLogger("uvicorn.access").addHandler(logging.StreamHandler(io.StringIO()))  # as uvicorn's own
    chosen = configure_logging(ObservabilitySettings(log_format="json", log_level="INFO"), Console(), stream)
    token = REQUEST_ID.set("req-9")
    try:
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/tools",
                                                 "1.1", 200, extra={"color_message": "\x1b[1mGET\x1b[0m"})
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1:1234/v1/predict")  # below WARNING
    access, error = (json.loads(line) for line in stream.getvalue().splitlines())
    assert chosen == "json"
    assert access["logger"] == "uvicorn.access" and access["request_id"] == "req-9"
    assert access["message"] == '127.0.0.1:5 - "GET /tools HTTP/1.1" 200' and "color_message" not in access
    assert error["logger"] == "uvicorn.error" and "request_id" not in error


@pytest.mark.anyio
async def test_each_http_request_logs_one_access_line_and_a_tool_call_adds_the_gateways_fields_to_it(
        lines: io.StringIO, tmp_path: Path, anyio_backend: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'logs.db'}")
    keys = KeyStore(engine)
    key, info = keys.create("agent", {"credit_*"})
    specs = {"credit_risk": spec("credit_risk")}
    gateway = Gateway(lambda: list(specs.values()), specs.get, LoggingInvoker(), keys,  # type: ignore[arg-type]
                      AuditLog(engine), RateLimiter(1e6), error_code)
    who = keys.authenticate(key)

    async def invoke(request: Request) -> PlainTextResponse:
        context = CallContext(request.scope["state"]["request_id"], "http")
        await gateway.invoke(who, request.path_params["name"], context, raw=await request.body())
        return PlainTextResponse("{}")

    async def catalog(request: Request) -> PlainTextResponse:
        return PlainTextResponse("[]")

    app = RequestId(Starlette(routes=[Route("/tools/{name}/invoke", invoke, methods=["POST"]),
                                      Route("/tools", catalog)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        called = await client.post("/tools/credit_risk/invoke?token=tbc_secret", json={"income": 123456},
                                   headers={"X-Request-ID": "call-1"})
        listed = await client.get("/tools", headers={"X-Request-ID": "list-1"})
    assert called.headers["X-Request-ID"] == "call-1" and listed.headers["X-Request-ID"] == "list-1"
    access = [line for line in parsed(lines) if line["logger"] == "tool_server.access"]
    assert [line["request_id"] for line in access] == ["call-1", "list-1"], "one access line a request"
    call, listing = access
    assert call["message"].startswith("POST /tools/credit_risk/invoke 200 ok in ")
    assert {k: call[k] for k in ("method", "path", "status", "tool", "version", "channel", "outcome", "error",
                                 "key_id")} == {
        "method": "POST", "path": "/tools/credit_risk/invoke", "status": 200, "tool": "credit_risk",
        "version": "7", "channel": "http", "outcome": "ok", "error": None, "key_id": info.id}
    assert isinstance(call["latency_ms"], float) and call["latency_ms"] > 0
    assert listing["message"].startswith("GET /tools 200 in ") and "tool" not in listing
    ours = json.dumps(parsed(lines))  # (httpx, the test client, logs the URL it requests)
    assert "tbc_secret" not in ours and "123456" not in ours and key not in ours


def test_minted_request_ids_are_unique_and_differ_in_a_forked_child() -> None:
    import os

    from tool_server.api.middleware import _new_request_id

    ids = {_new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what a forked worker would mint first
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    assert child_id and child_id[:12] != next(iter(ids))[:12] and child_id not in ids
