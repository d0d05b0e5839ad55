"""An exact in-memory index of PDQ hashes: every stored hash within D bits of a query.

PDQ matching is a Hamming-radius search: a query must find *every* stored 256-bit hash
that differs from it in at most ``D`` bits (PDQ's usual threshold is 31). This index never
misses one — it is exact, checked against brute force by the tests — and answers a query
over ten million hashes in well under a millisecond at the median (a scan takes a tenth
of a second), in about 1.3 GB for 10M hashes (132 bytes a hash).

Algorithm: multi-index hashing (Norouzi, Punjani, Fleet, "Fast exact search in Hamming
space with multi-index hashing", 2014), in numpy.

- The 256 bits are cut into ``m`` contiguous chunks of ``w`` bits each, ``w`` about
  ``log2(n)`` (10M hashes: 11 chunks of 23-24 bits; 1M: 13 of 19-20), so that a chunk's
  table has about one row per bucket.
- Pigeonhole, in its general form: if every chunk ``i`` of two hashes differed in more
  than ``r_i`` bits, the hashes would differ in at least ``sum(r_i + 1)`` bits. So with
  radii chosen such that ``sum(r_i + 1) >= D + 1``, every hash within ``D`` of the query
  agrees with it within ``r_i`` bits on some chunk ``i``. ``r_i = -1`` (chunk not probed)
  is allowed. The radii are chosen greedily under a small cost model (probes and
  candidates) per table and per ``D``: for ``D = 31`` over 10M hashes, about 3,000
  bucket probes give about 3,000 candidates.
- Each chunk's table is a CSR: the rows sorted by the chunk's value (one ``np.sort`` of
  ``value << 32 | row``, a vectorised sort) and an offsets array of ``2**w + 1``
  entries. A probe is two reads; the buckets' rows are expanded in one vectorised step.
- Every candidate is verified exactly: gather its 32 bytes, XOR with the query, popcount
  (``np.bitwise_count``, numpy >= 2.0). A hash found through several chunks is counted
  once. So the index can only return true matches, and the pigeonhole bound means it
  returns them all.
- Where the cost model says probing a table costs more than scanning it (large ``D``,
  small tables), the table is scanned instead: still exact, just slower. Every ``D`` from
  0 to :data:`MAX_DISTANCE` (64 bits: a quarter of the hash; random PDQ hashes are about
  128 apart, so larger radii match noise) is supported.

Clustered data (families of near-duplicates, very common near-blank images) make buckets
uneven: a query close to a family pulls its members through several chunks. Candidates
are deduplicated only after verification (the cheap side), and big buckets cost a
sequential-ish gather, not a probe each. A query near a very common value still has to
verify (and return) every one of its thousands of matches: its time is that of its answer.
``bench/pdq_index.py`` measures uniform and clustered sets, and compares faiss: at 1M
hashes, faiss's exact configuration (IndexBinaryMultiHash, 16 tables of 16 bits, one flip)
is about 20 times slower per query; its one-table IndexBinaryHash is fast but found 11%
(uniform) to 63% (clustered) of the matches within 31 bits.

Incremental updates: an LSM of immutable tables. Rows are appended to one growing array
(ids, hashes, a live mask); the newest rows (fewer than :data:`BUFFER_ROWS`) are scanned
by every query; when the buffer fills, it is sealed into a table of its own, and a table
is rebuilt together with the one before it when it grows to ``1 /`` :data:`GROWTH` of that
one's size. Hence few tables (about ``log_8(n / 4096)``), and each row is rebuilt a
bounded number of times per level. Removal marks rows dead (they are filtered out of
answers at once, and dropped from a table when it is next rebuilt; their 40 bytes stay
until :meth:`PdqIndex.compact`).

How the store keeps it current: the merged list holds its PDQ values in a table whose
rows have increasing integer row ids. The owner builds the index at start with
:meth:`PdqIndex.from_arrays` (every PDQ row, ids and values), then tails the table by id:
``SELECT id, value FROM ... WHERE id > :last ORDER BY id`` and :meth:`PdqIndex.add_hex`
the new rows (the index remembers :attr:`PdqIndex.last_id`). Ids are int64 row ids and
must be strictly increasing across adds: a row added twice is an error, not a duplicate
answer. A row that leaves the merged list is :meth:`PdqIndex.remove`-d by id. The index
holds ids only; the owner turns an id into its record. It is not safe for concurrent use:
the owner serialises mutation and searches (one lock, or one thread).

Hash layout: a hash is its 32 bytes in hex order. As ``(n, 4) uint64`` words, word ``j``
is ``int(hex[16*j : 16*j+16], 16)`` (big-endian), so bit 0 is the top bit of the first
hex digit.

Errors: ``ValueError`` for what the calling code got wrong (array shapes, dtypes, ids
not strictly increasing, a distance outside 0..64); :class:`ProtocolError` for a hash
value in text that is not 64 lowercase hex digits (the value came from outside: the same
error as :func:`hashfed.protocol.hashtypes.check_normalised` gives).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np

from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import show
from hashfed.protocol.hashtypes import PDQ_MAX_DISTANCE

MAX_DISTANCE: Final = PDQ_MAX_DISTANCE
"""The largest supported search radius, in bits."""

HASH_BYTES: Final = 32
HEX_DIGITS: Final = 64

BUFFER_ROWS: Final = 4096
"""Newest rows held unindexed and scanned by each query (128 KiB: tens of microseconds)."""

GROWTH: Final = 8
"""A table is merged into the one before it when it reaches this fraction of its size."""

# The cost model the radii are chosen with, in nanoseconds, measured on a 2-core VM:
# a bucket probe (two reads of the offsets), a candidate (gather 32 bytes, XOR, popcount)
# and a row of a sequential scan.
_COST_PROBE: Final = 30.0
_COST_CANDIDATE: Final = 20.0
_COST_SCAN_ROW: Final = 10.0

_WORDS: Final = 4
_THREADED_BUILD_ROWS: Final = 1 << 18
if sys.byteorder != "little":  # the build reads the low half of a uint64 as uint32 [0]
    raise ImportError("pdq_index needs a little-endian machine")
_U64_32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_HEX_NIBBLE = np.full(256, 255, dtype=np.uint8)
_HEX_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)

Match = tuple[int, int]
"""``(distance, id)``."""


# -- inputs ------------------------------------------------------------------------------


def hex_to_words(values: Iterable[str]) -> np.ndarray:
    """``(n, 4) uint64`` words of normalised PDQ hex values (64 lowercase hex digits);
    :class:`ProtocolError` names the first value that is not one."""
    values = list(values)
    for value in values:
        if type(value) is not str or len(value) != HEX_DIGITS or not value.isascii():
            raise _bad_hex(value)
    if not values:
        return np.empty((0, _WORDS), dtype=np.uint64)
    text = np.frombuffer("".join(values).encode("ascii"), dtype=np.uint8)
    nibbles = _HEX_NIBBLE[text].reshape(len(values), HEX_DIGITS)
    bad = np.flatnonzero((nibbles == 255).any(axis=1))
    if len(bad):
        raise _bad_hex(values[bad[0]])
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return _bytes_to_words(packed)


def words_to_hex(words: np.ndarray) -> list[str]:
    """The inverse of :func:`hex_to_words`."""
    raw = np.ascontiguousarray(words.astype(">u8")).view(np.uint8).reshape(-1, HASH_BYTES)
    return [row.tobytes().hex() for row in raw]


def _bad_hex(value: object) -> ProtocolError:
    return ProtocolError(f"bad pdq value {show(value)}: need {HEX_DIGITS} lowercase hex digits")


def _bytes_to_words(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view(">u8").reshape(-1, _WORDS).astype(np.uint64)


def as_words(hashes: object, *, what: str = "hashes") -> np.ndarray:
    """``(n, 4) uint64`` words of ``(n, 32) uint8`` bytes or ``(n, 4) uint64`` words."""
    if not isinstance(hashes, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, not {type(hashes).__name__}")
    if hashes.ndim == 2 and hashes.dtype == np.uint8 and hashes.shape[1] == HASH_BYTES:
        return _bytes_to_words(hashes)
    if hashes.ndim == 2 and hashes.dtype == np.uint64 and hashes.shape[1] == _WORDS:
        return np.ascontiguousarray(hashes)
    raise ValueError(
        f"{what} must have shape (n, 32) uint8 or (n, 4) uint64, "
        f"not {hashes.shape} {hashes.dtype}"
    )


def _query_words(query: object) -> np.ndarray:
    """One query as ``(4,) uint64``: 64 hex digits, 32 bytes, or an array of either shape."""
    if isinstance(query, str):
        return hex_to_words([query])[0]
    if isinstance(query, bytes):
        if len(query) != HASH_BYTES:
            raise ValueError(f"a query of bytes must be {HASH_BYTES} long, not {len(query)}")
        return _bytes_to_words(np.frombuffer(query, dtype=np.uint8))[0]
    if isinstance(query, np.ndarray) and query.ndim == 1:
        return as_words(query[None, :], what="query")[0]
    raise ValueError(
        "a query must be 64 hex digits, 32 bytes, or an array of shape (32,) uint8 or (4,) "
        f"uint64, not {show(query) if isinstance(query, str) else type(query).__name__}"
    )


def _queries_words(queries: object) -> np.ndarray:
    if isinstance(queries, np.ndarray):
        return as_words(queries, what="queries")
    if isinstance(queries, (list, tuple)):
        if all(isinstance(q, str) for q in queries):
            return hex_to_words(queries)
        return np.stack([_query_words(q) for q in queries])
    raise ValueError(f"queries must be an array or a list, not {type(queries).__name__}")


def _check_distance(max_distance: object) -> int:
    if type(max_distance) is not int and not isinstance(max_distance, np.integer):
        raise ValueError(f"max_distance must be an int, not {type(max_distance).__name__}")
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ValueError(f"max_distance must be in 0..{MAX_DISTANCE}, not {max_distance}")
    return int(max_distance)


def _as_ids(ids: object) -> np.ndarray:
    if not isinstance(ids, np.ndarray) or ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError("ids must be a one-dimensional numpy array of integers")
    if ids.dtype.kind == "u" and len(ids) and int(ids.max()) > np.iinfo(np.int64).max:
        raise ValueError("ids must fit in int64")
    return ids.astype(np.int64)


# -- tables ------------------------------------------------------------------------------


def _layout(rows: int) -> tuple[tuple[int, int], ...]:
    """(start bit, width) of each chunk for a table of ``rows`` rows: about ``log2(rows)``
    bits a chunk, so a bucket holds about one row; 8 to 32 chunks."""
    target = max(1.0, math.log2(max(rows, 2)))
    chunks = min(32, max(8, round(256 / target)))
    base, extra = divmod(256, chunks)
    widths = [base + 1] * extra + [base] * (chunks - extra)
    starts = list(itertools.accumulate(widths, initial=0))[:-1]
    return tuple(zip(starts, widths, strict=True))


def _chunk_keys(words: np.ndarray, start: int, width: int) -> np.ndarray:
    """Bits ``[start, start + width)`` of each row of ``(n, 4)`` words, as uint64."""
    j, offset = divmod(start, 64)
    end = offset + width
    if end <= 64:
        keys = words[:, j] >> np.uint64(64 - end)
    else:
        spill = end - 64
        keys = (words[:, j] << np.uint64(spill)) | (words[:, j + 1] >> np.uint64(64 - spill))
    return keys & np.uint64((1 << width) - 1)


@lru_cache(maxsize=256)
def _masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit value of at most ``radius`` set bits, as uint64, fewest first."""
    bits = [1 << b for b in range(width)]
    out = [0]
    for k in range(1, radius + 1):
        out.extend(sum(c) for c in itertools.combinations(bits, k))
    masks = np.array(out, dtype=np.uint64)
    masks.flags.writeable = False
    return masks


def _ball(width: int, radius: int) -> int:
    return sum(math.comb(width, k) for k in range(radius + 1))


@dataclass(frozen=True)
class _Plan:
    """How to probe one table for one radius: per probe, the chunk and the XOR mask."""

    chunk: np.ndarray  # (P,) intp: which chunk each probe is of
    mask: np.ndarray  # (P,) uint64
    base: np.ndarray  # (P,) int64: where that chunk's offsets start


@dataclass(frozen=True, eq=False)
class _Table:
    """An immutable multi-index over rows ``[lo, hi)`` of the index's arrays (the live
    ones when it was built)."""

    lo: int
    hi: int
    rows: int
    layout: tuple[tuple[int, int], ...]
    offsets: np.ndarray  # every chunk's 2**w + 1 offsets, concatenated, into perm
    perm: np.ndarray  # uint32 row - lo, each chunk's rows sorted by its chunk value
    bases: tuple[int, ...]
    plans: dict[int, _Plan | None] = field(default_factory=dict)

    @classmethod
    def build(cls, words: np.ndarray, live: np.ndarray, lo: int, hi: int) -> _Table:
        rel = np.flatnonzero(live[lo:hi])
        rows = len(rel)
        ours = words[lo:hi] if rows == hi - lo else words[lo:hi][rel]
        rel = rel.astype(np.uint64)
        layout = _layout(rows)
        sizes = [(1 << width) + 1 for _, width in layout]
        bases = tuple(itertools.accumulate(sizes, initial=0))
        dtype = np.int32 if rows * len(layout) < 2**31 else np.int64
        offsets = np.empty(bases[-1], dtype=dtype)
        perm = np.empty(rows * len(layout), dtype=np.uint32)

        def sort_chunk(i: int, packed: np.ndarray) -> None:
            start, width = layout[i]
            keys = _chunk_keys(ours, start, width)
            counts = np.bincount(keys.view(np.int64), minlength=1 << width)
            chunk_offsets = offsets[bases[i] : bases[i + 1]]
            chunk_offsets[0] = 0
            np.cumsum(counts, out=chunk_offsets[1:])
            chunk_offsets += i * rows
            np.left_shift(keys, _U64_32, out=packed)
            packed |= rel
            packed.sort()
            # the row is the low half of each packed value (little-endian: the even uint32)
            perm[i * rows : (i + 1) * rows] = packed.view(np.uint32)[0::2]

        def sort_chunks(chunks: range) -> None:
            packed = np.empty(rows, dtype=np.uint64)
            for i in chunks:
                sort_chunk(i, packed)

        m = len(layout)
        if rows >= _THREADED_BUILD_ROWS:
            # np.sort lets go of the GIL: two threads, a buffer each, halve a large build
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(sort_chunks, [range(0, m, 2), range(1, m, 2)]))
        else:
            sort_chunks(range(m))
        return cls(lo=lo, hi=hi, rows=rows, layout=layout, offsets=offsets, perm=perm, bases=bases[:-1])

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.perm.nbytes

    def plan(self, max_distance: int) -> _Plan | None:
        """The probes for ``max_distance``, or None where scanning is cheaper."""
        if max_distance not in self.plans:
            self.plans[max_distance] = self._make_plan(max_distance)
        return self.plans[max_distance]

    def _make_plan(self, max_distance: int) -> _Plan | None:
        widths = [width for _, width in self.layout]

        def cost(i: int, radius: int) -> float:
            if radius < 0:
                return 0.0
            if radius > widths[i]:
                return math.inf
            per_probe = _COST_PROBE + _COST_CANDIDATE * self.rows / 2 ** widths[i]
            return _ball(widths[i], radius) * per_probe

        radii = [-1] * len(widths)
        for _ in range(max_distance + 1):  # each step adds one to sum(r_i + 1)
            best = min(range(len(widths)), key=lambda i: cost(i, radii[i] + 1) - cost(i, radii[i]))
            radii[best] += 1
        total = sum(cost(i, r) for i, r in enumerate(radii))
        if total >= _COST_SCAN_ROW * self.rows:
            return None
        chunk, mask, base = [], [], []
        for i, radius in enumerate(radii):
            if radius >= 0:
                masks = _masks(widths[i], radius)
                chunk.append(np.full(len(masks), i, dtype=np.intp))
                mask.append(masks)
                base.append(np.full(len(masks), self.bases[i], dtype=np.int64))
        return _Plan(np.concatenate(chunk), np.concatenate(mask), np.concatenate(base))

    def candidates(self, queries: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
        """(query index, row) of every row sharing a probed bucket with a query."""
        keys = np.empty((len(queries), len(self.layout)), dtype=np.uint64)
        for i, (start, width) in enumerate(self.layout):
            keys[:, i] = _chunk_keys(queries, start, width)
        probes = (keys[:, plan.chunk] ^ plan.mask).view(np.int64) + plan.base
        starts = self.offsets[probes]
        lengths = self.offsets[probes + 1] - starts
        starts, lengths = starts.ravel(), lengths.ravel()
        hit = lengths > 0
        starts, lengths = starts[hit].astype(np.int64), lengths[hit].astype(np.int64)
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, np.intp), np.zeros(0, np.int64)
        ends = np.cumsum(lengths)
        positions = np.repeat(starts - (ends - lengths), lengths) + np.arange(total)
        rows = self.perm[positions].astype(np.int64) + self.lo
        per_query = np.bincount(
            np.repeat(np.arange(len(queries)), plan.chunk.size)[hit],
            weights=lengths,
            minlength=len(queries),
        ).astype(np.int64)
        return np.repeat(np.arange(len(queries)), per_query), rows


# -- the index ---------------------------------------------------------------------------


class PdqIndex:
    """Exact Hamming-radius search over PDQ hashes, keyed by int64 row ids.

    See the module docstring for the algorithm, the update rules and the errors.
    """

    def __init__(self) -> None:
        self._words = np.zeros((0, _WORDS), dtype=np.uint64)
        self._ids = np.zeros(0, dtype=np.int64)
        self._live = np.zeros(0, dtype=bool)
        self._rows = 0  # rows used in the arrays (live or dead)
        self._dead = 0
        self._tables: list[_Table] = []

    # construction and updates

    @classmethod
    def from_arrays(cls, ids: np.ndarray, hashes: np.ndarray) -> PdqIndex:
        """An index of ``hashes`` under ``ids`` (distinct, in any order), built at once."""
        ids = _as_ids(ids)
        words = as_words(hashes)
        if len(ids) != len(words):
            raise ValueError(f"{len(ids)} ids for {len(words)} hashes")
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            order = np.argsort(ids, kind="stable")
            ids, words = ids[order], words[order]
            if (ids[1:] == ids[:-1]).any():
                raise ValueError(f"duplicate id {int(ids[1:][ids[1:] == ids[:-1]][0])}")
        index = cls()
        index._append(ids, words)
        if len(ids) >= BUFFER_ROWS:
            index._tables.append(_Table.build(index._words, index._live, 0, len(ids)))
        return index

    def add(self, ids: np.ndarray, hashes: np.ndarray) -> None:
        """Add rows; ``ids`` strictly increasing and above :attr:`last_id`."""
        ids = _as_ids(ids)
        words = as_words(hashes)
        if len(ids) != len(words):
            raise ValueError(f"{len(ids)} ids for {len(words)} hashes")
        if len(ids) == 0:
            return
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            raise ValueError("ids must be strictly increasing")
        if self._rows and ids[0] <= self._ids[self._rows - 1]:
            raise ValueError(f"id {int(ids[0])} is not above the last id added, {self.last_id}")
        self._append(ids, words)
        if self._rows - self._indexed >= BUFFER_ROWS:
            self._tables.append(_Table.build(self._words, self._live, self._indexed, self._rows))
            while len(self._tables) >= 2 and (
                GROWTH * self._tables[-1].rows >= self._tables[-2].rows
            ):
                newer = self._tables.pop()
                older = self._tables.pop()
                self._tables.append(_Table.build(self._words, self._live, older.lo, newer.hi))

    def add_hex(self, pairs: Iterable[tuple[int, str]]) -> None:
        """:meth:`add` of ``(id, 64 lowercase hex digits)`` pairs."""
        pairs = list(pairs)
        ids = np.array([row_id for row_id, _ in pairs], dtype=np.int64)
        self.add(ids, hex_to_words(value for _, value in pairs))

    def remove(self, ids: np.ndarray | Iterable[int]) -> int:
        """Drop rows by id; ids not held (or already removed) are ignored. Returns how many
        rows were removed."""
        ids = _as_ids(ids if isinstance(ids, np.ndarray) else np.array(list(ids), np.int64))
        held = self._ids[: self._rows]
        at = np.searchsorted(held, ids)
        inside = at < self._rows
        at = at[inside][held[at[inside]] == ids[inside]]
        at = np.unique(at[self._live[at]])
        self._live[at] = False
        self._dead += len(at)
        return len(at)

    def compact(self) -> None:
        """Rebuild without the removed rows, giving back their memory."""
        keep = np.flatnonzero(self._live[: self._rows])
        rebuilt = PdqIndex.from_arrays(self._ids[keep], self._words[keep])
        self.__dict__.update(rebuilt.__dict__)

    def _append(self, ids: np.ndarray, words: np.ndarray) -> None:
        need = self._rows + len(ids)
        if need > len(self._ids):
            capacity = max(need, 2 * len(self._ids), BUFFER_ROWS)
            grown_words = np.empty((capacity, _WORDS), dtype=np.uint64)
            grown_ids = np.empty(capacity, dtype=np.int64)
            grown_live = np.zeros(capacity, dtype=bool)
            grown_words[: self._rows] = self._words[: self._rows]
            grown_ids[: self._rows] = self._ids[: self._rows]
            grown_live[: self._rows] = self._live[: self._rows]
            self._words, self._ids, self._live = grown_words, grown_ids, grown_live
        self._words[self._rows : need] = words
        self._ids[self._rows : need] = ids
        self._live[self._rows : need] = True
        self._rows = need

    # reading

    def __len__(self) -> int:
        return self._rows - self._dead

    @property
    def last_id(self) -> int | None:
        """The highest id ever added (removed or not), or None: where tailing resumes."""
        return int(self._ids[self._rows - 1]) if self._rows else None

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (capacity included)."""
        arrays = self._words.nbytes + self._ids.nbytes + self._live.nbytes
        return arrays + sum(table.nbytes for table in self._tables)

    @property
    def _indexed(self) -> int:
        return self._tables[-1].hi if self._tables else 0

    def search(self, query: object, max_distance: int) -> list[Match]:
        """Every ``(distance, id)`` within ``max_distance`` bits of ``query`` (64 hex
        digits, 32 bytes, or a ``(32,) uint8`` / ``(4,) uint64`` array), nearest first
        (ties by id)."""
        words = _query_words(query)
        return self.search_many(words[None, :], max_distance)[0]

    def search_many(self, queries: object, max_distance: int) -> list[list[Match]]:
        """:meth:`search` of each query (an ``(n, 32) uint8`` or ``(n, 4) uint64`` array,
        or a list of hex values), vectorised over blocks of queries."""
        max_distance = _check_distance(max_distance)
        words = _queries_words(queries)
        distances, ids, counts = self.search_arrays(words, max_distance)
        pairs = list(zip(distances.tolist(), ids.tolist(), strict=True))
        out, start = [], 0
        for count in counts.tolist():
            out.append(pairs[start : start + count])
            start += count
        return out

    def search_arrays(
        self, queries: np.ndarray, max_distance: int, *, block: int = 32
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The answers of ``(n, 4) uint64`` queries as arrays: distances (uint8), ids
        (int64), and how many of them belong to each query, in query order, each query's
        nearest first (ties by id)."""
        max_distance = _check_distance(max_distance)
        queries = as_words(queries, what="queries")
        found_q, found_rows, found_d = [], [], []
        for first in range(0, len(queries), block):
            chunk = queries[first : first + block]
            q_parts, row_parts = [], []
            for table in self._tables:
                plan = table.plan(max_distance)
                if plan is None:
                    q_idx, rows = self._scan(chunk, table.lo, table.hi, max_distance)
                else:
                    q_idx, rows = table.candidates(chunk, plan)
                q_parts.append(q_idx)
                row_parts.append(rows)
            q_idx, rows = self._scan(chunk, self._indexed, self._rows, max_distance)
            q_parts.append(q_idx)
            row_parts.append(rows)
            q_idx = np.concatenate(q_parts)
            rows = np.concatenate(row_parts)
            candidates = np.take(self._words, rows, axis=0)
            candidates ^= np.take(chunk, q_idx, axis=0)
            bits = np.bitwise_count(candidates)
            distance = bits[:, 0] + bits[:, 1] + bits[:, 2] + bits[:, 3]
            keep = distance <= max_distance
            q_idx, rows, distance = q_idx[keep], rows[keep], distance[keep]
            if self._dead:
                alive = self._live[rows]
                q_idx, rows, distance = q_idx[alive], rows[alive], distance[alive]
            # one answer per (query, row): a row can be found through several chunks
            key = (q_idx.astype(np.int64) << 40) | rows
            key, first_at = np.unique(key, return_index=True)
            found_q.append(q_idx[first_at] + first)
            found_rows.append(rows[first_at])
            found_d.append(distance[first_at])
        if not found_q:
            empty = np.zeros(0, np.int64)
            return np.zeros(0, np.uint8), empty, np.zeros(len(queries), np.int64)
        q_idx = np.concatenate(found_q)
        ids = self._ids[np.concatenate(found_rows)]
        distance = np.concatenate(found_d).astype(np.uint8)
        order = np.lexsort((ids, distance, q_idx))
        counts = np.bincount(q_idx, minlength=len(queries)).astype(np.int64)
        return distance[order], ids[order], counts

    def _scan(
        self, queries: np.ndarray, lo: int, hi: int, max_distance: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(query index, row) of every row in ``[lo, hi)`` within ``max_distance`` of a
        query: a scan verifies in place, cheaper than gathering the range as candidates
        (the caller verifies them again, with the rest)."""
        if hi <= lo:
            return np.zeros(0, np.intp), np.zeros(0, np.int64)
        block = self._words[lo:hi]
        q_parts, row_parts = [], []
        for q, words in enumerate(queries):
            distance = np.bitwise_count(block[:, 0] ^ words[0])
            for j in range(1, _WORDS):
                distance += np.bitwise_count(block[:, j] ^ words[j])
            rows = np.flatnonzero(distance <= max_distance) + lo
            q_parts.append(np.full(len(rows), q, dtype=np.intp))
            row_parts.append(rows)
        return np.concatenate(q_parts), np.concatenate(row_parts)


__all__ = [
    "HASH_BYTES",
    "HEX_DIGITS",
    "MAX_DISTANCE",
    "BUFFER_ROWS",
    "GROWTH",
    "Match",
    "PdqIndex",
    "as_words",
    "hex_to_words",
    "words_to_hex",
]
