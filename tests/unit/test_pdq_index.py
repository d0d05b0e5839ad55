"""The PDQ index is exact: every answer equals a brute-force scan, for any set, query and
radius; it takes adds and removals between searches; bad inputs raise precise errors."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.federation.merged import pdq_index
from hashfed.federation.merged.pdq_index import (
    BUFFER_ROWS,
    MAX_DISTANCE,
    PdqIndex,
    hex_to_words,
    words_to_hex,
)
from hashfed.keys.errors import ProtocolError

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def random_words(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64, (n, 4), dtype=np.uint64)


def flip(words: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """A copy of one hash's words with the given bit positions flipped."""
    out = words.copy()
    for bit in bits:
        out[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
    return out


def near(rng: np.random.Generator, words: np.ndarray, distance: int) -> np.ndarray:
    return flip(words, rng.choice(256, size=distance, replace=False))


def clustered(rng: np.random.Generator, centres: int, members: int, spread: int) -> np.ndarray:
    """Families: each centre and ``members`` hashes within ``spread`` bits of it."""
    heads = random_words(rng, centres)
    rows = [heads]
    for _ in range(members):
        rows.append(np.stack([near(rng, head, int(rng.integers(0, spread + 1))) for head in heads]))
    return np.concatenate(rows)


def brute(ids: np.ndarray, words: np.ndarray, query: np.ndarray, max_distance: int) -> list:
    if len(words) == 0:
        return []
    distance = np.bitwise_count(words ^ query).sum(axis=1)
    hit = np.flatnonzero(distance <= max_distance)
    return sorted(zip(distance[hit].tolist(), ids[hit].tolist(), strict=True))


def check_all(index: PdqIndex, ids, words, queries, max_distance) -> None:
    expected = [brute(ids, words, q, max_distance) for q in queries]
    assert index.search_many(queries, max_distance) == expected
    assert [index.search(q, max_distance) for q in queries[:3]] == expected[:3]


def queries_for(rng: np.random.Generator, words: np.ndarray, count: int) -> np.ndarray:
    """Half near stored hashes (0..70 bits off), half random."""
    out = random_words(rng, count)
    if len(words):
        for k in range(0, count, 2):
            stored = words[rng.integers(0, len(words))]
            out[k] = near(rng, stored, int(rng.integers(0, 71)))
    return out


# -- exactness ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(0, 300), st.integers(BUFFER_ROWS, 3 * BUFFER_ROWS)),
    max_distance=st.integers(0, MAX_DISTANCE),
)
def test_equals_brute_force(seed: int, n: int, max_distance: int) -> None:
    rng = np.random.default_rng(seed)
    words = random_words(rng, n)
    ids = np.arange(n, dtype=np.int64) * 2 + 1
    index = PdqIndex.from_arrays(ids, words)
    assert len(index) == n
    check_all(index, ids, words, queries_for(rng, words, 12), max_distance)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_distance=st.integers(0, 48))
def test_clustered_sets_equal_brute_force(seed: int, max_distance: int) -> None:
    rng = np.random.default_rng(seed)
    words = clustered(rng, centres=200, members=30, spread=40)
    # a share of very common, near-identical values
    common = np.stack([near(rng, words[0], int(rng.integers(0, 4))) for _ in range(600)])
    words = np.concatenate([words, common])
    ids = np.arange(len(words), dtype=np.int64)
    index = PdqIndex.from_arrays(ids, words)
    queries = np.concatenate([queries_for(rng, words, 8), near(rng, words[0], 20)[None]])
    check_all(index, ids, words, queries, max_distance)


@pytest.mark.parametrize("n", [100, 3 * BUFFER_ROWS], ids=["buffer", "tables"])
@pytest.mark.parametrize("max_distance", [0, 1, 8, 31, 32, 45, MAX_DISTANCE - 2])
def test_planted_neighbours_at_every_distance(n: int, max_distance: int) -> None:
    rng = np.random.default_rng(max_distance)
    centre = random_words(rng, 1)[0]
    planted = np.stack([near(rng, centre, k) for k in range(max_distance + 3)])
    words = np.concatenate([random_words(rng, n), planted])
    ids = np.arange(len(words), dtype=np.int64) + 1000
    index = PdqIndex.from_arrays(ids, words)
    found = index.search(centre, max_distance)
    assert found == [(k, int(ids[n + k])) for k in range(max_distance + 1)]


def test_one_hash_under_several_ids_is_found_under_each() -> None:
    rng = np.random.default_rng(7)
    words = random_words(rng, 2 * BUFFER_ROWS)
    words[[5, 17, 4000, 8000]] = words[5]
    ids = np.arange(len(words), dtype=np.int64)
    index = PdqIndex.from_arrays(ids, words)
    assert index.search(words[5], 0) == [(0, 5), (0, 17), (0, 4000), (0, 8000)]


def test_ids_in_any_order_are_sorted_by_from_arrays() -> None:
    rng = np.random.default_rng(8)
    words = random_words(rng, 50)
    ids = rng.permutation(np.arange(100, 150, dtype=np.int64))
    index = PdqIndex.from_arrays(ids, words)
    assert index.search(words[3], 0) == [(0, int(ids[3]))]
    assert index.last_id == 149


def test_empty_index() -> None:
    index = PdqIndex()
    assert len(index) == 0
    assert index.last_id is None
    assert index.search(PDQ_A, MAX_DISTANCE) == []
    assert index.search_many([PDQ_A, PDQ_A], 31) == [[], []]
    assert index.search_many(np.zeros((0, 4), np.uint64), 31) == []
    empty = PdqIndex.from_arrays(np.zeros(0, np.int64), np.zeros((0, 32), np.uint8))
    assert empty.search(PDQ_A, 31) == []


# -- updates -----------------------------------------------------------------------------


def test_incremental_adds_between_searches_merge_tables_and_stay_exact() -> None:
    rng = np.random.default_rng(11)
    words = np.concatenate([random_words(rng, 30_000), clustered(rng, 50, 40, 30)])
    ids = np.arange(len(words), dtype=np.int64) * 5
    index = PdqIndex()
    queries = queries_for(rng, words, 10)
    at = 0
    tables_seen = set()
    for size in [1, 10, 3000, 2000, 500, 9000, 1, 7000, 6000, 4538]:
        index.add(ids[at : at + size], words[at : at + size])
        at += size
        tables_seen.add(tuple((table.lo, table.hi) for table in index._tables))
        check_all(index, ids[:at], words[:at], queries, 31)
    assert len(index) == at == len(words)
    assert len(tables_seen) > 3  # the run went through sealing and merging tables


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_distance=st.integers(0, 40))
def test_removed_rows_are_never_answered(seed: int, max_distance: int) -> None:
    rng = np.random.default_rng(seed)
    words = clustered(rng, 100, 60, 30)
    ids = np.arange(len(words), dtype=np.int64)
    index = PdqIndex.from_arrays(ids[:5000], words[:5000])
    gone = rng.choice(len(words), size=2000, replace=False)
    assert index.remove(gone) == int((gone < 5000).sum())
    index.add(ids[5000:], words[5000:])
    index.remove(gone)
    keep = np.setdiff1d(ids, gone)
    queries = queries_for(rng, words, 8)
    check_all(index, ids[keep], words[keep], queries, max_distance)
    assert len(index) == len(keep)
    index.compact()
    check_all(index, ids[keep], words[keep], queries, max_distance)
    assert index.remove(gone) == 0  # already gone: ignored


def test_add_hex_and_hex_round_trip() -> None:
    rng = np.random.default_rng(3)
    words = random_words(rng, 5)
    values = words_to_hex(words)
    assert all(len(v) == 64 and v == v.lower() for v in values)
    assert (hex_to_words(values) == words).all()
    assert values[0][:16] == f"{int(words[0, 0]):016x}"  # word 0 is the first 16 digits
    index = PdqIndex()
    index.add_hex(zip(range(10, 15), values, strict=True))
    index.add_hex([(20, PDQ_A)])
    assert index.search(values[2], 0) == [(0, 12)]
    assert index.search(PDQ_A, 0) == [(0, 20)]
    assert index.last_id == 20
    as_bytes = bytes.fromhex(PDQ_A)
    assert index.search(as_bytes, 0) == index.search(np.frombuffer(as_bytes, np.uint8), 0)


def test_bytes_and_words_give_the_same_index() -> None:
    rng = np.random.default_rng(4)
    words = random_words(rng, 100)
    raw = np.frombuffer(b"".join(bytes.fromhex(v) for v in words_to_hex(words)), np.uint8)
    ids = np.arange(100, dtype=np.int64)
    by_bytes = PdqIndex.from_arrays(ids, raw.reshape(100, 32))
    assert by_bytes.search(words[9], 20) == PdqIndex.from_arrays(ids, words).search(words[9], 20)


# -- bad inputs --------------------------------------------------------------------------

IDS2 = np.array([1, 2], dtype=np.int64)
WORDS2 = np.zeros((2, 4), dtype=np.uint64)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda ix: ix.add(IDS2, np.zeros((2, 31), np.uint8)), ValueError, "shape"),
        (lambda ix: ix.add(IDS2, np.zeros((2, 4), np.int64)), ValueError, "uint64"),
        (lambda ix: ix.add(IDS2, np.zeros((2, 32), np.int8)), ValueError, "uint8"),
        (lambda ix: ix.add(IDS2, [[0] * 4] * 2), ValueError, "numpy array"),
        (lambda ix: ix.add(IDS2, np.zeros((3, 4), np.uint64)), ValueError, "2 ids for 3"),
        (lambda ix: ix.add(IDS2.astype(float), WORDS2), ValueError, "integers"),
        (lambda ix: ix.add(np.array([2, 1]), WORDS2), ValueError, "strictly increasing"),
        (lambda ix: ix.add(np.array([2, 2]), WORDS2), ValueError, "strictly increasing"),
        (lambda ix: ix.add(np.array([5, 6]), WORDS2), ValueError, "not above the last id"),
        (lambda ix: PdqIndex.from_arrays(np.array([3, 3]), WORDS2), ValueError, "duplicate id"),
        (lambda ix: ix.search(PDQ_A, -1), ValueError, "0..64"),
        (lambda ix: ix.search(PDQ_A, MAX_DISTANCE + 1), ValueError, "0..64"),
        (lambda ix: ix.search(PDQ_A, 3.0), ValueError, "must be an int"),
        (lambda ix: ix.search(PDQ_A, True), ValueError, "must be an int"),
        (lambda ix: ix.search_many([PDQ_A], 99), ValueError, "0..64"),
        (lambda ix: ix.search(PDQ_A[:-1], 31), ProtocolError, "64 lowercase hex"),
        (lambda ix: ix.search(PDQ_A.upper(), 31), ProtocolError, "64 lowercase hex"),
        (lambda ix: ix.search("g" + PDQ_A[1:], 31), ProtocolError, "64 lowercase hex"),
        (lambda ix: ix.search("é" + PDQ_A[2:], 31), ProtocolError, "64 lowercase hex"),
        (lambda ix: ix.add_hex([(9, PDQ_A + " ")]), ProtocolError, "64 lowercase hex"),
        (lambda ix: ix.add_hex([(9, PDQ_A), (10, None)]), ProtocolError, "None"),
        (lambda ix: ix.search(b"\0" * 31, 31), ValueError, "32 long"),
        (lambda ix: ix.search(np.zeros(3, np.uint64), 31), ValueError, "shape"),
        (lambda ix: ix.search(12345, 31), ValueError, "a query must be"),
        (lambda ix: ix.search_many("abc", 31), ValueError, "array or a list"),
        (lambda ix: ix.remove(np.array([1.5])), ValueError, "integers"),
    ],
    ids=[
        "bytes-31-wide",
        "words-signed",
        "bytes-signed",
        "hashes-a-list",
        "count-mismatch",
        "float-ids",
        "ids-decreasing",
        "ids-repeated",
        "ids-not-above-last",
        "from-arrays-duplicate-id",
        "distance-negative",
        "distance-over-max",
        "distance-float",
        "distance-bool",
        "many-distance-over-max",
        "hex-short",
        "hex-uppercase",
        "hex-not-hex",
        "hex-non-ascii",
        "hex-trailing-space",
        "hex-none",
        "query-bytes-short",
        "query-array-shape",
        "query-int",
        "queries-a-string",
        "remove-float-ids",
    ],
)
def test_bad_input_is_refused_and_changes_nothing(call, error, message) -> None:
    index = PdqIndex.from_arrays(np.array([7, 8], dtype=np.int64), WORDS2)
    with pytest.raises(error, match=message):
        call(index)
    assert len(index) == 2
    assert index.last_id == 8
    assert index.search(WORDS2[0], 0) == [(0, 7), (0, 8)]


def test_imports_nothing_from_the_federation_layer() -> None:
    tree = ast.parse(inspect.getsource(pdq_index))
    imported = [
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    ] + [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name.startswith("hashfed.federation")]
