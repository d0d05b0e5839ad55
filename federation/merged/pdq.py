"""Perceptual matching over the merged list: every PDQ record within D bits of a query,
through the exact index of ``pdq_index``, kept current from ``pdq_values``.

``pdq_values`` numbers every PDQ value the merged list has held, in the transaction that
merged it (``writer.apply_entries``). A matcher loads the table once (read in C, in steps of
a million ids, each one buffer straight into numpy) and, before every search, adds the rows
committed since (``id > last``): one indexed query, usually empty. So a search never misses
a hash that a publish, pull or push committed before it, in this process or another
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

# Ids read per step when loading: bounds the memory a step holds (32 MiB of values).
_LOAD_IDS = 1 << 20

# One step of the load, read in C: SQLite concatenates the values of a range of ids into
# one blob (binary-safe: group_concat appends each value's bytes whole), so loading ten
# million values creates no Python object per value. Where the range has no gaps, which is
# how the one writer appends, value k of the blob is id ``lo + 1 + k``: a rowid range is
# scanned in rowid order. ``_LOAD_STEP_IDS`` carries each id beside its value (as hex),
# for a range with gaps, at a third of the speed.
_LOAD_STEP = (
    "SELECT count(*), sum(length(value) != 32), CAST(group_concat(value, '') AS BLOB)"
    " FROM pdq_values WHERE id > ? AND id <= ?"
)
_LOAD_STEP_IDS = (
    "SELECT count(*), group_concat(printf('%016x', id) || hex(value), '')"
    " FROM pdq_values WHERE id > ? AND id <= ?"
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
        (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM pdq_values").fetchone()
        id_parts, hash_parts = [], []
        while last < top:
            hi = min(last + _LOAD_IDS, top)
            ids, hashes = _read_step(conn, last, hi)
            id_parts.append(ids)
            hash_parts.append(hashes)
            last = hi
        ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
        if not len(ids):
            return 0
        hashes = np.concatenate(hash_parts)
        if self._index.last_id is None:  # the first load: one build, not a stream of merges
            self._index = PdqIndex.from_arrays(ids, hashes)
        else:
            self._index.add(ids, hashes)
        return len(ids)


def _read_step(conn: sqlite3.Connection, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids and values of ``pdq_values`` in ``(lo, hi]``; a value that is not 32 bytes
    fails the load (the store is damaged: ``hashfed check`` says where)."""
    count, bad, blob = conn.execute(_LOAD_STEP, (lo, hi)).fetchone()
    if bad:
        raise StoreError(f"pdq_values: {bad} values with ids in {lo + 1}..{hi} are not 32 bytes")
    if not count:
        return np.zeros(0, np.int64), np.zeros((0, 32), np.uint8)
    if count == hi - lo and len(blob) == 32 * count:
        hashes = np.frombuffer(blob, dtype=np.uint8).reshape(count, 32)
        # Spot-check the order the blob was built in: the first and last ids' values.
        for at in (0, count - 1):
            row = conn.execute("SELECT value FROM pdq_values WHERE id = ?", (lo + 1 + at,))
            if row.fetchone()[0] != blob[32 * at : 32 * at + 32]:
                break
        else:
            return np.arange(lo + 1, hi + 1, dtype=np.int64), hashes
    count, text = conn.execute(_LOAD_STEP_IDS, (lo, hi)).fetchone()
    rows = np.frombuffer(bytes.fromhex(text), dtype=np.uint8).reshape(count, _ROW_BYTES)
    ids = rows[:, :8].copy().view(">i8").ravel().astype(np.int64)
    order = np.argsort(ids)
    return ids[order], rows[order, 8:]


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
