"""store/indicators.py: what TAXII serves is folded in from the served batches off the
commit path, when it is read, in slices of bounded size; any schedule of folds gives the
same table; held batches are never folded; an upgraded store is folded on first read."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.federation.store import Store
from hashfed.federation.store.indicators import FOLD_SLICE_BATCHES
from hashfed.federation.store.migrations import MIGRATIONS
from hashfed.keys import Signer
from hashfed.keys.errors import StoreError
from hashfed.protocol.batch import Batch, decode_batch, encode_batch
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.logview import VerifiedPage
from hashfed.protocol.merkle import leaf_hash
from tests.helpers import FIXED_NOW, md5

ORG = "a.example"
LOG = f"{ORG}/default"
SIGNER = Signer.from_seed(ORG, bytes(range(32)))
NOW = "2026-11-30T05:00:00Z"


def make_batch(index: int, entries: list[Entry]) -> Batch:
    data = encode_batch(org=ORG, collection="default", index=index, created=FIXED_NOW, entries=entries)
    return decode_batch(data, org=ORG, collection="default", index=index)


def hold(store: Store, entry_lists: list[list[Entry]]) -> None:
    """Store batches past what is served, as a pull or push part-way leaves them."""
    with store.transaction():
        log = store.logs.ensure(ORG, "default")
        batches = [make_batch(log.held + i, entries) for i, entries in enumerate(entry_lists)]
        edge = log.held_edge.copy()
        leaves = []
        for b in batches:
            leaves.append(leaf_hash(b.data))
            edge.append(leaves[-1])
        store.logs.commit_page(LOG, VerifiedPage(tuple(batches), tuple(leaves), edge), now=NOW)


def serve(store: Store, entry_lists: list[list[Entry]]) -> None:
    """Store batches and serve them, as a completed pull, push or publish does."""
    if entry_lists:
        hold(store, entry_lists)
    with store.transaction():
        log = store.logs.get(LOG)
        assert log is not None
        cp = Checkpoint(origin=LOG, size=log.held, root=log.held_edge.root())
        store.logs.accept_checkpoint(log, cp, sign_checkpoint(cp, [SIGNER]))


def log_row(store: Store) -> int:
    log = store.logs.get(LOG)
    assert log is not None
    return log.id


def table(store: Store) -> list[tuple]:
    return store.conn.execute("SELECT * FROM indicators ORDER BY log, added_us").fetchall()


def count(store: Store, table_name: str) -> int:
    return store.conn.execute(f"SELECT count(*) FROM {table_name}").fetchone()[0]


def catch_up(store: Store, *, max_batches: int = FOLD_SLICE_BATCHES) -> None:
    log = store.logs.get(LOG)
    assert log is not None
    while store.indicators.folded(log.id) < log.size:
        store.indicators.fold_slice(log.id, max_batches=max_batches)


def one_add(i: int) -> list[Entry]:
    return [Entry.add("md5", md5(i), [f"x:{i}"])]


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "hashfed.db") as store:
        yield store


def test_serving_batches_commits_no_indicator_rows(store: Store) -> None:
    serve(store, [one_add(i) for i in range(3)])
    serve(store, [one_add(3)])
    assert (count(store, "indicators"), count(store, "taxii_progress")) == (0, 0)
    assert store.indicators.folded(log_row(store)) == 0


def test_fold_slice_folds_at_most_max_batches_each_in_its_own_transaction(store: Store) -> None:
    serve(store, [one_add(i) for i in range(10)])
    log = log_row(store)
    steps = []
    for _ in range(4):
        steps.append((store.indicators.fold_slice(log, max_batches=4), count(store, "indicators")))
        assert not store.conn.in_transaction
    assert steps == [(4, 4), (8, 8), (10, 10), (10, 10)]
    assert store.indicators.folded(log) == 10


def test_held_batches_past_the_served_checkpoint_are_never_folded(store: Store) -> None:
    serve(store, [one_add(0), one_add(1)])
    hold(store, [one_add(2), one_add(3)])
    log = log_row(store)
    assert store.indicators.fold_slice(log, max_batches=100) == 2
    assert sorted(row[2] for row in table(store)) == [md5(0), md5(1)]
    serve(store, [])  # the held batches become served: the next read folds them
    assert store.indicators.fold_slice(log, max_batches=100) == 4
    assert count(store, "indicators") == 4


FOLD_REFUSALS = {
    "no batches": ({"log": 1, "max_batches": 0}, ValueError, "max_batches must be at least 1, not 0"),
    "unknown log": ({"log": 99}, StoreError, "no log with row id 99"),
}


@pytest.mark.parametrize("name", list(FOLD_REFUSALS), ids=list(FOLD_REFUSALS))
def test_fold_slice_refusals(store: Store, name: str) -> None:
    serve(store, [one_add(0)])
    kwargs, error, message = FOLD_REFUSALS[name]
    log = kwargs.pop("log")
    with pytest.raises(error) as caught:
        store.indicators.fold_slice(log, **kwargs)
    assert str(caught.value) == message
    assert count(store, "indicators") == 0 and count(store, "taxii_progress") == 0


_ENTRY = st.builds(
    lambda op, i, labels: Entry.add("md5", md5(i), labels) if op else Entry.remove("md5", md5(i)),
    st.booleans(),
    st.integers(0, 4),
    st.sampled_from([(), ("x:1",), ("x:1", "y:2")]),
)


@settings(max_examples=30, deadline=None)
@given(
    batches=st.lists(st.tuples(st.lists(_ENTRY, min_size=1, max_size=6), st.booleans()), min_size=1, max_size=8),
    slice_batches=st.integers(1, 3),
    final_slice=st.integers(1, 9),
)
def test_any_schedule_of_folds_gives_the_table_of_one_fold_at_the_end(
    batches: list[tuple[list[Entry], bool]], slice_batches: int, final_slice: int
) -> None:
    """Folding as batches are served (what the commit path did) or long after, in any
    slices, makes the same versions, ids and times: the table is a function of the
    served batches."""
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "hashfed.db") as store:
        for entries, fold_now in batches:
            serve(store, [entries])
            if fold_now:
                catch_up(store, max_batches=slice_batches)
        catch_up(store, max_batches=slice_batches)
        interleaved = table(store)
        with store.transaction() as conn:
            conn.execute("DELETE FROM indicators")
            conn.execute("DELETE FROM taxii_progress")
        catch_up(store, max_batches=final_slice)
        assert table(store) == interleaved


def test_migration_3_builds_from_a_version_2_store_and_folds_on_first_read(tmp_path: Path) -> None:
    path = tmp_path / "hashfed.db"
    with Store(path) as store:
        serve(store, [one_add(0), [Entry.remove("md5", md5(0)), *one_add(1)]])
        catch_up(store)
        expected = table(store)
    # What version 2 left: none of migration 3's tables.
    conn = sqlite3.connect(path, isolation_level=None)
    for name in ("reader_tokens", "indicators", "taxii_progress"):
        conn.execute(f"DROP TABLE {name}")
    conn.execute("PRAGMA user_version = 2")
    conn.close()

    with Store(path) as upgraded:
        assert upgraded.conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert (count(upgraded, "indicators"), count(upgraded, "taxii_progress")) == (0, 0)
        catch_up(upgraded)
        assert table(upgraded) == expected
        assert [(row[2], row[6]) for row in expected] == [(md5(0), 1), (md5(1), 0)]  # revoked, active
