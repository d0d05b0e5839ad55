"""The reader's trust state machine for one log (PROTOCOL §7), with no IO.

Feed it what a peer sent; it returns what may be stored or raises. The puller does the IO
and the store does the writing; nothing here reads the network, the disk or the clock.

    LogView             what the reader holds of one log: ``check`` says whether a new
                        signed checkpoint is up to date, behind, or something to pull, or
                        raises EquivocationError; ``check_held`` does the same for one whose
                        leaves are already held; ``pages_towards`` starts a PageVerifier
    PageVerifier        pages of batch bytes towards a signed checkpoint: each batch decoded
                        and checked (PROTOCOL §4), the right edge extended, and after each
                        page the intermediate root proven against the checkpoint
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hashfed.keys.errors import EquivocationError, VerificationError
from hashfed.keys.names import parse_log_id

from .batch import Batch, decode_batch
from .checkpoint import Checkpoint, parse_checkpoint_body
from .merkle import EMPTY_ROOT, CompactRange, leaf_hash, verify_consistency
from .note import parse_note


class Assessment(enum.Enum):
    UP_TO_DATE = "up to date"
    SOURCE_BEHIND = "source behind"
    AHEAD = "ahead"


class LogView:
    """What a reader holds of one log, and the one place that decides whether a signed
    checkpoint can be true alongside it (in the manner of python-tuf's
    ``TrustedMetadataSet``). No IO: the caller builds it from its store and feeds it what a
    peer sent (the puller a pulled checkpoint, the push handler a pushed one, both the
    checkpoints of a listing); it answers or raises ``EquivocationError`` carrying both
    signed notes, which is all the evidence a third party needs.

    ``size``/``root``/``note``: the checkpoint the reader serves (size 0 and no note for a
    log it has never completed); ``held``: how many leaves it stores, which may run past
    ``size`` when a pull or push towards ``pending_note`` was cut short; ``root_at(n)``:
    the root of its own first n leaves, for n < size or size < n <= held.
    """

    def __init__(
        self,
        log_id: str,
        *,
        size: int,
        root: bytes,
        note: bytes | None,
        held: CompactRange,
        pending_note: bytes | None,
        root_at: Callable[[int], bytes],
    ) -> None:
        self.log_id = log_id
        self.size = size
        self.root = root
        self.note = note
        self.held = held
        self.pending_note = pending_note
        self.pending = (
            None if pending_note is None else parse_checkpoint_body(parse_note(pending_note).text)
        )
        if self.pending is not None and self.pending.origin != log_id:
            raise VerificationError(f"pending checkpoint is for {self.pending.origin}, not {log_id}")
        self._root_at = root_at

    @classmethod
    def empty(cls, log_id: str) -> LogView:
        """The view of a log the reader holds nothing of."""
        return cls(
            log_id, size=0, root=EMPTY_ROOT, note=None, held=CompactRange(), pending_note=None,
            root_at=_no_leaves,
        )

    @property
    def known(self) -> bool:
        """Whether the reader has anything signed to compare with (a served or a pending
        checkpoint): with neither, any validly signed checkpoint is simply ahead."""
        return self.note is not None or self.pending is not None

    def check(self, theirs: Checkpoint, their_note: bytes) -> Assessment:
        """Compare a checkpoint (its signature already verified) with this view.

        A checkpoint of the pending size with another root contradicts the pending note as
        surely as one of the served size contradicts the served note. A reader never moves
        backwards: a smaller, consistent checkpoint is SOURCE_BEHIND.
        """
        if theirs.origin != self.log_id:
            raise VerificationError(f"checkpoint is for {theirs.origin}, not {self.log_id}")
        pending = self.pending
        if pending is not None and pending.size == theirs.size and pending.root != theirs.root:
            assert self.pending_note is not None
            raise EquivocationError(
                f"{self.log_id}: two different roots signed for size {theirs.size} "
                "(ours held in part, not yet served)",
                log_id=self.log_id,
                ours=self.pending_note,
                theirs=their_note,
            )
        if theirs.size == self.size:
            if theirs.root == self.root:
                return Assessment.UP_TO_DATE
            raise EquivocationError(
                f"{self.log_id}: two different roots signed for size {self.size}",
                log_id=self.log_id,
                ours=self.note or b"",
                theirs=their_note,
            )
        if theirs.size < self.size:
            if self._root_at(theirs.size) == theirs.root:
                return Assessment.SOURCE_BEHIND
            raise EquivocationError(
                f"{self.log_id}: a checkpoint at size {theirs.size} contradicts our log at "
                f"size {self.size}",
                log_id=self.log_id,
                ours=self.note or b"",
                theirs=their_note,
            )
        return Assessment.AHEAD

    def check_held(self, theirs: Checkpoint, their_note: bytes) -> None:
        """A checkpoint whose leaves are all held already (``theirs.size <= held``) must
        give their root; otherwise it contradicts the note those leaves were proven
        against (the pending one where it covers them, else the served one)."""
        if theirs.size > self.held.size:
            raise ValueError("check_held is for checkpoints within the held leaves")
        if self._root_at(theirs.size) == theirs.root:
            return
        pending = self.pending
        if theirs.size > self.size and pending is not None and pending.size >= theirs.size:
            assert self.pending_note is not None
            ours = self.pending_note
        else:
            ours = self.note or b""
        raise EquivocationError(
            f"{self.log_id}: checkpoint {theirs.size} contradicts the leaves held",
            log_id=self.log_id,
            ours=ours,
            theirs=their_note,
        )

    def pages_towards(self, target: Checkpoint) -> PageVerifier:
        """A verifier for pages from the held leaves up to ``target``."""
        return PageVerifier(self.log_id, self.held, target)


def _no_leaves(n: int) -> bytes:
    if n == 0:
        return EMPTY_ROOT
    raise ValueError(f"the reader holds no leaves, asked for the root of {n}")


@dataclass(frozen=True)
class VerifiedPage:
    batches: tuple[Batch, ...]
    leaves: tuple[bytes, ...]
    edge: CompactRange


class PageVerifier:
    """Verifies pages of a log, from the reader's right edge up to a signed checkpoint.

    ``edge`` is the compact range of the leaves already held (verified earlier), ``target``
    the checkpoint being pulled towards (its signature already verified). A page that
    fails leaves the verifier where it was, so nothing of it can be stored.
    """

    def __init__(self, log_id: str, edge: CompactRange, target: Checkpoint) -> None:
        if target.origin != log_id:
            raise VerificationError(f"checkpoint is for {target.origin}, not {log_id}")
        if edge.size > target.size:
            raise VerificationError(
                f"{log_id}: checkpoint size {target.size} is behind the {edge.size} leaves held"
            )
        self.log_id = log_id
        self.org, self.collection = parse_log_id(log_id)
        self.edge = edge.copy()
        self.target = target

    @property
    def done(self) -> bool:
        return self.edge.size == self.target.size

    def verify_page(self, lines: Sequence[bytes], proof: Sequence[bytes]) -> VerifiedPage:
        """Check one page; ``proof`` is the consistency proof from the page's end to the
        target size (empty when the page ends at it). Returns the page to commit."""
        if not lines:
            raise VerificationError(f"{self.log_id}: empty page at index {self.edge.size}")
        edge = self.edge.copy()
        batches = []
        leaves = []
        for data in lines:
            if edge.size >= self.target.size:
                raise VerificationError(
                    f"{self.log_id}: batch {edge.size} is past the checkpoint's size "
                    f"{self.target.size}"
                )
            batch = decode_batch(
                data, org=self.org, collection=self.collection, index=edge.size
            )
            leaf = leaf_hash(data)
            edge.append(leaf)
            batches.append(batch)
            leaves.append(leaf)
        if edge.size == self.target.size:
            if edge.root() != self.target.root:
                raise VerificationError(
                    f"{self.log_id}: batches 0..{edge.size - 1} do not give the signed root"
                )
        else:
            verify_consistency(edge.size, self.target.size, edge.root(), self.target.root, proof)
        self.edge = edge
        return VerifiedPage(tuple(batches), tuple(leaves), edge.copy())
