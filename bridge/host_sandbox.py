"""What a model host may see and use. A model is arbitrary code (a pickle, a pyfunc's `predict`): loading one
runs it, so a host is given only what loading and serving models needs, whoever registered them.

- `host_environment`: the host's environment is built from an allow-list (`HOST_ENV`), never copied whole from
  the tool server's: no database or cache URL, webhook secret, API key or Fernet key reaches a model.
- `Sandbox`: decided once per pool by `plan_sandbox`. As root, hosts run as another OS user
  (`TOOLBRIDGE_HOST_USER`, default `toolbridge-host`, created if missing, else `nobody`); where bubblewrap
  runs, they also run in a sandbox: a process namespace of their own (no other process to see, read or
  signal), the file system read-only, the state directory, /tmp and the home directories hidden, and one
  writable scratch directory of their own (HOME, TMPDIR, BENTOML_HOME). `Sandbox.isolation` names what is in
  force.
- `HostLimits`: the rlimits of dedicated hosts (address space, CPU time, open files, processes).
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import importlib.util
import logging
import os
import pwd
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bridge.errors import BridgeError

__all__ = ["DEFAULT_HOST_USER", "HOST_ENV", "HostLimits", "HostUser", "Sandbox", "SandboxError",
           "host_environment", "plan_sandbox"]

log = logging.getLogger(__name__)

DEFAULT_HOST_USER = "toolbridge-host"

# Every variable a model host may see, in one place: a name or a prefix ending in "*"; where its value comes
# from ("parent": copied from the tool server's environment when set there; "bridge": set by the bridge for
# this host, never copied); and why the host needs it. Anything else stays out: whatever the tool server
# holds (TOOLBRIDGE_DATABASE_URL, TOOLBRIDGE_CACHE_URL, TOOLBRIDGE_WEBHOOK_SECRET, TOOLBRIDGE_API_KEY,
# MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY, a shell's own secrets) is readable by every model it loads.
HOST_ENV: dict[str, tuple[Literal["parent", "bridge"], str]] = {
    "PATH": ("parent", "libraries start helper programs by name (e.g. git, uv, conda)"),
    "LANG": ("parent", "the locale: encoding of file names, text I/O and messages"),
    "LANGUAGE": ("parent", "the locale's language list"),
    "LC_*": ("parent", "the locale's categories (LC_ALL, LC_CTYPE, ...)"),
    "TZ": ("parent", "local time in logs and in date features"),
    "PYTHONPATH": ("parent", "the host imports the same code as the tool server when run from a source tree"),
    "LD_LIBRARY_PATH": ("parent", "shared libraries of the Python installation or of GPU runtimes"),
    "CUDA_VISIBLE_DEVICES": ("parent", "which GPUs the host's models may use"),
    "HOME": ("bridge", "the host's scratch directory, never the tool server's home: caches (~/.cache) "
                       "and dotfiles models write land there"),
    "TMPDIR": ("bridge", "the host's scratch directory: downloaded and unpacked model artifacts"),
    "BENTOML_HOME": ("bridge", "the host's scratch directory: BentoML's own files"),
    "BENTOML_*": ("parent", "BentoML's settings (BENTOML_DO_NOT_TRACK is set by the bridge)"),
    "MLFLOW_TRACKING_URI": ("bridge", "the tracking server models:/ URIs are resolved against"),
    "MLFLOW_REGISTRY_URI": ("bridge", "the registry the versions were approved in (same as tracking)"),
    "MLFLOW_TRACKING_USERNAME": ("parent", "basic auth to the tracking server, to download artifacts"),
    "MLFLOW_TRACKING_PASSWORD": ("parent", "basic auth to the tracking server, to download artifacts"),
    "MLFLOW_TRACKING_TOKEN": ("parent", "bearer auth to the tracking server, to download artifacts"),
    "MLFLOW_TRACKING_INSECURE_TLS": ("parent", "TLS to the tracking server"),
    "MLFLOW_TRACKING_SERVER_CERT_PATH": ("parent", "TLS to the tracking server: its CA bundle"),
    "MLFLOW_TRACKING_CLIENT_CERT_PATH": ("parent", "TLS to the tracking server: a client certificate"),
    "MLFLOW_HTTP_REQUEST_*": ("parent", "timeouts and retries of MLflow's HTTP calls"),
    "MLFLOW_S3_*": ("parent", "S3-compatible artifact store: endpoint, TLS, upload options"),
    "AWS_*": ("parent", "S3 artifact store: credentials, region, profile, CA bundle"),
    "AZURE_*": ("parent", "Azure Blob artifact store: connection string, keys, service principal"),
    "GOOGLE_APPLICATION_CREDENTIALS": ("parent", "Google Cloud Storage artifact store: the credentials file"),
    "SSL_CERT_FILE": ("parent", "a private CA to reach MLflow or the artifact store over HTTPS"),
    "SSL_CERT_DIR": ("parent", "a private CA to reach MLflow or the artifact store over HTTPS"),
    "REQUESTS_CA_BUNDLE": ("parent", "a private CA, for the requests library MLflow uses"),
    "CURL_CA_BUNDLE": ("parent", "a private CA, for libraries built on curl"),
    "HTTP_PROXY": ("parent", "the site's proxy to reach MLflow or the artifact store"),
    "HTTPS_PROXY": ("parent", "the site's proxy to reach MLflow or the artifact store"),
    "NO_PROXY": ("parent", "addresses reached without the proxy (loopback MLflow)"),
    "http_proxy": ("parent", "the site's proxy, lowercase spelling"),
    "https_proxy": ("parent", "the site's proxy, lowercase spelling"),
    "no_proxy": ("parent", "addresses reached without the proxy, lowercase spelling"),
    "OMP_*": ("parent", "OpenMP thread pools of numeric libraries"),
    "OPENBLAS_*": ("parent", "OpenBLAS thread pool"),
    "MKL_*": ("parent", "Intel MKL thread pool"),
    "TOOLBRIDGE_HOST_*": ("bridge", "the host's own settings (bridge.model_host.service.HostSettings)"),
    "TOOLBRIDGE_PROCESS_GROUP": ("bridge", "the process-group marker that lets a stop find every process "
                                           "of the host (bridge.process_group)"),
}

# Allowed variables whose value names a file the host must read (exposed read-only in the sandbox).
_FILE_VARIABLES = ("GOOGLE_APPLICATION_CREDENTIALS", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                   "AWS_CA_BUNDLE", "AWS_WEB_IDENTITY_TOKEN_FILE", "SSL_CERT_FILE", "SSL_CERT_DIR",
                   "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                   "MLFLOW_TRACKING_CLIENT_CERT_PATH")

_TEMP_DIRS = (Path("/tmp"), Path("/var/tmp"))


class SandboxError(BridgeError):
    """Model hosts cannot be isolated as configured (an unknown host user, bubblewrap required but broken)."""


def _rule(name: str) -> tuple[Literal["parent", "bridge"], str] | None:
    if name in HOST_ENV:
        return HOST_ENV[name]
    for pattern, rule in HOST_ENV.items():
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return rule
    return None


def host_environment(parent: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """A host's environment: the allowed variables of `parent` (the tool server's environment), then `own`
    (what the bridge sets for this host). Raises ValueError if the bridge itself passes a variable the
    allow-list does not name: a new host setting is added to HOST_ENV, with its reason, or not at all."""
    env = {name: value for name, value in parent.items() if (rule := _rule(name)) and rule[0] == "parent"}
    for name, value in own.items():
        if _rule(name) is None:
            raise ValueError(f"{name} is not on the model host's environment allow-list "
                             "(bridge.host_sandbox.HOST_ENV); add it there with the reason a host needs it")
        env[name] = value
    return env


@dataclass(frozen=True)
class HostLimits:
    """Resource limits of one host's processes, set in the child before it runs anything (0 = no limit)."""

    memory_mb: int = 0  # RLIMIT_AS: address space of each process, so larger than its resident memory
    cpu_seconds: int = 0  # RLIMIT_CPU: CPU time of each process over its life; past it, the host is killed
    max_files: int = 0  # RLIMIT_NOFILE
    max_processes: int = 0  # RLIMIT_NPROC: counted per OS user: only set when hosts have a user of their own

    def describe(self) -> dict[str, int | None]:
        return {"memory_mb": self.memory_mb or None, "cpu_seconds": self.cpu_seconds or None,
                "max_files": self.max_files or None, "max_processes": self.max_processes or None}

    def apply(self) -> None:
        """Runs in the forked child (preexec): only setrlimit calls, never raising a limit's hard ceiling."""
        for kind, value in ((resource.RLIMIT_AS, self.memory_mb * 2**20),
                            (resource.RLIMIT_CPU, self.cpu_seconds), (resource.RLIMIT_NOFILE, self.max_files),
                            (resource.RLIMIT_NPROC, self.max_processes)):
            if value <= 0:
                continue
            _, hard = resource.getrlimit(kind)
            ceiling = value if hard == resource.RLIM_INFINITY else min(value, hard)
            # CPU: SIGXCPU at the soft limit, SIGKILL a few seconds later at the hard one.
            resource.setrlimit(kind, (ceiling, ceiling + 5 if kind == resource.RLIMIT_CPU else ceiling))


@dataclass(frozen=True)
class HostUser:
    name: str
    uid: int
    gid: int


@dataclass
class Sandbox:
    """How hosts are started: as which user, inside bubblewrap or not, hiding what, with scratch where."""

    user: HostUser | None = None  # None: the tool server's own user
    bwrap: str | None = None  # path of the bwrap executable, when hosts run inside it
    state_dir: Path | None = None
    scratch_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    hide: tuple[Path, ...] = ()  # replaced by empty tmpfs in the sandbox
    expose: tuple[Path, ...] = ()  # needed paths under a hidden one, bound back read-only
    setpriv: str = "/usr/bin/setpriv"  # as root: the sandbox becomes the host user through it
    env: str = "/usr/bin/env"  # ... and enters its scratch directory through it

    @property
    def isolation(self) -> str:
        """`user:<name>+bwrap`, `user:<name>`, `bwrap` or `env-only` (the environment allow-list alone)."""
        parts = ([f"user:{self.user.name}"] if self.user else []) + (["bwrap"] if self.bwrap else [])
        return "+".join(parts) or "env-only"

    def popen_user(self) -> tuple[int | None, int | None]:
        """(uid, gid) for Popen; inside bubblewrap the switch is made by setpriv in the sandbox instead."""
        if self.user is None or self.bwrap is not None:
            return None, None
        return self.user.uid, self.user.gid

    def new_scratch(self, name: str) -> Path:
        self.scratch_root.mkdir(mode=0o711, parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.scratch_root))
        if self.user is not None:
            os.chown(scratch, self.user.uid, self.user.gid)
        return scratch

    def cleanup(self) -> None:
        """Remove the scratch root once every host's scratch directory is gone (at the pool's stop)."""
        if self.state_dir is not None:  # a root of our own (`plan_sandbox`), never the system's temp dir
            with contextlib.suppress(OSError):
                self.scratch_root.rmdir()

    @staticmethod
    def scratch_env(scratch: Path) -> dict[str, str]:
        return {"HOME": str(scratch), "TMPDIR": str(scratch), "BENTOML_HOME": str(scratch / "bentoml")}

    def _parents(self, path: Path) -> list[str]:
        """`--dir` for the directories leading to `path` inside a hidden one: made 0755, so that the host user
        can walk to it (bubblewrap makes the ones it creates by itself 0700, root's)."""
        args: list[str] = []
        for parent in reversed(path.parents):
            if any(parent != hidden and parent.is_relative_to(hidden) for hidden in self.hide):
                args += ["--perms", "0755", "--dir", str(parent)]
        return args

    def command(self, argv: list[str], scratch: Path) -> list[str]:
        if self.bwrap is None:
            return argv
        args = [self.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                "--perms", "1777", "--tmpfs", "/dev/shm"]
        for path in self.hide:  # temp directories stay usable (empty, sticky) for libraries that want them
            args += [*(("--perms", "1777") if path in _TEMP_DIRS else ()), "--tmpfs", str(path)]
        for path in self.expose:
            args += [*self._parents(path), "--ro-bind", str(path), str(path)]
        if self.state_dir is not None:  # last but the scratch: even if an exposed path holds it
            args += ["--tmpfs", str(self.state_dir)]
        args += [*self._parents(scratch), "--bind", str(scratch), str(scratch)]
        # What hides is read-only too: nothing written "into the state directory" even seems to work.
        for path in (*(p for p in self.hide if p not in _TEMP_DIRS), *filter(None, [self.state_dir])):
            args += ["--remount-ro", str(path)]
        if os.geteuid() != 0:  # unprivileged bubblewrap: a user namespace, no capability left
            return [*args, "--chdir", str(scratch), "--", *argv]
        if self.user is None:  # as root, hosts run as root: without a single capability
            return [*args, "--chdir", str(scratch), "--cap-drop", "ALL", "--", *argv]
        # As root, bwrap sets up the mounts (it can read what the host user cannot, e.g. a Python under
        # /root) and keeps only what setpriv needs to become the host user, which then drops everything;
        # only then can it enter its scratch directory (0700, the host user's).
        return [*args, "--chdir", "/", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add",
                "CAP_SETGID", "--cap-add", "CAP_SETPCAP", "--",
                self.setpriv, f"--reuid={self.user.uid}", f"--regid={self.user.gid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
                self.env, f"--chdir={scratch}", *argv]


def _current_user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _create_user(name: str) -> bool:
    """useradd a system user without home or shell; False if that failed (a concurrent start may win)."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    for _ in range(3):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return True
        try:
            done = subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
                                   "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("could not create the model host user %s: %s", name, exc)
            return False
        if done.returncode == 0:
            log.info("created the OS user %s for model hosts", name)
            return True
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        return True
    log.warning("could not create the model host user %s: %s", name, done.stderr.strip())
    return False


def _host_user(wanted: str | None) -> HostUser | None:
    """The user hosts run as: None for the tool server's own (not root, or TOOLBRIDGE_HOST_USER=root)."""
    if os.geteuid() != 0:
        if wanted and wanted not in (_current_user_name(), str(os.geteuid())):
            log.warning("TOOLBRIDGE_HOST_USER=%s ignored: only a tool server running as root can start model "
                        "hosts as another user", wanted)
        return None
    name = wanted or DEFAULT_HOST_USER
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        if wanted:
            raise SandboxError(f"TOOLBRIDGE_HOST_USER={wanted}: no such user; create it (useradd --system "
                               f"{wanted}) or unset the setting") from None
        entry = pwd.getpwnam(name) if _create_user(name) else pwd.getpwnam("nobody")
    if entry.pw_uid == 0:
        return None
    return HostUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _needed_paths() -> set[Path]:
    """What a host reads to run: the interpreter, its standard library, the venv, our packages, and files
    named by allowed variables (credentials, CA bundles)."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent}
    for package in ("bridge", "toolbridge_client"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            paths.add(Path(spec.origin).parent.parent)
    paths.update(Path(entry) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry)
    paths.update(Path(os.environ[name]) for name in _FILE_VARIABLES if os.environ.get(name))
    return {path.resolve() for path in paths if path.exists()}


def _traversable(directory: Path, user: HostUser | None) -> bool:
    if user is None:
        return True
    info = directory.stat()
    groups = {user.gid} | {g.gr_gid for g in grp.getgrall() if user.name in g.gr_mem}
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _blocked_ancestor(path: Path, user: HostUser | None) -> Path | None:
    """The outermost directory on the way to `path` the host user may not enter, if any."""
    for ancestor in reversed(path.parents):
        if not _traversable(ancestor, user):
            return ancestor
    return None


def _outermost(paths: set[Path]) -> tuple[Path, ...]:
    """The paths none of the others contains, shortest first (a parent's mount comes before a child's)."""
    kept = [path for path in paths
            if not any(other != path and path.is_relative_to(other) for other in paths)]
    return tuple(sorted(kept, key=lambda path: (len(path.parts), str(path))))


def _bwrap_layout(user: HostUser | None, state_dir: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """(hide, expose): home directories, temp directories, and whatever blocks the host user's way to a
    needed path are hidden; the needed paths under them are bound back read-only."""
    needed = _needed_paths()
    hide = {*_TEMP_DIRS, Path("/home"), Path("/root")}
    with contextlib.suppress(KeyError):
        hide.add(Path(pwd.getpwuid(os.geteuid()).pw_dir))
    hide.update(blocked for path in needed if (blocked := _blocked_ancestor(path, user)) is not None)
    hide = {path.resolve() for path in hide if path.is_dir() and path != Path("/")}
    hidden = _outermost(hide)
    expose = {path for path in needed if any(path.is_relative_to(h) for h in hidden)
              and not path.is_relative_to(state_dir)}
    return hidden, _outermost(expose)


_PROBE = """
import importlib.util, os, sys
import bridge.model_host
assert importlib.util.find_spec("bentoml"), "bentoml is not importable"
state = sys.argv[1]
try:
    seen = os.listdir(state)
except OSError:
    seen = []
assert not seen, f"the state directory is visible: {sorted(seen)[:5]}"
"""


def _probe(sandbox: Sandbox) -> str | None:
    """Run a tiny Python as a host would run; None if it could import the host's code and could not see the
    state directory, else what went wrong."""
    scratch = sandbox.new_scratch("probe")
    try:
        uid, gid = sandbox.popen_user()
        argv = [sys.executable, "-c", _PROBE, str(sandbox.state_dir or "/nonexistent")]
        done = subprocess.run(sandbox.command(argv, scratch), capture_output=True, text=True, timeout=120,
                              env=host_environment(os.environ, Sandbox.scratch_env(scratch)), cwd=scratch,
                              user=uid, group=gid, extra_groups=[] if uid is not None else None)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return None


def _scratch_root(state_dir: Path) -> Path:
    """One directory of scratch dirs per state directory, emptied at start (a crashed run's leftovers)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"toolbridge-hosts-{digest}"
    try:
        info = root.lstat()
    except FileNotFoundError:
        root.mkdir(mode=0o711)
        return root
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():  # not ours: never reuse it
        return Path(tempfile.mkdtemp(prefix="toolbridge-hosts-"))
    for leftover in root.iterdir():
        shutil.rmtree(leftover, ignore_errors=True)
    root.chmod(0o711)
    return root


def _private_state_dir(state_dir: Path) -> None:
    """The state directory (keys, database, secrets, logs) stays 0700 and its owner's alone."""
    with contextlib.suppress(OSError):
        info = state_dir.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            state_dir.chmod(0o700)
            log.info("state directory %s made private (0700)", state_dir)


def plan_sandbox(state_dir: Path, host_user: str | None = None,
                 mode: Literal["auto", "bwrap", "off"] = "auto") -> Sandbox:
    """Decide how this tool server's hosts are isolated, checking that it works here. Blocking (it may run
    useradd and a probe process): call it once, off the event loop."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    _private_state_dir(state_dir)
    user = _host_user(host_user)
    scratch_root = _scratch_root(state_dir)
    bwrap = shutil.which("bwrap") if mode != "off" else None
    if mode == "bwrap" and bwrap is None:
        raise SandboxError("TOOLBRIDGE_HOST_SANDBOX=bwrap but bubblewrap is not installed "
                           "(apt-get install bubblewrap)")
    if bwrap is not None:
        hide, expose = _bwrap_layout(user, state_dir)
        sandbox = Sandbox(user, bwrap, state_dir, scratch_root, hide, expose,
                          setpriv=shutil.which("setpriv") or "/usr/bin/setpriv",
                          env=shutil.which("env") or "/usr/bin/env")
        problem = _probe(sandbox)
        if problem is None:
            return sandbox
        if mode == "bwrap":
            raise SandboxError(f"TOOLBRIDGE_HOST_SANDBOX=bwrap but bubblewrap cannot run model hosts here: "
                               f"{problem}")
        log.warning("bubblewrap cannot run model hosts here (%s): hosts run without it", problem)
    sandbox = Sandbox(user, None, state_dir, scratch_root)
    if user is not None and (problem := _probe(sandbox)) is not None:
        raise SandboxError(
            f"model hosts cannot run as the OS user {user.name}: {problem}. It must be able to read the "
            f"Python installation ({sys.base_prefix}), the virtualenv ({sys.prefix}) and Toolbridge's code: "
            "install bubblewrap (apt-get install bubblewrap; it shows hosts only what they need), make those "
            "directories readable by that user, or set TOOLBRIDGE_HOST_USER to another user")
    return sandbox

