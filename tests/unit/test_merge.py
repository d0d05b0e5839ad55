"""The merged list of PROTOCOL §8: entries of each log, in log order, folded into one record
per (type, value).

The tables drive ``merge.apply_entries`` on a real SQLite store and read records back the
way ``lookup`` and ``export`` do. The properties compare the store with a plain-Python model
of §8 written from the text of the protocol, and check that how entries are grouped into
pages, and in which order logs are pulled, never changes the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.federation.merged import writer as merge
from hashfed.federation.store import Store
from hashfed.keys.names import parse_log_id
from hashfed.protocol.entries import Entry
from tests.helpers import md5, pdq, sha256

A = "a.example/default"
B = "b.example/csam"
C = "c.example/default"
H = md5(1)

Step = tuple[str, Sequence[Entry]]  # (log id, entries applied as one page)


def add(labels: Sequence[str] = (), value: str = H) -> Entry:
    return Entry.add("md5", value, labels)


def remove(value: str = H) -> Entry:
    return Entry.remove("md5", value)


def opine(opinion: str, value: str = H) -> Entry:
    return Entry.opine("md5", value, opinion)


def apply(store: Store, log_id: str, entries: Sequence[Entry]) -> None:
    """One page of one log, in one transaction, as the puller and publisher commit it."""
    with store.transaction():
        log = store.logs.ensure(*parse_log_id(log_id))
        merge.apply_entries(store.conn, log.id, entries)


def records(store: Store) -> list[dict]:
    return [r.to_json_obj() for r in store.merged.records(active_only=False)]


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "merge.db") as store:
        yield store


def record(
    *,
    active: bool,
    labels: Sequence[str] = (),
    contributors: Sequence[tuple[str, Sequence[str]]] = (),
    opinions: Sequence[tuple[str, str]] = (),
    retracted_by: Sequence[str] = (),
    value: str = H,
) -> dict:
    """The ``lookup --json`` object of an md5 record."""
    return {
        "type": "md5",
        "value": value,
        "active": active,
        "labels": list(labels),
        "contributors": [
            {"org": parse_log_id(log)[0], "collection": parse_log_id(log)[1], "labels": list(ls)}
            for log, ls in contributors
        ],
        "opinions": [
            {"org": parse_log_id(log)[0], "collection": parse_log_id(log)[1], "opinion": o}
            for log, o in opinions
        ],
        "retracted_by": [
            {"org": parse_log_id(log)[0], "collection": parse_log_id(log)[1]} for log in retracted_by
        ],
    }


# -- §8, one rule per row -------------------------------------------------------------

CASES: list[tuple[str, list[Step], dict | None]] = [
    (
        "add makes the log's contribution active with its labels",
        [(A, [add(["x:1", "y:2"])])],
        record(active=True, labels=["x:1", "y:2"], contributors=[(A, ["x:1", "y:2"])]),
    ),
    (
        "a later add replaces the labels",
        [(A, [add(["x:1", "y:2"])]), (A, [add(["z:3"])])],
        record(active=True, labels=["z:3"], contributors=[(A, ["z:3"])]),
    ),
    (
        "a later add with no labels clears them",
        [(A, [add(["x:1"])]), (A, [add()])],
        record(active=True, contributors=[(A, [])]),
    ),
    (
        "remove retracts the log's add, which stays known, inactive",
        [(A, [add(["x:1"])]), (A, [remove()])],
        record(active=False, retracted_by=[A]),
    ),
    ("remove with no earlier add has no effect", [(A, [remove()])], None),
    (
        "add after remove makes it active again",
        [(A, [add(["x:1"])]), (A, [remove()]), (A, [add(["y:2"])])],
        record(active=True, labels=["y:2"], contributors=[(A, ["y:2"])]),
    ),
    (
        "a remove by another log does not retract",
        [(A, [add(["x:1"])]), (B, [remove()])],
        record(active=True, labels=["x:1"], contributors=[(A, ["x:1"])]),
    ),
    (
        "an opinion alone is kept, but inactive",
        [(B, [opine("false_positive")])],
        record(active=False, opinions=[(B, "false_positive")]),
    ),
    (
        "a later opinion replaces the earlier",
        [(B, [opine("true_positive")]), (B, [opine("false_positive")])],
        record(active=False, opinions=[(B, "false_positive")]),
    ),
    (
        "an opinion survives the remove of the same log's add",
        [(A, [add(["x:1"])]), (A, [opine("true_positive")]), (A, [remove()])],
        record(active=False, opinions=[(A, "true_positive")], retracted_by=[A]),
    ),
    (
        "an add keeps the same log's earlier opinion",
        [(A, [opine("false_positive")]), (A, [add(["x:1"])])],
        record(
            active=True,
            labels=["x:1"],
            contributors=[(A, ["x:1"])],
            opinions=[(A, "false_positive")],
        ),
    ),
    (
        "labels are the union of the active contributions",
        [(A, [add(["x:1", "y:2"])]), (B, [add(["y:2", "z:3"])])],
        record(
            active=True,
            labels=["x:1", "y:2", "z:3"],
            contributors=[(A, ["x:1", "y:2"]), (B, ["y:2", "z:3"])],
        ),
    ),
    (
        "a retracted contribution's labels and contributor drop out",
        [(A, [add(["x:1"])]), (B, [add(["y:2"])]), (A, [remove()])],
        record(active=True, labels=["y:2"], contributors=[(B, ["y:2"])], retracted_by=[A]),
    ),
    (
        "contributors are the active logs only; opinions are every log's",
        [(A, [add(["x:1"])]), (B, [add(), remove()]), (C, [opine("false_positive")])],
        record(
            active=True,
            labels=["x:1"],
            contributors=[(A, ["x:1"])],
            opinions=[(C, "false_positive")],
            retracted_by=[B],
        ),
    ),
    (
        "entries of one page apply in log order",
        [(A, [add(["x:1"]), remove(), add(["y:2"]), opine("true_positive"), opine("false_positive")])],
        record(
            active=True,
            labels=["y:2"],
            contributors=[(A, ["y:2"])],
            opinions=[(A, "false_positive")],
        ),
    ),
    (
        "remove last in a page wins over an add earlier in it",
        [(A, [add(["x:1"]), add(["y:2"]), remove()])],
        record(active=False, retracted_by=[A]),
    ),
]


@pytest.mark.parametrize(("steps", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_merge_rules(store: Store, steps: list[Step], expected: dict | None) -> None:
    for log_id, entries in steps:
        apply(store, log_id, entries)
    record_ = store.merged.lookup("md5", H)
    assert (None if record_ is None else record_.to_json_obj()) == expected
    assert records(store) == ([] if expected is None else [expected])
    exported = [r.to_json_obj() for r in store.merged.records(active_only=True)]
    assert exported == ([expected] if expected is not None and expected["active"] else [])


def test_inactive_record_is_looked_up_but_not_exported(store: Store) -> None:
    apply(store, A, [add(["x:1"], value=md5(1)), add(value=md5(2))])
    apply(store, B, [opine("false_positive", value=md5(2)), opine("true_positive", value=md5(3))])
    apply(store, A, [remove(value=md5(2))])

    assert [r.value for r in store.merged.records(active_only=True)] == [md5(1)]
    assert [(r.value, r.active) for r in store.merged.records(active_only=False)] == [
        (md5(1), True),
        (md5(2), False),
        (md5(3), False),
    ]
    assert store.merged.count() == (1, 3)
    looked_up = store.merged.lookup_many_json([("md5", md5(3)), ("md5", md5(9)), ("md5", md5(2)), ("md5", md5(3))])
    assert [None if r is None else (r["value"], r["active"]) for r in looked_up] == [
        (md5(3), False),
        None,
        (md5(2), False),
        (md5(3), False),
    ]


def test_type_is_part_of_the_key(store: Store) -> None:
    """The same hex under two types is two records (sha256 and pdq are both 64 digits)."""
    apply(store, A, [Entry.add("sha256", sha256(7), ["s:1"]), Entry.add("pdq", pdq(7), ["p:1"])])
    apply(store, A, [Entry.remove("pdq", pdq(7))])
    assert [(r.type, r.value, r.active) for r in store.merged.records(active_only=False)] == [
        ("pdq", pdq(7), False),
        ("sha256", sha256(7), True),
    ]


def test_a_retracted_add_is_one_row_however_often_it_is_removed(store: Store) -> None:
    """A retracted add is kept (PROTOCOL §8: lookups show who retracted it), as one row:
    removing it again changes nothing, and a remove with no add leaves nothing."""
    apply(store, A, [add(["x:1"]), remove()])
    apply(store, A, [remove()])
    apply(store, B, [remove()])
    assert store.conn.execute(
        "SELECT log, active, labels, opinion, retracted FROM contributions"
    ).fetchall() == [(store.logs.get(A).id, 0, "", None, 1)]


def test_unknown_op_fails_closed(store: Store) -> None:
    """decode_batch admits no other op; if one slipped through, nothing of the page lands."""
    bogus = Entry("retract", "md5", H, (), None)
    with pytest.raises(ValueError, match="unknown op 'retract'"):
        apply(store, A, [add(["x:1"], value=md5(0)), bogus])
    assert records(store) == []


# -- the model: §8 written out in plain Python ----------------------------------------


def model(logs: dict[str, Sequence[Entry]]) -> list[dict]:
    """The merged list PROTOCOL §8 describes, from each log's entries in log order."""
    state: dict[tuple[str, str], dict[str, dict]] = {}
    for log_id, entries in logs.items():
        for e in entries:
            rows = state.setdefault((e.type, e.value), {})
            row = rows.get(log_id)
            fresh = {"active": False, "labels": (), "opinion": None, "retracted": False}
            if e.op == "add":
                row = rows.setdefault(log_id, fresh)
                row["active"], row["labels"], row["retracted"] = True, e.labels, False
            elif e.op == "remove":
                if row is not None and row["active"]:
                    row["active"], row["labels"], row["retracted"] = False, (), True
            else:
                row = rows.setdefault(log_id, fresh)
                row["opinion"] = e.opinion
    out = []
    for (type_, value), rows in sorted(state.items()):
        active = {log: r for log, r in sorted(rows.items()) if r["active"]}
        opinions = {log: r["opinion"] for log, r in sorted(rows.items()) if r["opinion"]}
        retracted = [log for log, r in sorted(rows.items()) if r["retracted"]]
        if not active and not opinions and not retracted:
            continue
        out.append(
            {
                "type": type_,
                "value": value,
                "active": bool(active),
                "labels": sorted({label for r in active.values() for label in r["labels"]}),
                "contributors": [
                    {
                        "org": parse_log_id(log)[0],
                        "collection": parse_log_id(log)[1],
                        "labels": list(r["labels"]),
                    }
                    for log, r in active.items()
                ],
                "opinions": [
                    {"org": parse_log_id(log)[0], "collection": parse_log_id(log)[1], "opinion": o}
                    for log, o in opinions.items()
                ],
                "retracted_by": [
                    {"org": parse_log_id(log)[0], "collection": parse_log_id(log)[1]}
                    for log in retracted
                ],
            }
        )
    return out


# Few hashes and labels, so that entries collide on the same record often.
_VALUES = st.sampled_from([("md5", md5(1)), ("md5", md5(2)), ("sha256", sha256(3)), ("pdq", pdq(3))])
_LABELS = st.lists(st.sampled_from(["a:1", "b:2", "c:3"]), max_size=3)
_ENTRY = st.one_of(
    st.builds(lambda tv, labels: Entry.add(*tv, labels), _VALUES, _LABELS),
    st.builds(lambda tv: Entry.remove(*tv), _VALUES),
    st.builds(
        lambda tv, o: Entry.opine(*tv, o), _VALUES, st.sampled_from(["true_positive", "false_positive"])
    ),
)
_LOGS = st.fixed_dictionaries({log: st.lists(_ENTRY, max_size=12) for log in (A, B, C)})


def _contributions(store: Store) -> list[tuple]:
    return store.conn.execute(
        "SELECT type, value, log, active, labels, opinion, retracted FROM contributions"
        " ORDER BY type, value, log"
    ).fetchall()


@settings(max_examples=150, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=30))
def test_a_page_sorted_stably_equals_entries_one_by_one(entries: list[Entry]) -> None:
    with Store(":memory:") as paged, Store(":memory:") as single:
        apply(paged, A, entries)
        for entry in entries:
            apply(single, A, [entry])
        assert _contributions(paged) == _contributions(single)
        assert records(paged) == model({A: entries})


@settings(max_examples=150, deadline=None)
@given(logs=_LOGS, data=st.data())
def test_any_order_of_pulls_gives_the_same_list(logs: dict[str, list[Entry]], data: st.DataObject) -> None:
    """Each log is cut into pages anywhere, and the pages of different logs are pulled in any
    interleaving (each log's own pages stay in order, as a pull requires)."""
    pages: dict[str, list[list[Entry]]] = {}
    for log_id, entries in logs.items():
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(entries) - 1)), max_size=4), label=log_id))
        bounds = [0, *[c for c in cuts if c < len(entries)], len(entries)]
        pages[log_id] = [entries[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]
    turns = data.draw(st.permutations([log for log, ps in pages.items() for _ in ps]), label="order")

    with Store(":memory:") as store:
        for log_id in turns:
            apply(store, log_id, pages[log_id].pop(0))
        assert records(store) == model(logs)
