"""Perceptual matching over the merged list: every PDQ record within D bits of a query,
through the exact index of ``pdq_index``, kept current from ``pdq_values``.

``pdq_values`` numbers every PDQ value the merged list has held, in the transaction that
merged it (``writer.apply_entries``). A matcher loads the table once (read in C, in steps of
half a million rows, each one buffer straight into numpy) and, before every search, adds the
rows committed since (``id > last``): one indexed query, usually empty. So a search never
misses a hash that a publish, pull or push committed before it, in this process or another
(``hashfed pull`` beside ``serve``), and after a crash the index is rebuilt from the store,
which is the truth. Values are never removed: a retracted hash is still a record
(inactive), and a match on it says so.

A matcher is not safe for concurrent use by itself: its owner serialises calls (a lock
around a worker thread). It works on the connection it is given, inside no transaction.
"""

from __future__ import annotations

import sqlite3
import threading

import numpy as np

from hashfed.federation.merged.pdq_index import MAX_DISTANCE, PdqIndex, hex_to_words
from hashfed.keys.errors import StoreError

__all__ = ["MAX_DISTANCE", "PdqMatcher"]

# Rows read per step when loading: bounds the memory a step holds (about 120 bytes a row).
_LOAD_ROWS = 1 << 19

# One step of the load, read in C: SQLite concatenates each row's id and value as hex (16 +
# 64 digits), and Python turns the whole step into one bytes object, so loading ten million
# values creates no Python object per value. The id travels with its value, whatever order
# the aggregate visits the rows in.
_LOAD_STEP = (
    "SELECT count(*), max(id), sum(length(value) != 32),"
    " group_concat(printf('%016x', id) || hex(value), '')"
    " FROM (SELECT id, value FROM pdq_values WHERE id > ? ORDER BY id LIMIT ?)"
)
_ROW_BYTES = 8 + 32


class PdqMatcher:
    """Search PDQ values of the merged list; answers are ``(distance, hex value)`` pairs."""

    def __init__(self) -> None:
        self._index = PdqIndex()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._index)

    def catch_up(self, conn: sqlite3.Connection) -> int:
        """Add the values committed since the last call; returns how many."""
        with self._lock:
            return self._catch_up(conn)

    def search(
        self, conn: sqlite3.Connection, queries: list[str], max_distance: int
    ) -> list[list[tuple[int, str]]]:
        """For each query (normalised hex), every value within ``max_distance`` bits,
        nearest first (ties in value order)."""
        if not 0 <= max_distance <= MAX_DISTANCE:
            raise ValueError(f"max_distance must be from 0 to {MAX_DISTANCE}")
        with self._lock:
            self._catch_up(conn)
            if not queries:
                return []
            distances, ids, counts = self._index.search_arrays(hex_to_words(queries), max_distance)
        values = _values_of(conn, ids)
        answers = []
        at = 0
        for count in counts.tolist():
            pairs = sorted(zip(distances[at : at + count].tolist(), (values[i] for i in ids[at : at + count].tolist()), strict=True))
            answers.append(pairs)
            at += count
        return answers

    def _catch_up(self, conn: sqlite3.Connection) -> int:
        last = self._index.last_id or 0
        id_parts, hash_parts = [], []
        while True:
            count, top, bad, text = conn.execute(_LOAD_STEP, (last, _LOAD_ROWS)).fetchone()
            if not count:
                break
            if bad:
                raise StoreError(f"pdq_values: {bad} values after id {last} are not 32 bytes")
            rows = np.frombuffer(bytes.fromhex(text), dtype=np.uint8).reshape(count, _ROW_BYTES)
            id_parts.append(rows[:, :8].copy().view(">i8").ravel().astype(np.int64))
            hash_parts.append(rows[:, 8:])
            last = top
        if not id_parts:
            return 0
        ids, hashes = np.concatenate(id_parts), np.concatenate(hash_parts)
        if self._index.last_id is None:  # the first load: one build, not a stream of merges
            self._index = PdqIndex.from_arrays(ids, hashes)
        else:
            self._index.add(ids, hashes)
        return len(ids)


def _values_of(conn: sqlite3.Connection, ids: np.ndarray) -> dict[int, str]:
    """The hex value of each id (one query per 900 ids: SQLite's oldest parameter limit)."""
    wanted = sorted(set(ids.tolist()))
    values: dict[int, str] = {}
    for at in range(0, len(wanted), 900):
        chunk = wanted[at : at + 900]
        cursor = conn.execute(
            f"SELECT id, value FROM pdq_values WHERE id IN ({','.join('?' * len(chunk))})", chunk
        )
        values.update((row_id, value.hex()) for row_id, value in cursor)
    return values
