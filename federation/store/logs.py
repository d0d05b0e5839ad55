"""Logs: one row per log this node holds (its own or another org's), the batch bytes
verbatim, the leaf hashes, every checkpoint accepted, and the one commit path.

Batch and checkpoint bytes are stored exactly as received and served back unchanged, so a
reader always verifies the origin's bytes, never a re-serialisation.

``commit_page`` is how leaves enter the store, whoever made them: a publish (our own
batches), a pull (pages verified against a peer's signed checkpoint) and a push (pages an
org uploaded). It checks that the page starts at what is held (``WrongStart`` otherwise:
another writer got there first), stores the batches and leaf hashes, merges their entries
into the merged list in the same transaction, and, when the page completes the checkpoint
it was proven against, makes that checkpoint the one served. A node never serves a
checkpoint over leaves it does not hold, and refuses a second root for any size. (What
TAXII shows of the served batches is made later, off this path: ``indicators.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hashfed.federation.merged import writer as merged_writer
from hashfed.keys.errors import StoreError
from hashfed.keys.names import make_log_id, parse_log_id
from hashfed.protocol.checkpoint import Checkpoint
from hashfed.protocol.logview import LogView, VerifiedPage
from hashfed.protocol.merkle import EMPTY_ROOT, CompactRange, root_hash

if TYPE_CHECKING:
    from hashfed.federation.store.connection import Store


class WrongStart(StoreError):
    """A page does not start at the number of batches held: another writer (a second pull
    of the log, another push) stored some first. ``held`` is where the log really is."""

    def __init__(self, log_id: str, *, start: int, held: int) -> None:
        super().__init__(f"{log_id}: the page starts at {start}, this node holds {held} batches")
        self.log_id = log_id
        self.start = start
        self.held = held


@dataclass(frozen=True, slots=True)
class LogState:
    """One row of ``logs``: what this node holds of one log.

    ``size``/``root``/``checkpoint`` are what it serves; ``held``/``held_edge`` what it
    stores, which may run past ``size``; ``pending`` is the signed note the leaves past
    ``size`` were proven against (None when nothing pulled or pushed is held past it).
    """

    id: int
    org: str
    collection: str
    own: bool
    size: int
    root: bytes
    checkpoint: bytes | None
    held: int
    held_edge: CompactRange
    pending: bytes | None

    @property
    def log_id(self) -> str:
        return make_log_id(self.org, self.collection)


_COLUMNS = "id, org, collection, own, size, root, checkpoint, held, held_edge, pending"


def _row_to_log(row: tuple) -> LogState:
    (id_, org, collection, own, size, root, checkpoint, held, held_edge, pending) = row
    return LogState(
        id=id_,
        org=org,
        collection=collection,
        own=bool(own),
        size=size,
        root=root,
        checkpoint=checkpoint,
        held=held,
        held_edge=CompactRange.from_bytes(held, held_edge),
        pending=pending,
    )


class Logs:
    """The logs repository of a ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._conn = store.conn
        self._names: dict[int, tuple[str, str]] = {}

    # -- reading -----------------------------------------------------------------------

    def get(self, log_id: str) -> LogState | None:
        org, collection = parse_log_id(log_id)
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM logs WHERE org = ? AND collection = ?", (org, collection)
        ).fetchone()
        return None if row is None else _row_to_log(row)

    def all(self) -> list[LogState]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM logs ORDER BY org, collection")
        return [_row_to_log(row) for row in rows.fetchall()]

    def served(self) -> list[LogState]:
        """Logs with a complete checkpoint: the ones this node may serve at all."""
        return [log for log in self.all() if log.checkpoint is not None]

    def name(self, log_row_id: int) -> tuple[str, str]:
        """(org, collection) of a log's row id, cached: rows are never renamed."""
        name = self._names.get(log_row_id)
        if name is None:
            row = self._conn.execute(
                "SELECT org, collection FROM logs WHERE id = ?", (log_row_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no log with row id {log_row_id}")
            name = self._names[log_row_id] = (row[0], row[1])
        return name

    def view(self, log_id: str) -> LogView:
        """The reader's view of a log (``protocol.logview``), for deciding what a signed
        checkpoint from a peer means next to what is held."""
        state = self.get(log_id)
        if state is None:
            return LogView.empty(log_id)
        return LogView(
            log_id,
            size=state.size,
            root=state.root,
            note=state.checkpoint,
            held=state.held_edge,
            pending_note=state.pending,
            root_at=lambda n: self.root_at(state, n),
        )

    def leaf_hashes(self, log: LogState, size: int) -> list[bytes]:
        """Leaf hashes of batches 0..size-1, in order (trees are one leaf per batch,
        so even a log of a hundred million entries has only ten thousand leaves)."""
        if size > log.held:
            raise StoreError(f"{log.log_id}: asked for {size} leaves, hold {log.held}")
        rows = self._conn.execute(
            "SELECT leaf FROM leaves WHERE log = ? AND idx < ? ORDER BY idx", (log.id, size)
        ).fetchall()
        return [row[0] for row in rows]

    def root_at(self, log: LogState, size: int) -> bytes:
        """The root of the first ``size`` leaves this node holds of a log: the root of a
        checkpoint it accepted for that size (one row), else computed from the leaves."""
        if size == log.size:
            return log.root
        row = self._conn.execute(
            "SELECT root FROM checkpoints WHERE log = ? AND size = ?", (log.id, size)
        ).fetchone()
        if row is not None:
            return row[0]
        return root_hash(self.leaf_hashes(log, size))

    def batch_data(self, log: LogState, index: int) -> bytes:
        """One batch's bytes, verbatim, read by a statement that is finished on return."""
        row = self._conn.execute(
            "SELECT data FROM batches WHERE log = ? AND idx = ?", (log.id, index)
        ).fetchone()
        if row is None:
            raise StoreError(f"{log.log_id}: no batch {index}")
        return row[0]

    def iter_batches(self, log: LogState, start: int, end: int) -> Iterator[bytes]:
        """Batch bytes verbatim for indices start..end-1 (end clipped to what is held)."""
        cursor = self._conn.execute(
            "SELECT data FROM batches WHERE log = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (log.id, start, min(end, log.held)),
        )
        for (data,) in cursor:
            yield data

    # -- writing (inside a transaction) --------------------------------------------------

    def ensure(self, org: str, collection: str, *, own: bool = False) -> LogState:
        """The log's row, created empty if new. Call inside a transaction."""
        log = self.get(make_log_id(org, collection))
        if log is not None:
            return log
        self._conn.execute(
            "INSERT INTO logs (org, collection, own, size, root, checkpoint, held, held_edge)"
            " VALUES (?, ?, ?, 0, ?, NULL, 0, x'')",
            (org, collection, int(own), EMPTY_ROOT),
        )
        created = self.get(make_log_id(org, collection))
        assert created is not None
        return created

    def commit_page(
        self,
        log_id: str,
        page: VerifiedPage,
        *,
        now: str,
        own: bool = False,
        proven_by: bytes | None = None,
        serve: tuple[Checkpoint, bytes] | None = None,
    ) -> LogState:
        """Store a verified page and merge its entries. Call inside a transaction.

        The page must start at what is held (``WrongStart`` otherwise); ``now`` is when it
        arrived (the change feed's order and time). ``proven_by`` is
        the signed note a pulled or pushed page was proven against (None for an own
        publish, which signs afterwards): it becomes ``LogState.pending`` until a
        checkpoint is served for those leaves. ``serve`` is the checkpoint (and its note)
        to serve once the page is stored: it must cover exactly the held leaves.
        """
        org, collection = parse_log_id(log_id)
        log = self.ensure(org, collection, own=own)
        start = page.batches[0].index if page.batches else page.edge.size
        if start != log.held:
            raise WrongStart(log_id, start=start, held=log.held)
        log = self._append(log, page, pending=proven_by, now=now)
        if serve is not None:
            log = self.accept_checkpoint(log, *serve)
        return log

    def _append(
        self, log: LogState, page: VerifiedPage, *, pending: bytes | None, now: str
    ) -> LogState:
        batches, leaves, edge = page.batches, page.leaves, page.edge
        if not batches:
            return log
        for offset, batch in enumerate(batches):
            if batch.log_id != log.log_id or batch.index != log.held + offset:
                raise StoreError(
                    f"{log.log_id}: batch {offset} of the page is leaf {batch.index} of "
                    f"{batch.log_id}, expected leaf {log.held + offset} of {log.log_id}"
                )
        if len(leaves) != len(batches) or edge.size != log.held + len(batches):
            raise StoreError(
                f"{log.log_id}: {len(batches)} batches with {len(leaves)} leaf hashes "
                f"and a right edge of size {edge.size}, store holds {log.held}"
            )
        expected_edge = log.held_edge.copy()
        for leaf in leaves:
            expected_edge.append(leaf)
        if expected_edge != edge:
            raise StoreError(f"{log.log_id}: the page's right edge does not extend the stored tree")
        self._conn.executemany(
            "INSERT INTO batches (log, idx, data) VALUES (?, ?, ?)",
            [(log.id, b.index, b.data) for b in batches],
        )
        self._conn.executemany(
            "INSERT INTO leaves (log, idx, leaf) VALUES (?, ?, ?)",
            [(log.id, b.index, leaf) for b, leaf in zip(batches, leaves, strict=True)],
        )
        self._conn.executemany(
            "INSERT INTO arrivals (log, idx, arrived_at) VALUES (?, ?, ?)",
            [(log.id, b.index, now) for b in batches],
        )
        merged_writer.apply_entries(
            self._conn, log.id, (entry for batch in batches for entry in batch.entries)
        )
        self._conn.execute(
            "UPDATE logs SET held = ?, held_edge = ?, pending = coalesce(?, pending) WHERE id = ?",
            (edge.size, edge.to_bytes(), pending, log.id),
        )
        return self._reload(log)

    def accept_checkpoint(self, log: LogState, checkpoint: Checkpoint, note: bytes) -> LogState:
        """Make a verified checkpoint the one served. Call inside a transaction.

        Its size must be exactly what is held, and its root must be the held tree's root;
        a second, different root for a size already recorded is refused (PROTOCOL §5).
        Every leaf is then served, so no note is pending any more.
        """
        if checkpoint.origin != log.log_id:
            raise StoreError(f"{log.log_id}: refusing a checkpoint of {checkpoint.origin}")
        if checkpoint.size != log.held:
            raise StoreError(
                f"{log.log_id}: checkpoint for size {checkpoint.size}, store holds {log.held}"
            )
        if checkpoint.root != log.held_edge.root():
            raise StoreError(f"{log.log_id}: checkpoint root differs from the stored tree")
        row = self._conn.execute(
            "SELECT root FROM checkpoints WHERE log = ? AND size = ?", (log.id, checkpoint.size)
        ).fetchone()
        if row is not None and row[0] != checkpoint.root:
            raise StoreError(f"{log.log_id}: refusing a second root for size {checkpoint.size}")
        if row is None:
            self._conn.execute(
                "INSERT INTO checkpoints (log, size, root, note) VALUES (?, ?, ?, ?)",
                (log.id, checkpoint.size, checkpoint.root, note),
            )
        self._conn.execute(
            "UPDATE logs SET size = ?, root = ?, checkpoint = ?, pending = NULL WHERE id = ?",
            (checkpoint.size, checkpoint.root, note, log.id),
        )
        return self._reload(log)

    def _reload(self, log: LogState) -> LogState:
        fresh = self.get(log.log_id)
        assert fresh is not None
        return fresh
