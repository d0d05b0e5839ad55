"""The in-memory exact index (``merged.exact``) on a real store: what it answers for every
kind of record, for values chosen to share long prefixes, and for two values under one key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashfed.federation.merged import exact
from hashfed.federation.merged.exact import ACTIVE, INACTIVE, UNKNOWN, ExactIndex, _probe, _Table
from hashfed.federation.publish import publish
from hashfed.federation.store import Store
from hashfed.keys import Signer
from hashfed.keys.errors import ProtocolError, StoreError
from hashfed.protocol.entries import Entry
from tests.helpers import FIXED_NOW

SIGNER = Signer.from_seed("a.example", bytes(32))


def published(store: Store, entries: list[Entry]) -> None:
    with store.transaction():
        store.staging.stage("default", entries)
    publish(store, [SIGNER], now=FIXED_NOW)


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "x.db") as store:
        yield store


def test_values_sharing_their_first_64_bits_are_told_apart(store: Store) -> None:
    """Whoever publishes chooses the values: 2,000 MD5s that differ only in their last
    digits must neither collide nor turn a probe into a walk along them."""
    values = [f"{'0' * 24}{i:08x}" for i in range(2000)]
    published(store, [Entry.add("md5", v) for v in values[:1000]])
    index = ExactIndex()
    index.catch_up(store.conn)
    states = index.states("md5", values)
    assert (states[:1000] == ACTIVE).all() and (states[1000:] == UNKNOWN).all()


def test_states_of_every_kind_and_the_overlay(store: Store) -> None:
    published(store, [Entry.add("md5", "a" * 32), Entry.add("md5", "b" * 32), Entry.opine("md5", "c" * 32, "false_positive")])
    index = ExactIndex()
    index.catch_up(store.conn)
    wanted = ["a" * 32, "B" * 32, "c" * 32, "d" * 32]
    assert index.states("md5", wanted).tolist() == [ACTIVE, ACTIVE, INACTIVE, UNKNOWN]
    published(store, [Entry.remove("md5", "a" * 32), Entry.add("md5", "d" * 32)])
    index.catch_up(store.conn)  # folded in from the arrivals, not reloaded
    assert index.states("md5", wanted).tolist() == [INACTIVE, ACTIVE, INACTIVE, ACTIVE]


def test_two_values_under_one_key_are_both_found() -> None:
    digest = np.array([[1] * 16, [2] * 16, [3] * 16], dtype=np.uint8)
    table = _Table(np.array([5, 5, 9], dtype=np.uint64), digest, np.array([1, 0, 1], dtype=np.int8))
    out = np.full(3, UNKNOWN, dtype=np.int8)
    _probe(table, digest[[1, 0, 2]], np.array([5, 5, 9], dtype=np.uint64), out)
    assert out.tolist() == [0, 1, 1]


BAD = [
    ("wrong length", ["a" * 31], r"values\[0\]: not 32 hex digits"),
    ("not hex", ["g" * 32], r"values\[0\]: not 32 hex digits"),
    ("not text", [b"a" * 32], r"values\[0\]: not 32 hex digits"),
    ("white space", [" " + "a" * 31], r"values\[0\]: not 32 hex digits"),
    ("the second bad", ["a" * 32, "a" * 33], r"values\[1\]: not 32 hex digits"),
]


@pytest.mark.parametrize(("values", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_values_are_named(store: Store, values: list, message: str) -> None:
    index = ExactIndex()
    index.catch_up(store.conn)
    with pytest.raises(ProtocolError, match=message):
        index.states("md5", values)


def test_an_unknown_type_is_refused(store: Store) -> None:
    with pytest.raises(ProtocolError, match="unknown hash type"):
        ExactIndex().states("md4", ["a" * 32])


def test_a_load_in_many_steps_answers_as_one_step(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load reads each type in steps along the primary key (in C, a value and its state
    in the same row): in steps of 2 records it answers what one step answers."""
    values = [f"{i:032x}" for i in range(7)]
    published(store, [Entry.add("md5", v) for v in values] + [Entry.opine("md5", f"{99:032x}", "false_positive")])
    published(store, [Entry.remove("md5", values[3])])
    asked = [*values, f"{99:032x}", f"{98:032x}"]
    one = ExactIndex()
    one.catch_up(store.conn)
    monkeypatch.setattr(exact, "_LOAD_ROWS", 2)
    steps = ExactIndex()
    steps.catch_up(store.conn)
    want = [ACTIVE] * 3 + [INACTIVE] + [ACTIVE] * 3 + [INACTIVE, UNKNOWN]
    assert steps.states("md5", asked).tolist() == one.states("md5", asked).tolist() == want


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("UPDATE contributions SET value = value || '0' WHERE value = ?", "1 values are not 32 hex digits"),
        ("UPDATE contributions SET value = 'zz' || substr(value, 3) WHERE value = ?", "non-hexadecimal"),
        ("UPDATE contributions SET active = 7 WHERE value = ?", "a state is not 0 or 1"),
    ],
)
def test_a_damaged_record_fails_the_load_closed(store: Store, damage: str, message: str) -> None:
    published(store, [Entry.add("md5", f"{i:032x}") for i in range(3)])
    store.conn.execute(damage, (f"{1:032x}",))
    index = ExactIndex()
    with pytest.raises(StoreError, match=rf"^contributions: md5 records after '': .*{message}"):
        index.catch_up(store.conn)
    assert index.states("md5", [f"{0:032x}"]).tolist() == [UNKNOWN]  # nothing half-loaded


def test_rows_of_one_value_merge_to_its_greatest_state_even_when_keys_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hash has a row per log; the load keeps one entry per hash, active if any row is.
    With every key made equal (so values interleave under one key), each value's rows
    still merge, and each value is found with its own state."""
    a, b, c = (bytes([n]) * 16 for n in (1, 2, 3))
    rows = [a, b, a, c, b, a]
    states = [0, 1, 1, 0, 0, 0]
    digest = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), 16).copy()
    monkeypatch.setattr(exact, "_keys", lambda d: np.full(len(d), 42, dtype=np.uint64))
    table = exact._merge_rows(digest, np.array(states, dtype=np.int8))
    assert sorted((bytes(d), int(s)) for d, s in zip(table.digest, table.state, strict=True)) == [(a, 1), (b, 1), (c, 0)]
    query = np.frombuffer(a + b + c + bytes(16), dtype=np.uint8).reshape(4, 16)
    out = np.full(4, UNKNOWN, dtype=np.int8)
    _probe(table, query, exact._keys(query), out)
    assert out.tolist() == [ACTIVE, ACTIVE, INACTIVE, UNKNOWN]
