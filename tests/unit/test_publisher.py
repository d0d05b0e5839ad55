"""Publishing: staged entries → batches within the caps of PROTOCOL §4 → leaves and tree
state → a signed checkpoint, in the crash-safe order of PROTOCOL §5.

Everything is checked the way a reader would: batch bytes decoded with ``decode_batch``,
the root recomputed from the stored leaves, the checkpoint verified with the vkeys.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hashfed.federation.home import Home, add_key, open_home
from hashfed.federation.publish import _store_next_page, chunk_entries, publish
from hashfed.federation.store import Store
from hashfed.keys import Signer
from hashfed.keys.errors import StoreError, VerificationError
from hashfed.protocol.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    MAX_INDEX,
    decode_batch,
    encode_batch,
)
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.merkle import leaf_hash, root_hash
from tests.helpers import FIXED_NOW, db_snapshot, md5

ORG = "a.example"
LOG = "a.example/default"


class SignerError(Exception):
    pass


class FailingSigner(Signer):
    """The org's real key, on a token that fails when asked to sign: a crash between
    storing the leaves and signing them."""

    def sign(self, message: bytes) -> bytes:
        raise SignerError("the signing token is gone")


@pytest.fixture
def home(make_home) -> Home:  # type: ignore[no-untyped-def]
    return make_home(ORG)


@pytest.fixture
def store(home: Home):
    with home.open_store() as store:
        yield store


def stage(store: Store, entries: Sequence[Entry], collection: str = "default") -> None:
    with store.transaction():
        store.staging.stage(collection, entries)


def served(store: Store, home: Home, log_id: str = LOG) -> tuple[list, Checkpoint]:
    """Read a log back as a reader would: decode every batch, verify the checkpoint, and
    check the signed root is the root of the stored leaves. Returns (batches, checkpoint)."""
    log = store.logs.get(log_id)
    assert log is not None and log.checkpoint is not None
    org, collection = log_id.split("/")
    data = list(store.logs.iter_batches(log, 0, log.size))
    batches = [decode_batch(d, org=org, collection=collection, index=i) for i, d in enumerate(data)]
    signed = verify_checkpoint(log.checkpoint, log_id=log_id, verifiers=[s.verifier() for s in home.signers])
    assert signed.checkpoint.size == len(batches) == log.held
    assert signed.checkpoint.root == root_hash([leaf_hash(d) for d in data]) == log.root
    assert all(
        len(d) <= MAX_BATCH_BYTES and 1 <= len(b.entries) <= MAX_BATCH_ENTRIES
        for d, b in zip(data, batches, strict=True)
    )
    return batches, signed.checkpoint


def test_publish_makes_batches_a_reader_accepts(home: Home, store: Store) -> None:
    entries = [
        Entry.add("md5", md5(1), ["ncmec:a1"]),
        Entry.add("sha256", "AB" * 32, []),
        Entry.opine("md5", md5(2), "false_positive"),
        Entry.remove("md5", md5(1)),
    ]
    stage(store, entries)
    stage(store, [Entry.add("md5", md5(9))], "csam")

    done = publish(store, home.signers, now=FIXED_NOW)

    assert [(p.log_id, p.size, p.new_batches, p.new_entries) for p in done] == [
        ("a.example/csam", 1, 1, 1),
        (LOG, 1, 1, 4),
    ]
    batches, _ = served(store, home)
    assert list(batches[0].entries) == entries
    assert batches[0].created == "2026-11-26T02:19:41Z"
    served(store, home, "a.example/csam")
    assert store.staging.collections() == []
    assert all(log.own for log in store.logs.all())
    # The own merged list follows what was published.
    assert [(r.type, r.value, r.active) for r in store.merged.records(active_only=False)] == [
        ("md5", md5(1), False),  # retracted in the same batch: kept, inactive
        ("md5", md5(2), False),
        ("md5", md5(9), True),
        ("sha256", "ab" * 32, True),
    ]


def test_publish_with_nothing_staged_is_a_no_op(home: Home, store: Store) -> None:
    before = db_snapshot(home.db_path)
    assert publish(store, home.signers, now=FIXED_NOW) == []
    assert db_snapshot(home.db_path) == before

    stage(store, [Entry.add("md5", md5(1))])
    publish(store, home.signers, now=FIXED_NOW)
    before = db_snapshot(home.db_path)
    assert publish(store, home.signers, now=FIXED_NOW) == []
    assert db_snapshot(home.db_path) == before


def test_later_publishes_append(home: Home, store: Store) -> None:
    stage(store, [Entry.add("md5", md5(1))])
    publish(store, home.signers, now=FIXED_NOW)
    first = store.logs.get(LOG)
    stage(store, [Entry.add("md5", md5(2))])
    (done,) = publish(store, home.signers, now=FIXED_NOW)
    assert (done.size, done.new_batches) == (2, 1)
    batches, _ = served(store, home)
    assert [b.entries[0].value for b in batches] == [md5(1), md5(2)]
    assert store.logs.root_at(store.logs.get(LOG), 1) == first.root  # the old tree is a prefix


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (MAX_BATCH_ENTRIES, [MAX_BATCH_ENTRIES]),
        (MAX_BATCH_ENTRIES + 1, [MAX_BATCH_ENTRIES, 1]),
        (2 * MAX_BATCH_ENTRIES + 5, [MAX_BATCH_ENTRIES, MAX_BATCH_ENTRIES, 5]),
    ],
    ids=["exactly one full batch", "one over", "two full and a bit"],
)
def test_at_most_10000_entries_per_batch(home: Home, store: Store, count: int, sizes: list[int]) -> None:
    stage(store, [Entry.add("md5", md5(i)) for i in range(count)])
    (done,) = publish(store, home.signers, now=FIXED_NOW)
    assert (done.size, done.new_batches, done.new_entries) == (len(sizes), len(sizes), count)
    batches, _ = served(store, home)
    assert [len(b.entries) for b in batches] == sizes
    assert [e.value for b in batches for e in b.entries] == [md5(i) for i in range(count)]


def test_at_most_4_mib_per_batch(home: Home, store: Store) -> None:
    """PhotoDNA values (288 hex digits) with 16 labels of 64 characters: about 1.4 KB an
    entry, so the byte cap, not the entry cap, splits the batches, and tightly."""
    labels = [f"{chr(ord('a') + i)}:" + "x" * 62 for i in range(16)]
    count = 7_000
    stage(store, [Entry.add("photodna", f"{i:0288x}", labels) for i in range(count)])

    (done,) = publish(store, home.signers, now=FIXED_NOW)

    batches, _ = served(store, home)
    sizes = [len(b.data) for b in batches]
    assert len(batches) == done.new_batches == 3
    assert all(size <= MAX_BATCH_BYTES for size in sizes)
    assert all(size > 0.95 * MAX_BATCH_BYTES for size in sizes[:-1]), sizes
    assert sum(len(b.entries) for b in batches) == count
    assert all(b.entries[0].labels == tuple(labels) for b in batches)


def test_chunking_bound_never_underestimates() -> None:
    """The split is by an upper bound on each entry's JSON; a batch of the largest entries
    of each kind packed right up to the bound still encodes within 4 MiB."""
    labels = [f"{chr(ord('a') + i)}:" + "/" * 62 for i in range(16)]
    kinds = [
        Entry.add("photodna", "f" * 288, labels),
        Entry.opine("photodna", "f" * 288, "false_positive"),
        Entry.remove("photodna", "f" * 288),
        Entry.add("md5", md5(1), []),
    ]
    for entry in kinds:
        chunks = list(chunk_entries((i, entry) for i in range(MAX_BATCH_ENTRIES * 2)))
        first = [e for _, e in chunks[0]]
        # the longest header the names allow: a 63-character org, a 32-character collection
        encoded = encode_batch(
            org="o" * 63, collection="c" * 32, index=MAX_INDEX, created=FIXED_NOW, entries=first
        )
        assert len(encoded) <= MAX_BATCH_BYTES, (entry.op, len(encoded))


# -- the crash rule (PROTOCOL §5) -------------------------------------------------------------


def test_crash_after_storing_before_signing(home: Home, store: Store) -> None:
    """Leaves stored, no signature yet: the next publish signs exactly that tree."""
    stage(store, [Entry.add("md5", md5(1)), Entry.add("md5", md5(2))])
    assert _store_next_page(store, ORG, "default", FIXED_NOW, 1) == (1, 2)  # then "crash"
    log = store.logs.get(LOG)
    assert (log.held, log.size, log.checkpoint) == (1, 0, None)  # not served yet
    assert store.staging.collections() == []
    stored_root = log.held_edge.root()

    (done,) = publish(store, home.signers, now=FIXED_NOW)

    assert (done.log_id, done.size) == (LOG, 1)
    _, checkpoint = served(store, home)
    assert checkpoint.root == stored_root
    assert publish(store, home.signers, now=FIXED_NOW) == []


def test_signer_failure_then_publish_signs_the_same_root(home: Home, store: Store) -> None:
    stage(store, [Entry.add("md5", md5(1))])
    failing = [FailingSigner.from_seed(ORG, s._seed()) for s in home.signers]
    with pytest.raises(SignerError):
        publish(store, failing, now=FIXED_NOW)
    log = store.logs.get(LOG)
    assert (log.held, log.size, log.checkpoint) == (1, 0, None)
    assert store.conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (0,)
    root = log.held_edge.root()

    # Entries staged after the crash go into new batches; the stored ones are not redone.
    stage(store, [Entry.add("md5", md5(2))])
    with pytest.raises(SignerError):
        publish(store, failing, now=FIXED_NOW)
    assert store.logs.root_at(store.logs.get(LOG), 1) == root

    (done,) = publish(store, home.signers, now=FIXED_NOW)
    assert (done.size, done.new_batches) == (2, 0)
    batches, checkpoint = served(store, home)
    assert [b.entries[0].value for b in batches] == [md5(1), md5(2)]
    assert store.logs.root_at(store.logs.get(LOG), 1) == root

    # The node will never accept a second root for a size it signed.
    other = Checkpoint(origin=LOG, size=2, root=bytes(32))
    before = db_snapshot(home.db_path)
    with pytest.raises(StoreError), store.transaction():
        store.logs.accept_checkpoint(store.logs.get(LOG), other, sign_checkpoint(other, home.signers))
    assert db_snapshot(home.db_path) == before
    assert store.conn.execute("SELECT size, root FROM checkpoints").fetchall() == [(2, checkpoint.root)]


def test_every_key_signs_after_a_rotation(home: Home) -> None:
    add_key(home.path, ORG)
    rotated = open_home(home.path)
    assert len(rotated.signers) == 2
    with rotated.open_store() as store:
        stage(store, [Entry.add("md5", md5(1))])
        publish(store, rotated.signers, now=FIXED_NOW)
        note = store.logs.get(LOG).checkpoint
    for signer in rotated.signers:  # a peer that trusts either key alone accepts it
        verify_checkpoint(note, log_id=LOG, verifiers=[signer.verifier()])


def test_a_write_from_another_process_between_batches(home: Home, store: Store) -> None:
    """``hashfed add`` (or ``serve`` committing a pull) writes while a long publish runs.
    The publisher must not hold a read snapshot across its own commits: in WAL mode its
    next BEGIN IMMEDIATE would then fail (SQLITE_BUSY_SNAPSHOT, "database is locked")."""
    count = 3 * MAX_BATCH_ENTRIES + 1
    stage(store, [Entry.add("md5", md5(i)) for i in range(count)])
    other = home.open_store()
    written = []

    def meanwhile(n: int) -> None:
        with other.transaction():
            other.staging.stage("csam", [Entry.add("md5", md5(10**6 + len(written)))])
        written.append(n)

    try:
        # one batch per transaction, so the other writer gets in between every batch
        done = publish(store, home.signers, now=FIXED_NOW, progress=meanwhile, page_batches=1)
    finally:
        other.close()
    assert written == [MAX_BATCH_ENTRIES] * 3 + [1]
    assert [(p.log_id, p.size) for p in done] == [(LOG, 4)]
    batches, _ = served(store, home)
    assert sum(len(b.entries) for b in batches) == count
    assert store.staging.collections() == [("csam", 4)]  # the other writer's entries, kept


def test_a_page_of_batches_is_one_transaction_and_batches_stay_full(
    home: Home, store: Store
) -> None:
    """Pages cut staged entries into full batches: a batch that the page (not the data)
    cut short is left for the next page."""
    count = 5 * MAX_BATCH_ENTRIES + 7
    stage(store, [Entry.add("md5", md5(i)) for i in range(count)])
    pages = []
    publish(store, home.signers, now=FIXED_NOW, progress=pages.append, page_batches=2)
    assert pages == [2 * MAX_BATCH_ENTRIES, 2 * MAX_BATCH_ENTRIES, MAX_BATCH_ENTRIES + 7]
    batches, _ = served(store, home)
    assert [len(b.entries) for b in batches] == [MAX_BATCH_ENTRIES] * 5 + [7]


def test_published_batches_decode_for_the_right_log_only(home: Home, store: Store) -> None:
    stage(store, [Entry.add("md5", md5(1))])
    publish(store, home.signers, now=FIXED_NOW)
    (data,) = store.logs.iter_batches(store.logs.get(LOG), 0, 1)
    with pytest.raises(VerificationError, match="expected leaf 0 of a.example/csam"):
        decode_batch(data, org=ORG, collection="csam", index=0)
    with pytest.raises(VerificationError, match="expected leaf 1 of a.example/default"):
        decode_batch(data, org=ORG, collection="default", index=1)
