"""Hypothesis strategies shared by the format tests: records as the merged list holds them."""

from __future__ import annotations

from hypothesis import strategies as st

from hashfed.protocol.entries import Entry
from hashfed.protocol.hashtypes import HASH_TYPES
from hashfed.protocol.records import Contributor, Record

labels = st.lists(st.from_regex(r"[a-z0-9][a-z0-9._:/-]{0,10}", fullmatch=True), max_size=4, unique=True).map(
    lambda xs: tuple(sorted(xs))
)
logs = st.tuples(st.sampled_from(["a.example", "b.example", "org-3"]), st.sampled_from(["default", "csam", "ncii_1"]))


@st.composite
def records(draw: st.DrawFn, types: tuple[str, ...] = tuple(HASH_TYPES)) -> Record:
    type_ = draw(st.sampled_from(types))
    digits = HASH_TYPES[type_].hex_digits
    value = f"{draw(st.integers(0, (1 << (4 * digits)) - 1)):0{digits}x}"
    contributing = draw(st.lists(logs, max_size=3, unique=True).map(sorted))
    contributors = tuple(Contributor(org, collection, draw(labels)) for org, collection in contributing)
    union = tuple(sorted({label for c in contributors for label in c.labels}))
    return Record(type_, value, bool(contributors), union, contributors, ())


def unique_records(types: tuple[str, ...] = tuple(HASH_TYPES)) -> st.SearchStrategy[list[Record]]:
    return st.lists(records(types), max_size=20, unique_by=lambda r: (r.type, r.value))


def added(records: list[Record]) -> list[Entry]:
    """The entries an importer should read back from written records: the active ones."""
    return [Entry.add(r.type, r.value, r.labels) for r in records if r.active]
