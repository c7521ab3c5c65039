"""Log lines: JSON objects for log shippers, or Rich text for a person at a terminal.

Every line logged while a request is served carries its request id (the `X-Request-ID` of the answer and the
audit record): the RequestId middleware and the Gateway set `REQUEST_ID`, and a Filter copies it onto each
record. A JSON line reads `{"time", "level", "logger", "message", "request_id"?, ...extra fields}`.

One access line per request (logger `tool_server.access`; uvicorn's own access log is off): the RequestId
middleware writes it when the answer has gone, with the fields the Gateway noted in `ACCESS_NOTE` for a tool
call (tool, version, outcome, key id). A tool call over MCP runs outside its HTTP request: the Gateway writes
its line itself.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from rich.console import Console
from rich.logging import RichHandler

from tool_server.settings import ObservabilitySettings

__all__ = ["ACCESS_NOTE", "REQUEST_ID", "AccessNote", "JsonLineFormatter", "RequestIdFilter", "TextFormatter",
           "access_log", "configure_logging", "log_format"]

REQUEST_ID: ContextVar[str | None] = ContextVar("toolbridge_request_id", default=None)
access_log = logging.getLogger("tool_server.access")


class AccessNote:
    """What the Gateway adds to the access line of the HTTP request it serves (tool, outcome, key id...)."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}


ACCESS_NOTE: ContextVar[AccessNote | None] = ContextVar("toolbridge_access_note", default=None)
# uvicorn adds an ANSI-coloured copy of each message; Python 3.12 adds the asyncio task name.
_NOT_FIELDS = (*RESERVED_ATTRS, "color_message", "taskName")
# Their own loggers log a line per HTTP request Toolbridge makes (to hosts, to MLflow): noise below WARNING.
_CHATTY = ("httpx", "httpcore", "urllib3")


_CATALOG_TOKEN = re.compile(r"tbc_[A-Za-z0-9._-]+")  # access/catalog_tokens.py: a read-only credential


def _redacted(value: object) -> object:
    if isinstance(value, str) and "tbc_" in value:
        return _CATALOG_TOKEN.sub("tbc_[redacted]", value)
    return value


class RequestIdFilter(logging.Filter):
    """Stamps the request id being served on each record, unless the caller passed one in `extra`; and
    redacts catalog tokens, which ride in URLs (uvicorn's access line prints the query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "tbc_" in a for a in record.args):
            record.args = tuple(_redacted(a) for a in record.args)
        record.msg = _redacted(record.msg)
        if getattr(record, "request_id", None) is None:
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object a line: time (ISO 8601 UTC), level, logger, message, then the record's extra fields."""

    def __init__(self) -> None:
        super().__init__(reserved_attrs=_NOT_FIELDS)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        moment = datetime.fromtimestamp(record.created, UTC)
        log_data["time"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message  # set by format(): the %-args applied
        super().add_fields(log_data, record, message_dict)


class TextFormatter(logging.Formatter):
    """The message, then the request id when there is one (Rich adds time and level)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text}  [request {request_id}]" if request_id else text


def log_format(settings: ObservabilitySettings, stream: TextIO) -> str:
    """The configured format, else text for a terminal and json for anything else (files, pipes, journald)."""
    if settings.log_format is not None:
        return settings.log_format
    return "text" if stream.isatty() else "json"


def configure_logging(settings: ObservabilitySettings, console: Console, stream: TextIO | None = None) -> str:
    """Route every logger, uvicorn's included, through one handler in the chosen format; the format."""
    stream = stream or sys.stderr
    chosen = log_format(settings, stream)
    handler: logging.Handler
    if chosen == "json":
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonLineFormatter())
    else:
        handler = RichHandler(console=console)
        handler.setFormatter(TextFormatter("%(message)s"))
    handler.addFilter(RequestIdFilter())  # on the handler: it sees records propagated from every logger
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # uvicorn's own loggers hand their lines to ours (uvicorn.run gets log_config=None, log_level=None).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    if settings.log_level != "DEBUG":
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
    return chosen
