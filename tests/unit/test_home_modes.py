"""A node's home is its owner's alone (federation.home): the folder 0700, config.toml and
the store (with its -wal and -shm) 0600, whatever the umask; ``serve`` refuses a home that
group or others can read, naming the fix in one line."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hashfed.federation.cli import main
from hashfed.federation.home import CONFIG_FILE, DB_FILE, KEYS_DIR, init_home, open_home
from hashfed.protocol.entries import Entry
from tests.helpers import db_snapshot, md5, stage_and_publish

ORG = "a.example"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o002, 0o022, 0o077], ids=["umask-000", "umask-002", "umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_a_new_home_is_the_owners_alone(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "node"
    init_home(path, ORG)
    home = open_home(path)
    with home.open_store():  # a write: -wal and -shm exist while a connection is open
        stage_and_publish(home, [Entry.add("md5", md5(1))])
        files = {p.name: _mode(p) for p in path.iterdir() if p.is_file()}
    assert files == {
        CONFIG_FILE: 0o600,
        DB_FILE: 0o600,
        f"{DB_FILE}-wal": 0o600,
        f"{DB_FILE}-shm": 0o600,
    }
    assert (_mode(path), _mode(path / KEYS_DIR)) == (0o700, 0o700)
    assert {_mode(k) for k in (path / KEYS_DIR).iterdir()} == {0o600}


def test_a_folder_given_empty_becomes_the_owners(tmp_path: Path) -> None:
    path = tmp_path / "node"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    init_home(path, ORG)
    assert _mode(path) == 0o700


# (what is widened, its mode) -> the one line serve prints
OPEN_HOMES = [
    ("home-0755", "", 0o755, "700"),
    ("home-0750", "", 0o750, "700"),
    ("config-0644", CONFIG_FILE, 0o644, "600"),
    ("store-0640", DB_FILE, 0o640, "600"),
]


@pytest.mark.parametrize(("name", "mode", "fix"), [c[1:] for c in OPEN_HOMES], ids=[c[0] for c in OPEN_HOMES])
def test_serve_refuses_a_home_others_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, mode: int, fix: str
) -> None:
    monkeypatch.delenv("HASHFED_HOME", raising=False)
    path = tmp_path / "node"
    init_home(path, ORG)
    item = path / name if name else path
    os.chmod(item, mode)
    before = db_snapshot(path / DB_FILE)
    code = main(["--home", str(path), "serve", "--port", "0"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == (
        f"hashfed: error: {item} is readable by group or others (mode {mode:04o});"
        f" run chmod {fix} {item}\n"
    )
    assert db_snapshot(path / DB_FILE) == before
