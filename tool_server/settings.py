"""Tool server settings, from `TOOLBRIDGE_*` environment variables or CLI flags."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SecuritySettings", "ServerSettings", "persistent_secret"]

WEBHOOK_SECRET_FILE = "webhook_secret"
DATABASE_FILE = "toolbridge.db"
ADMIN_KEY_FILE = "admin.key"
MIN_WEBHOOK_SECRET = 16


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

    def url(self, state_dir: Path) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(state_dir / DATABASE_FILE).resolve()}"
