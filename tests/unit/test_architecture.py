"""The house rules hold: imports flow registry_sync → bridge → tool_server, the client imports nothing of
ours, no module imports another back (no cycle), every sub-package says what it holds, and each public name
listed in an `__all__` exists."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"registry_sync": ROOT / "registry_sync", "bridge": ROOT / "bridge",
            "tool_server": ROOT / "tool_server", "toolbridge_client": ROOT / "client" / "toolbridge_client"}
# What each package may import of ours (the data flow; the client is a leaf everyone may use).
ALLOWED = {
    "registry_sync": set(),
    "toolbridge_client": set(),
    "bridge": {"registry_sync", "toolbridge_client"},
    "tool_server": {"registry_sync", "bridge", "toolbridge_client"},
}
HEAVY = ("mlflow", "bentoml", "sklearn", "fastapi", "sqlalchemy", "uvicorn")


def _modules() -> Iterator[tuple[str, Path]]:
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


MODULES = dict(_modules())


def _imports(name: str, path: Path) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _ours(imported: set[str]) -> set[str]:
    return {name for name in imported if name in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_data_flow(module: str) -> None:
    package = module.split(".")[0]
    imported = _imports(module, MODULES[module])
    foreign = {name.split(".")[0] for name in imported} & set(PACKAGES) - {package} - ALLOWED[package]
    assert not foreign, f"{module} imports {sorted(foreign)}; {package} may import only {ALLOWED[package]}"


def test_the_client_imports_no_server_dependency() -> None:
    for module, path in MODULES.items():
        if module.startswith("toolbridge_client"):
            heavy = {name.split(".")[0] for name in _imports(module, path)} & set(HEAVY)
            assert not heavy, f"{module} imports {heavy}: agents install the client without them"


def test_no_import_cycle_between_our_modules() -> None:
    """Counting TYPE_CHECKING and lazy imports too: a cycle hidden behind them is still a knot to untie."""
    graph = {module: _ours(_imports(module, path)) - {module} for module, path in MODULES.items()}
    # A package imports its own sub-modules to re-export them; that edge is not a cycle of meaning.
    for module, edges in graph.items():
        graph[module] = {edge for edge in edges if module != edge.rsplit(".", 1)[0]
                         and not edge.startswith(module + ".")}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycle = visiting[visiting.index(module):] + [module]
            raise AssertionError("import cycle: " + " → ".join(cycle))
        visiting.append(module)
        for edge in sorted(graph[module]):
            # `from pkg import name` lists both pkg and pkg.name; only real modules are edges
            if edge in graph:
                visit(edge)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


PACKAGE_INITS = sorted(name for name, path in MODULES.items() if path.name == "__init__.py")


@pytest.mark.parametrize("package", PACKAGE_INITS)
def test_every_package_opens_with_a_docstring_of_its_job(package: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text()))
    assert doc and len(doc.split()) >= 8, f"{package}/__init__.py needs a docstring saying what it holds"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")
                                          and ".demo.data" not in m))
def test_every_name_in_all_exists(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in getattr(imported, "__all__", []) if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ lists names it does not define: {missing}"


def test_every_folder_of_modules_is_a_package() -> None:
    """No implicit namespace packages: each folder has an __init__ (and with it, a docstring)."""
    for folder in PACKAGES.values():
        for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
            if any(sub.glob("*.py")) and sub.name != "data":
                assert (sub / "__init__.py").exists(), f"{sub.relative_to(ROOT)} has no __init__.py"


def test_tool_server_folders_stay_small() -> None:
    """A folder of more than ~12 modules holds several concerns: give each a sub-package."""
    for folder in [ROOT / "tool_server", *(p for p in (ROOT / "tool_server").iterdir() if p.is_dir())]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 12, f"{folder.relative_to(ROOT)} holds {len(modules)} modules"
