"""Tool server settings, from `TOOLBRIDGE_*` environment variables or CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServerSettings"]


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOOLBRIDGE_", extra="ignore")

    mlflow_uri: str | None = Field(default=None, description="existing tracking server; none = embedded")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    state_dir: Path = Path(".toolbridge")
    public_url: str | None = Field(default=None, description="base URL clients reach us at (OpenAPI servers)")
    mlflow_port: int = Field(default=0, ge=0, le=65535, description="embedded MLflow port; 0 = a free one")

    @field_validator("mlflow_uri")
    @classmethod
    def _http_uri(cls, uri: str | None) -> str | None:
        if uri is not None and not uri.startswith(("http://", "https://", "databricks")):
            raise ValueError(
                f"TOOLBRIDGE_MLFLOW_URI={uri!r} must be a tracking server URL like http://127.0.0.1:5000; "
                "unset it to run the embedded MLflow server"
            )
        return uri.rstrip("/") if uri else uri

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
