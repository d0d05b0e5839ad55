"""What the TAXII collections serve (``federation/http/taxii.py``): per log, one STIX
Indicator per hash the log added, in its current version, folded in from the log's served
batches when TAXII is read, and read a page at a time by a key seek.

Decisions (each is what a TAXII client such as MISP or OpenCTI needs to stay correct):

- **An object is (log, hash)**, with the labels that log gave it: never the merged record's
  union or contributor list, which would tell a reader about logs it may not read. Its id is
  ``indicator--`` + UUIDv5(:data:`ID_NAMESPACE`, ``"<log id> <type>:<value>"``), with
  ``" #<generation>"`` appended from the second generation on (below).
- **One version is held**, the current one. A batch that changes the hash (new labels, a
  retraction) makes a new version and moves the object to the end of the collection; a
  batch that changes nothing (an add with the same labels, a remove of what is not active)
  makes none. TAXII lets a server keep what versions it likes; ``first``/``last``/``all``
  all name this one.
- **Revoked is final** (STIX 2.1 §3.6: no version may follow a revoked one). A ``remove``
  makes the version ``revoked: true``; an ``add`` after that starts a new object, the next
  generation, with a new id.
- **``modified``** is the ``created`` of the batch that made the version, moved 1 ms past
  the previous version when the log's clock did not move (batches are stamped in whole
  seconds); **``created``** is the generation's first ``modified``. Both in milliseconds,
  STIX's precision.
- **A collection shows what ``/v1/`` serves**: only batches below ``logs.size`` (the served
  checkpoint) are ever folded in, never batches held past it (a pull or push part-way, a
  publish not yet signed), and a TAXII read first brings the log's table up to the size it
  saw (below), so it shows every batch ``/v1/`` served at that moment.
- **``date_added``** is when the batch arrived here (``arrivals.arrived_at``; a batch stored
  before that table has none, and its own ``created`` stands in: it cannot have arrived
  earlier), not when it was folded in. It is made strictly increasing per log, in
  microseconds (each object at least 1 µs after the one before), so it is a unique key:
  ``added_after`` alone never skips an object that shares a time with the last one a client
  saw, and the ``next`` cursor is just a ``date_added``. A clock that steps back cannot put
  a new version before old ones.
- **Opinions are not indicators**: an org's view of a hash is not a claim that it is
  abusive, and STIX has no field for "false positive" on an indicator.

**When versions are made: lazily, by the reader, in slices.** The table is a function of
each log's served batches in index order (every version, id and time above depends only on
the batches before it and their arrival times), so it can be made at any time after they
are served and come out the same. It is not made on the commit path: folding re-decodes
every batch and writes a row with three index entries per hash, which would cost a full
sync of 1,000,000 entries some 28 s of CPU (at the rate below) in its last transaction,
for a table most nodes never read. Instead ``taxii_progress`` holds, per log, how many served batches are folded in;
a TAXII read of a log compares it with ``logs.size`` (one key lookup: the cheap, common
case) and, when it is behind, calls :meth:`Indicators.fold_slice` until it is not. Each
call folds at most :data:`FOLD_SLICE_BATCHES` batches in a transaction of its own on the
node's writer (under ``node.write_lock``), reading the progress inside that transaction,
so two readers, or two processes, never fold a batch twice. The slice bounds how long one
transaction holds the write lock: folding costs about 28 µs of CPU an entry (measured on
the project's 2-core VM: 2.8 s for 100,000; a third of it was ``uuid.uuid5`` before the
ids were made from ``hashlib`` directly), so a slice of two full batches (20,000 entries)
holds it about 0.6 s on an idle core, and a pull or push
waiting behind the first TAXII read after a large pull gets in between slices instead of
waiting for the whole catch-up. That first read pays the catch-up itself (2.8 s of CPU for
100,000 entries; ``bench.taxii`` reports its wall time). An upgraded store starts
with no progress and is folded on its first read, the same way.

The reads seek by ``(log, added_us)`` (a unique index), so a page costs the same at any
depth; ``match[id]`` seeks by ``uuid``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from hashfed.federation.merged.writer import LABEL_SEPARATOR
from hashfed.keys.errors import StoreError
from hashfed.keys.names import make_log_id
from hashfed.protocol.batch import Batch, decode_batch, parse_created

if TYPE_CHECKING:
    from hashfed.federation.store.connection import Store

ID_NAMESPACE: Final = uuid.UUID("0b4f3c52-6a1e-5d7e-9f3b-8c2d41e7a905")
"""The UUIDv5 namespace of the ids of the indicators TAXII serves (fixed forever)."""
_NAMESPACE_BYTES: Final = ID_NAMESPACE.bytes

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
    # Per log, how many of its served batches (0..folded-1) are folded into `indicators`.
    """
    CREATE TABLE taxii_progress (
        log     INTEGER PRIMARY KEY REFERENCES logs(id),
        folded  INTEGER NOT NULL
    )
    """,
)

FOLD_SLICE_BATCHES: Final = 2
"""The most served batches one :meth:`Indicators.fold_slice` folds in (one transaction)."""


def indicator_uuid(log_id: str, hash_type: str, value: str, generation: int) -> uuid.UUID:
    name = f"{log_id} {hash_type}:{value}" + (f" #{generation}" if generation else "")
    return uuid.uuid5(ID_NAMESPACE, name)


def _indicator_uuid_bytes(log_id: str, hash_type: str, value: str, generation: int) -> bytes:
    """``indicator_uuid(...).bytes`` (RFC 4122 §4.3: SHA-1 of namespace and name, version
    5, variant 10) without a ``UUID`` object: the fold makes one per hash, and ``uuid5``
    was a third of its time. A test holds the two equal."""
    name = f"{log_id} {hash_type}:{value}" + (f" #{generation}" if generation else "")
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return bytes(digest)


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


# -- writing (folding served batches in, off the commit path) -------------------------------

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


def _fold(conn: sqlite3.Connection, log: int, org: str, collection: str, start: int, end: int) -> None:
    """Make the versions that served batches ``start..end-1`` of a log give its hashes, the
    batches before ``start`` being folded in already. One batch at a time, so memory stays
    one batch whatever the range."""
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
        uid = _indicator_uuid_bytes(log_id, hash_type, value, generation)
        rows.append(
            (log, hash_type, value, generation, uid, labels or "", int(revoked),
             created_ms, modified_ms, next_us)
        )
        next_us += 1
    conn.executemany(_UPSERT, rows)


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
        self._store = store
        self._conn = store.conn

    def folded(self, log: int) -> int:
        """How many of the log's served batches are folded in (a key lookup)."""
        row = self._conn.execute("SELECT folded FROM taxii_progress WHERE log = ?", (log,)).fetchone()
        return 0 if row is None else row[0]

    def fold_slice(self, log: int, *, max_batches: int = FOLD_SLICE_BATCHES) -> int:
        """Fold in up to ``max_batches`` more of the log's served batches, in a transaction
        of its own (not inside another); the number folded in after it, which is the log's
        served size once caught up. The progress is read inside the transaction, so
        concurrent callers fold each batch once."""
        if max_batches < 1:
            raise ValueError(f"max_batches must be at least 1, not {max_batches}")
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT l.org, l.collection, l.size, coalesce(p.folded, 0) FROM logs AS l"
                " LEFT JOIN taxii_progress AS p ON p.log = l.id WHERE l.id = ?",
                (log,),
            ).fetchone()
            if row is None:
                raise StoreError(f"no log with row id {log}")
            org, collection, size, folded = row
            end = min(size, folded + max_batches)
            if end > folded:
                _fold(conn, log, org, collection, folded, end)
                conn.execute(
                    "INSERT INTO taxii_progress (log, folded) VALUES (?, ?)"
                    " ON CONFLICT (log) DO UPDATE SET folded = excluded.folded",
                    (log, end),
                )
            return end

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


__all__ = ["FOLD_SLICE_BATCHES", "ID_NAMESPACE", "IndicatorRow", "Indicators", "indicator_uuid"]
