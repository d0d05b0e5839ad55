"""The merge layer (PROTOCOL §8): apply a log's entries, in log order, to the merged list.

State is one row per (hash, log) in ``contributions``: whether that log's ``add`` is active,
with which labels, and that log's opinion. Each row is a pure function of that log's
entries, so the merged list depends only on which log prefixes the node holds, never on
the order in which it pulled them.

Within a page, entries are applied sorted by (type, value) with a *stable* sort: entries on
the same hash keep their log order, and entries on different hashes touch different rows and
commute, so the result is the same as applying them one by one, with B-tree friendly writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from itertools import groupby
from operator import itemgetter

from hashfed.protocol.entries import Entry

LABEL_SEPARATOR = ";"  # no label can contain it (PROTOCOL §1)

_ADD = (
    "INSERT INTO contributions (type, value, log, active, labels, opinion, retracted)"
    " VALUES (?, ?, ?, 1, ?, NULL, 0)"
    " ON CONFLICT (type, value, log) DO UPDATE SET"
    " active = 1, labels = excluded.labels, retracted = 0"
)
# A retracted add is kept, inactive: the hash stays known, with who retracted it (§8).
_REMOVE = (
    "UPDATE contributions SET active = 0, labels = '', retracted = 1"
    " WHERE type = ? AND value = ? AND log = ? AND active = 1"
)
_OPINION = (
    "INSERT INTO contributions (type, value, log, active, labels, opinion, retracted)"
    " VALUES (?, ?, ?, 0, '', ?, 0)"
    " ON CONFLICT (type, value, log) DO UPDATE SET opinion = excluded.opinion"
)

# Entry is a NamedTuple: (op, type, value, labels, opinion).
_hash_key = itemgetter(1, 2)
_op = itemgetter(0)


# Every PDQ value the merged list has held, numbered in order of arrival: what the PDQ
# index is built from and tails (``pdq.PdqMatcher``). A value is never removed: a retracted
# hash stays a record (inactive), and a match on it says so. A value is stored once, when it
# first enters the merged list: the probe reads the contributions B-tree that the upsert
# after it touches anyway, where a UNIQUE index on 32 random bytes would cost a scattered
# B-tree insert for every PDQ entry of every sync.
_PDQ = (
    "INSERT INTO pdq_values (value) SELECT ?2"
    " WHERE NOT EXISTS (SELECT 1 FROM contributions WHERE type = 'pdq' AND value = ?1)"
)


def apply_entries(conn: sqlite3.Connection, log: int, entries: Iterable[Entry]) -> None:
    """Apply entries of one log, in log order. Call inside the page's transaction."""
    ordered = sorted(entries, key=_hash_key)
    # Before the contributions change: "new to the merged list" is read from them. Sorted,
    # so a value given twice in the page is one pair here.
    pdq = {e.value for e in ordered if e.type == "pdq" and e.op != "remove"}
    if pdq:
        conn.executemany(_PDQ, [(value, bytes.fromhex(value)) for value in sorted(pdq)])
    if all(e.op == "add" for e in ordered):  # the bulk of every sync: one statement
        conn.executemany(
            _ADD, [(e.type, e.value, log, LABEL_SEPARATOR.join(e.labels)) for e in ordered]
        )
        return
    for op, run in groupby(ordered, key=_op):
        if op == "add":
            conn.executemany(
                _ADD, [(e.type, e.value, log, LABEL_SEPARATOR.join(e.labels)) for e in run]
            )
        elif op == "remove":
            conn.executemany(_REMOVE, [(e.type, e.value, log) for e in run])
        elif op == "opinion":
            conn.executemany(_OPINION, [(e.type, e.value, log, e.opinion) for e in run])
        else:  # decode_batch admits no other op; fail closed if one slips through
            raise ValueError(f"unknown op {op!r}")
