"""Tool server settings, from `TOOLBRIDGE_*` environment variables or CLI flags."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["CacheSettings", "ObservabilitySettings", "SecuritySettings", "ServerSettings",
           "SharedStateSettings", "host_name", "persistent_secret", "web_origin"]

WEBHOOK_SECRET_FILE = "webhook_secret"
DATABASE_FILE = "toolbridge.db"
ADMIN_KEY_FILE = "admin.key"
MIN_WEBHOOK_SECRET = 16
MAX_WORKERS = 64
ANY = "*"  # in TOOLBRIDGE_ALLOWED_HOSTS / _ORIGINS: that check is off
_DNS_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def persistent_secret(path: Path, generate: Callable[[], str]) -> str:
    """The secret stored at `path`, generated and written (mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(generate() + "\n")
        try:
            os.link(draft, path)  # atomic and never overwrites: of two racing starts, both keep the first
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty; delete it to have a new secret generated")
    return secret


def host_name(authority: str) -> str:
    """The host name of a Host header (or a URL's authority), the form Host/Origin checks compare.

    Lowercase, without the port, the brackets of an IPv6 address or a final dot: `Tb.Example.COM.:8000` →
    `tb.example.com`, `[::1]:8000` → `::1`. ValueError if it is not a host (a URL, a path, a bad port).
    """
    value = authority.strip().lower()
    if value.startswith("["):  # an IPv6 literal, the only form with colons in the name
        name, bracket, port = value[1:].partition("]")
        if not bracket:
            raise ValueError(f"{authority!r} opens an IPv6 address with [ but never closes it")
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            raise ValueError(f"{authority!r} has no IPv6 address between its brackets") from None
    else:
        name, colon, port = value.partition(":")
        port = colon + port
        name = name[:-1] if name.endswith(".") else name
        if not _DNS_NAME.match(name):
            raise ValueError(f"{authority!r} is not a host name like tb.example.com or 127.0.0.1")
    if port not in ("", ":") and not (port[0] == ":" and port[1:].isdigit() and int(port[1:]) <= 65535):
        raise ValueError(f"{authority!r} has a bad port; a host is NAME or NAME:PORT")
    return name


def web_origin(url: str) -> str:
    """A web origin as browsers send it in `Origin`: `scheme://host[:port]`, lowercase, default port dropped.

    ValueError unless `url` is an http(s) origin (a trailing `/` is tolerated; a path, query or user is not).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise ValueError(f"{url!r} is not a web origin like https://app.example.com or http://localhost:3000")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{url!r} has more than scheme://host[:port]; an origin has no path, query or user")
    try:
        name = host_name(parts.netloc)
    except ValueError:
        raise ValueError(f"{url!r} has a bad host or port") from None
    port = parts.port  # host_name checked it
    host = f"[{name}]" if ":" in name else name
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[scheme]) else "")


def _split_csv(value: object) -> object:
    """Accept `a,b` from the environment as well as a list from code."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore")

    mlflow_uri: str | None = Field(default=None, description="existing tracking server; none = embedded")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    state_dir: Path = Path(".toolbridge")
    public_url: str | None = Field(default=None, description="base URL clients reach us at (OpenAPI servers)")
    mlflow_port: int = Field(default=0, ge=0, le=65535, description="embedded MLflow port; 0 = a free one")
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC secret of MLflow's webhook; none = STATE_DIR/webhook_secret")
    webhook_name: str = Field(default="toolbridge", description="name of our webhook in MLflow")
    workers: int = Field(default=1, description="tool-server processes answering on the one port; the "
                                                "registry sync and the model hosts stay single")
    # DNS-rebinding protection (docs/security.md), beyond the names and origins of PUBLIC_URL and HOST.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="more host names clients reach us under (Host header), "
                                          "comma-separated; .example.com = it and its subdomains; * = any")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="web origins whose pages may call us (Origin header), "
                                          "comma-separated, e.g. http://localhost:6274; * = any")

    _split_lists = field_validator("allowed_hosts", "allowed_origins", mode="before")(_split_csv)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, entries: list[str]) -> list[str]:
        names = []
        for entry in entries:
            if entry == ANY:
                names.append(ANY)
                continue
            domain = entry.startswith(".")  # .example.com: the domain and every subdomain
            try:
                if "://" in entry:
                    raise ValueError(f"{entry!r} is a URL, not a host name (origins go in "
                                     "TOOLBRIDGE_ALLOWED_ORIGINS)")
                name = host_name(entry[1:] if domain else entry)
                if domain and ":" in name:
                    raise ValueError(f"{entry!r} puts a dot before an IP address")
            except ValueError as exc:
                raise ValueError(f"TOOLBRIDGE_ALLOWED_HOSTS: {exc}; give comma-separated host names as "
                                 "clients type them, e.g. tb.example.com,host.docker.internal (a port is "
                                 "allowed and ignored), .example.com for a domain and its subdomains, or *"
                                 ) from None
            names.append("." + name if domain else name)
        return names

    @field_validator("allowed_origins")
    @classmethod
    def _web_origins(cls, entries: list[str]) -> list[str]:
        origins = []
        for entry in entries:
            try:
                origins.append(entry if entry == ANY else web_origin(entry))
            except ValueError as exc:
                raise ValueError(f"TOOLBRIDGE_ALLOWED_ORIGINS: {exc}; give comma-separated origins of the "
                                 "web pages that may call Toolbridge, e.g. "
                                 "http://localhost:6274,https://app.example.com, or *") from None
        return origins

    @field_validator("workers")
    @classmethod
    def _worker_count(cls, workers: int) -> int:
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"TOOLBRIDGE_WORKERS={workers} (or --workers) must be between 1 and "
                             f"{MAX_WORKERS}: one process per core you want answering HTTP is a good start; "
                             "1 = a single process")
        return workers

    @field_validator("mlflow_uri")
    @classmethod
    def _http_uri(cls, uri: str | None) -> str | None:
        if uri is not None and not uri.startswith(("http://", "https://", "databricks")):
            raise ValueError(
                f"TOOLBRIDGE_MLFLOW_URI={uri!r} must be a tracking server URL like http://127.0.0.1:5000; "
                "unset it to run the embedded MLflow server"
            )
        return uri.rstrip("/") if uri else uri

    @field_validator("webhook_secret")
    @classmethod
    def _strong_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_WEBHOOK_SECRET:
            raise ValueError(
                f"TOOLBRIDGE_WEBHOOK_SECRET is shorter than {MIN_WEBHOOK_SECRET} characters; use a random "
                "one, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return secret

    @property
    def webhook_secret_path(self) -> Path:
        return self.state_dir / WEBHOOK_SECRET_FILE

    @property
    def admin_key_path(self) -> Path:
        return self.state_dir / ADMIN_KEY_FILE

    def configured_webhook_secret(self) -> str | None:
        """TOOLBRIDGE_WEBHOOK_SECRET, else the state dir's secret file if it exists; none = webhooks off."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        path = self.webhook_secret_path
        return (path.read_text().strip() or None) if path.is_file() else None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class SecuritySettings(BaseSettings):
    """Keys, audit and limits. The database URL may hold a password: a SecretStr keeps it out of reprs."""

    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL of the keys and audit database; none = SQLite in STATE_DIR")
    audit_inputs: bool = Field(default=False, description="store raw tool inputs in the audit log "
                                                          "(never for restricted tools)")
    max_body_bytes: int = Field(default=1 << 20, gt=0, description="largest request body accepted")
    rate_limit_per_minute: float = Field(default=1200, gt=0, description="calls per key and minute, unless "
                                                                          "the key sets its own")
    database_pool_size: int = Field(default=5, gt=0, le=100, description="PostgreSQL connections per worker "
                                    "process (as many again in bursts); replicas x workers x 2 x this must "
                                    "fit the server's max_connections")
    key_refresh_seconds: float = Field(default=0.5, gt=0, le=60, description="how often each worker checks "
                                       "whether keys changed (a revocation takes effect within about this)")

    def url(self, state_dir: Path) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(state_dir / DATABASE_FILE).resolve()}"


CACHE_MODES = ("off", "memory", "redis")
REDIS_SCHEMES = ("redis", "rediss", "unix")


class CacheSettings(BaseSettings):
    """The optional response cache (docs/cache.md): off unless TOOLBRIDGE_CACHE=memory or
    TOOLBRIDGE_CACHE_URL is set. The URL may hold a password: a SecretStr keeps it out of reprs, and
    hide_input_in_errors out of validation messages."""

    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore", hide_input_in_errors=True)

    cache: str | None = Field(
        default=None, description="off | memory | redis; unset = redis when CACHE_URL is set, else off")
    cache_url: SecretStr | None = Field(
        default=None, description="redis://[:password@]host:port/db shared by replicas; turns the cache on")
    cache_max_entries: int = Field(default=10_000, description="entries kept by the in-process LRU")
    cache_ttl_seconds: float = Field(default=300.0, description="seconds an answer stays cached")
    cache_timeout_seconds: float = Field(
        default=0.5, description="seconds a Redis request may take before the model answers uncached")

    @field_validator("cache", mode="before")
    @classmethod
    def _known_mode(cls, mode: Any) -> str | None:
        if mode is None or str(mode).strip() == "":
            return None
        value = str(mode).strip().lower()
        if value not in CACHE_MODES:
            raise ValueError(f"TOOLBRIDGE_CACHE={mode!r} is not a cache mode; use one of "
                             f"{', '.join(CACHE_MODES)} (redis needs TOOLBRIDGE_CACHE_URL=redis://host:6379/0)")
        return value

    @field_validator("cache_url")
    @classmethod
    def _redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is None:
            return None
        parts = urlsplit(url.get_secret_value())  # never echo the URL: it may carry a password
        if parts.scheme not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
            problem = "no host" if parts.scheme in REDIS_SCHEMES else f"scheme {parts.scheme or '(none)'!r}"
            raise ValueError(f"TOOLBRIDGE_CACHE_URL must be a Redis URL like redis://127.0.0.1:6379/0 "
                             f"(schemes: {', '.join(REDIS_SCHEMES)}); it has {problem}")
        return url

    @field_validator("cache_max_entries", "cache_ttl_seconds", "cache_timeout_seconds")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if value <= 0:
            raise ValueError(f"TOOLBRIDGE_{str(info.field_name).upper()}={value} must be greater than 0; "
                             "unset it for the default, or set TOOLBRIDGE_CACHE=off to turn the cache off")
        return value

    @model_validator(mode="after")
    def _redis_has_url(self) -> CacheSettings:
        if self.cache == "redis" and self.cache_url is None:
            raise ValueError("TOOLBRIDGE_CACHE=redis needs TOOLBRIDGE_CACHE_URL=redis://host:6379/0 (or use "
                             "TOOLBRIDGE_CACHE=memory for a cache inside this process)")
        return self

    @property
    def mode(self) -> str:
        """off | memory | redis: a URL alone turns Redis on; an explicit mode wins (off, to pause
        the cache)."""
        if self.cache is None:
            return "redis" if self.cache_url is not None else "off"
        return self.cache


class SharedStateSettings(BaseSettings):
    """Redis shared by replicas (docs/operations.md "Two replicas"): rate limits, the webhook replay cache,
    webhook fan-out, the usage write-back lock. Unset = each process on its own (the single-machine default).
    The URL may hold a password: a SecretStr keeps it out of reprs."""

    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore", hide_input_in_errors=True)

    redis_url: SecretStr | None = Field(default=None, description="redis://[:password@]host:port/db shared "
                                        "by the replicas; unset = limits and replay cache per process")
    redis_timeout_seconds: float = Field(default=0.2, gt=0, le=10, description="seconds a Redis request may "
                                         "take before the call goes on with this process's own state")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is None:
            return None
        parts = urlsplit(url.get_secret_value())  # never echo the URL: it may carry a password
        if parts.scheme not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
            problem = "no host" if parts.scheme in REDIS_SCHEMES else f"scheme {parts.scheme or '(none)'!r}"
            raise ValueError(f"TOOLBRIDGE_REDIS_URL must be a Redis URL like redis://127.0.0.1:6379/0 "
                             f"(schemes: {', '.join(REDIS_SCHEMES)}); it has {problem}")
        return url


LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ObservabilitySettings(BaseSettings):
    """Logs (docs/operations.md "Logs") and usage counts written back to MLflow ("Usage in MLflow")."""

    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore")

    log_format: str | None = Field(default=None, description="json | text; unset = text on a terminal, json "
                                                             "otherwise (a service manager, a container)")
    log_level: str = Field(default="INFO", description="DEBUG | INFO | WARNING | ERROR | CRITICAL")
    usage_writeback_seconds: float = Field(default=0.0, ge=0, description="seconds between two writes of "
                                           "the usage counts to MLflow tags; 0 = off")

    @field_validator("log_format", mode="before")
    @classmethod
    def _known_format(cls, value: object) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        found = str(value).strip().lower()
        if found not in LOG_FORMATS:
            raise ValueError(f"TOOLBRIDGE_LOG_FORMAT={value!r} is not a log format; use json or text (or "
                             "unset it: text on a terminal, json otherwise)")
        return found

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: object) -> str:
        found = str(value).strip().upper()
        if found not in LOG_LEVELS:
            raise ValueError(f"TOOLBRIDGE_LOG_LEVEL={value!r} is not a log level; use one of "
                             f"{', '.join(LOG_LEVELS)}")
        return found
