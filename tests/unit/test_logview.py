"""The reader's trust state machine (protocol.logview, PROTOCOL §7), with no IO.

``LogView.check`` compares a verified checkpoint with the reader's view (``check_held``
with leaves it already holds); ``PageVerifier`` checks
pages of batch bytes towards a signed checkpoint. The logs here are built in memory from
fixed keys and a fixed time, so every case is exact and needs no socket, file or clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.keys import EquivocationError, ProtocolError, Signer, VerificationError
from hashfed.protocol.batch import Batch, encode_batch
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.logview import Assessment, LogView, PageVerifier
from hashfed.protocol.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    leaf_hash,
    root_hash,
)

ORG = "acme.example"
COLLECTION = "csam"
LOG = f"{ORG}/{COLLECTION}"
SIGNER = Signer.from_seed(ORG, bytes(range(32)))
CREATED = datetime(2026, 11, 26, 2, 19, 41, tzinfo=UTC)
SIZE = 7


def make_batch(index: int, *, salt: int = 0, org: str = ORG, collection: str = COLLECTION) -> bytes:
    """Batch ``index`` of the log; another ``salt`` gives a different, equally valid batch."""
    n = index + 1000 * salt
    return encode_batch(
        org=org,
        collection=collection,
        index=index,
        created=CREATED,
        entries=[
            Entry.add("md5", f"{n:032x}", [f"set:{index}"]),
            Entry.opine("pdq", f"{n + 1:064x}", "false_positive"),
        ],
    )


BATCHES = tuple(make_batch(i) for i in range(SIZE))
LEAVES = tuple(leaf_hash(b) for b in BATCHES)


def root(n: int, leaves: tuple[bytes, ...] = LEAVES) -> bytes:
    return root_hash(leaves[:n])


def checkpoint(n: int, leaves: tuple[bytes, ...] = LEAVES) -> Checkpoint:
    return Checkpoint(LOG, n, root(n, leaves))


def note(n: int, leaves: tuple[bytes, ...] = LEAVES) -> bytes:
    return sign_checkpoint(checkpoint(n, leaves), [SIGNER])


def edge(n: int, leaves: tuple[bytes, ...] = LEAVES) -> CompactRange:
    compact = CompactRange()
    for leaf in leaves[:n]:
        compact.append(leaf)
    return compact


def proof(old: int, new: int, leaves: tuple[bytes, ...] = LEAVES) -> list[bytes]:
    return [] if old == new else consistency_proof(old, new, list(leaves))


# A fork of the log: the same first FORK_AT batches, then different ones, all validly signed.
FORK_AT = 3
FORKED = LEAVES[:FORK_AT] + tuple(leaf_hash(make_batch(i, salt=1)) for i in range(FORK_AT, SIZE))


def root_at_of(leaves: tuple[bytes, ...]) -> Callable[[int], bytes]:
    return lambda n: root_hash(leaves[:n])


def no_root_at(n: int) -> bytes:
    raise AssertionError(f"root_at({n}) must not be needed here")


def run_assess(
    ours: int, theirs: Checkpoint, their_note: bytes, *, our_note: bytes | None = b""
) -> Assessment:
    view = LogView(
        LOG,
        size=ours,
        root=root(ours),
        note=note(ours) if our_note == b"" else our_note,
        held=edge(ours),
        pending_note=None,
        root_at=root_at_of(LEAVES) if theirs.size < ours else no_root_at,
    )
    return view.check(theirs, their_note)


# assess ----------------------------------------------------------------------------------------

ASSESS_OK = [
    # (id, our size, their size, expected)
    ("same size and root", 4, 4, Assessment.UP_TO_DATE),
    ("bigger checkpoint", 4, 6, Assessment.AHEAD),
    ("from nothing", 0, 3, Assessment.AHEAD),
    ("smaller, consistent with our leaves", 4, 2, Assessment.SOURCE_BEHIND),
    ("one leaf behind", 4, 3, Assessment.SOURCE_BEHIND),
    ("the first leaf", 5, 1, Assessment.SOURCE_BEHIND),
]


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"), [c[1:] for c in ASSESS_OK], ids=[c[0] for c in ASSESS_OK]
)
def test_assess_honest_checkpoints(ours: int, theirs: int, expected: Assessment) -> None:
    assert run_assess(ours, checkpoint(theirs), note(theirs)) is expected


def test_assess_of_the_empty_tree_is_source_behind() -> None:
    empty = Checkpoint(LOG, 0, EMPTY_ROOT)
    assert run_assess(3, empty, sign_checkpoint(empty, [SIGNER])) is Assessment.SOURCE_BEHIND


ASSESS_BAD = [
    # (id, our size, their checkpoint, error type, message fragment)
    (
        "same size, other root",
        5,
        checkpoint(5, FORKED),
        EquivocationError,
        "two different roots signed for size 5",
    ),
    (
        "smaller, contradicts our leaves",
        5,
        checkpoint(4, FORKED),
        EquivocationError,
        "a checkpoint at size 4 contradicts our log at size 5",
    ),
    (
        "checkpoint of another log",
        4,
        Checkpoint("other.example/csam", 4, root(4)),
        VerificationError,
        "checkpoint is for other.example/csam, not acme.example/csam",
    ),
    (
        "checkpoint of another collection, bigger",
        4,
        Checkpoint(f"{ORG}/other", 6, root(6)),
        VerificationError,
        "checkpoint is for acme.example/other",
    ),
]


@pytest.mark.parametrize(
    ("ours", "theirs", "error", "message"),
    [c[1:] for c in ASSESS_BAD],
    ids=[c[0] for c in ASSESS_BAD],
)
def test_assess_rejects(
    ours: int, theirs: Checkpoint, error: type[Exception], message: str
) -> None:
    their_note = b"their note"
    with pytest.raises(VerificationError) as caught:
        run_assess(ours, theirs, their_note)
    assert type(caught.value) is error
    assert message in str(caught.value)
    if error is EquivocationError:
        assert caught.value.log_id == LOG
        assert caught.value.ours == note(ours)  # both signed notes are kept as evidence
        assert caught.value.theirs == their_note


def test_assess_equivocation_without_a_note_of_ours_keeps_theirs() -> None:
    with pytest.raises(EquivocationError) as caught:
        run_assess(5, checkpoint(5, FORKED), b"theirs", our_note=None)
    assert (caught.value.ours, caught.value.theirs) == (b"", b"theirs")


# A pull from a served 2 towards the checkpoint at 6 was cut short: leaves 2..3 are held,
# proven against that checkpoint (the pending one), and not served yet.
SERVED, PENDING = 2, 6

ASSESS_WITH_PENDING = [
    # (id, their checkpoint, expected: an Assessment, or the message of an EquivocationError)
    ("the pending checkpoint again", checkpoint(PENDING), Assessment.AHEAD),
    (
        "the pending size, another root",
        checkpoint(PENDING, FORKED),
        "two different roots signed for size 6 (ours held in part, not yet served)",
    ),
    # Other sizes prove nothing by themselves: the puller checks them against the leaves.
    ("bigger than pending, forked", checkpoint(7, FORKED), Assessment.AHEAD),
    ("between served and pending, forked", checkpoint(4, FORKED), Assessment.AHEAD),
    ("the served checkpoint", checkpoint(SERVED), Assessment.UP_TO_DATE),
    ("behind the served one", checkpoint(1), Assessment.SOURCE_BEHIND),
]


@pytest.mark.parametrize(
    ("theirs", "expected"), [c[1:] for c in ASSESS_WITH_PENDING], ids=[c[0] for c in ASSESS_WITH_PENDING]
)
def test_assess_with_a_pending_checkpoint(theirs: Checkpoint, expected: Assessment | str) -> None:
    def call() -> Assessment:
        return pending_view().check(theirs, b"their note")

    if isinstance(expected, Assessment):
        assert call() is expected
        return
    with pytest.raises(EquivocationError) as caught:
        call()
    assert expected in str(caught.value)
    # The pair proves itself: two roots signed for one size.
    assert (caught.value.log_id, caught.value.ours, caught.value.theirs) == (
        LOG,
        note(PENDING),
        b"their note",
    )


def pending_view(held: int = 4) -> LogView:
    return LogView(
        LOG,
        size=SERVED,
        root=root(SERVED),
        note=note(SERVED),
        held=edge(held),
        pending_note=note(PENDING),
        root_at=root_at_of(LEAVES),
    )


def test_a_view_refuses_a_pending_checkpoint_of_another_log() -> None:
    other_signer = Signer.from_seed("other.example", bytes(32))
    other = sign_checkpoint(Checkpoint("other.example/csam", PENDING, root(PENDING)), [other_signer])
    with pytest.raises(VerificationError, match="pending checkpoint is for other.example/csam"):
        LogView(
            LOG, size=SERVED, root=root(SERVED), note=note(SERVED), held=edge(4),
            pending_note=other, root_at=no_root_at,
        )


def test_an_empty_view_finds_any_checkpoint_ahead() -> None:
    assert LogView.empty(LOG).check(checkpoint(3), note(3)) is Assessment.AHEAD
    assert not LogView.empty(LOG).known


CHECK_HELD = [
    # (id, their size, leaves their root is of, the note ours is, or None when consistent)
    ("held leaves, the same root", 4, LEAVES, None),
    ("the served size, the same root", SERVED, LEAVES, None),
    ("past served, within pending, forked", 4, FORKED, "pending"),
    ("within the served prefix, forked", 2, (LEAVES[0], leaf_hash(make_batch(1, salt=2))), "served"),
]


@pytest.mark.parametrize(
    ("theirs", "leaves", "ours"), [c[1:] for c in CHECK_HELD], ids=[c[0] for c in CHECK_HELD]
)
def test_check_held(theirs: int, leaves: tuple[bytes, ...], ours: str | None) -> None:
    view = pending_view()
    if ours is None:
        view.check_held(checkpoint(theirs, leaves), b"theirs")
        return
    with pytest.raises(EquivocationError, match="contradicts the leaves held") as caught:
        view.check_held(checkpoint(theirs, leaves), b"theirs")
    assert caught.value.ours == (note(PENDING) if ours == "pending" else note(SERVED))


def test_check_held_is_only_for_held_sizes() -> None:
    with pytest.raises(ValueError, match="within the held leaves"):
        pending_view().check_held(checkpoint(5), note(5))


@settings(max_examples=150, deadline=None)
@given(ours=st.integers(1, SIZE), theirs=st.integers(0, SIZE), forked=st.booleans())
def test_assess_is_decided_by_sizes_and_the_fork_point(
    ours: int, theirs: int, forked: bool
) -> None:
    """Against an honest log, or a fork of it that shares the first FORK_AT leaves:
    a bigger checkpoint is AHEAD (consistency is the puller's next check); an equal or
    smaller one is fine exactly when it lies inside the shared prefix."""
    leaves = FORKED if forked else LEAVES
    contradicts = forked and FORK_AT < theirs <= ours
    call = lambda: run_assess(ours, checkpoint(theirs, leaves), b"theirs")
    if contradicts:
        with pytest.raises(EquivocationError):
            call()
    elif theirs > ours:
        assert call() is Assessment.AHEAD
    elif theirs == ours:
        assert call() is Assessment.UP_TO_DATE
    else:
        assert call() is Assessment.SOURCE_BEHIND


# PageVerifier ----------------------------------------------------------------------------------


def verify_in_pages(start: int, cuts: list[int], target: int) -> tuple[PageVerifier, list[Batch]]:
    """Verify batches start..target-1, split at ``cuts``; return the verifier and batches."""
    verifier = PageVerifier(LOG, edge(start), checkpoint(target))
    bounds = [start, *sorted({c for c in cuts if start < c < target}), target]
    batches: list[Batch] = []
    for lo, hi in itertools.pairwise(bounds):
        page = verifier.verify_page(BATCHES[lo:hi], proof(hi, target))
        assert page.edge == edge(hi)
        assert page.leaves == LEAVES[lo:hi]
        batches += page.batches
    return verifier, batches


def test_one_page_from_nothing() -> None:
    verifier, batches = verify_in_pages(0, [], SIZE)
    assert verifier.done
    assert [b.index for b in batches] == list(range(SIZE))
    assert [b.data for b in batches] == list(BATCHES)  # bytes verbatim
    assert batches[2].entries[0] == Entry.add("md5", f"{2:032x}", ["set:2"])


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, SIZE - 1),
    extra=st.integers(1, SIZE),
    cuts=st.lists(st.integers(0, SIZE), max_size=SIZE),
)
def test_any_paging_from_any_held_edge_verifies(start: int, extra: int, cuts: list[int]) -> None:
    target = min(SIZE, start + extra)
    verifier, batches = verify_in_pages(start, cuts, target)
    assert verifier.done and verifier.edge == edge(target)
    assert [b.index for b in batches] == list(range(start, target))


def test_the_page_returned_is_independent_of_the_verifier() -> None:
    verifier = PageVerifier(LOG, CompactRange(), checkpoint(SIZE))
    page = verifier.verify_page(BATCHES[:2], proof(2, SIZE))
    verifier.verify_page(BATCHES[2:], [])
    assert page.edge == edge(2)


def _altered(index: int) -> bytes:
    """Batch ``index`` with one hash value changed: still a valid, canonical batch."""
    data = BATCHES[index]
    old = f'"value":"{index:032x}"'.encode()
    new = f'"value":"{index + 7:032x}"'.encode()
    assert data.count(old) == 1
    return data.replace(old, new)


def _hand_made(index: int, type_: str, value: str) -> bytes:
    """A canonical batch of one ``add`` that encode_batch would refuse to write."""
    return (
        '{"collection":"csam","created":"2026-11-26T02:19:41Z","entries":[{"labels":[],'
        f'"op":"add","type":"{type_}","value":"{value}"}}],"index":{index},'
        '"org":"acme.example","v":1}'
    ).encode()


# The right edge of three leaves of some other log, passed off as ours.
FOREIGN_EDGE = edge(3, tuple(leaf_hash(make_batch(i, salt=2)) for i in range(3)))

# (id, leaves held, checkpoint size, page, proof, error type, message fragment)
PAGE_BAD = [
    ("empty page", 2, 5, [], proof(2, 5), VerificationError, "empty page at index 2"),
    (
        "more batches than the checkpoint",
        2,
        5,
        list(BATCHES[2:6]),
        [],
        VerificationError,
        "batch 5 is past the checkpoint's size 5",
    ),
    (
        "a batch skipped",
        2,
        5,
        list(BATCHES[3:5]),
        proof(4, 5),
        VerificationError,
        "batch is leaf 3 of acme.example/csam, expected leaf 2 of acme.example/csam",
    ),
    (
        "batches out of order",
        2,
        5,
        [BATCHES[3], BATCHES[2], BATCHES[4]],
        [],
        VerificationError,
        "expected leaf 2",
    ),
    (
        "a batch of another org's log",
        2,
        5,
        [make_batch(2, org="mallory.example"), *BATCHES[3:5]],
        [],
        VerificationError,
        "batch is leaf 2 of mallory.example/csam, expected leaf 2 of acme.example/csam",
    ),
    (
        "a batch of another collection",
        2,
        5,
        [make_batch(2, collection="other"), *BATCHES[3:5]],
        [],
        VerificationError,
        "batch is leaf 2 of acme.example/other",
    ),
    (
        "an unknown hash type",
        2,
        5,
        [_hand_made(2, "sha3", "ab" * 32), *BATCHES[3:5]],
        [],
        VerificationError,
        "entry 0: unknown hash type 'sha3'",
    ),
    (
        "an unnormalised value",
        2,
        5,
        [_hand_made(2, "md5", "AB" * 16), *BATCHES[3:5]],
        [],
        ProtocolError,
        "entry 0: bad",
    ),
    (
        "white space (not canonical)",
        2,
        5,
        [BATCHES[2].replace(b'"index":2', b'"index": 2'), *BATCHES[3:5]],
        [],
        ProtocolError,
        "not in canonical form",
    ),
    (
        "a duplicate key",
        2,
        5,
        [
            BATCHES[2].replace(
                b'{"collection":"csam"', b'{"collection":"csam","collection":"csam"'
            ),
            *BATCHES[3:5],
        ],
        [],
        ProtocolError,
        "not in canonical form",
    ),
    (
        "an altered batch on the last page",
        2,
        5,
        [BATCHES[2], _altered(3), BATCHES[4]],
        [],
        VerificationError,
        "batches 0..4 do not give the signed root",
    ),
    (
        "an altered batch on an inner page",
        2,
        5,
        [_altered(2)],
        proof(3, 5),
        VerificationError,
        "consistency: proof does not lead to the expected roots",
    ),
    (
        "an inner page without its proof",
        2,
        5,
        list(BATCHES[2:4]),
        [],
        VerificationError,
        "consistency: proof is empty",
    ),
    (
        "a proof for another page end",
        2,
        6,
        list(BATCHES[2:4]),
        proof(3, 6),
        VerificationError,
        "consistency",
    ),
    (
        "a proof of the forked log",
        2,
        6,
        list(BATCHES[2:4]),
        proof(4, 6, FORKED),
        VerificationError,
        "consistency: proof does not lead to the expected roots",
    ),
    (
        "the held edge is not the log's",
        FOREIGN_EDGE,
        6,
        list(BATCHES[3:6]),
        [],
        VerificationError,
        "batches 0..5 do not give the signed root",
    ),
]


@pytest.mark.parametrize(
    ("held", "target", "lines", "page_proof", "error", "message"),
    [c[1:] for c in PAGE_BAD],
    ids=[c[0] for c in PAGE_BAD],
)
def test_bad_pages_are_rejected_and_change_nothing(
    held: int | CompactRange,
    target: int,
    lines: list[bytes],
    page_proof: list[bytes],
    error: type[Exception],
    message: str,
) -> None:
    held_edge = held if isinstance(held, CompactRange) else edge(held)
    verifier = PageVerifier(LOG, held_edge, checkpoint(target))
    with pytest.raises((ProtocolError, VerificationError)) as caught:
        verifier.verify_page(lines, page_proof)
    assert type(caught.value) is error
    assert message in str(caught.value)
    # Nothing of the page is taken: the verifier is where it was, and the right page
    # from there still verifies (when the held edge was the log's own).
    assert verifier.edge == held_edge and not verifier.done
    if isinstance(held, int):
        page = verifier.verify_page(BATCHES[held:target], [])
        assert verifier.done and page.edge == edge(target)


@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, 2), position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_single_flipped_bit_is_rejected(which: int, position: int, bit: int) -> None:
    lines = list(BATCHES[2:5])
    data = bytearray(lines[which])
    data[position % len(data)] ^= 1 << bit
    lines[which] = bytes(data)
    verifier = PageVerifier(LOG, edge(2), checkpoint(5))
    with pytest.raises((ProtocolError, VerificationError)):
        verifier.verify_page(lines, [])
    assert verifier.edge == edge(2)


INIT_BAD = [
    (
        "checkpoint of another log",
        edge(2),
        Checkpoint("other.example/csam", 5, root(5)),
        "checkpoint is for other.example/csam, not acme.example/csam",
    ),
    (
        "checkpoint behind the held leaves",
        edge(5),
        checkpoint(3),
        "checkpoint size 3 is behind the 5 leaves held",
    ),
]


@pytest.mark.parametrize(
    ("held", "target", "message"), [c[1:] for c in INIT_BAD], ids=[c[0] for c in INIT_BAD]
)
def test_page_verifier_refuses_a_target_it_cannot_reach(
    held: CompactRange, target: Checkpoint, message: str
) -> None:
    with pytest.raises(VerificationError) as caught:
        PageVerifier(LOG, held, target)
    assert type(caught.value) is VerificationError
    assert message in str(caught.value)


def test_page_verifier_does_not_share_the_callers_edge() -> None:
    held = edge(2)
    verifier = PageVerifier(LOG, held, checkpoint(5))
    verifier.verify_page(BATCHES[2:5], [])
    assert held == edge(2)
    assert verifier.done


def test_a_verifier_already_at_its_target_takes_no_batch() -> None:
    verifier = PageVerifier(LOG, edge(4), checkpoint(4))
    assert verifier.done
    with pytest.raises(VerificationError, match="batch 4 is past the checkpoint's size 4"):
        verifier.verify_page([BATCHES[4]], [])
