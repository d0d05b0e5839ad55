"""Browsing the merged list: filtered pages in (type, value) order, by keyset.

A page starts *after* a key, ``(type, value)``, never at an offset: ``OFFSET n`` makes
SQLite walk and throw away n rows, so page 1,000 would cost a thousand pages, and rows
merged meanwhile would shift every later page. A key reads one range of the primary key's
B-tree, and the next page starts where this one ended, whatever was merged in between.

Filters are on records, not rows (a record is every row of one hash, ``records``): its
type (a range of the key, in SQL), whether it is active or retracted, a label it carries,
and a contributor (the org of an active contribution). The last three are decided per
record as the rows stream by, so a page that matches rarely could read the whole table:
a page reads at most ``max_records`` records, and when it stops there it returns the key
it reached, for a "continue" link, with fewer than ``limit`` records (maybe none).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

from hashfed.federation.merged.records import LogNames, build_record
from hashfed.protocol.records import Record

STATES = ("active", "retracted", "all")
MAX_SCAN_RECORDS = 20_000


@dataclass(frozen=True, slots=True)
class Filter:
    type: str | None = None
    state: str = "active"  # active, retracted, all
    label: str | None = None
    contributor: str | None = None  # an org

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}, not {self.state!r}")

    def matches(self, record: Record) -> bool:
        if self.state == "active" and not record.active:
            return False
        if self.state == "retracted" and (record.active or not record.retracted_by):
            return False
        if self.label is not None and self.label not in record.labels:
            return False
        if self.contributor is not None and not any(
            c.org == self.contributor for c in record.contributors
        ):
            return False
        return True


@dataclass(frozen=True, slots=True)
class Page:
    records: tuple[Record, ...]
    next_after: tuple[str, str] | None  # where the next page starts; None: the end
    stopped_early: bool  # max_records read before the page was full


_key = itemgetter(0, 1)


def _records_after(
    conn: sqlite3.Connection, names: LogNames, type_: str | None, after: tuple[str, str] | None
) -> Iterator[Record]:
    where, params = [], []
    if type_ is not None:
        where.append("type = ?")
        params.append(type_)
    if after is not None:
        where.append("(type, value) > (?, ?)")
        params += list(after)
    sql = "SELECT type, value, log, active, labels, opinion, retracted FROM contributions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    cursor = conn.execute(sql + " ORDER BY type, value", params)
    try:
        for (t, v), group in groupby(cursor, key=_key):
            yield build_record(t, v, (row[2:] for row in group), names)
    finally:
        cursor.close()


def browse(
    conn: sqlite3.Connection,
    names: LogNames,
    filt: Filter,
    *,
    after: tuple[str, str] | None = None,
    limit: int = 100,
    max_records: int = MAX_SCAN_RECORDS,
) -> Page:
    """Up to ``limit`` records matching ``filt`` after the key ``after``."""
    found: list[Record] = []
    read = 0
    last: tuple[str, str] | None = None
    records = _records_after(conn, names, filt.type, after)
    try:
        for record in records:
            read += 1
            last = (record.type, record.value)
            if filt.matches(record):
                found.append(record)
                if len(found) == limit:
                    # more only if another record follows
                    more = next(records, None) is not None
                    return Page(tuple(found), last if more else None, False)
            if read >= max_records:
                more = next(records, None) is not None
                return Page(tuple(found), last if more else None, more)
    finally:
        records.close()
    return Page(tuple(found), None, False)
