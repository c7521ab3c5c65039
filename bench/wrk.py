"""Throughput with `wrk` (Debian's package): a load generator outside Python, so the client does not share
the GIL, or much CPU, with what it measures.

Each connection POSTs the given JSON bodies in turn (a Lua script written per run), keep-alive.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["INSTALL", "WrkResult", "require_wrk", "run_wrk", "wrk_available"]

INSTALL = "apt-get install -y wrk"  # Debian's package (run apt-get update first on a fresh machine)
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class WrkResult:
    rate: float  # requests per second
    requests: int
    p50: float  # seconds
    p99: float
    errors: int  # non-2xx answers plus socket errors


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def require_wrk(otherwise: str = "") -> None:
    """Exit at once, saying how to install it, when `wrk` is missing: not after minutes of latency rounds.
    `otherwise`: how to run the bench without it, if it can be."""
    if not wrk_available():
        raise SystemExit(f"wrk is not installed (the load generator): {INSTALL}{otherwise}")


def _lua(path: str, bodies: list[Any], headers: dict[str, str]) -> str:
    quoted = ",\n".join(json.dumps(json.dumps(body)) for body in bodies)  # a Lua string literal = a JSON one
    header_lines = "\n".join(f"headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    return f"""local bodies = {{
{quoted}
}}
local headers = {{}}
headers["Content-Type"] = "application/json"
{header_lines}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", {json.dumps(path)}, headers, bodies[i])
end
"""


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(output: str) -> WrkResult:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    # Anchored to the line start: the "+/- Stdev" column above (e.g. 78.50%) holds "50%" / "99%" too.
    p50 = _seconds(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return WrkResult(rate, requests, p50, p99, errors)


def run_wrk(url: str, path: str, bodies: list[Any], headers: dict[str, str] | None = None,
            connections: int = 16, threads: int = 2, duration: float = 10.0) -> WrkResult:
    """`wrk -t{threads} -c{connections} -d{duration}s --latency -s post.lua URL`; its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_lua(path, bodies, headers or {}))
        done = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:.0f}s", "--latency",
                               "--timeout", "30s", "-s", str(script), url],
                              capture_output=True, text=True, timeout=duration + 120, check=False)
    if done.returncode != 0 or "Requests/sec" not in done.stdout:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return parse(done.stdout)
