"""Toolbridge against MLflow as production teams run it: a tracking server on PostgreSQL, artifacts in
S3-compatible storage (moto in server mode), in both artifact modes:

- proxied: `--serve-artifacts --artifacts-destination s3://...`: only the tracking server holds S3
  credentials; clients, Toolbridge and its model hosts download through it (`mlflow-artifacts:/`);
- direct: `--no-serve-artifacts --default-artifact-root s3://...`: whoever reads a model reads the bucket, so
  Toolbridge is given the credentials and MLFLOW_S3_ENDPOINT_URL, which the host environment allow-list
  passes on to model hosts.

Per mode: promote → tool → call, alias move, `toolbridge bento build`; Toolbridge polls only every 300 s,
so a change seen sooner came through the webhook registered on that server.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from bridge.hosts import free_port
from bridge.process_group import spawn_group, stop_group
from registry_sync.mlflow_source import MlflowRegistry
from tests.conftest import ToolbridgeProcess, wait_for
from tests.servers import PostgresServer
from tool_server.demo import register_trained_model, train_fin_sentiment

pytestmark = pytest.mark.integration

BUCKET = "toolbridge-models"
TOOL = "prod_sentiment"
HEADLINE = {"headline": "Initech shares rise after record quarterly revenue"}
WEBHOOK_SECRET = "production-webhook-secret-0123456789"
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class S3:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What a reader of the bucket needs: moto accepts any key pair."""
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": self.endpoint}

    def keys(self, prefix: str) -> list[str]:
        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """moto's S3 in server mode on a loopback port, with one bucket."""
    port = free_port()
    root = tmp_path_factory.mktemp("moto")
    process = spawn_group([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                          root / "moto.log", dict(os.environ), root / "moto.pgid")
    store = S3(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: httpx.get(f"{store.endpoint}/moto-api/", timeout=2).status_code == 200, 60,
                 "moto server")
        boto3.client("s3", endpoint_url=store.endpoint, aws_access_key_id="testing",
                     aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield store
    finally:
        stop_group(process, root / "moto.pgid")


@dataclasses.dataclass
class Production:
    mode: str
    mlflow_uri: str
    prefix: str  # where this mode's artifacts land in the bucket
    reader_env: dict[str, str]  # what reading a model needs besides the tracking URI
    server: ToolbridgeProcess

    def answer(self) -> httpx.Response:
        return httpx.post(f"{self.server.url}/tools/{TOOL}/invoke", json=HEADLINE,
                          headers=self.server.headers, timeout=30)

    def answering_version(self) -> str | None:
        answer = self.answer()
        return str(answer.json()["model"]["version"]) if answer.status_code == 200 else None


def _mlflow_server(mode: str, database_url: str, s3: S3, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    if mode == "proxied":
        artifacts = ["--serve-artifacts", "--artifacts-destination", f"s3://{BUCKET}/proxied"]
    else:
        artifacts = ["--no-serve-artifacts", "--default-artifact-root", f"s3://{BUCKET}/direct"]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # its job runner's four processes: unused here
           **os.environ, **s3.env,  # the tracking server always holds the bucket's credentials
           "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
           "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", database_url, *artifacts, "--workers", "1"]
    process = spawn_group(command, root / "mlflow.log", env, root / "mlflow.pgid")
    uri = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited:\n{(root / 'mlflow.log').read_text()[-4000:]}")
        return httpx.get(f"{uri}/health", timeout=2).status_code == 200

    wait_for(up, 120, f"mlflow server on PostgreSQL ({mode})")
    return process, uri


@contextlib.contextmanager
def environ(extra: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module", params=["proxied", "direct"])
def production(request: pytest.FixtureRequest, postgres_server: PostgresServer, s3: S3,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    mode: str = request.param
    root = tmp_path_factory.mktemp(f"mlflow-{mode}")
    process, uri = _mlflow_server(mode, postgres_server.create_database(f"mlflow_{mode}"), s3, root)
    reader_env = {} if mode == "proxied" else s3.env  # proxied: nobody but MLflow holds S3 credentials
    server: ToolbridgeProcess | None = None
    try:
        server = ToolbridgeProcess(["--mlflow-uri", uri], root / "toolbridge",
                                   {"TOOLBRIDGE_POLL_INTERVAL": "300", "TOOLBRIDGE_SPARE_HOSTS": "0",
                                    "TOOLBRIDGE_DRAIN_GRACE": "1", "TOOLBRIDGE_KEEP_WARM": "1",
                                    "TOOLBRIDGE_WEBHOOK_SECRET": WEBHOOK_SECRET, **reader_env})
        server.wait_healthy()
        with environ({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}):
            MlflowRegistry(uri).register_webhook(f"{server.url}/hooks/mlflow", WEBHOOK_SECRET, "toolbridge")
        yield Production(mode, uri, mode, reader_env, server)
    finally:
        if server is not None:
            server.stop()
        stop_group(process, root / "mlflow.pgid")


def register(production: Production) -> str:
    trained = dataclasses.replace(train_fin_sentiment(), name=TOOL)
    with environ(production.reader_env):  # direct: the client uploads to the bucket itself
        return str(register_trained_model(trained, tracking_uri=production.mlflow_uri).version)


@pytest.fixture(scope="module")
def first_version(production: Production) -> str:
    version = register(production)
    wait_for(lambda: production.answering_version() == version, 90,
             f"{TOOL} v{version} live via the webhook ({production.mode})\n{production.server.log()}")
    return version


def test_promoted_version_is_a_tool_answering_from_a_model_stored_in_s3(production: Production, s3: S3,
                                                                        first_version: str) -> None:
    answer = production.answer()
    assert answer.status_code == 200, answer.text
    assert answer.json()["label"] in {"negative", "neutral", "positive"}
    # The model lives in the bucket only (proxied: written there by the tracking server).
    assert any(key.endswith("/MLmodel") for key in s3.keys(f"{production.prefix}/"))
    sync = httpx.get(f"{production.server.url}/status", headers=production.server.headers,
                     timeout=10).json()["sync"]
    assert sync["mlflow_uri"] == production.mlflow_uri and sync["failures"] == 0


def test_alias_move_reaches_the_tool_through_the_webhook(production: Production, first_version: str) -> None:
    second = register(production)
    wait_for(lambda: production.answering_version() == second, 60,
             f"{TOOL} v{second} answering ({production.mode}); the poll is 300 s away")


def test_bento_build_downloads_the_version_from_s3(production: Production, first_version: str,
                                                  tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLBRIDGE_", "MLFLOW_TRACKING"))}
    env.update({"BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
                **production.reader_env})
    done = subprocess.run([sys.executable, "-m", "tool_server.cli.bento", "build", TOOL, "--model", TOOL,
                           "--version", first_version, "--mlflow-uri", production.mlflow_uri, "--json"],
                          capture_output=True, text=True, timeout=180, env=env, cwd=REPO)
    assert done.returncode == 0, f"bento build failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    built: dict[str, Any] = json.loads(done.stdout)
    assert built["labels"]["toolbridge.model_uri"] == f"models:/{TOOL}/{first_version}"
    model_name, model_version = built["model_tag"].split(":")
    store = tmp_path / "bentoml" / "models"
    assert (store / model_name / model_version / "mlflow_model" / "MLmodel").is_file()
