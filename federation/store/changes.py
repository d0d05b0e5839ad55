"""The change feed of the merged list: every record whose state may have changed, in the
order the batches that changed it arrived, with a cursor that never expires.

It is read from what the store keeps anyway: ``arrivals`` numbers every stored batch across
all logs (an explicit INTEGER PRIMARY KEY, so VACUUM never renumbers it), and the batch
bytes say which hashes each one touched. A cursor ``SEQ.OFFSET`` means "from entry OFFSET of
the batch that arrived as SEQ"; a page seeks to it by primary key, so every page costs the
same at any depth, and no write on the sync path pays for the feed.

A record appears once per page however many of the page's entries touched it, with its
state when the page is read (so a consumer that applies pages in order ends with the
node's list). A record touched again later appears again later. Entries of logs the reader
may not see are still positions in the feed: the feed lists records of the merged list,
which is the node's own.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hashfed.keys.errors import ProtocolError
from hashfed.protocol.batch import Batch, decode_batch

if TYPE_CHECKING:
    from hashfed.federation.store.connection import Store

MAX_CHANGES = 10_000
_CURSOR = re.compile(r"(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,5})")
# Decoded batches kept between pages: a page of 1,000 changes reads a tenth of a batch.
_CACHED_BATCHES = 4


@dataclass(frozen=True)
class ChangePage:
    records: list[dict]
    next: str  # the cursor to ask from next time (the same one when nothing was new)


def parse_cursor(text: str) -> tuple[int, int]:
    """``SEQ.OFFSET`` as two integers; ProtocolError for anything else."""
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise ProtocolError(f"bad cursor {text[:40]!r}: expected SEQ.OFFSET from a previous page")
    return int(match[1]), int(match[2])


class Changes:
    """The change-feed reader of a ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._batches: OrderedDict[int, Batch] = OrderedDict()

    def page(self, after: str | None, limit: int) -> ChangePage:
        """Up to ``limit`` records changed after the cursor ``after`` (None: from the start)."""
        if not 1 <= limit <= MAX_CHANGES:
            raise ProtocolError(f"limit must be from 1 to {MAX_CHANGES}")
        seq, offset = parse_cursor(after) if after is not None else (0, 0)
        conn = self._store.conn
        touched: dict[tuple[str, str], None] = {}
        while len(touched) < limit:
            row = conn.execute(
                "SELECT a.seq, a.idx, l.org, l.collection, b.data FROM arrivals AS a"
                " JOIN logs AS l ON l.id = a.log"
                " JOIN batches AS b ON b.log = a.log AND b.idx = a.idx"
                " WHERE a.seq >= ? ORDER BY a.seq LIMIT 1",
                (max(seq, 1),),
            ).fetchone()
            if row is None:
                break
            if row[0] != seq:
                seq, offset = row[0], 0
            entries = self._batch(*row).entries
            while offset < len(entries) and len(touched) < limit:
                entry = entries[offset]
                touched[(entry.type, entry.value)] = None
                offset += 1
            # A cursor's offset may be past its batch's end (one written by hand: a page's
            # own never is); either way the next batch is next. (``==`` alone spun forever
            # on such a cursor, holding the event loop: found by the stateful fuzz.)
            if offset >= len(entries):
                seq, offset = seq + 1, 0
        records = self._store.merged.lookup_many_json(list(touched))
        return ChangePage([r for r in records if r is not None], f"{seq}.{offset}")

    def cursor_at(self, when: str) -> str:
        """The cursor of the first batch that arrived at or after ``when`` (a timestamp
        as the store records them: ``YYYY-MM-DDTHH:MM:SSZ``, or a prefix such as a date).
        Batches stored before arrival times were kept have none and are never "since"."""
        row = self._store.conn.execute(
            "SELECT min(seq) FROM arrivals WHERE arrived_at >= ?", (when,)
        ).fetchone()
        if row[0] is not None:
            return f"{row[0]}.0"
        last = self._store.conn.execute("SELECT coalesce(max(seq), 0) FROM arrivals").fetchone()
        return f"{last[0] + 1}.0"

    def _batch(self, seq: int, index: int, org: str, collection: str, data: bytes) -> Batch:
        batch = self._batches.get(seq)
        if batch is None:
            # Verified when it was stored; decoding again is how its entries are read.
            batch = decode_batch(data, org=org, collection=collection, index=index)
            self._batches[seq] = batch
            if len(self._batches) > _CACHED_BATCHES:
                self._batches.popitem(last=False)
        return batch
