"""``hashfed check`` and ``hashfed backup``: a healthy store passes, each kind of damage is
caught with a message that says where, the check writes nothing, and a backup taken while
another connection commits is a store that passes the check and that a home can run on."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from hashfed.federation.home import DB_FILE, open_home
from hashfed.federation.store import Store
from hashfed.federation.store.check import check_store
from hashfed.protocol.entries import Entry
from tests.helpers import Cli, db_snapshot, md5, pdq, stage_and_publish
from tests.integration.test_chaos import DAMAGE as CHAOS_DAMAGE

ORG = "a.example"
LOG = f"{ORG}/default"
PDQ_VALUE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with three published batches: adds, a remove, an opinion, PDQ values."""
    from hashfed.federation.cli import main

    home = tmp_path_factory.mktemp("check") / ORG
    assert main(["--home", str(home), "init", "--org", ORG]) == 0
    for n in range(2):
        assert main(["--home", str(home), "add", "md5", md5(n), "--label", "x:1"]) == 0
        assert main(["--home", str(home), "add", "pdq", pdq(n + 1)]) == 0
        assert main(["--home", str(home), "opinion", "md5", md5(9), "false_positive"]) == 0
        assert main(["--home", str(home), "publish"]) == 0
    assert main(["--home", str(home), "remove", "md5", md5(0)]) == 0
    assert main(["--home", str(home), "add", "pdq", PDQ_VALUE]) == 0
    assert main(["--home", str(home), "publish"]) == 0
    return home


@pytest.fixture
def home(published: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "checked" / ORG
    shutil.copytree(published, copy)
    return copy


def _sql(sql: str, *params: object) -> Callable[[sqlite3.Connection], None]:
    return lambda conn: conn.execute(sql, params)


def _flip_note(table: str, column: str, where: str) -> Callable[[sqlite3.Connection], None]:
    """One byte of a stored note changed: the first digit of its size line."""

    def damage(conn: sqlite3.Connection) -> None:
        (note,) = conn.execute(f"SELECT {column} FROM {table} WHERE {where}").fetchone()
        at = bytes(note).index(b"\n") + 1
        flipped = note[:at] + bytes([note[at] ^ 0x07]) + note[at + 1 :]
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (flipped,))

    return damage


def _pending_flipped(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE logs SET pending = (SELECT note FROM checkpoints WHERE size = 1)")
    _flip_note("logs", "pending", "id = 1")(conn)


# (name, damage, check that fails, the message)
DAMAGE: list[tuple[str, Callable[[sqlite3.Connection], None], str, str]] = [
    *[(name, _sql(sql, *params), "", message) for name, sql, params, message in CHAOS_DAMAGE],
    ("checkpoint note with a flipped byte", _flip_note("checkpoints", "note", "size = 2"), "signatures",
     f"{LOG} checkpoint 2: checkpoint does not verify"),
    ("served note with a flipped byte", _flip_note("logs", "checkpoint", "id = 1"), "signatures",
     f"{LOG} served: checkpoint does not verify"),
    ("pending note with a flipped byte",
     _pending_flipped,
     "signatures", f"{LOG} pending: checkpoint does not verify"),
    ("merged row missing", _sql("DELETE FROM contributions WHERE value = ?", md5(1)), "merged",
     f"merged list: md5 {md5(1)} of {LOG}: missing (§8 over the held batches gives (active, labels 'x:1', opinion None))"),
    ("merged row stale", _sql("UPDATE contributions SET active = 0, retracted = 1, labels = '' WHERE value = ?", md5(1)), "merged",
     f"merged list: md5 {md5(1)} of {LOG}: stored (retracted, labels '', opinion None), §8 gives (active, labels 'x:1', opinion None)"),
    ("pdq value missing", _sql("DELETE FROM pdq_values WHERE value = ?", bytes.fromhex(PDQ_VALUE)), "pdq_values",
     f"pdq_values: {PDQ_VALUE} of the merged list is missing"),
    ("pdq value never merged", _sql("INSERT INTO pdq_values (id, value) VALUES (99, ?)", bytes.fromhex(pdq(7))), "pdq_values",
     f"pdq_values: row 99 ({pdq(7)}) is no PDQ value of the merged list"),
    ("pdq value twice", _sql("INSERT INTO pdq_values (id, value) VALUES (99, ?)", bytes.fromhex(PDQ_VALUE)), "pdq_values",
     f"pdq_values: {PDQ_VALUE} is stored twice (rows 3 and 99)"),
    ("arrival missing", _sql("DELETE FROM arrivals WHERE idx = 1"), "arrivals",
     f"arrivals: batch 1 of {LOG} has no arrival"),
    ("arrival of no batch", _sql("INSERT INTO arrivals (seq, log, idx) VALUES (99, 1, 7)"), "arrivals",
     f"arrivals: row 99 is for batch 7 of {LOG}, not stored"),
    ("right edge changed", _sql("UPDATE logs SET held_edge = zeroblob(64)"), "roots",
     f"{LOG}: the stored right edge is not that of leaves 0..2"),
    ("checkpoint row root changed", _sql("UPDATE checkpoints SET root = zeroblob(32) WHERE size = 2"), "roots",
     f"{LOG}: checkpoint 2 disagrees with the leaves held"),
    ("batch of another index", _sql("UPDATE batches SET idx = 7 WHERE idx = 2"), "batches",
     f"{LOG}: batch indices are not exactly 0..2"),
    ("schema from the future", _sql("PRAGMA user_version = 99"), "schema", "schema version 99, this hashfed knows"),
]


def _damage(home: Path, damage: Callable[[sqlite3.Connection], None]) -> None:
    conn = sqlite3.connect(home / DB_FILE, isolation_level=None)
    try:
        conn.execute("BEGIN")
        damage(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_a_healthy_store_passes(home: Path, cli: Cli) -> None:
    code, out, err = cli("check", home=home)
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    assert lines[0] == f"store {home / DB_FILE}"
    assert [line.split()[:2] for line in lines[1:-1]] == [
        [name, "ok"] for name in
        ("schema", "batches", "roots", "signatures", "merged", "pdq_values", "pdq_index", "arrivals")
    ]
    assert lines[-1] == "all checks passed"
    code, out, _ = cli("check", "--json", home=home)
    report = json.loads(out)
    assert (code, report["ok"]) == (0, True)
    checked = {c["check"]: c["checked"] for c in report["checks"]}
    # 3 batches and leaves (+2 counts); 4 notes (served + 3 rows); 3 PDQ values x 3 queries
    assert checked["signatures"] == 4 and checked["arrivals"] == 3
    assert checked["pdq_index"] == 1 + 3 * 3


@pytest.mark.parametrize(("damage", "check", "message"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damage_is_caught(home: Path, cli: Cli, damage: Callable[[sqlite3.Connection], None], check: str, message: str) -> None:
    _damage(home, damage)
    before = db_snapshot(home / DB_FILE)
    code, out, err = cli("check", "--json", home=home)
    assert (code, err) == (1, "")
    report = json.loads(out)
    failed = [c for c in report["checks"] if not c["ok"]]
    problems = [p for c in failed for p in c["problems"]]
    assert any(message in p for p in problems), problems
    if check:
        assert failed[0]["check"] == check
    assert db_snapshot(home / DB_FILE) == before  # the check wrote nothing


def test_check_changes_nothing(home: Path, cli: Cli) -> None:
    files = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    before = db_snapshot(home / DB_FILE)
    cli.ok("check", home=home)
    assert db_snapshot(home / DB_FILE) == before
    assert (home / DB_FILE).read_bytes() == files[DB_FILE]


def test_a_log_whose_keys_are_gone_is_named(home: Path) -> None:
    report = check_store(home / DB_FILE, own_keys={})
    assert report.ok
    assert report.results["signatures"].warnings == [
        f"{LOG}: no key of {ORG} is held (a removed peer?): its 4 notes cannot be verified"
    ]


def test_problems_past_the_limit_are_counted(home: Path) -> None:
    _damage(home, _sql("DELETE FROM arrivals"))
    _damage(home, _sql("WITH RECURSIVE n(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM n WHERE i < 40)"
                       " INSERT INTO arrivals (log, idx) SELECT 1, i FROM n"))
    result = check_store(home / DB_FILE, own_keys={}).results["arrivals"]
    assert (len(result.problems), result.unlisted) == (20, 3 + 31 - 20)


def test_check_of_a_missing_store_is_a_usage_error(tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli("check", "--db", str(tmp_path / "nothing.db"))
    assert (code, err) == (2, f"hashfed: error: no store at {tmp_path / 'nothing.db'}\n")


def test_check_on_a_live_store(home: Path, cli: Cli) -> None:
    """Checks while another connection publishes in a loop: each sees one snapshot."""
    stop = threading.Event()
    published = [0]

    def writer() -> None:
        node = open_home(home)
        n = 100
        while not stop.is_set():
            stage_and_publish(node, [Entry("add", "md5", md5(n), ("y:1",), None)])
            n += 1
            published[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(5):
            code, out, _ = cli("check", home=home)
            assert code == 0, out
    finally:
        stop.set()
        thread.join()
    assert published[0] > 0
    cli.ok("check", home=home)


# -- backup ----------------------------------------------------------------------------------


def test_backup_while_another_connection_commits(home: Path, tmp_path: Path, cli: Cli) -> None:
    stop = threading.Event()
    commits = [0]
    started = threading.Event()

    def writer() -> None:
        node = open_home(home)
        n = 1000
        while not stop.is_set():
            stage_and_publish(node, [Entry("add", "md5", md5(n), (), None) for n in range(n, n + 50)])
            n += 50
            commits[0] += 1
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(30)
        copy = tmp_path / "backups" / "node.db"
        copy.parent.mkdir()
        out = cli.ok("backup", str(copy), home=home)
        assert out.startswith(f"backed up {home / DB_FILE} to {copy} (")
        assert commits[0] > 0
    finally:
        stop.set()
        thread.join()
    assert copy.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in copy.parent.iterdir()) == ["node.db"]  # no temp, no -wal
    cli.ok("check", "--db", str(copy), home=home)

    # Restoring: a home pointed at the copy runs on it.
    restored = tmp_path / "restored"
    shutil.copytree(home, restored)
    for leftover in restored.glob(f"{DB_FILE}*"):
        leftover.unlink()
    shutil.copy(copy, restored / DB_FILE)
    cli.ok("check", home=restored)
    cli.ok("add", "md5", md5(5000), home=restored)
    cli.ok("publish", home=restored)
    cli.ok("check", home=restored)


def test_backup_refuses_to_overwrite(home: Path, tmp_path: Path, cli: Cli) -> None:
    target = tmp_path / "b.db"
    target.write_bytes(b"keep me")
    code, _, err = cli("backup", str(target), home=home)
    assert (code, err) == (2, f"hashfed: error: {target} exists; pass --force to replace it\n")
    assert target.read_bytes() == b"keep me"
    cli.ok("backup", str(target), "--force", home=home)
    with Store(target) as store:
        assert store.logs.get(LOG).size == 3  # type: ignore[union-attr]
