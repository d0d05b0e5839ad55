"""The house as the README draws it, kept true: every import of every module is read
(``ast``, no import is run) and checked against the layers, and the installed package list
against the folders.

    keys  <-  protocol  <-  formats, media  (pure: no IO, no clock; media: its IO modules
                                             read files, decode and run worker pools)
                        <-  federation: merged <- store <- home, publish, report
                                        <- sync <- http <- demo <- cli
                                                     (clock, config, events: any)

federation may import media (an optional extra: the modules that do import it at run time
do so inside the commands and handlers that need it, so a node runs without it).

An arrow that points up, or a cycle between modules, fails here.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP = {"keys", "protocol", "formats", "media", "federation"}

# Which of our parts each part may import (itself always).
ALLOWED = {
    "keys": set(),
    "protocol": {"keys"},
    "formats": {"keys", "protocol"},
    "media": {"keys", "protocol"},
}
# Layers inside federation: a room may import rooms of a lower rank, and the pure parts.
FEDERATION_RANK = {
    "clock": 0,
    "config": 0,
    "events": 0,
    "merged": 1,
    "store": 2,
    "home": 3,
    "publish": 3,
    "report": 3,
    "sync": 4,
    "http": 5,
    "cli": 7,
    "demo": 6,
}
# What no pure part may import: IO, the event loop, the clock.
IMPURE = {"asyncio", "aiohttp", "sqlite3", "sqlite_utils", "socket", "requests", "httpx", "time"}
PURE = {"keys", "protocol", "formats"}


def _modules() -> dict[str, Path]:
    found = {}
    for top in TOP:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(["hashfed", *parts])] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported module, only for type checking) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                typing_only.update(id(n) for n in ast.walk(inner))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
            found += [
                (name if name in MODULES else base, id(node) in typing_only) for name in names
            ]
    return found


def _part(module: str) -> str:
    return module.split(".")[1]


def _room(module: str) -> str:
    return module.split(".")[2] if module.count(".") >= 2 else ""


def _allowed(importer: str, imported: str) -> bool:
    a, b = _part(importer), _part(imported)
    if a == b and a != "federation":
        return True
    if a != "federation":
        return b in ALLOWED[a]
    if b != "federation":
        return b in PURE or b == "media"
    ra, rb = _room(importer), _room(imported)
    if ra == rb or rb == "":
        return ra == rb
    return FEDERATION_RANK[rb] < FEDERATION_RANK[ra]


def test_every_federation_room_has_a_rank() -> None:
    rooms = {_room(m) for m in MODULES if _part(m) == "federation" and _room(m)}
    assert rooms == set(FEDERATION_RANK), "a new room of federation/ needs its place here"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    wrong = [
        name
        for name, _typing in _imports(module, MODULES[module])
        if name.startswith("hashfed.") and not _allowed(module, name)
    ]
    assert not wrong, f"{module} imports {wrong} against the layering"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _part(m) in PURE))
def test_pure_parts_do_no_io(module: str) -> None:
    bad = [
        name
        for name, _typing in _imports(module, MODULES[module])
        if name.split(".")[0] in IMPURE
    ]
    assert not bad, f"{module} imports {bad}: the pure parts take bytes and times as arguments"


def test_no_import_cycles() -> None:
    graph = {
        module: {
            name
            for name, typing_only in _imports(module, path)
            if not typing_only and name in MODULES and name != module
        }
        for module, path in MODULES.items()
    }
    # A package's own __init__ importing its modules is how a package is built, not a cycle.
    for module in graph:
        graph[module] = {n for n in graph[module] if not module.startswith(n + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for name in sorted(graph[module]):
            if state.get(name) == 1:
                cycle = stack[stack.index(name) :] + [name]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if name not in state:
                visit(name)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_installed_package_list_names_every_package() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    # hashfed_tx: the ThreatExchange extension, a top-level module of its own name.
    assert set(setuptools["packages"]) == packages | {"hashfed_tx"}
    assert setuptools["package-dir"] == {f"hashfed.{top}": top for top in TOP}
