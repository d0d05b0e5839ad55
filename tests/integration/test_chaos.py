"""Crashes lose nothing: a reduced run of ``python -m bench.chaos``, and proof that its
checker is not vacuous (each kind of damage to a store is caught, by name)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from bench.chaos import chaos_run
from bench.chaos_check import Checker, History, InvariantError
from hashfed.federation.cli import main
from hashfed.keys import Signer, Verifier
from hashfed.keys.keyfile import load_signer
from tests.helpers import md5

ORG = "a.example"


def test_kills_lose_nothing(tmp_path: Path) -> None:
    summary = chaos_run(seed=3, kills=10, entries=(200, 600), no_kill_p=0.05, workdir=tmp_path)
    assert summary.kills >= 10
    assert summary.restarts > 0 and summary.operations > 0
    assert (summary.losses, summary.exports_equal) == (0, True)
    assert summary.checks_passed > 100 and summary.checkpoints_observed > 0


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Verifier]:
    """A home with two published batches (adds, a remove, an opinion)."""
    home = tmp_path_factory.mktemp("chaos") / ORG
    assert main(["--home", str(home), "init", "--org", ORG]) == 0
    for n in range(2):
        assert main(["--home", str(home), "add", "md5", md5(n), "--label", "x:1"]) == 0
        assert main(["--home", str(home), "opinion", "md5", md5(9), "false_positive"]) == 0
        assert main(["--home", str(home), "publish"]) == 0
    assert main(["--home", str(home), "remove", "md5", md5(0)]) == 0
    assert main(["--home", str(home), "publish"]) == 0
    (key_file,) = (home / "keys").glob("*.key")
    return home / "hashfed.db", load_signer(key_file).verifier()


def _damaged(published: tuple[Path, Verifier], tmp_path: Path, sql: str, *params: object) -> tuple[Path, Checker]:
    db, verifier = published
    copy = tmp_path / "hashfed.db"
    shutil.copy(db, copy)
    conn = sqlite3.connect(copy)
    with conn:
        conn.execute(sql, params)
    conn.close()
    return copy, Checker({ORG: verifier})


def test_an_undamaged_store_passes(published: tuple[Path, Verifier]) -> None:
    checker = Checker({ORG: published[1]})
    logs = checker.check_store(published[0], "a")
    assert [len(batches) for batches in logs.values()] == [3]
    assert checker.passed > 10 and checker.history.observed == 4  # served note + 3 rows


DAMAGE: list[tuple[str, str, tuple[object, ...], str]] = [
    ("batch lost", "DELETE FROM batches WHERE idx = 1", (), "batch indices"),
    ("leaf lost", "DELETE FROM leaves WHERE idx = 0", (), "leaves are not exactly"),
    ("leaf changed", "UPDATE leaves SET leaf = zeroblob(32) WHERE idx = 2", (), "leaf 2 is not the hash"),
    ("batch changed", "UPDATE batches SET data = CAST(replace(CAST(data AS TEXT), 'x:1', 'x:2') AS BLOB) WHERE idx = 0", (), "leaf 0"),
    ("root changed", "UPDATE logs SET root = zeroblob(32)", (), "root is not the root"),
    ("size past held", "UPDATE logs SET size = 4", (), "serves size 4"),
    ("note of another size", "UPDATE logs SET checkpoint = (SELECT note FROM checkpoints WHERE size = 1)", (), "served note"),
    ("merged row lost", "DELETE FROM contributions WHERE value = ?", (md5(1),), "merged list"),
    ("merged row never published", "INSERT INTO contributions (type, value, log, active, labels) VALUES ('md5', ?, 1, 1, 'x:1')", (md5(5),), "merged list"),
    ("merged row of another log", "INSERT INTO contributions (type, value, log, active, labels) VALUES ('md5', ?, 2, 1, 'x:1')", (md5(1),), "merged list"),
    ("removal undone", "UPDATE contributions SET active = 1, retracted = 0, labels = 'x:1' WHERE value = ?", (md5(0),), "merged list"),
    ("labels changed", "UPDATE contributions SET labels = 'x:2' WHERE value = ?", (md5(1),), "merged list"),
    ("opinion lost", "UPDATE contributions SET opinion = NULL WHERE value = ?", (md5(9),), "merged list"),
]


@pytest.mark.parametrize(("sql", "params", "message"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damage_is_caught(
    published: tuple[Path, Verifier], tmp_path: Path, sql: str, params: tuple[object, ...], message: str
) -> None:
    db, checker = _damaged(published, tmp_path, sql, *params)
    with pytest.raises(InvariantError, match=message):
        checker.check_store(db, "a")


def test_a_forged_note_is_caught(published: tuple[Path, Verifier], tmp_path: Path) -> None:
    other_key = Signer.from_seed(ORG, bytes(range(32))).verifier()  # same org, another key
    checker = Checker({ORG: other_key})
    with pytest.raises(InvariantError, match="does not verify"):
        checker.check_store(published[0], "a")


def test_two_roots_for_one_size_are_caught() -> None:
    history = History()
    history.observe("a.example/default", 3, b"\x01" * 32, "first")
    history.observe("a.example/default", 3, b"\x01" * 32, "again")
    with pytest.raises(InvariantError, match="two roots signed for a.example/default at size 3"):
        history.observe("a.example/default", 3, b"\x02" * 32, "later")
