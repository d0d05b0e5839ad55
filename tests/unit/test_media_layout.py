"""The media package keeps its promises about imports: the pure modules do no IO (no
os, files, pools or decoders of files), and nothing in media imports federation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MEDIA = Path(__file__).resolve().parents[2] / "media"
PURE = ["errors", "options", "pdq", "pixels", "results", "sniff"]
IO_MODULES = {"os", "io", "pathlib", "shutil", "subprocess", "socket", "multiprocessing", "concurrent", "av",
              "tempfile", "time", "datetime"}
PURE_MEDIA_NEIGHBOURS = {"errors", "options", "pdq", "pixels", "results", "sniff"}


def _imports(module: str) -> set[str]:
    tree = ast.parse((MEDIA / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    for name in _imports(module):
        assert name.split(".")[0] not in IO_MODULES, f"{module} imports {name}"
        if name.startswith("."):
            assert name.lstrip(".") in PURE_MEDIA_NEIGHBOURS, f"{module} imports IO module {name}"


@pytest.mark.parametrize("module", sorted(p.stem for p in MEDIA.glob("*.py")))
def test_media_imports_only_protocol_and_keys(module: str) -> None:
    for name in _imports(module):
        if name.startswith("hashfed."):
            assert name.split(".")[1] in ("protocol", "keys"), f"{module} imports {name}"
