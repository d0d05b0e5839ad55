"""What the TAXII collections serve (``federation/http/taxii.py``): per log, one STIX
Indicator per hash the log added, in its current version, written by the commit path in the
page's own transaction and read a page at a time by a key seek.

Decisions (each is what a TAXII client such as MISP or OpenCTI needs to stay correct):

- **An object is (log, hash)**, with the labels that log gave it: never the merged record's
  union or contributor list, which would tell a reader about logs it may not read. Its id is
  ``indicator--`` + UUIDv5(:data:`ID_NAMESPACE`, ``"<log id> <type>:<value>"``), with
  ``" #<generation>"`` appended from the second generation on (below).
- **One version is held**, the current one. A page that changes the hash (new labels, a
  retraction) makes a new version and moves the object to the end of the collection; a
  page that changes nothing (an add with the same labels, a remove of what is not active)
  makes none. TAXII lets a server keep what versions it likes; ``first``/``last``/``all``
  all name this one.
- **Revoked is final** (STIX 2.1 §3.6: no version may follow a revoked one). A ``remove``
  makes the version ``revoked: true``; an ``add`` after that starts a new object, the next
  generation, with a new id.
- **``modified``** is the ``created`` of the batch that made the version, moved 1 ms past
  the previous version when the log's clock did not move (batches are stamped in whole
  seconds); **``created``** is the generation's first ``modified``. Both in milliseconds,
  STIX's precision.
- **A collection shows what ``/v1/`` serves**: versions are made when their batches
  become served (``Logs.accept_checkpoint``), never from batches held past the served
  checkpoint (a pull or push part-way, a publish not yet signed).
- **``date_added``** is when the batch arrived here (``arrivals.arrived_at``; a batch stored
  before that table has none, and its own ``created`` stands in: it cannot have arrived
  earlier). It is made strictly increasing per log, in microseconds (each object at least
  1 µs after the one before), so it is a unique key: ``added_after`` alone never skips an
  object that shares a time with the last one a client saw, and the ``next`` cursor is
  just a ``date_added``. A clock that steps back cannot put a new version before old
  ones.
- **Opinions are not indicators**: an org's view of a hash is not a claim that it is
  abusive, and STIX has no field for "false positive" on an indicator.

The reads seek by ``(log, added_us)`` (a unique index), so a page costs the same at any
depth; ``match[id]`` seeks by ``uuid``.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from hashfed.federation.merged.writer import LABEL_SEPARATOR
from hashfed.keys.names import make_log_id
from hashfed.protocol.batch import Batch, decode_batch, parse_created

if TYPE_CHECKING:
    from hashfed.federation.store.connection import Store

ID_NAMESPACE: Final = uuid.UUID("0b4f3c52-6a1e-5d7e-9f3b-8c2d41e7a905")
"""The UUIDv5 namespace of the ids of the indicators TAXII serves (fixed forever)."""

SCHEMA: Final = (
    """
    CREATE TABLE indicators (
        log          INTEGER NOT NULL REFERENCES logs(id),
        type         TEXT NOT NULL,
        value        TEXT NOT NULL,
        generation   INTEGER NOT NULL,
        uuid         BLOB NOT NULL,
        labels       TEXT NOT NULL,
        revoked      INTEGER NOT NULL,
        created_ms   INTEGER NOT NULL,
        modified_ms  INTEGER NOT NULL,
        added_us     INTEGER NOT NULL,
        PRIMARY KEY (log, type, value)
    ) WITHOUT ROWID
    """,
    "CREATE UNIQUE INDEX indicators_by_added ON indicators (log, added_us)",
    "CREATE INDEX indicators_by_uuid ON indicators (uuid)",
)


def indicator_uuid(log_id: str, hash_type: str, value: str, generation: int) -> uuid.UUID:
    name = f"{log_id} {hash_type}:{value}" + (f" #{generation}" if generation else "")
    return uuid.uuid5(ID_NAMESPACE, name)


@dataclass(frozen=True, slots=True)
class IndicatorRow:
    """One object of a collection, in its current version."""

    type: str
    value: str
    stix_id: str  # indicator--<uuid>
    labels: tuple[str, ...]
    revoked: bool
    created_ms: int
    modified_ms: int
    added_us: int


def _stix_id(raw: bytes) -> str:
    h = raw.hex()  # str(uuid.UUID(bytes=raw)), at a fraction of its cost on a page of 10,000
    return f"indicator--{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _us_of_stamp(text: str) -> int:
    return int(parse_created(text).timestamp()) * 1_000_000


# -- writing (inside the transaction that serves the batches) -------------------------------

_UPSERT = (
    "INSERT INTO indicators (log, type, value, generation, uuid, labels, revoked,"
    " created_ms, modified_ms, added_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (log, type, value) DO UPDATE SET generation = excluded.generation,"
    " uuid = excluded.uuid, labels = excluded.labels, revoked = excluded.revoked,"
    " created_ms = excluded.created_ms, modified_ms = excluded.modified_ms,"
    " added_us = excluded.added_us"
)
_PRIOR = (
    "SELECT generation, labels, revoked, created_ms, modified_ms FROM indicators"
    " WHERE log = ? AND type = ? AND value = ?"
)


def record_served(conn: sqlite3.Connection, log: int, org: str, collection: str, start: int, end: int) -> None:
    """Make the versions that batches ``start..end-1`` of a log give its hashes, as those
    batches become served (``Logs.accept_checkpoint``): a collection shows what ``/v1/``
    serves, never a batch held past the served checkpoint. One batch at a time, so memory
    stays one batch whatever the range."""
    cursor = conn.execute(
        "SELECT b.idx, b.data, a.arrived_at FROM batches AS b"
        " LEFT JOIN arrivals AS a ON a.log = b.log AND a.idx = b.idx"
        " WHERE b.log = ? AND b.idx >= ? AND b.idx < ? ORDER BY b.idx",
        (log, start, end),
    )
    log_id = make_log_id(org, collection)
    while (row := cursor.fetchone()) is not None:
        index, data, arrived_at = row
        # Verified when it was stored; decoding again is how its entries are read.
        batch = decode_batch(data, org=org, collection=collection, index=index)
        _record_batch(conn, log, log_id, batch, arrived_at)


def _record_batch(
    conn: sqlite3.Connection, log: int, log_id: str, batch: Batch, arrived_at: str | None
) -> None:
    created = parse_created(batch.created)
    stamp = _ms(created)
    # Per hash, the state after the batch: labels text, or None once retracted. Entries
    # apply in order; re-inserting on each touch keeps the dict in order of last touch.
    final: dict[tuple[str, str], str | None] = {}
    added: set[tuple[str, str]] = set()
    for entry in batch.entries:
        key = (entry.type, entry.value)
        if entry.op == "add":
            added.add(key)
            final.pop(key, None)
            final[key] = LABEL_SEPARATOR.join(entry.labels)
        elif entry.op == "remove":
            final.pop(key, None)
            final[key] = None
    if not final:
        return
    arrival_us = _us_of_stamp(arrived_at or batch.created)
    last = conn.execute("SELECT max(added_us) FROM indicators WHERE log = ?", (log,)).fetchone()[0]
    next_us = arrival_us if last is None else max(arrival_us, last + 1)
    rows = []
    for (hash_type, value), labels in final.items():
        # A log's first batches find nothing before them: skip the lookups.
        prior = None if last is None else conn.execute(_PRIOR, (log, hash_type, value)).fetchone()
        revoked = labels is None
        if prior is None:
            if revoked and (hash_type, value) not in added:
                continue  # a remove with no earlier add: no effect (PROTOCOL §3)
            generation, created_ms, modified_ms = 0, stamp, stamp
        else:
            p_generation, p_labels, p_revoked, p_created, p_modified = prior
            if (revoked and p_revoked) or (not revoked and not p_revoked and labels == p_labels):
                continue  # nothing changed: no new version
            modified_ms = max(stamp, p_modified + 1)
            if p_revoked:  # revoked is final: the add starts a new object
                generation, created_ms = p_generation + 1, modified_ms
            else:
                generation, created_ms = p_generation, p_created
        uid = indicator_uuid(log_id, hash_type, value, generation)
        rows.append(
            (log, hash_type, value, generation, uid.bytes, labels or "", int(revoked),
             created_ms, modified_ms, next_us)
        )
        next_us += 1
    conn.executemany(_UPSERT, rows)


def rebuild(conn: sqlite3.Connection) -> None:
    """Make every log's indicators from its served batches. Call inside a transaction."""
    conn.execute("DELETE FROM indicators")
    logs = conn.execute("SELECT id, org, collection, size FROM logs ORDER BY id").fetchall()
    for log, org, collection, size in logs:
        record_served(conn, log, org, collection, 0, size)


# -- reading -------------------------------------------------------------------------------

_COLUMNS = "type, value, uuid, labels, revoked, created_ms, modified_ms, added_us"


def _row(row: tuple) -> IndicatorRow:
    hash_type, value, raw_uuid, labels, revoked, created_ms, modified_ms, added_us = row
    return IndicatorRow(
        type=hash_type,
        value=value,
        stix_id=_stix_id(raw_uuid),
        labels=tuple(labels.split(LABEL_SEPARATOR)) if labels else (),
        revoked=bool(revoked),
        created_ms=created_ms,
        modified_ms=modified_ms,
        added_us=added_us,
    )


class Indicators:
    """The TAXII objects of a ``Store``, per log (a log's row id)."""

    def __init__(self, store: Store) -> None:
        self._conn = store.conn

    def page(
        self,
        log: int,
        *,
        after_us: int,
        limit: int,
        uuids: Sequence[uuid.UUID] | None = None,
        modified_ms: Sequence[int] | None = None,
    ) -> list[IndicatorRow]:
        """Up to ``limit`` objects added after ``after_us``, in ``date_added`` order; only
        those with one of ``uuids`` / one of ``modified_ms`` when given."""
        where = ["log = ?", "added_us > ?"]
        args: list[object] = [log, after_us]
        if uuids is not None:
            where.append(f"uuid IN ({', '.join('?' * len(uuids))})")
            args += [u.bytes for u in uuids]
        if modified_ms is not None:
            where.append(f"modified_ms IN ({', '.join('?' * len(modified_ms))})")
            args += list(modified_ms)
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM indicators WHERE {' AND '.join(where)}"
            " ORDER BY added_us LIMIT ?",
            (*args, limit),
        )
        return [_row(row) for row in cursor.fetchall()]



__all__ = ["ID_NAMESPACE", "IndicatorRow", "Indicators", "indicator_uuid", "rebuild", "record_served"]
