"""Reading the merged list: records built from ``contributions`` (PROTOCOL §8).

A record is every contribution row of one (type, value): it is active while any row is
active; its labels are the union of the active rows' labels; its contributors are the active
rows' logs; its opinions are every row's opinion; it was retracted by the logs whose add is
retracted (kept, inactive: PROTOCOL §8). A row is ``(log, active, labels, opinion,
retracted)``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING

from hashfed.federation.merged.writer import LABEL_SEPARATOR
from hashfed.protocol.records import Contributor, LogRef, OpinionOf, Record

if TYPE_CHECKING:
    from hashfed.federation.merged.pdq import PdqMatcher

LogNames = Callable[[int], tuple[str, str]]


Row = tuple[int, int, str, str | None, int]

_COLUMNS = "log, active, labels, opinion, retracted"


def build_record(type_: str, value: str, rows: Iterable[Row], names: LogNames) -> Record:
    """One record from its contribution rows."""
    contributors: list[Contributor] = []
    opinions: list[OpinionOf] = []
    retracted_by: list[LogRef] = []
    labels: set[str] = set()
    for log, active, label_text, opinion, retracted in rows:
        org, collection = names(log)
        if active:
            own = tuple(label_text.split(LABEL_SEPARATOR)) if label_text else ()
            labels.update(own)
            contributors.append(Contributor(org, collection, own))
        elif retracted:
            retracted_by.append(LogRef(org, collection))
        if opinion is not None:
            opinions.append(OpinionOf(org, collection, opinion))
    contributors.sort(key=lambda c: (c.org, c.collection))
    opinions.sort(key=lambda o: (o.org, o.collection))
    retracted_by.sort()
    return Record(
        type=type_,
        value=value,
        active=bool(contributors),
        labels=tuple(sorted(labels)),
        contributors=tuple(contributors),
        opinions=tuple(opinions),
        retracted_by=tuple(retracted_by),
    )


def record_json_obj(type_: str, value: str, rows: list[Row], names: LogNames) -> dict:
    """``build_record(...).to_json_obj()`` without the Record: the same object, built
    directly (a property test holds the two equal)."""
    if len(rows) == 1:  # by far the most common record: one log said one thing
        ((log, active, label_text, opinion, retracted),) = rows
        org, collection = names(log)
        own = label_text.split(LABEL_SEPARATOR) if label_text else []
        return {
            "type": type_,
            "value": value,
            "active": bool(active),
            "labels": own if active else [],  # stored labels are sorted and unique
            "contributors": (
                [{"org": org, "collection": collection, "labels": list(own)}] if active else []
            ),
            "opinions": (
                [{"org": org, "collection": collection, "opinion": opinion}]
                if opinion is not None
                else []
            ),
            "retracted_by": (
                [{"org": org, "collection": collection}] if retracted and not active else []
            ),
        }
    contributors = []
    opinions = []
    retracted_by = []
    labels: set[str] = set()
    for log, active, label_text, opinion, retracted in sorted(rows, key=lambda row: names(row[0])):
        org, collection = names(log)
        if active:
            own = label_text.split(LABEL_SEPARATOR) if label_text else []
            labels.update(own)
            contributors.append({"org": org, "collection": collection, "labels": own})
        elif retracted:
            retracted_by.append({"org": org, "collection": collection})
        if opinion is not None:
            opinions.append({"org": org, "collection": collection, "opinion": opinion})
    return {
        "type": type_,
        "value": value,
        "active": bool(contributors),
        "labels": sorted(labels),
        "contributors": contributors,
        "opinions": opinions,
        "retracted_by": retracted_by,
    }


def read_record(
    conn: sqlite3.Connection, names: LogNames, type_: str, value: str
) -> Record | None:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM contributions WHERE type = ? AND value = ?",
        (type_, value),
    ).fetchall()
    if not rows:
        return None
    return build_record(type_, value, rows, names)


_key = itemgetter(0, 1)


def read_records(
    conn: sqlite3.Connection, names: LogNames, *, active_only: bool
) -> Iterator[Record]:
    """Every record in (type, value) order, streamed: memory stays flat at any size."""
    cursor = conn.execute(
        f"SELECT type, value, {_COLUMNS} FROM contributions"
        " ORDER BY type, value"
    )
    for (type_, value), group in groupby(cursor, key=_key):
        record = build_record(type_, value, (row[2:] for row in group), names)
        if record.active or not active_only:
            yield record


# Values per query: one bound parameter each, under SQLite's oldest default limit (999).
_CHUNK = 900


def read_many_json(
    conn: sqlite3.Connection, names: LogNames, wanted: list[tuple[str, str]]
) -> list[dict | None]:
    """The records of many (type, value) pairs as JSON objects, in the order asked (None
    where unknown): the bulk lookup API's path, built straight from the rows, where a
    Record per hash first would double the work."""
    found = _rows_of_many(conn, wanted)
    return [
        record_json_obj(t, v, found[(t, v)], names) if (t, v) in found else None
        for t, v in wanted
    ]


def _rows_of_many(
    conn: sqlite3.Connection, wanted: list[tuple[str, str]]
) -> dict[tuple[str, str], list[Row]]:
    """The contribution rows of many hashes. One query per hash type and 900 values,
    ``type = ? AND value IN (...)``: a range of the primary key's B-tree each, where a
    row-value ``IN (VALUES ...)`` would scan the table."""
    by_type: dict[str, set[str]] = {}
    for type_, value in wanted:
        by_type.setdefault(type_, set()).add(value)
    found: dict[tuple[str, str], list[Row]] = {}
    for type_, value_set in by_type.items():
        values = sorted(value_set)
        for at in range(0, len(values), _CHUNK):
            chunk = values[at : at + _CHUNK]
            cursor = conn.execute(
                f"SELECT value, {_COLUMNS} FROM contributions"
                f" WHERE type = ? AND value IN ({','.join('?' * len(chunk))})",
                (type_, *chunk),
            )
            for value, *row in cursor:
                found.setdefault((type_, value), []).append(tuple(row))  # type: ignore[arg-type]
    return found


class MergedList:
    """Reads of the merged list over one connection (``store.merged``); the record types
    are ``hashfed.protocol.records``. ``names`` maps a log's row id to (org, collection)."""

    def __init__(self, conn: sqlite3.Connection, names: LogNames) -> None:
        self._conn = conn
        self._names = names
        self._pdq: PdqMatcher | None = None  # built on the first perceptual search

    def lookup(self, type_: str, value: str) -> Record | None:
        return read_record(self._conn, self._names, type_, value)

    def lookup_many_json(self, wanted: list[tuple[str, str]]) -> list[dict | None]:
        return read_many_json(self._conn, self._names, wanted)

    @property
    def pdq(self) -> PdqMatcher:
        """This connection's PDQ matcher (loaded from the store on first use)."""
        if self._pdq is None:
            # Imported here: numpy and the index are for perceptual search, not for every
            # command that opens a store.
            from hashfed.federation.merged.pdq import PdqMatcher

            self._pdq = PdqMatcher()
        return self._pdq

    def near_pdq(self, value: str, max_distance: int) -> list[tuple[int, Record]]:
        """Records of PDQ hashes within ``max_distance`` bits (Hamming) of ``value``,
        nearest first: how perceptual hashes match (``pdq.PdqMatcher``, exact)."""
        return self.near_pdq_many([value], max_distance)[0]

    def near_pdq_many(self, values: list[str], max_distance: int) -> list[list[tuple[int, Record]]]:
        """``near_pdq`` of each value, searched together."""
        answers = self.pdq.search(self._conn, values, max_distance)
        # Every matched value's record read once, in bulk (clustered sets match the same
        # family from many queries): one range query per 900 values, not one per match.
        wanted = sorted({("pdq", value) for pairs in answers for _d, value in pairs})
        rows = _rows_of_many(self._conn, wanted)
        records = {v: build_record(t, v, rows[(t, v)], self._names) for t, v in wanted if (t, v) in rows}
        return [
            [(distance, records[value]) for distance, value in pairs if value in records]
            for pairs in answers
        ]

    def records(self, *, active_only: bool = True) -> Iterator[Record]:
        return read_records(self._conn, self._names, active_only=active_only)

    def count(self) -> tuple[int, int]:
        """(active records, all records) of the merged list."""
        row = self._conn.execute(
            "SELECT count(*), sum(a) FROM ("
            " SELECT max(active) AS a FROM contributions GROUP BY type, value)"
        ).fetchone()
        return (row[1] or 0, row[0])
