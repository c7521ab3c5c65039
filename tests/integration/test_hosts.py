"""Model hosts on real processes: many models in one host within its memory budget, dedicated hosts."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from tests.conftest import ToolbridgeProcess, admin_headers, tools_by_name, wait_for
from tests.integration.test_lifecycle import HEADLINE, call, host_groups, register

pytestmark = pytest.mark.integration


def hosts(url: str) -> dict[str, dict[str, Any]]:
    return {host["name"]: host for host in httpx.get(f"{url}/status", headers=admin_headers(url), timeout=30).json()["hosts"]}


def test_twenty_models_share_one_host_within_its_memory_budget(
    toolbridge: ToolbridgeProcess, mlflow_server: str
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    template = register("fleet_template", mlflow_server)
    names = [f"fleet_{i:02d}" for i in range(20)]

    def approve(name: str) -> None:
        client.create_registered_model(name, description="One of twenty sentiment tools.")
        version = client.create_model_version(name, source=f"models:/fleet_template/{template}")
        client.set_registered_model_alias(name, "champion", version.version)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(approve, names))
    wait_for(lambda: set(names) <= tools_by_name(toolbridge.url).keys(), 180, f"20 tools\n{toolbridge.log()}")
    assert all(call(toolbridge.url, name).status_code == 200 for name in names)
    shared = hosts(toolbridge.url)["shared-0"]
    loaded = {model["key"].split("/")[0] for model in shared["models"]}
    assert set(names) <= loaded
    assert shared["memory_budget_bytes"] == 2048 * 2**20
    assert shared["memory_bytes"] <= shared["memory_budget_bytes"]
    assert shared["evictions"] == 0
    assert all(model["memory_bytes"] >= 0 and model["load_seconds"] > 0 for model in shared["models"])


def test_dedicated_model_gets_its_own_host_and_its_crash_touches_no_other_tool(
    toolbridge: ToolbridgeProcess, mlflow_server: str, demo_tools: dict[str, Any]
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    version = register("isolated_probe", mlflow_server)
    client.set_registered_model_tag("isolated_probe", "toolbridge.isolation", "dedicated")
    client.set_registered_model_alias("isolated_probe", "champion", version)
    wait_for(lambda: call(toolbridge.url, "isolated_probe").status_code == 200, 180,
             f"isolated_probe live\n{toolbridge.log()}")
    by_name = hosts(toolbridge.url)
    dedicated = by_name["dedicated-isolated_probe"]
    assert [m["key"] for m in dedicated["models"]] == [f"isolated_probe/{version}"]
    assert not any(m["key"].startswith("isolated_probe/") for m in by_name["shared-0"]["models"])

    shared_groups = set(host_groups(toolbridge.log_path.parent))
    assert httpx.get(dedicated["url"] + "/livez", timeout=5).status_code == 200
    dedicated_groups = {os.getpgid(p) for p in pids_listening(dedicated["url"])} - {os.getpgid(os.getpid())}
    for group in dedicated_groups:
        os.killpg(group, signal.SIGKILL)
    # The other tools never notice: same host processes, every call answered.
    assert all(call(toolbridge.url, tool).status_code == 200 for tool in ("fin_sentiment",) * 20)
    assert shared_groups - dedicated_groups <= set(host_groups(toolbridge.log_path.parent))
    wait_for(lambda: call(toolbridge.url, "isolated_probe").status_code == 200, 180, "dedicated host restarted")

    client.delete_registered_model_alias("isolated_probe", "champion")
    wait_for(lambda: "dedicated-isolated_probe" not in hosts(toolbridge.url), 60, "dedicated host retired")
    assert httpx.post(f"{toolbridge.url}/tools/isolated_probe/invoke", headers=admin_headers(toolbridge.url), json=HEADLINE, timeout=10).status_code == 404


def pids_listening(url: str) -> list[int]:
    """Processes with a listening socket on the URL's port (the host's arbiter and workers)."""
    import psutil

    port = int(url.rsplit(":", 1)[1])
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            found.append(conn.pid)
    return found
