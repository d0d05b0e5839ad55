"""The reader's trust state machine for one log (PROTOCOL §7), with no IO.

Feed it what a peer sent; it returns what may be stored or raises. The puller does the IO
and the store does the writing; nothing here reads the network, the disk or the clock.

    assess(...)         a new signed checkpoint against the reader's view:
                        up to date / source behind / something to pull, or EquivocationError
    PageVerifier        pages of batch bytes towards a signed checkpoint: each batch decoded
                        and checked (PROTOCOL §4), the right edge extended, and after each
                        page the intermediate root proven against the checkpoint
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hashfed.keys.errors import EquivocationError, VerificationError

from .batch import Batch, decode_batch
from .checkpoint import Checkpoint
from .merkle import CompactRange, leaf_hash, verify_consistency
from .names import parse_log_id


class Assessment(enum.Enum):
    UP_TO_DATE = "up to date"
    SOURCE_BEHIND = "source behind"
    AHEAD = "ahead"


def assess(
    *,
    log_id: str,
    size: int,
    root: bytes,
    note: bytes | None,
    theirs: Checkpoint,
    their_note: bytes,
    root_at: Callable[[int], bytes],
    pending: Checkpoint | None = None,
    pending_note: bytes | None = None,
) -> Assessment:
    """Compare a verified checkpoint with the reader's view (``size``, ``root``, ``note``).

    ``root_at(n)`` gives the root of the reader's own first n leaves, for n < size.
    ``pending`` (with its signed note) is the checkpoint that leaves held past ``size``
    were proven against, when a pull towards it was cut short: a checkpoint of its size
    with another root contradicts it as surely as one of the served size.
    Raises EquivocationError (carrying both notes) when the two cannot both be true.
    A reader never moves backwards: a smaller, consistent checkpoint is SOURCE_BEHIND.
    """
    if theirs.origin != log_id:
        raise VerificationError(f"checkpoint is for {theirs.origin}, not {log_id}")
    if (pending is None) != (pending_note is None):
        raise ValueError("pending and pending_note go together")
    if pending is not None and pending.origin != log_id:
        raise VerificationError(f"pending checkpoint is for {pending.origin}, not {log_id}")
    if pending is not None and pending.size == theirs.size and pending.root != theirs.root:
        assert pending_note is not None
        raise EquivocationError(
            f"{log_id}: two different roots signed for size {theirs.size} "
            "(ours held in part, not yet served)",
            log_id=log_id,
            ours=pending_note,
            theirs=their_note,
        )
    if theirs.size == size:
        if theirs.root == root:
            return Assessment.UP_TO_DATE
        raise EquivocationError(
            f"{log_id}: two different roots signed for size {size}",
            log_id=log_id,
            ours=note or b"",
            theirs=their_note,
        )
    if theirs.size < size:
        if root_at(theirs.size) == theirs.root:
            return Assessment.SOURCE_BEHIND
        raise EquivocationError(
            f"{log_id}: a checkpoint at size {theirs.size} contradicts our log at size {size}",
            log_id=log_id,
            ours=note or b"",
            theirs=their_note,
        )
    return Assessment.AHEAD


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
