"""`toolbridge shadow report MODEL`: how the model's shadow version compares with its champion, from the
running server's `GET /shadow` (a table of totals, the last windows, and a text chart of agreement)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from tool_server.cli.keys import cli_auth_headers

__all__ = ["agreement_chart", "shadow_app"]

shadow_app = typer.Typer(help="Compare shadow versions with their champions.", no_args_is_help=True)
console = Console()

BAR_WIDTH = 40
BLOCKS = " ▏▎▍▌▋▊▉█"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _bar(share: float) -> str:
    eighths = round(max(0.0, min(1.0, share)) * BAR_WIDTH * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[rest] if rest else "")).ljust(BAR_WIDTH)


def agreement_chart(windows: list[dict[str, Any]], last: int = 20) -> list[str]:
    """One line per window, oldest first: time, a bar of the agreement, the share, the calls compared."""
    lines = []
    for window in windows[-last:]:
        moment = datetime.fromtimestamp(window["ended_at"], UTC).strftime("%H:%M:%S")
        share = window.get("agreement")
        bar = _bar(share) if share is not None else "(no call compared)".ljust(BAR_WIDTH)
        lines.append(f"  #{window['sequence']:<4} {moment}  {bar} {_percent(share):>6}  "
                     f"{int(window.get('calls_compared', 0))} compared, "
                     f"{int(window.get('shadow_errors', 0))} errors")
    return lines


def _print_version(row: dict[str, Any]) -> None:
    state = "mirroring" if row["mirroring"] else "not mirrored now"
    if row["mirroring"] and row.get("blocked"):
        state = f"not mirrored: {row['blocked']}"
    elif row["mirroring"]:
        state += f" {row['rate'] * 100:g}% of the champion's calls"
    console.print(f"[bold]{row['model']}[/bold] version {row['shadow_version']} in the shadow of version "
                  f"{row['champion_version']} (tool {row['tool']}): {state}", highlight=False)
    totals, open_window = row["totals"], row.get("open_window") or {}
    table = Table("calls compared", "agreement", "shadow errors", "dropped", "mean |diff|", "max |diff|",
                  "in the open window")
    table.add_row(str(totals["calls_compared"]), _percent(totals["agreement"]), str(totals["shadow_errors"]),
                  str(totals["dropped"]), _number(totals["mean_abs_diff"]), _number(totals["max_abs_diff"]),
                  str(open_window.get("calls", 0)))
    console.print(table)
    confusion: dict[str, dict[str, int]] = totals.get("confusion") or {}
    if confusion:
        labels = sorted({*confusion, *(b for row_ in confusion.values() for b in row_)})
        matrix = Table("champion ↓ / shadow →", *labels, title="confusion (calls)")
        for mine in labels:
            matrix.add_row(mine, *(str(confusion.get(mine, {}).get(theirs, 0)) for theirs in labels))
        console.print(matrix)
    windows = row["windows"]
    if windows:
        latest = windows[-1]
        champion, shadow = (f"{_number(latest.get(f'{who}_p50_ms'), 1)}/"
                            f"{_number(latest.get(f'{who}_p99_ms'), 1)}" for who in ("champion", "shadow"))
        console.print(f"latency of the last window, p50/p99 ms: champion {champion}, shadow {shadow}",
                      highlight=False)
        console.print("agreement per window:", highlight=False)
        for line in agreement_chart(windows):
            console.print(line, highlight=False, markup=False)
    if row.get("run_id"):
        console.print(f"MLflow run {row['run_id']} (experiment toolbridge-shadow)", highlight=False)
    for example in row.get("examples", [])[:5]:
        console.print(f"  disagreement {example['input_sha256'][:12]}…: champion "
                      f"{example['champion_output']} / shadow {example['shadow_output']}",
                      highlight=False, markup=False)


@shadow_app.command("report")
def report(
    model: Annotated[str, typer.Argument(help="the registered model's name")],
    url: Annotated[str, typer.Option("--url", envvar="TOOLBRIDGE_URL",
                                     help="Toolbridge base URL")] = "http://127.0.0.1:8000",
) -> None:
    """The model's shadow version against its champion: totals, confusion, agreement window by window."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/shadow", params={"model": model, "examples": 5},
                             headers=cli_auth_headers(), timeout=10.0)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach Toolbridge at {url}: {exc}[/red] (is `toolbridge up` running?)")
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        console.print(f"[red]/shadow answered {response.status_code}: {response.text}[/red]")
        raise typer.Exit(1)
    rows = response.json()["shadows"]
    if not rows:
        console.print(f"no shadow version of {model!r}: set the alias `shadow` on a version in MLflow "
                      "(TOOLBRIDGE_SHADOW_ALIAS) and call the tool", highlight=False)
        raise typer.Exit(1)
    for row in rows:
        _print_version(row)
