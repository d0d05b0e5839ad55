"""The store's schema, as numbered migrations.

Each migration runs once, in order, inside the transaction that also bumps
``PRAGMA user_version``; a store written by a newer hashfed (a higher version than we know)
is refused rather than guessed at. Tables are created through sqlite-utils so the schema
reads as data; the few things it cannot say (WITHOUT ROWID, partial indexes) are SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from hashfed.federation.merged.writer import apply_entries
from hashfed.federation.store import indicators, tokens
from hashfed.protocol.batch import decode_batch

if TYPE_CHECKING:
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]


def _m1_initial(db: sqlite_utils.Database) -> None:
    # One row per log this node holds, its own or another org's.
    #   size/root/checkpoint: the newest checkpoint for which every leaf is held (served)
    #   held/held_edge:       how many batches are stored, which may run past `size`
    #                         while a pull or push is part-way, or before a publish signs
    #   pending:              the signed note the leaves past `size` were proven against
    #                         (pulled or pushed pages); NULL once a checkpoint is served for
    #                         them. With it, a fork of a branch held but not yet served is
    #                         still caught by a pair of signed notes (PROTOCOL §7).
    db.execute(
        """
        CREATE TABLE logs (
            id          INTEGER PRIMARY KEY,
            org         TEXT NOT NULL,
            collection  TEXT NOT NULL,
            own         INTEGER NOT NULL DEFAULT 0,
            size        INTEGER NOT NULL DEFAULT 0,
            root        BLOB NOT NULL,
            checkpoint  BLOB,
            held        INTEGER NOT NULL DEFAULT 0,
            held_edge   BLOB NOT NULL,
            pending     BLOB,
            UNIQUE (org, collection)
        )
        """
    )
    # Batch bytes verbatim, as the log's org made them. Rows of up to 4 MiB: a rowid table
    # (SQLite's advice for large rows), reached through its (log, idx) key.
    db.execute(
        """
        CREATE TABLE batches (
            log   INTEGER NOT NULL REFERENCES logs(id),
            idx   INTEGER NOT NULL,
            data  BLOB NOT NULL,
            PRIMARY KEY (log, idx)
        )
        """
    )
    # Their leaf hashes, apart: every proof reads them all, and beside the batch bytes a
    # scan of them would walk megabytes of overflow pages.
    db.execute(
        """
        CREATE TABLE leaves (
            log   INTEGER NOT NULL REFERENCES logs(id),
            idx   INTEGER NOT NULL,
            leaf  BLOB NOT NULL,
            PRIMARY KEY (log, idx)
        ) WITHOUT ROWID
        """
    )
    # Every checkpoint this node signed or accepted, one per size: the signer's guard
    # against ever signing a second root for a size, and the reader's history.
    db.execute(
        """
        CREATE TABLE checkpoints (
            log   INTEGER NOT NULL REFERENCES logs(id),
            size  INTEGER NOT NULL,
            root  BLOB NOT NULL,
            note  BLOB NOT NULL,
            PRIMARY KEY (log, size)
        ) WITHOUT ROWID
        """
    )
    # The merged list: one row per (hash, log) that has said something about the hash.
    # A record is the group of rows of one (type, value).
    db.execute(
        """
        CREATE TABLE contributions (
            type     TEXT NOT NULL,
            value    TEXT NOT NULL,
            log      INTEGER NOT NULL,
            active   INTEGER NOT NULL,
            labels   TEXT NOT NULL,
            opinion  TEXT,
            PRIMARY KEY (type, value, log)
        ) WITHOUT ROWID
        """
    )
    # Own entries waiting for the next publish, in the order they were given.
    db["staged"].create(
        {
            "seq": int,
            "collection": str,
            "op": str,
            "type": str,
            "value": str,
            "labels": str,
            "opinion": str,
        },
        pk="seq",
        not_null={"collection", "op", "type", "value", "labels"},
    )
    # Pairs of validly signed notes that cannot both be true (``ours``, ``theirs``, verbatim);
    # ``size`` is the size of the checkpoint that contradicts ours.
    db["evidence"].create(
        {
            "id": int,
            "log_id": str,
            "kind": str,
            "size": int,
            "ours": bytes,
            "theirs": bytes,
            "source": str,
            "detail": str,
            "detected_at": str,
        },
        pk="id",
        not_null={"log_id", "kind", "detail", "detected_at"},
    )
    db["peers"].create(
        {"org": str, "url": str, "ca_file": str, "accept_push": int, "added_at": str},
        pk="org",
        not_null={"accept_push", "added_at"},
    )
    db["peer_keys"].create({"org": str, "vkey": str}, pk=("org", "vkey"))
    db["grants"].create({"reader": str, "log_id": str}, pk=("reader", "log_id"))
    db["peer_status"].create(
        {
            "org": str,
            "last_attempt": str,
            "last_success": str,
            "last_error": str,
            "failures": int,
        },
        pk="org",
        not_null={"failures"},
    )


def _m2_merged_list_v2(db: sqlite_utils.Database) -> None:
    # A retracted add is kept, inactive, so that a hash every contributor retracted stays
    # known with who retracted it (PROTOCOL §8); version 1 deleted such rows.
    db.execute("ALTER TABLE contributions ADD COLUMN retracted INTEGER NOT NULL DEFAULT 0")
    # The order batches arrived in, across every log, and when: what the change feed, the
    # TAXII date_added and the console's "arrived since" read. ``seq`` is an explicit
    # INTEGER PRIMARY KEY, so VACUUM never renumbers it and a feed cursor never expires.
    # Batches stored before this table have no time: they arrived "before".
    db.execute(
        """
        CREATE TABLE arrivals (
            seq         INTEGER PRIMARY KEY,
            log         INTEGER NOT NULL REFERENCES logs(id),
            idx         INTEGER NOT NULL,
            arrived_at  TEXT,
            UNIQUE (log, idx)
        )
        """
    )
    db.execute("CREATE INDEX arrivals_by_time ON arrivals (arrived_at, seq)")
    db.execute("INSERT INTO arrivals (log, idx) SELECT log, idx FROM batches ORDER BY rowid")
    # Every PDQ value of the merged list, 32 bytes, numbered in order of arrival: the PDQ
    # index loads it at start (bytes, not hex: one buffer for numpy) and tails it by id.
    db.execute("CREATE TABLE pdq_values (id INTEGER PRIMARY KEY, value BLOB NOT NULL UNIQUE)")
    # What each peer listed at its last listing (GET /v1/logs): log id and size in batches.
    # Beside ``logs.size`` it gives how far behind a peer this node is (the console's and
    # the metrics' lag); replaced whole at each listing.
    db["peer_listings"].create(
        {"org": str, "log_id": str, "size": int, "listed_at": str},
        pk=("org", "log_id"),
        not_null={"size", "listed_at"},
    )
    # The merged list is a function of the stored logs: recomputed from their batches, it
    # gains the retractions version 1 dropped, and fills pdq_values.
    remerge(db.conn)


def remerge(conn: sqlite3.Connection) -> None:
    """Recompute the merged list from every stored batch, each log in its own order. Call
    inside a transaction. The batches were verified when they were stored. ``pdq_values``
    is recomputed with it (numbered anew: only a migration calls this, before any index
    was loaded from the store)."""
    conn.execute("DELETE FROM contributions")
    conn.execute("DELETE FROM pdq_values")
    logs = conn.execute("SELECT id, org, collection FROM logs ORDER BY id").fetchall()
    for log, org, collection in logs:
        # Streamed: one batch in memory at a time, however long the log.
        for index, data in conn.execute(
            "SELECT idx, data FROM batches WHERE log = ? ORDER BY idx", (log,)
        ):
            batch = decode_batch(data, org=org, collection=collection, index=index)
            apply_entries(conn, log, batch.entries)


def _m3_taxii(db: sqlite_utils.Database) -> None:
    # The TAXII read API: reader tokens, and the indicators each log's collection serves
    # (store/tokens.py, store/indicators.py). The indicators start empty with no progress:
    # the batches already stored are folded in when TAXII first reads their log.
    for statement in (*tokens.SCHEMA, *indicators.SCHEMA):
        db.execute(statement)


def _m4_pdq_values_unindexed(db: sqlite_utils.Database) -> None:
    # pdq_values without its UNIQUE index: a random 32-byte key cost a scattered B-tree
    # insert for every PDQ entry of every sync. Each value is still stored once, kept so by
    # its one writer (merged/writer.py, which probes the contributions it updates anyway);
    # the table is append-only, read by id, never searched by value. Rebuilt keeping every
    # id, so a running index's high-water mark stays valid.
    db.execute("CREATE TABLE pdq_values_new (id INTEGER PRIMARY KEY, value BLOB NOT NULL)")
    db.execute("INSERT INTO pdq_values_new (id, value) SELECT id, value FROM pdq_values ORDER BY id")
    db.execute("DROP TABLE pdq_values")
    db.execute("ALTER TABLE pdq_values_new RENAME TO pdq_values")


MIGRATIONS: tuple[Migration, ...] = (
    _m1_initial,
    _m2_merged_list_v2,
    _m3_taxii,
    _m4_pdq_values_unindexed,
)
