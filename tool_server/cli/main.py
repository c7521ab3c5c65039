"""The `toolbridge` command line."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tool_server.cli.bento import bento_app
from tool_server.cli.deploy import deploy_app
from tool_server.cli.keys import announce_admin_key, audit_app, cli_auth_headers, keys_app
from tool_server.cli.shadow import shadow_app

if TYPE_CHECKING:
    from tool_server.settings import ServerSettings

app = typer.Typer(help="Toolbridge: MLflow models approved with an alias become tools LLM agents can call.",
                  no_args_is_help=True)
tools_app = typer.Typer(help="Inspect the tool catalog of a running Toolbridge.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
webhook_app = typer.Typer(help="Let MLflow tell Toolbridge of changes at once.", no_args_is_help=True)
app.add_typer(webhook_app, name="webhook")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(bento_app, name="bento")
app.add_typer(deploy_app, name="deploy")
app.add_typer(shadow_app, name="shadow")
console = Console()

UrlOption = Annotated[str, typer.Option("--url", envvar="TOOLBRIDGE_URL", help="Toolbridge base URL")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _port_or_free(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="train and register the demo models, "
                                            "with alias champion")] = False,
    host: Annotated[str | None, typer.Option(help="interface to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on [default: 8000]")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="where the embedded MLflow, logs and keys live "
                                                   "[default: ./.toolbridge]")] = None,
    mlflow_uri: Annotated[str | None, typer.Option(help="use this MLflow tracking server instead of the "
                                                   "embedded one [env: TOOLBRIDGE_MLFLOW_URI]")] = None,
    workers: Annotated[int | None, typer.Option(help="tool-server processes answering on the port; the "
                                                "registry sync and model hosts stay single "
                                                "[env: TOOLBRIDGE_WORKERS; default: 1]")] = None,
) -> None:
    """Start MLflow (embedded unless --mlflow-uri), the registry sync, the model host and the tool server."""
    import uvicorn
    from pydantic import ValidationError

    from bridge.runtime import BridgeSettings
    from registry_sync import SyncSettings
    from tool_server.api.app import create_app, server_options
    from tool_server.cli.progress import show_load_progress
    from tool_server.ops.embedded_mlflow import EmbeddedMlflow, MlflowStartError
    from tool_server.ops.logs import configure_logging
    from tool_server.runtime import Runtime
    from tool_server.settings import CacheSettings, ObservabilitySettings, SecuritySettings, ServerSettings

    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port, "state_dir": state_dir,
                                                   "mlflow_uri": mlflow_uri, "workers": workers}.items()
                                 if v is not None}
    try:  # every setting checked before anything starts: a bad one is a message, not a traceback
        observability = ObservabilitySettings()
        configure_logging(observability, console)  # first: all that follows logs in that format
        settings = ServerSettings(**overrides)
        sync, bridge, security, cache = SyncSettings(), BridgeSettings(), SecuritySettings(), CacheSettings()
    except ValidationError as exc:
        console.print(f"[red]invalid setting:[/red] {exc}")
        raise typer.Exit(2) from exc
    embedded = None
    if settings.state_dir.exists():
        from bridge.process_group import reap_stale_groups

        reaped = reap_stale_groups(settings.state_dir)
        if reaped:
            console.print(f"Stopped {len(reaped)} server(s) left running by an earlier run "
                          "that did not stop cleanly")
    try:
        tracking_uri = settings.mlflow_uri
        if tracking_uri is None:
            embedded = EmbeddedMlflow(settings.state_dir, settings.mlflow_port or _port_or_free(5000))
            with console.status("Starting the embedded MLflow server (SQLite)..."):
                embedded.start()
            tracking_uri = embedded.uri
            console.print(f"MLflow UI and registry: [bold]{tracking_uri}[/bold] (data in {embedded.root})")
        # Before any MLflow call: it makes the client fail fast.
        runtime = Runtime(settings, tracking_uri, sync=sync, bridge=bridge, security=security, cache=cache,
                          observability=observability)
        announce_admin_key(runtime.keys, settings.admin_key_path)
        listener = None
        if settings.workers > 1:  # bound once, here: every worker accepts on it (tool_server/workers)
            from tool_server.workers.supervisor import bind_listener

            listener = bind_listener(settings.host, settings.port)
            settings = settings.model_copy(update={"port": listener.getsockname()[1]})
        # Before the demo's events: once an event fired, MLflow caches "no webhook for it" for a minute.
        _auto_register_webhook(settings, tracking_uri, embedded=embedded is not None)
        if demo:
            from tool_server.demo import register_demo_models

            with console.status("Training and registering the demo models..."):
                names = register_demo_models(tracking_uri)
            console.print(f"Registered and promoted to champion: {', '.join(names)}")
        console.print(f"Tool server: [bold]{settings.base_url}[/bold] — tools at {settings.base_url}/tools, "
                      f"OpenAPI for Dify at {settings.base_url}/openapi.json. Ctrl-C stops everything.")
        show_load_progress(runtime, console)  # on a terminal: the first pass bringing versions live
        if listener is None:
            uvicorn.run(create_app(runtime), host=settings.host, port=settings.port, **server_options())
        else:
            from tool_server.workers.supervisor import serve_workers

            serve_workers(runtime, settings, tracking_uri, listener)
    except MlflowStartError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        console.print(f"[red]cannot listen on {settings.host}:{settings.port}: {exc.strerror}[/red] (another "
                      "server holds it: stop it, or choose another --port)")
        raise typer.Exit(1) from exc
    finally:
        if embedded is not None:
            embedded.stop()


def _auto_register_webhook(settings: ServerSettings, tracking_uri: str, embedded: bool) -> None:
    from registry_sync.errors import RegistrySyncError
    from registry_sync.mlflow_source import MlflowRegistry
    from tool_server.api.webhooks import startup_webhook

    target = startup_webhook(settings, embedded)
    if target is None:
        console.print("No webhook registered (needs TOOLBRIDGE_WEBHOOK_SECRET and TOOLBRIDGE_PUBLIC_URL, or "
                      "`toolbridge webhook register`): MLflow changes arrive by polling.")
        return
    try:
        MlflowRegistry(tracking_uri).register_webhook(*target, name=settings.webhook_name)
    except RegistrySyncError as exc:
        console.print(f"[yellow]webhook not registered, changes arrive by polling only:[/yellow] {exc}")
        return
    console.print(f"MLflow webhook {settings.webhook_name!r} → {target[0]}")


@webhook_app.command("register")
def webhook_register(
    url: Annotated[str, typer.Option("--url", help="where MLflow reaches us: PUBLIC_URL/hooks/mlflow")],
    mlflow_uri: Annotated[str | None, typer.Option(help="MLflow URL [env: TOOLBRIDGE_MLFLOW_URI]")] = None,
    secret: Annotated[str | None, typer.Option(help="HMAC secret [env: TOOLBRIDGE_WEBHOOK_SECRET; default: "
                                               "STATE_DIR/webhook_secret, created if missing]")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="[default: ./.toolbridge]")] = None,
    name: Annotated[str | None, typer.Option(help="webhook name in MLflow [default: toolbridge]")] = None,
) -> None:
    """Create or update Toolbridge's webhook in an MLflow tracking server (SQL-backed)."""
    from pydantic import ValidationError

    from registry_sync.errors import RegistrySyncError
    from registry_sync.mlflow_source import MlflowRegistry
    from tool_server.api.webhooks import ensure_webhook_secret
    from tool_server.settings import ServerSettings

    overrides: dict[str, Any] = {k: v for k, v in {"mlflow_uri": mlflow_uri, "webhook_secret": secret,
                                                   "state_dir": state_dir, "webhook_name": name}.items()
                                 if v is not None}
    try:
        settings = ServerSettings(**overrides)
    except ValidationError as exc:
        console.print(f"[red]invalid setting:[/red] {exc}")
        raise typer.Exit(2) from exc
    if settings.mlflow_uri is None:
        console.print("[red]--mlflow-uri or TOOLBRIDGE_MLFLOW_URI is required[/red] (`toolbridge up` "
                      "registers the embedded MLflow's webhook by itself)")
        raise typer.Exit(2)
    where = "TOOLBRIDGE_WEBHOOK_SECRET" if settings.webhook_secret else str(settings.webhook_secret_path)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # a wrong URI should fail in seconds
    try:
        hook_id = MlflowRegistry(settings.mlflow_uri).register_webhook(url, ensure_webhook_secret(settings),
                                                                       settings.webhook_name)
    except RegistrySyncError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"webhook {settings.webhook_name!r} ({hook_id}) → {url}; secret in {where}. The tool "
                  "server needs the same secret: the same --state-dir or TOOLBRIDGE_WEBHOOK_SECRET.")


def _get(url: str, path: str) -> Any:
    try:
        response = httpx.get(f"{url.rstrip('/')}{path}", headers=cli_auth_headers(), timeout=10.0)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach Toolbridge at {url}: {exc}[/red] (is `toolbridge up` running?)")
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        console.print(f"[red]{path} answered {response.status_code}: {response.text}[/red]")
        raise typer.Exit(1)
    return response.json()


@tools_app.command("list")
def tools_list(url: UrlOption = DEFAULT_URL) -> None:
    """List the live tools."""
    table = Table("tool", "model", "version", "kind", "inputs")
    for tool in _get(url, "/tools"):
        inputs = ", ".join(tool["input_schema"].get("properties", {}))
        table.add_row(tool["name"], tool["model"]["name"], tool["model"]["version"], tool["kind"], inputs)
    console.print(table)


@app.command()
def status(url: UrlOption = DEFAULT_URL) -> None:
    """Each approved version: live or not, and why; and the registry sync's health."""
    body = _get(url, "/status")
    sync = body["sync"]
    console.print(f"sync: [bold]{sync['state']}[/bold], {sync['passes']} passes, {sync['failures']} failures"
                  + (f", last error: {sync['last_error']}" if sync["last_error"] else ""))
    table = Table("tool", "model", "version", "role", "state", "reason")
    for row in body["versions"]:
        table.add_row(row["tool"], row["model"], row["version"], row["role"], row["state"],
                      escape(row["reason"] or ""))  # registry and model text: printed, never read as markup
    for row in body["excluded"]:
        table.add_row("", row["name"], row["version"], "", "excluded", escape(row["reason"]))
    console.print(table)
    hosts = Table("host", "role", "alive", "restarts", "isolation", "loaded versions")
    for host in body.get("hosts", []):
        loaded = ", ".join(m.get("key", "") for m in host.get("models", []))
        hosts.add_row(host["name"], host["role"], "yes" if host["alive"] else "no", str(host["restarts"]),
                      host.get("isolation") or "", escape(loaded or host.get("error", "")))
    console.print(hosts)
    if body.get("lint"):  # the catalog lint's findings (docs/discovery.md)
        lint = Table("tool", "version", "severity", "kind", "finding", "quarantined")
        for row in body["lint"]:
            for finding in row["findings"]:
                lint.add_row(row["tool"], row["version"], finding["severity"], finding["kind"],
                             escape(finding["message"]), "yes" if row["quarantined"] else "")
        console.print(lint)
    if body.get("workers"):
        workers = Table("worker", "pid", "alive", "restarts", "routing table")
        for worker in body["workers"]:
            workers.add_row(str(worker["index"]), str(worker["pid"]), "yes" if worker["alive"] else "no",
                            str(worker["restarts"]), f"{worker['table']} of {body['table']}")
        console.print(workers)
