"""`toolbridge bento ...`: package a tool as a deployable Bento, the unit a platform team containerizes.

Wired into the main CLI with `app.add_typer(bento_app, name="bento")`; also runnable alone as
`python -m tool_server.cli.bento build TOOL`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from bridge.bento_build import BuildResult

__all__ = ["BuildTarget", "TargetError", "bento_app", "cli_api_key", "target_from_mlflow",
           "target_from_toolbridge"]

bento_app = typer.Typer(help="Package tools as Bentos: one image per approved version, or the model host.",
                        no_args_is_help=True)
console = Console(stderr=True)  # stdout stays clean for --json
DEFAULT_URL = "http://127.0.0.1:8000"
APPROVAL_ALIAS = "champion"


class TargetError(Exception):
    """The tool or model version to package could not be resolved; the message says what to do."""


@dataclass(frozen=True)
class BuildTarget:
    """One tool resolved to the MLflow model version (and tracking server) its Bento will serve."""

    tool: str
    model_name: str
    model_version: str
    tracking_uri: str
    description: str = ""


def cli_api_key(explicit: str | None) -> str | None:
    """The key to send: --api-key / TOOLBRIDGE_API_KEY, else the admin key in the state dir, like the other
    client commands (`toolbridge status`)."""
    if explicit:
        return explicit
    from tool_server.cli.keys import cli_auth_headers

    return cli_auth_headers().get("Authorization", "").removeprefix("Bearer ") or None


def target_from_toolbridge(tool: str, url: str, version: str | None, mlflow_uri: str | None,
                           api_key: str | None = None) -> BuildTarget:
    """Ask the running Toolbridge which model version serves `tool` (and, unless given, which MLflow)."""
    from toolbridge_client import ToolbridgeClient, ToolbridgeError, ToolCallError, ToolNotFoundError

    try:
        with ToolbridgeClient(url, api_key=api_key, timeout=15.0) as client:
            info = client.get_tool(tool)
            # /status names Toolbridge's MLflow, but needs an admin key; --mlflow-uri spares the question.
            tracking_uri = mlflow_uri or str(client.status().get("sync", {}).get("mlflow_uri") or "")
    except ToolNotFoundError as exc:
        raise TargetError(f"Toolbridge at {url} has no live tool {tool!r} ({exc.message}); see "
                          "`toolbridge tools list`, or pass --model NAME to read MLflow directly") from exc
    except ToolCallError as exc:
        hint = ("pass an API key (--api-key or TOOLBRIDGE_API_KEY); reading Toolbridge's MLflow URI needs an "
                "admin key, or pass --mlflow-uri" if exc.status in (401, 403) else "see `toolbridge status`")
        raise TargetError(f"Toolbridge at {url} refused: {exc.message}; {hint}") from exc
    except ToolbridgeError as exc:
        raise TargetError(f"{exc}; start Toolbridge, point --url at it, or pass --model NAME and "
                          "--mlflow-uri URL to read MLflow directly") from exc
    if not tracking_uri:
        raise TargetError(f"Toolbridge at {url} did not say which MLflow it uses; pass --mlflow-uri")
    return BuildTarget(tool=tool, model_name=info.model.name, model_version=version or info.model.version,
                       tracking_uri=tracking_uri, description=info.description)


def target_from_mlflow(tool: str, model: str, version: str | None, mlflow_uri: str) -> BuildTarget:
    """Read the registry directly: `version`, else the one holding the approval alias."""
    from registry_sync import MalformedEntry, RegistrySyncError
    from registry_sync.mlflow_source import MlflowRegistry

    registry = MlflowRegistry(mlflow_uri)
    try:
        if version is None:
            found = next((m for m in registry.list_models() if m.name == model), None)
            if found is None:
                raise TargetError(f"MLflow at {mlflow_uri} has no registered model {model!r}")
            version = found.aliases.get(APPROVAL_ALIAS)
            if version is None:
                raise TargetError(f"no version of {model!r} holds the alias {APPROVAL_ALIAS!r}; approve one "
                                  "in MLflow or pass --version")
        details = registry.fetch_version(model, version)  # fails here, not mid-build, if there is none
    except MalformedEntry as exc:
        raise TargetError(f"cannot package {model!r} version {version}: {exc}") from exc
    except RegistrySyncError as exc:
        raise TargetError(str(exc)) from exc
    if details.signature is None:
        console.print(f"[yellow]{model} version {version} has no signature: Toolbridge would not expose it "
                      "as a tool; the Bento still serves it[/yellow]")
    return BuildTarget(tool=tool, model_name=model, model_version=str(version), tracking_uri=mlflow_uri,
                       description=details.description)


def _report(result: BuildResult, archive: Path | None) -> None:
    console.print(f"Built Bento [bold]{result.tag}[/bold] in {result.seconds:.1f}s "
                  f"({result.size_bytes / 1024:.0f} KiB with its model {result.model_tag}"
                  f"{', reused from the model store' if result.model_reused else ''})")
    for key, value in result.labels.items():
        console.print(f"  {key} = {value}")
    console.print(f"  python {result.python_version}: {' '.join(result.python_packages)}")
    for note in result.notes:
        console.print(f"[yellow]  note: {note}[/yellow]")
    if archive is not None:
        console.print(f"Archive: {archive} (`bentoml import {archive}` on the machine that builds images)")
    console.print(f"Serve it here: bentoml serve {result.tag}\n"
                  f"Make the image (needs Docker): bentoml containerize {result.tag}")


@bento_app.callback()
def _bento() -> None:
    """Package tools as Bentos: one image per approved version, or the generic model host."""


@bento_app.command("build")
def build(
    tool: Annotated[str, typer.Argument(help="tool name, as listed by `toolbridge tools list`")],
    url: Annotated[str, typer.Option("--url", envvar="TOOLBRIDGE_URL",
                                     help="running Toolbridge to resolve the tool")] = DEFAULT_URL,
    mlflow_uri: Annotated[str | None, typer.Option(
        envvar="TOOLBRIDGE_MLFLOW_URI", help="MLflow tracking server (default: the one Toolbridge uses)")
    ] = None,
    model: Annotated[str | None, typer.Option(
        help="registered model name: read MLflow directly (needs --mlflow-uri) instead of asking Toolbridge")
    ] = None,
    version: Annotated[str | None, typer.Option(
        help=f"model version (default: the live one; with --model, the one aliased {APPROVAL_ALIAS!r})")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="also export the Bento, model included, as an archive "
                                                     "into this folder")] = None,
    bentoml_home: Annotated[Path | None, typer.Option(envvar="BENTOML_HOME",
                                                      help="BentoML store (default: ~/bentoml)")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="TOOLBRIDGE_API_KEY", help="Toolbridge API key (default: the state dir's admin key)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
) -> None:
    """Build a self-contained Bento serving TOOL's model version: `bentoml containerize` makes it an image."""
    # MLflow retries for minutes by default; a few retries ride out a busy server, a wrong URI fails in ~15 s.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    try:
        if model is not None:
            if mlflow_uri is None:
                raise TargetError("--model reads MLflow directly: pass --mlflow-uri or TOOLBRIDGE_MLFLOW_URI")
            target = target_from_mlflow(tool, model, version, mlflow_uri)
        else:
            target = target_from_toolbridge(tool, url, version, mlflow_uri, cli_api_key(api_key))
    except TargetError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    # Imported only now: bentoml and mlflow take seconds to import, a bad --url should not.
    from bridge.bento_build import BentoBuildError, build_tool_bento, export_bento

    try:
        with console.status(f"Building the Bento of {tool} (models:/{target.model_name}/"
                            f"{target.model_version})..."):
            result = build_tool_bento(target.tool, target.model_name, target.model_version,
                                      target.tracking_uri, bentoml_home=bentoml_home,
                                      description=target.description)
            archive = None if output is None else export_bento(result.tag, output, bentoml_home=bentoml_home)
    except BentoBuildError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        document: dict[str, Any] = {**asdict(result), "path": str(result.path),
                                    "archive": None if archive is None else str(archive)}
        typer.echo(json.dumps(document, indent=2))
    _report(result, archive)


@bento_app.command("build-host")
def build_host(
    flavor: Annotated[list[str] | None, typer.Option(
        help="MLflow flavor whose models the host must load (repeat for several) [default: sklearn]")] = None,
    package: Annotated[list[str] | None, typer.Option(
        help="another pip requirement for the image, e.g. my-features==1.2 (repeat for several)")] = None,
    output: Annotated[Path | None, typer.Option(help="also export the Bento as an archive into this folder")
                      ] = None,
    bentoml_home: Annotated[Path | None, typer.Option(envvar="BENTOML_HOME",
                                                      help="BentoML store (default: ~/bentoml)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
) -> None:
    """Build the generic model host as a Bento (no model inside): the image of a remote host pool's replicas,
    which load any approved version on its first call (TOOLBRIDGE_HOST_POOLS, docs/deploy.md)."""
    from bridge.bento_build import BentoBuildError, export_bento
    from bridge.hosting.host_bento import build_host_bento

    try:
        with console.status("Building the model-host Bento..."):
            result = build_host_bento(flavor or ["sklearn"], bentoml_home=bentoml_home,
                                      extra_packages=package or [])
            archive = None if output is None else export_bento(result.tag, output, bentoml_home=bentoml_home)
    except BentoBuildError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps({**asdict(result), "path": str(result.path),
                               "archive": None if archive is None else str(archive)}, indent=2))
    console.print(f"Built Bento [bold]{result.tag}[/bold] in {result.seconds:.1f}s: the model host for "
                  f"{result.labels['toolbridge.flavors']} models, no model inside\n"
                  f"  python {result.python_version}: {' '.join(result.python_packages)}")
    for note in result.notes:
        console.print(f"[yellow]  note: {note}[/yellow]")
    console.print(f"Make the image (needs Docker): bentoml containerize {result.tag}\n"
                  "Run it with MLFLOW_TRACKING_URI (and TOOLBRIDGE_HOST_MEMORY_BUDGET_MB); point "
                  "TOOLBRIDGE_HOST_POOLS at its Service: `toolbridge deploy kubernetes` writes both")


if __name__ == "__main__":
    bento_app()
