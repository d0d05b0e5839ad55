"""The SQLite store: schema migrations, pragmas, transactions, and the guards that keep a
log append-only and its checkpoints single-rooted (PROTOCOL §5, §7).

Every refusal is a named row that asserts the exact error and that no table changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from hashfed.federation.publish import publish
from hashfed.federation.store import Store, WrongStart, migrations
from hashfed.federation.store.migrations import MIGRATIONS
from hashfed.keys import Signer
from hashfed.keys.errors import ConfigError, ProtocolError, StoreError
from hashfed.protocol.batch import Batch, decode_batch, encode_batch
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.logview import VerifiedPage
from hashfed.protocol.merkle import EMPTY_ROOT, CompactRange, leaf_hash, root_hash
from tests.helpers import FIXED_NOW, db_snapshot, md5, pdq

NOW = "2026-11-30T05:00:00Z"

ORG = "a.example"
LOG = "a.example/default"
SIGNER = Signer.from_seed(ORG, bytes(range(32)))
OTHER = Signer.from_seed("b.example", bytes(range(1, 33)))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "hashfed.db"


@pytest.fixture
def store(path: Path):
    with Store(path) as store:
        yield store


def batch(index: int, *, org: str = ORG, collection: str = "default", n: int = 2) -> Batch:
    data = encode_batch(
        org=org,
        collection=collection,
        index=index,
        created=FIXED_NOW,
        entries=[Entry.add("md5", md5(index * 100 + i), [f"b:{index}"]) for i in range(n)],
    )
    return decode_batch(data, org=org, collection=collection, index=index)


def extend(edge: CompactRange, batches: list[Batch]) -> tuple[list[bytes], CompactRange]:
    leaves = [leaf_hash(b.data) for b in batches]
    edge = edge.copy()
    for leaf in leaves:
        edge.append(leaf)
    return leaves, edge


def page(batches: list[Batch], leaves: list[bytes], edge: CompactRange) -> VerifiedPage:
    return VerifiedPage(tuple(batches), tuple(leaves), edge)


def append(store: Store, batches: list[Batch], *, log_id: str = LOG):
    with store.transaction():
        log = store.logs.ensure(*log_id.split("/"))
        leaves, edge = extend(log.held_edge, batches)
        return store.logs.commit_page(log.log_id, page(batches, leaves, edge), now=NOW)


def checkpoint(
    size: int, root: bytes, *, origin: str = LOG, signer: Signer = SIGNER
) -> tuple[Checkpoint, bytes]:
    cp = Checkpoint(origin=origin, size=size, root=root)
    return cp, sign_checkpoint(cp, [signer])


def accept(store: Store, cp: Checkpoint, note: bytes, *, log_id: str = LOG):
    with store.transaction():
        log = store.logs.get(log_id)
        assert log is not None
        return store.logs.accept_checkpoint(log, cp, note)


# -- schema and pragmas -----------------------------------------------------------------


def test_fresh_store_gets_the_newest_schema(store: Store) -> None:
    assert store.conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"logs", "batches", "checkpoints", "contributions", "staged", "peers", "grants"} <= tables
    # No derivable state: the served tree's right edge is the held one at `size`.
    assert [r[1] for r in store.conn.execute("PRAGMA table_info(logs)")] == [
        "id", "org", "collection", "own", "size", "root", "checkpoint", "held", "held_edge", "pending"
    ]


def test_reopening_keeps_data_and_runs_no_migration_twice(path: Path) -> None:
    with Store(path) as store, store.transaction():
        store.staging.stage("default", [Entry.add("md5", md5(1))])
    before = db_snapshot(path)
    with Store(path):
        pass
    assert db_snapshot(path) == before


def test_pragmas(store: Store) -> None:
    """WAL for concurrent readers; synchronous FULL so that a commit is durable when it
    returns: the publisher signs a tree only after its leaves are committed (PROTOCOL §5),
    and WAL's NORMAL could lose such a commit in a power cut."""
    assert store.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store.conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert store.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_a_store_from_a_newer_hashfed_is_refused_untouched(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE future (x)")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.commit()
    conn.close()
    before = db_snapshot(path)

    with pytest.raises(StoreError, match=f"schema version {len(MIGRATIONS) + 1}, newer than"):
        Store(path)
    assert db_snapshot(path) == before


def test_a_file_that_is_not_a_database_is_refused(path: Path) -> None:
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(path)
    assert path.read_bytes() == b"this is not SQLite" * 100


def test_a_failing_migration_leaves_the_old_version(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration and its version bump are one transaction: half a migration never lands."""
    Store(path).close()
    before = db_snapshot(path)

    def broken(db) -> None:  # type: ignore[no-untyped-def]
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("migration 2 failed")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(RuntimeError, match="migration 2 failed"):
        Store(path)
    assert db_snapshot(path) == before


# -- transactions -----------------------------------------------------------------------


def test_a_transaction_rolls_back_on_error(path: Path, store: Store) -> None:
    before = db_snapshot(path)
    with pytest.raises(KeyError), store.transaction():
        store.staging.stage("default", [Entry.add("md5", md5(1))])
        store.logs.ensure(ORG, "default", own=True)
        raise KeyError("boom")
    assert db_snapshot(path) == before
    with store.transaction():  # and the connection is usable again
        store.staging.stage("default", [Entry.add("md5", md5(2))])
    assert [e.value for _, e in store.staging.page("default", 10)] == [md5(2)]


def test_nested_transactions_are_refused(path: Path, store: Store) -> None:
    before = db_snapshot(path)
    with pytest.raises(StoreError, match="nested transaction"), store.transaction():
        store.staging.stage("default", [Entry.add("md5", md5(1))])
        with store.transaction():
            pass
    assert db_snapshot(path) == before


def _deferred_foreign_key(store: Store) -> None:
    # Checked at COMMIT, which fails and leaves the transaction open (SQLite's rule).
    store.conn.execute("PRAGMA defer_foreign_keys = ON")
    store.conn.execute("INSERT INTO batches (log, idx, data) VALUES (999, 0, x'00')")


def _trigger_rolls_back(store: Store) -> None:
    # RAISE(ROLLBACK) ends the transaction inside SQLite before the error reaches us.
    store.conn.execute(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON staged BEGIN SELECT RAISE(ROLLBACK, 'refused'); END"
    )
    store.staging.stage("default", [Entry.add("md5", md5(1))])


FAILING_TRANSACTIONS: list[tuple[str, Callable[[Store], None], type[Exception], str]] = [
    ("COMMIT fails on a deferred foreign key", _deferred_foreign_key, sqlite3.IntegrityError, "FOREIGN KEY constraint failed"),
    ("SQLite already rolled back", _trigger_rolls_back, sqlite3.IntegrityError, "refused"),
]


@pytest.mark.parametrize(
    ("work", "error", "message"), [c[1:] for c in FAILING_TRANSACTIONS], ids=[c[0] for c in FAILING_TRANSACTIONS]
)
def test_a_failed_transaction_ends_and_raises_its_own_error(
    path: Path, store: Store, work: Callable[[Store], None], error: type[Exception], message: str
) -> None:
    """The error raised is the one that failed the transaction (not a ROLLBACK's "no
    transaction is active"), and the transaction is over: no write lock kept, and the
    next transaction on the same connection is not "nested"."""
    append(store, [batch(0)])
    before = db_snapshot(path)
    with pytest.raises(sqlite3.Error) as caught, store.transaction():
        work(store)
    assert type(caught.value) is error
    assert message in str(caught.value)
    assert not store.conn.in_transaction
    assert db_snapshot(path) == before
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock is free
        other.execute("ROLLBACK")
    finally:
        other.close()
    store.conn.execute("DROP TRIGGER IF EXISTS temp.refuse")
    log = append(store, [batch(1)])
    assert log.held == 2


def test_a_failed_page_stores_nothing(path: Path, store: Store) -> None:
    """A page whose merge fails half-way leaves no batch, no entry and no tree state."""
    append(store, [batch(0)])
    before = db_snapshot(path)
    good = batch(1)
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        log = store.logs.get(LOG)
        leaves, edge = extend(log.held_edge, [good])
        store.logs.commit_page(LOG, page([good], leaves, edge), now=NOW)
        store.conn.execute("INSERT INTO batches (log, idx, data) VALUES (?, 0, x'')", (log.id,))
    assert db_snapshot(path) == before


# -- commit_page: a log only grows at its end -------------------------------------------


def test_append_stores_bytes_verbatim_and_merges(store: Store) -> None:
    log = append(store, [batch(0), batch(1)])
    assert (log.held, log.size, log.checkpoint) == (2, 0, None)
    assert list(store.logs.iter_batches(log, 0, 99)) == [batch(0).data, batch(1).data]
    assert store.logs.leaf_hashes(log, 2) == [leaf_hash(batch(0).data), leaf_hash(batch(1).data)]
    assert store.logs.root_at(log, 2) == root_hash(store.logs.leaf_hashes(log, 2))
    assert store.logs.root_at(log, 0) == EMPTY_ROOT
    assert [r.value for r in store.merged.records()] == [md5(0), md5(1), md5(100), md5(101)]
    log = append(store, [batch(2)])
    assert log.held == 3
    assert append(store, []) == log  # an empty page changes nothing


def test_root_at_an_accepted_size_reads_its_checkpoint_not_the_leaves(store: Store) -> None:
    """Gossip asks for our root at a smaller size for every checkpoint it sees: the row of
    ``checkpoints`` where we accepted that size, the leaf hashes only for other sizes."""
    log = append(store, [batch(0)])
    one = accept(store, *checkpoint(1, log.held_edge.root()))
    log = append(store, [batch(1), batch(2)])
    log = accept(store, *checkpoint(3, log.held_edge.root()))
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        assert store.logs.root_at(log, 1) == one.root
        assert not any("leaves" in s for s in statements), statements
        assert store.logs.root_at(log, 2) == root_hash([leaf_hash(batch(i).data) for i in range(2)])
        assert any("FROM leaves" in s for s in statements), statements
    finally:
        store.conn.set_trace_callback(None)


def test_pending_is_the_note_held_pages_were_proven_against(store: Store) -> None:
    """Set by a pulled or pushed page, kept by an own publish's append (which signs
    afterwards), cleared when a checkpoint is served for every leaf held."""
    _, note = checkpoint(3, root_hash([leaf_hash(batch(i).data) for i in range(3)]))
    with store.transaction():
        log = store.logs.ensure(ORG, "default")
        assert log.pending is None
        leaves, edge = extend(log.held_edge, [batch(0)])
        log = store.logs.commit_page(log.log_id, page([batch(0)], leaves, edge), now=NOW, proven_by=note)
    assert (log.held, log.size, log.pending) == (1, 0, note)
    log = append(store, [batch(1)])
    assert log.pending == note
    with store.transaction():
        leaves, edge = extend(log.held_edge, [batch(2)])
        log = store.logs.commit_page(log.log_id, page([batch(2)], leaves, edge), now=NOW, proven_by=note)
    log = accept(store, *checkpoint(3, log.held_edge.root()))
    assert (log.held, log.size, log.pending) == (3, 3, None)


def _wrong_start(log, edge):  # type: ignore[no-untyped-def]
    batches = [batch(2)]
    return batches, *extend(edge, batches)


def _gap(log, edge):  # type: ignore[no-untyped-def]
    batches = [batch(1), batch(3)]
    leaves, new_edge = extend(edge, batches)
    return batches, leaves, new_edge


def _other_log(log, edge):  # type: ignore[no-untyped-def]
    batches = [batch(1, org="b.example")]
    return batches, *extend(edge, batches)


def _other_collection(log, edge):  # type: ignore[no-untyped-def]
    batches = [batch(1, collection="csam")]
    return batches, *extend(edge, batches)


def _short_edge(log, edge):  # type: ignore[no-untyped-def]
    batches = [batch(1), batch(2)]
    leaves, _ = extend(edge, batches)
    _, one = extend(edge, batches[:1])
    return batches, leaves, one


def _foreign_edge(log, edge):  # type: ignore[no-untyped-def]
    batches = [batch(1)]
    leaves, _ = extend(edge, batches)
    _, other = extend(edge, [batch(1, n=3)])
    return batches, leaves, other


def _missing_leaf(log, edge):  # type: ignore[no-untyped-def]
    batches = [batch(1), batch(2)]
    leaves, new_edge = extend(edge, batches)
    return batches, leaves[:1], new_edge


BAD_PAGES: list[tuple[str, Callable, str]] = [
    ("starts past the end", _wrong_start, "the page starts at 2, this node holds 1 batches"),
    ("skips an index", _gap, "batch 1 of the page is leaf 3 of a.example/default, expected leaf 2"),
    (
        "another org's batch",
        _other_log,
        "is leaf 1 of b.example/default, expected leaf 1 of a.example/default",
    ),
    ("another collection's batch", _other_collection, "is leaf 1 of a.example/csam"),
    ("right edge too short", _short_edge, "right edge of size 2, store holds 1"),
    ("right edge of other leaves", _foreign_edge, "right edge does not extend the stored tree"),
    ("a leaf hash missing", _missing_leaf, "2 batches with 1 leaf hashes"),
]


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in BAD_PAGES], ids=[c[0] for c in BAD_PAGES])
def test_append_refuses_a_page_that_does_not_extend_the_log(
    path: Path, store: Store, make: Callable, message: str
) -> None:
    append(store, [batch(0)])
    before = db_snapshot(path)
    with pytest.raises(StoreError) as caught, store.transaction():
        log = store.logs.get(LOG)
        batches, leaves, edge = make(log, log.held_edge)
        store.logs.commit_page(LOG, page(batches, leaves, edge), now=NOW)
    assert message in str(caught.value)
    assert db_snapshot(path) == before


# -- accept_checkpoint: one root per size, only for the tree held -------------------------


def test_accept_checkpoint_moves_the_served_view(store: Store) -> None:
    log = append(store, [batch(0), batch(1)])
    cp, note = checkpoint(2, log.held_edge.root())
    log = accept(store, cp, note)
    assert (log.size, log.root, log.checkpoint, log.held, log.pending) == (2, cp.root, note, 2, None)
    # ... and it is recorded in the history of checkpoints, one per size.
    assert store.conn.execute("SELECT log, size, root, note FROM checkpoints").fetchall() == [
        (log.id, 2, cp.root, note)
    ]
    assert [x.log_id for x in store.logs.served()] == [LOG]
    assert accept(store, cp, note) == log  # the same checkpoint again: no change


def _cp_too_small(store: Store, log) -> tuple[Checkpoint, bytes]:  # type: ignore[no-untyped-def]
    return checkpoint(1, store.logs.root_at(log, 1))


def _cp_too_big(store: Store, log) -> tuple[Checkpoint, bytes]:  # type: ignore[no-untyped-def]
    return checkpoint(3, log.held_edge.root())


def _cp_second_root(store: Store, log) -> tuple[Checkpoint, bytes]:  # type: ignore[no-untyped-def]
    return checkpoint(2, bytes(32))


def _cp_other_log(store: Store, log) -> tuple[Checkpoint, bytes]:  # type: ignore[no-untyped-def]
    return checkpoint(2, log.held_edge.root(), origin="b.example/default", signer=OTHER)


BAD_CHECKPOINTS = [
    ("a size below what is held", _cp_too_small, "checkpoint for size 1, store holds 2"),
    ("a size above what is held", _cp_too_big, "checkpoint for size 3, store holds 2"),
    ("a second root for a signed size", _cp_second_root, "checkpoint root differs from the stored tree"),
    ("another log's checkpoint", _cp_other_log, "refusing a checkpoint of b.example/default"),
]


@pytest.mark.parametrize(
    ("make", "message"), [c[1:] for c in BAD_CHECKPOINTS], ids=[c[0] for c in BAD_CHECKPOINTS]
)
def test_accept_checkpoint_refuses(path: Path, store: Store, make: Callable, message: str) -> None:
    log = append(store, [batch(0), batch(1)])
    accept(store, *checkpoint(2, log.held_edge.root()))
    before = db_snapshot(path)
    with pytest.raises(StoreError, match=message):
        accept(store, *make(store, store.logs.get(LOG)))
    assert db_snapshot(path) == before


def test_accept_checkpoint_refuses_a_root_that_contradicts_the_history(path: Path, store: Store) -> None:
    """Belt and braces: even were the held tree somehow to disagree with a checkpoint
    recorded for the same size, no second root is recorded for it."""
    log = append(store, [batch(0)])
    with store.transaction():
        store.conn.execute(
            "INSERT INTO checkpoints (log, size, root, note) VALUES (?, 1, ?, x'00')", (log.id, bytes(32))
        )
    before = db_snapshot(path)
    with pytest.raises(StoreError, match="refusing a second root for size 1"):
        accept(store, *checkpoint(1, log.held_edge.root()))
    assert db_snapshot(path) == before


# -- staging -----------------------------------------------------------------------------


def test_staging_keeps_order_per_collection(store: Store) -> None:
    entries = [
        Entry.add("md5", md5(1), ["x:1", "y:2"]),
        Entry.remove("md5", md5(2)),
        Entry.opine("md5", md5(3), "false_positive"),
    ]
    with store.transaction():
        assert store.staging.stage("default", entries) == 3
        assert store.staging.stage("csam", [Entry.add("md5", md5(9))]) == 1
    assert store.staging.collections() == [("csam", 1), ("default", 3)]
    staged = store.staging.page("default", 10)
    assert [e for _, e in staged] == entries
    assert [seq for seq, _ in staged] == sorted(seq for seq, _ in staged)
    assert store.staging.page("default", 2) == staged[:2]
    with store.transaction():
        store.staging.unstage("default", staged[1][0])
    assert [e for _, e in store.staging.page("default", 10)] == entries[2:]
    assert store.staging.collections() == [("csam", 1), ("default", 1)]


BAD_STAGING = [
    ("bad collection", "No-Caps", [Entry.add("md5", md5(1))], "bad collection 'No-Caps'"),
    ("unnormalised value", "default", [Entry("add", "md5", "AB" * 16, (), None)], "entry 0: bad"),
    (
        "unknown hash type",
        "default",
        [Entry("add", "tlsh", md5(1), (), None)],
        "entry 0: unknown hash type 'tlsh'",
    ),
    (
        "unsorted labels",
        "default",
        [Entry("add", "md5", md5(1), ("z:1", "a:1"), None)],
        "labels must be sorted",
    ),
    (
        "second entry bad",
        "default",
        [Entry.add("md5", md5(1)), Entry("remove", "md5", md5(2), (), "true_positive")],
        "entry 1: a 'remove' entry has no opinion",
    ),
]


@pytest.mark.parametrize(
    ("collection", "entries", "message"), [c[1:] for c in BAD_STAGING], ids=[c[0] for c in BAD_STAGING]
)
def test_staging_refuses_entries_no_batch_could_hold(
    path: Path, store: Store, collection: str, entries: list[Entry], message: str
) -> None:
    """Checked when staged, so one bad entry cannot block every later publish."""
    before = db_snapshot(path)
    with pytest.raises(ProtocolError) as caught, store.transaction():
        store.staging.stage(collection, entries)
    assert message in str(caught.value)
    assert db_snapshot(path) == before


# -- peers, grants, status, evidence -------------------------------------------------------


def add_peer(store: Store, org: str = "b.example", vkeys: list[str] | None = None) -> None:
    store.peers.add(
        org,
        url="http://127.0.0.1:1",
        vkeys=[OTHER.vkey()] if vkeys is None else vkeys,
        accept_push=False,
        ca_file=None,
        now="2026-11-26T00:00:00Z",
    )


def test_peers_and_grants_make_the_trust_store(store: Store) -> None:
    add_peer(store)
    store.peers.grant("b.example", LOG)
    trust = store.peers.trust_store([SIGNER])
    assert trust.verifiers_for("b.example") == (OTHER.verifier(),)
    assert trust.verifiers_for(ORG) == (SIGNER.verifier(),)
    assert trust.may_read("b.example", LOG)
    assert trust.get("b.example").readable == frozenset({LOG})

    rotated = Signer.from_seed("b.example", bytes(32))
    add_peer(store, vkeys=[rotated.vkey(), OTHER.vkey()])  # keys are replaced, grants kept
    assert set(store.peers.trust_store().verifiers_for("b.example")) == {rotated.verifier(), OTHER.verifier()}
    add_peer(store, vkeys=[rotated.vkey()])  # the old key retired
    assert store.peers.trust_store().verifiers_for("b.example") == (rotated.verifier(),)
    assert store.peers.trust_store().may_read("b.example", LOG)
    store.peers.revoke("b.example", LOG)
    assert not store.peers.trust_store().may_read("b.example", LOG)
    store.peers.remove("b.example")
    assert store.peers.trust_store().get("b.example") is None


BAD_PEER_CHANGES: list[tuple[str, Callable[[Store], None], type[Exception], str]] = [
    ("bad org", lambda s: add_peer(s, org="B_EXAMPLE"), ProtocolError, "bad org id 'B_EXAMPLE'"),
    (
        "malformed vkey",
        lambda s: add_peer(s, vkeys=["b.example+zz+not-a-key"]),
        ConfigError,
        "peer b.example: bad key",
    ),
    (
        "key of another org",
        lambda s: add_peer(s, vkeys=[SIGNER.vkey()]),
        ConfigError,
        "the key is for 'a.example'",
    ),
    ("no key", lambda s: add_peer(s, vkeys=[]), ConfigError, "at least one --key"),
    ("remove unknown peer", lambda s: s.peers.remove("c.example"), ConfigError, "no peer c.example"),
    ("grant a bad log id", lambda s: s.peers.grant("b.example", "a.example"), ProtocolError, "bad log id"),
    (
        "revoke what was never granted",
        lambda s: s.peers.revoke("b.example", "a.example/csam"),
        ConfigError,
        "has no grant",
    ),
]


@pytest.mark.parametrize(
    ("change", "error", "message"), [c[1:] for c in BAD_PEER_CHANGES], ids=[c[0] for c in BAD_PEER_CHANGES]
)
def test_bad_peer_changes_are_refused(
    path: Path, store: Store, change: Callable[[Store], None], error: type[Exception], message: str
) -> None:
    add_peer(store)
    store.peers.grant("b.example", LOG)
    before = db_snapshot(path)
    with pytest.raises(error) as caught:
        change(store)
    assert type(caught.value) is error
    assert message in str(caught.value)
    assert db_snapshot(path) == before


def test_pull_status_counts_failures_and_keeps_the_last_success(store: Store) -> None:
    store.peers.note_pull("b.example", now="t1", error=None)
    store.peers.note_pull("b.example", now="t2", error="timeout")
    store.peers.note_pull("b.example", now="t3", error="refused")
    status = store.peers.status()["b.example"]
    assert (status.last_attempt, status.last_success, status.last_error, status.failures) == (
        "t3",
        "t1",
        "refused",
        2,
    )
    store.peers.note_pull("b.example", now="t4", error=None)
    status = store.peers.status()["b.example"]
    assert (status.last_success, status.last_error, status.failures) == ("t4", None, 0)


def test_evidence_is_kept_once(store: Store) -> None:
    kwargs = dict(log_id=LOG, kind="equivocation", size=2, ours=b"one", theirs=b"two", detail="d")
    assert store.evidence.record(**kwargs, source="http://x", now="t1") is True
    assert store.evidence.record(**kwargs, source="http://y", now="t2") is False
    assert store.evidence.record(**{**kwargs, "theirs": b"three"}, source="http://y", now="t3") is True
    assert [(e.theirs, e.source, e.detected_at) for e in store.evidence.all()] == [
        (b"two", "http://x", "t1"),
        (b"three", "http://y", "t3"),
    ]


def test_trust_store_is_kept_until_the_database_changes(store: Store, path: Path) -> None:
    """Built once per change, not once per request or per log; a change from this
    connection or from another one (the CLI) applies at the next call."""
    from hashfed.keys import Signer

    peer = Signer.from_seed("b.example", bytes(32)).vkey()
    first = store.peers.trust_store()
    assert store.peers.trust_store() is first  # unchanged: the same object, no queries
    store.peers.add("b.example", url=None, vkeys=[peer], accept_push=False, ca_file=None, now="x")
    own_edit = store.peers.trust_store()
    assert own_edit is not first and own_edit.get("b.example") is not None
    with Store(path) as other:  # as `hashfed grant` from another process does
        other.peers.grant("b.example", "a.example/default")
    assert store.peers.trust_store().may_read("b.example", "a.example/default")


def test_a_page_behind_what_is_held_is_a_wrong_start(path: Path, store: Store) -> None:
    """Another writer stored the page first: the typed error says where the log is (the
    puller takes it as overtaken, the push handler answers 409 with that size)."""
    append(store, [batch(0), batch(1)])
    before = db_snapshot(path)
    leaves, edge = extend(CompactRange(), [batch(0)])
    with pytest.raises(WrongStart) as caught, store.transaction():
        store.logs.commit_page(LOG, page([batch(0)], leaves, edge), now=NOW)
    assert (caught.value.start, caught.value.held) == (0, 2)
    assert db_snapshot(path) == before


def test_migration_4_drops_the_unique_index_of_pdq_values_and_keeps_every_id(path: Path) -> None:
    """Version 3's pdq_values had a UNIQUE index on the value; version 4 has none (the
    writer keeps each value once) and keeps every row and id, which a running index tails."""
    signer = Signer.from_seed(ORG, bytes(32))
    store = Store(path)
    with store.transaction():
        store.staging.stage("default", [Entry.add("pdq", pdq(n)) for n in range(3)])
    publish(store, [signer], now=FIXED_NOW)
    rows = store.conn.execute("SELECT id, value FROM pdq_values ORDER BY id").fetchall()
    # What version 3 left: the same rows, with the UNIQUE index.
    store.conn.execute("DROP TABLE pdq_values")
    store.conn.execute("CREATE TABLE pdq_values (id INTEGER PRIMARY KEY, value BLOB NOT NULL UNIQUE)")
    store.conn.executemany("INSERT INTO pdq_values (id, value) VALUES (?, ?)", [(i + 10, v) for i, v in rows])
    store.conn.execute("PRAGMA user_version = 3")
    store.close()

    with Store(path) as upgraded:
        conn = upgraded.conn
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert conn.execute("PRAGMA index_list(pdq_values)").fetchall() == []
        assert conn.execute("SELECT id, value FROM pdq_values ORDER BY id").fetchall() == [
            (i + 10, v) for i, v in rows
        ]
        assert [value for _d, value in upgraded.merged.pdq.search(conn, [pdq(1)], 0)[0]] == [pdq(1)]


def test_a_pdq_value_enters_pdq_values_once_however_many_logs_and_pages_carry_it(path: Path) -> None:
    signer = Signer.from_seed(ORG, bytes(32))
    with Store(path) as store:
        pages = [
            [Entry.add("pdq", pdq(1), ["x:1"]), Entry.add("pdq", pdq(2))],
            # pdq(1) again in a later page, and twice in this one
            [Entry.add("pdq", pdq(1), ["x:2"]), Entry.opine("pdq", pdq(1), "false_positive")],
            [Entry.remove("pdq", pdq(1)), Entry.opine("pdq", pdq(3), "false_positive")],
        ]
        for page in pages:
            with store.transaction():
                store.staging.stage("default", page)
            publish(store, [signer], now=FIXED_NOW)
        values = [bytes(v).hex() for (v,) in store.conn.execute("SELECT value FROM pdq_values ORDER BY id")]
        assert values == [pdq(1), pdq(2), pdq(3)]


def test_migration_2_brings_back_retractions_version_1_dropped(path: Path) -> None:
    """Version 1 deleted a retracted add with no opinion; version 2 keeps it (PROTOCOL §8)
    and recomputes the merged list from the stored batches, which version 1 kept whole."""
    signer = Signer.from_seed(ORG, bytes(32))
    store = Store(path)
    with store.transaction():
        store.staging.stage("default", [Entry.add("md5", md5(1), ["x:1"]), Entry.add("md5", md5(2))])
    publish(store, [signer], now=FIXED_NOW)
    with store.transaction():
        store.staging.stage("default", [Entry.remove("md5", md5(1))])
    publish(store, [signer], now=FIXED_NOW)
    after = [r.to_json_obj() for r in store.merged.records(active_only=False)]
    # What version 1 left: no retracted column, no row for the retracted add.
    store.conn.execute("DELETE FROM contributions WHERE retracted = 1")
    store.conn.execute("ALTER TABLE contributions DROP COLUMN retracted")
    store.conn.execute("DROP TABLE arrivals")
    store.conn.execute("DROP TABLE pdq_values")
    store.conn.execute("DROP TABLE peer_listings")
    for table in ("reader_tokens", "indicators", "taxii_progress"):  # migration 3's
        store.conn.execute(f"DROP TABLE {table}")
    store.conn.execute("PRAGMA user_version = 1")
    store.close()

    with Store(path) as upgraded:
        assert upgraded.conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert [r.to_json_obj() for r in upgraded.merged.records(active_only=False)] == after
        assert upgraded.merged.lookup("md5", md5(1)).retracted_by == (("a.example", "default"),)
