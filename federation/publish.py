"""Publishing: staged entries → batches → leaves and tree state → signed checkpoint.

The order is PROTOCOL §5's crash rule. Each batch is stored (bytes, leaf hash, merged
entries, new right edge) and its entries unstaged in one transaction; only then is the tree
signed, and the checkpoint stored in another. A crash before the signature leaves a tree
that the next ``publish`` signs as it is; since the leaves are already durable, no size can
ever be signed with two roots. ``Store.accept_checkpoint`` refuses a second root anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from hashfed.federation.events import emit
from hashfed.federation.store import LogState, Store
from hashfed.keys import Signer
from hashfed.keys.names import make_log_id
from hashfed.protocol.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    Batch,
    encode_batch,
    format_created,
)
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.logview import VerifiedPage
from hashfed.protocol.merkle import leaf_hash

# Room kept for the batch's own keys ("collection", "created", "index", ...).
_HEADER_ROOM = 512

Progress = Callable[[int], None]

# Batches stored per transaction (at most 80,000 entries in memory at a time).
PAGE_BATCHES = 8


@dataclass(frozen=True)
class Published:
    log_id: str
    size: int
    new_batches: int
    new_entries: int


def _entry_size_bound(entry: Entry) -> int:
    """An upper bound on the entry's canonical JSON length, without serialising it."""
    labels = sum(len(label) + 3 for label in entry.labels)
    return 64 + len(entry.type) + len(entry.value) + labels + len(entry.opinion or "")


def chunk_entries(entries: Iterable[tuple[int, Entry]]) -> Iterator[list[tuple[int, Entry]]]:
    """Split (seq, entry) pairs into batches of at most 10,000 entries and 4 MiB."""
    chunk: list[tuple[int, Entry]] = []
    size = _HEADER_ROOM
    for item in entries:
        bound = _entry_size_bound(item[1]) + 1
        if chunk and (len(chunk) == MAX_BATCH_ENTRIES or size + bound > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], _HEADER_ROOM
        chunk.append(item)
        size += bound
    if chunk:
        yield chunk


def publish(
    store: Store,
    signers: Sequence[Signer],
    *,
    now: datetime,
    progress: Progress | None = None,
    page_batches: int = PAGE_BATCHES,
) -> list[Published]:
    """Publish everything staged, in every collection, and sign each log that grew.

    Also signs an own log whose stored tree is ahead of its checkpoint (a crash between
    storing and signing). Returns one ``Published`` per log that got a new checkpoint.
    """
    org = signers[0].name
    grown: dict[str, tuple[int, int]] = {}
    for collection, _count in store.staging.collections():
        batches = entries = 0
        while True:
            stored_batches, stored_entries = _store_next_page(
                store, org, collection, now, page_batches
            )
            if not stored_batches:
                break
            batches += stored_batches
            entries += stored_entries
            if progress is not None:
                progress(stored_entries)
        grown[make_log_id(org, collection)] = (batches, entries)

    published = []
    for log in store.logs.all():
        if log.own and log.held > log.size:
            log = _sign(store, log, signers)
            batches, entries = grown.get(log.log_id, (0, 0))
            published.append(Published(log.log_id, log.size, batches, entries))
            emit("publish", node=org, log=log.log_id, size=log.size, batches=batches,
                 entries=entries)
    return published


def _store_next_page(
    store: Store, org: str, collection: str, now: datetime, page_batches: int
) -> tuple[int, int]:
    """Store the next page of a collection's staged entries as up to ``page_batches``
    batches, in one transaction; returns (batches, entries) stored, (0, 0) when none.

    One transaction per page, not per batch: random inserts into the merged list dirty
    the same B-tree pages batch after batch, and each commit writes them out again. The
    staged entries are read inside the transaction, in full, so no read statement stays
    open across commits: another process (``hashfed add``, or ``serve`` committing a
    pull) may write between two pages of a long publish.
    """
    limit = MAX_BATCH_ENTRIES * page_batches
    with store.transaction():
        staged = store.staging.page(collection, limit)
        if not staged:
            return 0, 0
        chunks = list(chunk_entries(staged))
        if len(staged) == limit and len(chunks) > 1 and len(chunks[-1]) < MAX_BATCH_ENTRIES:
            chunks.pop()  # maybe cut short by the page, not the data: it leads the next page
        log = store.logs.ensure(org, collection, own=True)
        page = _page_of(log, chunks, now)
        store.logs.commit_page(log.log_id, page, now=format_created(now), own=True)
        store.staging.unstage(collection, chunks[-1][-1][0])
        return len(chunks), sum(len(chunk) for chunk in chunks)


def _page_of(
    log: LogState, chunks: list[list[tuple[int, Entry]]], now: datetime
) -> VerifiedPage:
    """Our own next batches, as the page the store commits: the same path a pulled or
    pushed page takes (``Logs.commit_page``)."""
    org, collection = log.org, log.collection
    edge = log.held_edge.copy()
    batches, leaves = [], []
    for chunk in chunks:
        index = edge.size
        entries = [entry for _seq, entry in chunk]
        data = encode_batch(org=org, collection=collection, index=index, created=now, entries=entries)
        # encode_batch checked every entry and wrote the one canonical form; the round trip
        # through decode_batch is proven by the batch tests, so it is not paid again here.
        batches.append(Batch(org, collection, index, format_created(now), tuple(entries), data))
        leaf = leaf_hash(data)
        leaves.append(leaf)
        edge.append(leaf)
    return VerifiedPage(tuple(batches), tuple(leaves), edge)


def _sign(store: Store, log: LogState, signers: Sequence[Signer]) -> LogState:
    checkpoint = Checkpoint(origin=log.log_id, size=log.held, root=log.held_edge.root())
    note = sign_checkpoint(checkpoint, signers)
    with store.transaction():
        return store.logs.accept_checkpoint(store.logs.get(log.log_id) or log, checkpoint, note)
