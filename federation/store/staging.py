"""Staging: this org's own entries, queued by ``add``/``remove``/``opinion``/``import``
until the next ``publish`` turns them into batches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from hashfed.federation.merged.writer import LABEL_SEPARATOR
from hashfed.keys.names import check_collection
from hashfed.protocol.entries import Entry, check_entries

if TYPE_CHECKING:
    from hashfed.federation.store.connection import Store


class Staging:
    """The staging repository of a ``Store``."""

    def __init__(self, store: Store) -> None:
        self._conn = store.conn

    def stage(self, collection: str, entries: Iterable[Entry]) -> int:
        """Queue entries for the next publish. Call inside a transaction.

        They are checked here (ProtocolError), so that one bad entry cannot be staged
        and then block every publish after it.
        """
        check_collection(collection)
        checked = check_entries(list(entries))
        cursor = self._conn.executemany(
            "INSERT INTO staged (collection, op, type, value, labels, opinion)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                (collection, e.op, e.type, e.value, LABEL_SEPARATOR.join(e.labels), e.opinion)
                for e in checked
            ),
        )
        return cursor.rowcount

    def collections(self) -> list[tuple[str, int]]:
        """(collection, staged entries) of every collection with something staged."""
        return self._conn.execute(
            "SELECT collection, count(*) FROM staged GROUP BY collection ORDER BY collection"
        ).fetchall()

    def page(self, collection: str, limit: int) -> list[tuple[int, Entry]]:
        """The first ``limit`` staged entries of a collection, read in full.

        It leaves no statement running, so a caller may read a page and write inside one
        transaction without keeping an old read snapshot open (which in WAL mode makes its
        next ``BEGIN IMMEDIATE`` fail once another connection has committed).
        """
        rows = self._conn.execute(
            "SELECT seq, op, type, value, labels, opinion FROM staged WHERE collection = ?"
            " ORDER BY seq LIMIT ?",
            (collection, limit),
        ).fetchall()
        return [
            (seq, Entry(op, type_, value, tuple(labels.split(LABEL_SEPARATOR)) if labels else (), opinion))
            for seq, op, type_, value, labels, opinion in rows
        ]

    def unstage(self, collection: str, up_to_seq: int) -> None:
        self._conn.execute(
            "DELETE FROM staged WHERE collection = ? AND seq <= ?", (collection, up_to_seq)
        )
