"""What a model host gets to see: only the allow-listed environment, its own scratch directory, a sandbox that
hides the state directory, and (dedicated) resource limits; plus the cap on what a host may answer."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest

import bridge.host_pool
import bridge.host_sandbox
import bridge.hosts
from bridge.host_client import HostClient, OutputTooLarge
from bridge.host_pool import HostPool
from bridge.host_sandbox import HOST_ENV, HostLimits, HostUser, Sandbox, SandboxError, host_environment
from bridge.hosts import HostProcess, free_port
from bridge.process_group import GROUP_MARKER, spawn_group

# What a tool server's environment may hold that no model may read.
SECRETS = {
    "TOOLBRIDGE_DATABASE_URL": "postgresql+psycopg://toolbridge:db-pass-8d1f@db/toolbridge",
    "TOOLBRIDGE_CACHE_URL": "redis://:cache-pass-33ab@redis:6379/0",
    "TOOLBRIDGE_WEBHOOK_SECRET": "webhook-secret-5be0c1d2e3f4",
    "TOOLBRIDGE_API_KEY": "tb_admin-key-77c1",
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "fernet-key-0a9b8c7d6e5f",
    "TOOLBRIDGE_HOST_USER": "toolbridge-host",  # a tool server setting, even with the host prefix
    "TOOLBRIDGE_MLFLOW_URI": "http://mlflow.internal:5000",
    "DATABASE_PASSWORD": "shell-secret-19fe",
    "GITHUB_TOKEN": "ghp_shell-token-2b7e",
    "MLFLOW_TRACKING_URI": "http://somebody-elses-mlflow:5000",  # the bridge's own URI must win
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
    "VIRTUAL_ENV": "/work/.venv",
}
NEEDED = {
    "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "artifact-store-secret",
    "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000", "MLFLOW_TRACKING_TOKEN": "tracking-token",
    "AZURE_STORAGE_CONNECTION_STRING": "azure", "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcs.json",
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "BENTOML_DEBUG": "false",
}


def allowed(name: str) -> bool:
    return any(name == rule or (rule.endswith("*") and name.startswith(rule[:-1])) for rule in HOST_ENV)


def test_a_host_started_from_a_polluted_environment_sees_only_the_allow_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {**SECRETS, **NEEDED}.items():
        monkeypatch.setenv(name, value)
    seen: dict[str, Any] = {}

    def spawn(command: list[str], log_path: Path, env: dict[str, str], pgid_file: Path,
              **options: Any) -> None:
        seen.update(env={**env, GROUP_MARKER: str(pgid_file)}, options=options)

    monkeypatch.setattr(bridge.hosts, "spawn_group", spawn)
    host = HostProcess("shared-0", tmp_path, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
                                              "MLFLOW_REGISTRY_URI": "http://127.0.0.1:5000",
                                              "TOOLBRIDGE_HOST_BATCHING": "1"},
                       sandbox=Sandbox(scratch_root=tmp_path / "scratch"))
    host.spawn()
    env: dict[str, str] = seen["env"]
    print("\n".join(f"{name}={value}" for name, value in sorted(env.items())))  # the list, for the record
    outside = sorted(name for name in env if not allowed(name))
    assert not outside, f"outside the allow-list: {outside}"
    assert not SECRETS.keys() - {"MLFLOW_TRACKING_URI"} & env.keys()
    leaked = [value for value in SECRETS.values() if any(value in seen for seen in env.values())]
    assert not leaked, f"secret values reached the host: {leaked}"
    assert NEEDED.items() <= env.items()
    assert env["MLFLOW_TRACKING_URI"] == env["MLFLOW_REGISTRY_URI"] == "http://127.0.0.1:5000"
    scratch = Path(env["HOME"])
    assert scratch.parent == tmp_path / "scratch"
    assert env["TMPDIR"] == env["HOME"] == str(seen["options"]["cwd"])
    assert Path(env["BENTOML_HOME"]).is_relative_to(scratch)
    host.stop()
    assert not scratch.exists(), "a stopped host leaves no scratch directory"


def test_the_bridge_cannot_hand_a_host_a_variable_the_allow_list_does_not_name() -> None:
    with pytest.raises(ValueError, match="TOOLBRIDGE_DATABASE_URL is not on the model host's environment"):
        host_environment({}, {"TOOLBRIDGE_DATABASE_URL": "sqlite:///x"})
    assert all(why for _, why in HOST_ENV.values()), "every entry says why a host needs it"


def test_the_sandbox_hides_the_state_dir_after_binding_back_what_the_host_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    user = HostUser("toolbridge-host", 999, 995)
    state, code = Path("/srv/app/.toolbridge"), Path("/srv/app")
    sandbox = Sandbox(user, "/usr/bin/bwrap", state, Path("/tmp/hosts"), hide=(Path("/root"), Path("/srv")),
                      expose=(Path("/root/.pyenv/versions/3.11.7"), code))
    command = sandbox.command(["python", "-m", "bentoml"], Path("/tmp/hosts/shared-0-x"))
    joined = " ".join(command)
    assert command[0] == "/usr/bin/bwrap" and "--unshare-pid" in command and "--proc /proc" in joined
    # hidden first, the needed code bound back, then the state dir hidden again, then the scratch dir
    assert (joined.index("--tmpfs /srv") < joined.index(f"--ro-bind {code} {code}")
            < joined.index(f"--tmpfs {state}") < joined.index("--bind /tmp/hosts/shared-0-x"))
    assert "--perms 0755 --dir /root/.pyenv --perms 0755 --dir /root/.pyenv/versions" in joined
    assert f"--remount-ro /root --remount-ro /srv --remount-ro {state}" in joined  # nothing to write into
    # as root, bwrap hands over to the host user and keeps no capability it does not need for that
    assert "--cap-drop ALL --cap-add CAP_SETUID" in joined and "--reuid=999" in joined
    assert command[-3:] == ["python", "-m", "bentoml"] and "--chdir=/tmp/hosts/shared-0-x" in joined
    assert sandbox.isolation == "user:toolbridge-host+bwrap" and sandbox.popen_user() == (None, None)

    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the non-root path: bwrap's own user namespace
    plain = Sandbox(None, "/usr/bin/bwrap", state, Path("/tmp/hosts"))
    command = plain.command(["python"], Path("/tmp/hosts/s"))
    assert "setpriv" not in " ".join(command) and "--cap-drop" not in command
    assert plain.isolation == "bwrap"
    assert Sandbox(user).isolation == "user:toolbridge-host" and Sandbox(user).popen_user() == (999, 995)
    assert Sandbox().isolation == "env-only"


def test_not_root_hosts_use_bubblewrap_where_it_runs_else_only_the_environment_allow_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The non-root path's decisions (CI runs as root; the real non-root sandbox is run below)."""
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    monkeypatch.setattr(bridge.host_sandbox, "_current_user_name", lambda: "alice")
    monkeypatch.setattr(bridge.host_sandbox, "_scratch_root", lambda state: tmp_path / "scratch")
    monkeypatch.setattr(bridge.host_sandbox, "_probe", lambda sandbox: None)
    monkeypatch.setattr(bridge.host_sandbox.shutil, "which",
                        lambda name: f"/usr/bin/{name}" if name != "bwrap" else None)
    state = tmp_path / "state"
    assert bridge.host_sandbox.plan_sandbox(state, "someone-else").isolation == "env-only"  # warned, ignored
    with pytest.raises(SandboxError, match="bubblewrap is not installed"):
        bridge.host_sandbox.plan_sandbox(state, mode="bwrap")

    monkeypatch.setattr(bridge.host_sandbox.shutil, "which", lambda name: f"/usr/bin/{name}")
    sandbox = bridge.host_sandbox.plan_sandbox(state)
    assert sandbox.isolation == "bwrap" and sandbox.user is None and sandbox.state_dir == state.resolve()
    assert bridge.host_sandbox.plan_sandbox(state, mode="off").isolation == "env-only"

    monkeypatch.setattr(bridge.host_sandbox, "_probe", lambda sandbox: "bwrap: No permissions to creating "
                                                                       "new namespace")
    assert bridge.host_sandbox.plan_sandbox(state).isolation == "env-only"  # auto: warned, falls back
    with pytest.raises(SandboxError, match="cannot run model hosts here: bwrap: No permissions"):
        bridge.host_sandbox.plan_sandbox(state, mode="bwrap")


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory `nobody` can reach (pytest's own tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="toolbridge-sandbox-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_state_dir_is_made_private_to_its_owner(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    bridge.host_sandbox._private_state_dir(state)
    assert oct(state.stat().st_mode & 0o777) == "0o700"


def test_bubblewrap_run_by_an_unprivileged_user_hides_the_state_dir_and_other_processes(
    monkeypatch: pytest.MonkeyPatch, nobody_dir: Path
) -> None:
    """The non-root sandbox for real: `nobody` owns a state dir it could read, yet sees it empty. Needs root
    (to become `nobody`) and bubblewrap, as CI has (.ci/run installs it): without them it fails."""
    assert os.geteuid() == 0 and shutil.which("bwrap") and shutil.which("runuser"), (
        "run as root with bubblewrap installed (apt-get install bubblewrap)")
    nobody = pwd.getpwnam("nobody")
    tmp_path = nobody_dir
    state, scratch = tmp_path / "state", tmp_path / "scratch"
    for directory in (state, scratch):
        directory.mkdir()
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)
    (state / "admin.key").write_text("tb_secret")
    os.chown(state / "admin.key", nobody.pw_uid, nobody.pw_gid)
    monkeypatch.setattr(os, "geteuid", lambda: nobody.pw_uid)
    sandbox = Sandbox(None, shutil.which("bwrap"), state, tmp_path, hide=(Path("/tmp"),))
    script = f"ls -A {state} | wc -l; ls /proc | grep -c '^[0-9]'; id -u; touch /usr/x 2>/dev/null || echo ro"
    command = sandbox.command(["/bin/sh", "-c", script], scratch)
    done = subprocess.run(["runuser", "-u", "nobody", "--", *command], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    files, processes, uid, readonly = done.stdout.split()
    assert files == "0", "the state directory is hidden (an empty tmpfs)"
    assert int(processes) <= 4, "only the sandbox's own processes are visible"
    assert uid == str(nobody.pw_uid) and readonly == "ro"
    outside = subprocess.run(["runuser", "-u", "nobody", "--", "ls", "-A", str(state)], capture_output=True,
                             text=True, timeout=60)
    assert outside.stdout.split() == ["admin.key"], "without the sandbox the same user reads it"


def test_dedicated_limits_are_set_in_the_child_before_it_runs(tmp_path: Path) -> None:
    limits = HostLimits(memory_mb=1536, cpu_seconds=600, max_files=256, max_processes=0)
    probe = ("import json, resource as r; print(json.dumps([r.getrlimit(k) for k in "
             "(r.RLIMIT_AS, r.RLIMIT_CPU, r.RLIMIT_NOFILE)]))")
    process = spawn_group([sys.executable, "-c", probe], tmp_path / "child.log", {"PATH": os.environ["PATH"]},
                          tmp_path / "child.pgid", preexec=limits.apply)
    assert process.wait(60) == 0
    address_space, cpu, files = json.loads((tmp_path / "child.log").read_text())
    assert address_space == [1536 * 2**20] * 2 and cpu == [600, 605] and files == [256, 256]
    assert oct((tmp_path / "child.log").stat().st_mode & 0o777) == "0o600"
    assert limits.describe() == {"memory_mb": 1536, "cpu_seconds": 600, "max_files": 256,
                                 "max_processes": None}


def test_a_memory_error_in_the_host_log_is_seen_once(tmp_path: Path) -> None:
    host = HostProcess("dedicated-hog", tmp_path, {}, limits=HostLimits(memory_mb=512))
    host.log_path.write_bytes(b"starting\n")
    assert not host.memory_errors()
    with host.log_path.open("ab") as log:
        log.write(b'Traceback (most recent call last):\n  File "model.py"\nMemoryError\n')
    assert host.memory_errors()
    assert not host.memory_errors(), "only what the log gained since the last look"


@pytest.mark.anyio
async def test_spares_and_dedicated_hosts_start_under_the_dedicated_limits_shared_hosts_do_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    made: dict[str, dict[str, Any]] = {}

    class Recorder:
        def __init__(self, name: str, log_dir: Path, env: dict[str, str], **options: Any) -> None:
            self.name, self.env, self.alive, self.pid = name, env, False, None
            self.base_url = "http://127.0.0.1:1"
            made[name] = options

        async def start(self, timeout: float) -> None:
            await asyncio.sleep(0)
            self.alive, self.pid = True, 1

        def adopt(self, name: str) -> None:
            self.name = name

        def stop(self) -> None:
            self.alive = False

    monkeypatch.setattr(bridge.host_pool, "HostProcess", Recorder)
    limits = HostLimits(memory_mb=1024, max_processes=64)
    pool = HostPool(tmp_path, {}, shared_hosts=1, call_timeout=5, start_timeout=5, spare_hosts=1,
                    isolation=lambda: Sandbox(scratch_root=tmp_path), dedicated_limits=limits)
    await pool.start()
    async with asyncio.timeout(10):
        while not pool.spares:
            await asyncio.sleep(0.01)
    await pool.client("dedicated-cold")  # takes the spare
    assert made["shared-0"]["limits"] is None
    spare = next(name for name in made if name.startswith("spare-"))
    # hosts run as the tool server's user here: RLIMIT_NPROC would count the tool server's threads too
    assert made[spare]["limits"] == HostLimits(memory_mb=1024, max_processes=0)
    assert all(options["sandbox"] is pool.sandbox for options in made.values())
    await pool.stop()


@pytest.mark.anyio
async def test_an_answer_past_the_output_cap_is_dropped_with_a_clear_error() -> None:
    async def predict(request: aiohttp.web.Request) -> aiohttp.web.Response:
        size = (await request.json())["payload"]["size"]
        return aiohttp.web.json_response({"outputs": [{"text": "x" * size}]})

    app = aiohttp.web.Application()
    app.router.add_post("/v1/predict", predict)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    client = HostClient(f"http://127.0.0.1:{port}", max_output_bytes=64 * 1024)
    try:
        assert (await client.predict("m/1", {"size": 1000}))[0]["text"] == "x" * 1000
        with pytest.raises(OutputTooLarge, match=r"larger than 65536 bytes.*TOOLBRIDGE_MAX_OUTPUT_BYTES"):
            await client.predict("m/1", {"size": 5 * 2**20})
        assert (await client.predict("m/1", {"size": 10}))[0]["text"] == "x" * 10  # the client still works
    finally:
        await client.close()
        await runner.cleanup()
