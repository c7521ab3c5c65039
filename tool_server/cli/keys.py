"""`toolbridge keys ...` and `toolbridge audit ...`: straight to the database, no server needed.

Whoever can run these can reach the database (TOOLBRIDGE_DATABASE_URL, or STATE_DIR/toolbridge.db): the
operator. A running server sees a revocation at the key's next request.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from tool_server.access.keys import KeyStore

__all__ = ["announce_admin_key", "audit_app", "cli_auth_headers", "keys_app"]

keys_app = typer.Typer(help="Issue, list and revoke API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Read the audit log of tool calls.", no_args_is_help=True)
console = Console()

StateDir = Annotated[Path, typer.Option("--state-dir", envvar="TOOLBRIDGE_STATE_DIR",
                                        help="the server's state directory (its SQLite database)")]
DEFAULT_STATE = Path(".toolbridge")


def _engine(state_dir: Path) -> Engine:
    from tool_server.access.db import make_engine
    from tool_server.settings import SecuritySettings

    return make_engine(SecuritySettings().url(state_dir))


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="who holds the key; shown in the audit log")],
    scopes: Annotated[list[str], typer.Option("--scopes", help="tool names or globs (credit_*), admin, "
                                              "restricted; comma-separated or repeated")],
    expires_days: Annotated[float | None, typer.Option("--expires-days", min=0.0001)] = None,
    rate_limit: Annotated[float | None, typer.Option("--rate-limit", min=0.01,
                                                     help="calls a minute [default: the server's]")] = None,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Create a key and print it, once: only its hash is stored."""
    from tool_server.access.keys import KeyStore
    from tool_server.access.scopes import parse_scopes

    try:
        parsed = parse_scopes(scopes)
        key, info = KeyStore(_engine(state_dir)).create(
            name, parsed, timedelta(days=expires_days) if expires_days else None, rate_limit)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"key {info.name!r} (id {info.id}), scopes: {' '.join(sorted(info.scopes))}"
                  + (f", expires {_when(info.expires_at)}" if info.expires_at else ""), highlight=False)
    console.print("Store it now, it is not shown again:", highlight=False)
    print(key)  # plain stdout: scripts capture it with $(...)


@keys_app.command("schema-url")
def keys_schema_url(
    name: Annotated[str, typer.Argument(help="the key's name or id")],
    url: Annotated[str | None, typer.Option("--url", envvar="TOOLBRIDGE_PUBLIC_URL",
                                            help="the server's public base URL [default: "
                                                 "http://127.0.0.1:8000]")] = None,
    tools: Annotated[str | None, typer.Option("--tools", help="only tools matching these globs, e.g. "
                                              "credit_*,fin_*")] = None,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Print a catalog URL for clients that send no header (Dify's "Import from URL"): the OpenAPI document
    of this key's tools, read-only (it cannot invoke), valid until the key is revoked or expires."""
    from urllib.parse import urlencode

    from tool_server.access.catalog_tokens import CatalogTokens

    try:
        token, info = CatalogTokens(_engine(state_dir)).mint(name)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    base = (url or "http://127.0.0.1:8000").rstrip("/")
    query = {"token": token, **({"tools": tools} if tools else {})}
    console.print(f"catalog of key {info.name!r} (id {info.id}): read-only, ends with the key's revocation "
                  "or expiry. Paste it into Dify's custom tool \"Import from URL\"; set the tool's "
                  "authentication to the key itself for its calls.", highlight=False)
    print(f"{base}/openapi.json?{urlencode(query, safe='*,')}")  # plain stdout, for scripts


@keys_app.command("list")
def keys_list(
    state_dir: StateDir = DEFAULT_STATE,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, for scripts")] = False,
) -> None:
    """Every key: name, id, scopes, state, dates. Never the keys themselves."""
    from tool_server.access.keys import KeyStore

    if as_json:
        for k in KeyStore(_engine(state_dir)).list():
            typer.echo(json.dumps({"name": k.name, "id": k.id, "scopes": sorted(k.scopes), "state": k.state,
                                   "created": _when(k.created_at), "expires": _when(k.expires_at),
                                   "last_used": _when(k.last_used_at),
                                   "rate_limit_per_minute": k.rate_limit_per_minute}))
        return
    table = Table("name", "id", "scopes", "state", "created", "expires", "last used", "rate/min")
    for k in KeyStore(_engine(state_dir)).list():
        table.add_row(k.name, k.id, " ".join(sorted(k.scopes)), k.state, _when(k.created_at),
                      _when(k.expires_at), _when(k.last_used_at),
                      "" if k.rate_limit_per_minute is None else f"{k.rate_limit_per_minute:g}")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(name_or_id: Annotated[str, typer.Argument(help="a key's id, or a name (all its keys)")],
                state_dir: StateDir = DEFAULT_STATE) -> None:
    """Revoke keys: refused from their next request on."""
    from tool_server.access.keys import KeyStore

    revoked = KeyStore(_engine(state_dir)).revoke(name_or_id)
    if not revoked:
        console.print(f"[red]no active key with id or name {name_or_id!r}[/red] (see `toolbridge keys list`)")
        raise typer.Exit(1)
    for k in revoked:
        console.print(f"revoked {k.name!r} (id {k.id})", highlight=False)


@audit_app.command("tail")
def audit_tail(n: Annotated[int, typer.Option("-n", min=1, help="how many records")] = 20,
               state_dir: StateDir = DEFAULT_STATE) -> None:
    """The last N tool calls."""
    from tool_server.access.audit import read_records

    table = Table("time", "request", "key", "tool", "version", "channel", "outcome", "status", "ms", "bytes")
    for r in read_records(_engine(state_dir), last=n):
        table.add_row(_when(r.time), r.request_id[:12], r.key_name or "", r.tool, r.model_version or "",
                      r.channel, r.outcome, str(r.status), f"{r.latency_ms:.1f}", str(r.input_bytes))
    console.print(table)


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option("--out", help="JSON lines file to write ('-' = stdout)")],
                 since: Annotated[datetime | None, typer.Option(help="records from this time (UTC)")] = None,
                 state_dir: StateDir = DEFAULT_STATE) -> None:
    """Every record (or those since a time) as JSON lines, oldest first."""
    from tool_server.access.audit import read_records

    since_utc = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    lines = (json.dumps(r.public(), ensure_ascii=False) + "\n"
             for r in read_records(_engine(state_dir), since=since_utc))
    if str(out) == "-":
        for line in lines:
            typer.echo(line, nl=False)
        return
    count = 0
    with out.open("w", encoding="utf-8") as file:
        for line in lines:
            file.write(line)
            count += 1
    console.print(f"{count} records → {out}")


def announce_admin_key(store: KeyStore, path: Path) -> None:
    """`toolbridge up`: on first start, create the admin key and say where it is (never print the key)."""
    from tool_server.access.keys import ensure_admin_key

    info = ensure_admin_key(store, path)
    if info is not None:
        console.print(f"Admin API key {info.name!r} created: [bold]{path}[/bold] (mode 0600). Send it as "
                      f"`Authorization: Bearer $(cat {path})`; scoped keys: `toolbridge keys create`.")
    else:
        console.print(f"Admin API key: {path}")


def cli_auth_headers() -> dict[str, str]:
    """What `toolbridge status` and `tools list` send: TOOLBRIDGE_API_KEY, else STATE_DIR/admin.key."""
    import os

    from tool_server.settings import ADMIN_KEY_FILE

    key = os.environ.get("TOOLBRIDGE_API_KEY")
    if not key:
        path = Path(os.environ.get("TOOLBRIDGE_STATE_DIR", DEFAULT_STATE)) / ADMIN_KEY_FILE
        key = path.read_text().strip() if path.is_file() else None
    return {"Authorization": f"Bearer {key}"} if key else {}
