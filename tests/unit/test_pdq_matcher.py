"""PDQ matching over a real store (``merged.pdq``): the exact index answers what a scan of
every PDQ record answers, stays current as pages are committed, and keeps retracted hashes
findable, inactive.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.federation.merged import pdq
from hashfed.federation.publish import publish
from hashfed.federation.store import Store
from hashfed.keys import Signer
from hashfed.keys.errors import StoreError
from hashfed.protocol.entries import Entry
from tests.helpers import FIXED_NOW

ORG = "a.example"
SIGNER = Signer.from_seed(ORG, bytes(32))


def flip(value: str, bits: list[int]) -> str:
    n = int(value, 16)
    for bit in bits:
        n ^= 1 << (255 - bit)
    return f"{n:064x}"


def stage_and_publish(store: Store, entries: list[Entry]) -> None:
    with store.transaction():
        store.staging.stage("default", entries)
    publish(store, [SIGNER], now=FIXED_NOW)


def brute_force(store: Store, query: str, distance: int) -> list[tuple[int, str]]:
    rows = store.conn.execute("SELECT DISTINCT value FROM contributions WHERE type = 'pdq'")
    found = [((int(v, 16) ^ int(query, 16)).bit_count(), v) for (v,) in rows]
    return sorted((d, v) for d, v in found if d <= distance)


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "pdq.db") as store:
        yield store


def test_planted_neighbours_at_every_distance(store: Store) -> None:
    rng = random.Random(7)
    base = f"{rng.getrandbits(256):064x}"
    planted = [flip(base, rng.sample(range(256), d)) for d in range(0, 40)]
    noise = [f"{rng.getrandbits(256):064x}" for _ in range(500)]
    stage_and_publish(store, [Entry.add("pdq", v) for v in planted + noise])
    for distance in (0, 1, 15, 31, 32):
        found = [(d, r.value) for d, r in store.merged.near_pdq(base, distance)]
        assert found == brute_force(store, base, distance)
        assert [d for d, _ in found if _ in planted] == list(range(distance + 1))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), distance=st.integers(0, 64), clustered=st.booleans())
def test_the_index_answers_what_a_scan_answers(tmp_path_factory, seed: int, distance: int, clustered: bool) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    centres = [f"{rng.getrandbits(256):064x}" for _ in range(5 if clustered else 300)]
    values = {
        flip(rng.choice(centres), rng.sample(range(256), rng.randint(0, 40))) if clustered
        else f"{rng.getrandbits(256):064x}"
        for _ in range(300)
    }
    with Store(tmp_path_factory.mktemp("pdq") / "h.db") as store:
        stage_and_publish(store, [Entry.add("pdq", v) for v in sorted(values)])
        for query in [rng.choice(sorted(values)), flip(rng.choice(centres), [1, 2, 3]), f"{rng.getrandbits(256):064x}"]:
            found = [(d, r.value) for d, r in store.merged.near_pdq(query, distance)]
            assert found == brute_force(store, query, distance)


def test_the_index_follows_commits_from_another_connection(store: Store, tmp_path: Path) -> None:
    """Loaded once, then current: a value committed later (here by another connection,
    as ``hashfed pull`` beside ``serve``) is found by the next search."""
    rng = random.Random(1)
    first = f"{rng.getrandbits(256):064x}"
    stage_and_publish(store, [Entry.add("pdq", first)])
    assert [r.value for _, r in store.merged.near_pdq(first, 31)] == [first]
    later = flip(first, [3, 4])
    with Store(tmp_path / "pdq.db") as other:
        stage_and_publish(other, [Entry.add("pdq", later, ["x:1"])])
    assert [(d, r.value) for d, r in store.merged.near_pdq(first, 31)] == [(0, first), (2, later)]
    assert len(store.merged.pdq) == 2


def test_a_retracted_hash_still_matches_and_says_so(store: Store) -> None:
    value = f"{random.Random(2).getrandbits(256):064x}"
    stage_and_publish(store, [Entry.add("pdq", value)])
    stage_and_publish(store, [Entry.remove("pdq", value)])
    ((distance, record),) = store.merged.near_pdq(flip(value, [0]), 31)
    assert (distance, record.active, record.retracted_by) == (1, False, ((ORG, "default"),))


def test_a_distance_past_the_index_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="from 0 to 64"):
        store.merged.near_pdq("0" * 64, 65)


def test_a_load_in_many_steps_keeps_every_id(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load reads pdq_values in steps (in C, ids travelling with their values): in steps
    of 3 rows, over ids with gaps, it finds what one step finds, and reports each value's id."""
    rng = random.Random(3)
    values = [f"{rng.getrandbits(256):064x}" for _ in range(10)]
    store.conn.executemany(
        "INSERT INTO pdq_values (id, value) VALUES (?, ?)",
        [(i * i + 5, bytes.fromhex(v)) for i, v in enumerate(values)],
    )
    monkeypatch.setattr(pdq, "_LOAD_IDS", 3)
    matcher = pdq.PdqMatcher()
    assert matcher.catch_up(store.conn) == 10
    assert matcher._index.last_id == 9 * 9 + 5
    for value in values:
        assert matcher.search(store.conn, [flip(value, [1, 2])], 2) == [[(2, value)]]


@pytest.mark.parametrize("length", [0, 31, 33])
def test_a_pdq_value_of_another_length_fails_the_load_closed(store: Store, length: int) -> None:
    store.conn.execute("INSERT INTO pdq_values (id, value) VALUES (1, ?)", (bytes(32),))
    store.conn.execute("INSERT INTO pdq_values (id, value) VALUES (2, ?)", (b"\x01" * length,))
    matcher = pdq.PdqMatcher()
    with pytest.raises(StoreError, match=r"^pdq_values: 1 values with ids in 1\.\.2 are not 32 bytes$"):
        matcher.catch_up(store.conn)
    assert len(matcher) == 0  # nothing half-loaded
