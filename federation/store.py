"""The node's SQLite store: logs, batch bytes verbatim, tree state, the merged list,
peers and grants, and evidence of equivocation.

One file, WAL mode, schema by numbered migrations (``_schema.py``). Every unit of work
(a publish, one pulled or pushed page, a peer change) is one ``transaction()``: either all
of it is stored or none. Batch and checkpoint bytes are stored exactly as received and served
back unchanged, so a reader always verifies the origin's bytes, never a re-serialisation.

The connection runs in autocommit mode and transactions are explicit ``BEGIN IMMEDIATE``,
so a writer takes the write lock up front instead of failing half-way on a busy database.
A ``Store`` belongs to one thread at a time; open a second one for another thread.

On the event loop, reads are fine (WAL readers never wait), but a write may wait up to
``BUSY_TIMEOUT_MS`` for another process's lock: run writes with ``run_write``, which also
lets the write finish when its caller is cancelled, so nobody closes a store under a
running transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from hashfed.keys import Signer, TrustedOrg, TrustStore, Verifier
from hashfed.keys.errors import ConfigError, ProtocolError, StoreError
from hashfed.protocol.batch import Batch
from hashfed.protocol.checkpoint import Checkpoint
from hashfed.protocol.entries import Entry, check_entries
from hashfed.protocol.merkle import EMPTY_ROOT, CompactRange, root_hash
from hashfed.protocol.names import check_collection, check_org, make_log_id, parse_log_id

from . import merge
from ._schema import MIGRATIONS
from .merge import LABEL_SEPARATOR
from .records import Record, read_many_json, read_record, read_records

BUSY_TIMEOUT_MS = 30_000

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogState:
    """One row of ``logs``: what this node holds of one log.

    ``size``/``root``/``checkpoint`` are what it serves; ``held``/``held_edge`` what it
    stores, which may run past ``size``; ``pending`` is the signed note the leaves past
    ``size`` were proven against (None when nothing pulled or pushed is held past it).
    """

    id: int
    org: str
    collection: str
    own: bool
    size: int
    root: bytes
    checkpoint: bytes | None
    held: int
    held_edge: CompactRange
    pending: bytes | None

    @property
    def log_id(self) -> str:
        return make_log_id(self.org, self.collection)


@dataclass(frozen=True, slots=True)
class Evidence:
    id: int
    log_id: str
    kind: str
    size: int | None
    ours: bytes | None
    theirs: bytes | None
    source: str | None
    detail: str
    detected_at: str


@dataclass(frozen=True, slots=True)
class PeerStatus:
    org: str
    last_attempt: str | None
    last_success: str | None
    last_error: str | None
    failures: int


class Store:
    """The node's database. Open with ``Store(path)``; close with ``close()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is durable when it returns. The publisher signs only after
            # its leaves are committed; under NORMAL a power cut could undo a commit whose
            # tree was already signed and served, and the republished batch (a new
            # `created`) would give a second root for that size (PROTOCOL §5).
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        try:
            self._migrate()
        except BaseException:
            conn.close()  # a refused store must not keep its file open
            raise
        self._log_names: dict[int, tuple[str, str]] = {}
        # (data_version, own key ids) -> the trust store built then; see trust_store()
        self._trust_cache: tuple[tuple[int, tuple[str, ...]], TrustStore] | None = None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions and schema ---------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One unit of work: all of it is committed, or none (on any exception)."""
        if self.conn.in_transaction:
            raise StoreError("nested transaction")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            # Inside the try: a COMMIT that fails (a deferred constraint, a full disk) leaves
            # the transaction open, holding the write lock, unless it is rolled back here.
            self.conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (RAISE(ROLLBACK), some I/O errors); a
            # second ROLLBACK would fail and hide the error that caused the first.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        try:
            # Opening an up-to-date store takes no write lock (the common case, and the
            # one that must not wait behind another connection's commit).
            if self.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
                return
            with self.transaction():
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                if version > len(MIGRATIONS):
                    raise StoreError(
                        f"the store {self.path} has schema version {version}, newer than this "
                        f"hashfed knows ({len(MIGRATIONS)}); upgrade hashfed"
                    )
                for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                    migration(self.db)
                    self.conn.execute(f"PRAGMA user_version = {number}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot set up the store {self.path}: {exc}") from exc

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap 'reload?' signal."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    # -- logs ----------------------------------------------------------------------

    def _row_to_log(self, row: sqlite3.Row | tuple) -> LogState:
        (id_, org, collection, own, size, root, checkpoint, held, held_edge, pending) = row
        return LogState(
            id=id_,
            org=org,
            collection=collection,
            own=bool(own),
            size=size,
            root=root,
            checkpoint=checkpoint,
            held=held,
            held_edge=CompactRange.from_bytes(held, held_edge),
            pending=pending,
        )

    _LOG_COLUMNS = "id, org, collection, own, size, root, checkpoint, held, held_edge, pending"

    def log(self, log_id: str) -> LogState | None:
        org, collection = parse_log_id(log_id)
        row = self.conn.execute(
            f"SELECT {self._LOG_COLUMNS} FROM logs WHERE org = ? AND collection = ?",
            (org, collection),
        ).fetchone()
        return None if row is None else self._row_to_log(row)

    def logs(self) -> list[LogState]:
        rows = self.conn.execute(
            f"SELECT {self._LOG_COLUMNS} FROM logs ORDER BY org, collection"
        ).fetchall()
        return [self._row_to_log(row) for row in rows]

    def served_logs(self) -> list[LogState]:
        """Logs with a complete checkpoint: the ones this node may serve at all."""
        return [log for log in self.logs() if log.checkpoint is not None]

    def ensure_log(self, org: str, collection: str, *, own: bool = False) -> LogState:
        """The log's row, created empty if new. Call inside a transaction."""
        log = self.log(make_log_id(org, collection))
        if log is not None:
            return log
        self.conn.execute(
            "INSERT INTO logs (org, collection, own, size, root, checkpoint, held, held_edge)"
            " VALUES (?, ?, ?, 0, ?, NULL, 0, x'')",
            (org, collection, int(own), EMPTY_ROOT),
        )
        created = self.log(make_log_id(org, collection))
        assert created is not None
        return created

    def log_name(self, log_row_id: int) -> tuple[str, str]:
        """(org, collection) of a log's row id, cached: rows are never renamed."""
        name = self._log_names.get(log_row_id)
        if name is None:
            row = self.conn.execute(
                "SELECT org, collection FROM logs WHERE id = ?", (log_row_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no log with row id {log_row_id}")
            name = self._log_names[log_row_id] = (row[0], row[1])
        return name

    # -- batches and tree state ------------------------------------------------------

    def leaf_hashes(self, log: LogState, size: int) -> list[bytes]:
        """Leaf hashes of batches 0..size-1, in order (trees are one leaf per batch,
        so even a log of a hundred million entries has only ten thousand leaves)."""
        if size > log.held:
            raise StoreError(f"{log.log_id}: asked for {size} leaves, hold {log.held}")
        rows = self.conn.execute(
            "SELECT leaf FROM leaves WHERE log = ? AND idx < ? ORDER BY idx",
            (log.id, size),
        ).fetchall()
        return [row[0] for row in rows]

    def root_at(self, log: LogState, size: int) -> bytes:
        """The root of the first ``size`` leaves this node holds of a log: the root of a
        checkpoint it accepted for that size (one row), else computed from the leaves."""
        if size == log.size:
            return log.root
        row = self.conn.execute(
            "SELECT root FROM checkpoints WHERE log = ? AND size = ?", (log.id, size)
        ).fetchone()
        if row is not None:
            return row[0]
        return root_hash(self.leaf_hashes(log, size))

    def batch_data(self, log: LogState, index: int) -> bytes:
        """One batch's bytes, verbatim, read by a statement that is finished on return."""
        row = self.conn.execute(
            "SELECT data FROM batches WHERE log = ? AND idx = ?", (log.id, index)
        ).fetchone()
        if row is None:
            raise StoreError(f"{log.log_id}: no batch {index}")
        return row[0]

    def iter_batches(self, log: LogState, start: int, end: int) -> Iterator[bytes]:
        """Batch bytes verbatim for indices start..end-1 (end clipped to what is held)."""
        cursor = self.conn.execute(
            "SELECT data FROM batches WHERE log = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (log.id, start, min(end, log.held)),
        )
        for (data,) in cursor:
            yield data

    def append_batches(
        self,
        log: LogState,
        batches: Sequence[Batch],
        leaves: Sequence[bytes],
        edge: CompactRange,
        *,
        pending: bytes | None = None,
    ) -> LogState:
        """Store verified batches at ``log.held`` and merge their entries.

        Call inside a transaction. ``edge`` is the compact range after the last of them.
        ``pending`` is the signed note they were proven against (a pulled or pushed page;
        None for an own publish, which signs afterwards): it becomes ``LogState.pending``.
        The served checkpoint does not move; ``accept_checkpoint`` moves it.
        """
        if not batches:
            return log
        if batches[0].index != log.held:
            raise StoreError(
                f"{log.log_id}: page starts at {batches[0].index}, store holds {log.held}"
            )
        for offset, batch in enumerate(batches):
            if batch.log_id != log.log_id or batch.index != log.held + offset:
                raise StoreError(
                    f"{log.log_id}: batch {offset} of the page is leaf {batch.index} of "
                    f"{batch.log_id}, expected leaf {log.held + offset} of {log.log_id}"
                )
        if len(leaves) != len(batches) or edge.size != log.held + len(batches):
            raise StoreError(
                f"{log.log_id}: {len(batches)} batches with {len(leaves)} leaf hashes "
                f"and a right edge of size {edge.size}, store holds {log.held}"
            )
        expected_edge = log.held_edge.copy()
        for leaf in leaves:
            expected_edge.append(leaf)
        if expected_edge != edge:
            raise StoreError(f"{log.log_id}: the page's right edge does not extend the stored tree")
        self.conn.executemany(
            "INSERT INTO batches (log, idx, data) VALUES (?, ?, ?)",
            [(log.id, b.index, b.data) for b in batches],
        )
        self.conn.executemany(
            "INSERT INTO leaves (log, idx, leaf) VALUES (?, ?, ?)",
            [(log.id, b.index, leaf) for b, leaf in zip(batches, leaves, strict=True)],
        )
        merge.apply_entries(
            self.conn, log.id, (entry for batch in batches for entry in batch.entries)
        )
        self.conn.execute(
            "UPDATE logs SET held = ?, held_edge = ?, pending = coalesce(?, pending) WHERE id = ?",
            (edge.size, edge.to_bytes(), pending, log.id),
        )
        return self._reload(log)

    def accept_checkpoint(self, log: LogState, checkpoint: Checkpoint, note: bytes) -> LogState:
        """Make a verified checkpoint the one served. Call inside a transaction.

        Its size must be exactly what is held, and its root must be the held tree's root;
        a second, different root for a size already recorded is refused (PROTOCOL §5).
        Every leaf is then served, so no note is pending any more.
        """
        if checkpoint.origin != log.log_id:
            raise StoreError(f"{log.log_id}: refusing a checkpoint of {checkpoint.origin}")
        if checkpoint.size != log.held:
            raise StoreError(
                f"{log.log_id}: checkpoint for size {checkpoint.size}, store holds {log.held}"
            )
        if checkpoint.root != log.held_edge.root():
            raise StoreError(f"{log.log_id}: checkpoint root differs from the stored tree")
        self._record_checkpoint(log, checkpoint, note)
        self.conn.execute(
            "UPDATE logs SET size = ?, root = ?, checkpoint = ?, pending = NULL WHERE id = ?",
            (checkpoint.size, checkpoint.root, note, log.id),
        )
        return self._reload(log)

    def _record_checkpoint(self, log: LogState, checkpoint: Checkpoint, note: bytes) -> None:
        row = self.conn.execute(
            "SELECT root FROM checkpoints WHERE log = ? AND size = ?", (log.id, checkpoint.size)
        ).fetchone()
        if row is not None and row[0] != checkpoint.root:
            raise StoreError(
                f"{log.log_id}: refusing a second root for size {checkpoint.size}"
            )
        if row is None:
            self.conn.execute(
                "INSERT INTO checkpoints (log, size, root, note) VALUES (?, ?, ?, ?)",
                (log.id, checkpoint.size, checkpoint.root, note),
            )

    def _reload(self, log: LogState) -> LogState:
        fresh = self.log(log.log_id)
        assert fresh is not None
        return fresh

    # -- staging (own entries not yet published) ------------------------------------

    def stage(self, collection: str, entries: Iterable[Entry]) -> int:
        """Queue entries for the next publish. Call inside a transaction.

        They are checked here (ProtocolError), so that one bad entry cannot be staged
        and then block every publish after it.
        """
        check_collection(collection)
        entries = check_entries(list(entries))
        cursor = self.conn.executemany(
            "INSERT INTO staged (collection, op, type, value, labels, opinion)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                (collection, e.op, e.type, e.value, LABEL_SEPARATOR.join(e.labels), e.opinion)
                for e in entries
            ),
        )
        return cursor.rowcount

    def staged_collections(self) -> list[tuple[str, int]]:
        return self.conn.execute(
            "SELECT collection, count(*) FROM staged GROUP BY collection ORDER BY collection"
        ).fetchall()

    def staged_page(self, collection: str, limit: int) -> list[tuple[int, Entry]]:
        """The first ``limit`` staged entries of a collection, read in full.

        It leaves no statement running, so a caller may read a
        page and write inside one transaction without keeping an old read snapshot open
        (which in WAL mode makes its next ``BEGIN IMMEDIATE`` fail once another
        connection has committed).
        """
        rows = self.conn.execute(
            "SELECT seq, op, type, value, labels, opinion FROM staged WHERE collection = ?"
            " ORDER BY seq LIMIT ?",
            (collection, limit),
        ).fetchall()
        return [
            (seq, Entry(op, type_, value, tuple(labels.split(LABEL_SEPARATOR)) if labels else (), opinion))
            for seq, op, type_, value, labels, opinion in rows
        ]

    def unstage(self, collection: str, up_to_seq: int) -> None:
        self.conn.execute(
            "DELETE FROM staged WHERE collection = ? AND seq <= ?", (collection, up_to_seq)
        )

    # -- the merged list -----------------------------------------------------------

    def lookup(self, type_: str, value: str) -> Record | None:
        return read_record(self.conn, self.log_name, type_, value)

    def near_pdq(self, value: str, max_distance: int) -> list[tuple[int, Record]]:
        """Records of PDQ hashes within ``max_distance`` bits (Hamming) of ``value``,
        nearest first: how perceptual hashes match. A scan of the PDQ values held (one
        range of the primary key): about 0.6 s per million PDQ values on a 2-core VM."""
        query = int(value, 16)
        near = []
        for (candidate,) in self.conn.execute(
            "SELECT DISTINCT value FROM contributions WHERE type = 'pdq'"
        ):
            distance = (int(candidate, 16) ^ query).bit_count()
            if distance <= max_distance:
                near.append((distance, candidate))
        near.sort()
        found = []
        for distance, candidate in near:
            record = self.lookup("pdq", candidate)
            if record is not None:
                found.append((distance, record))
        return found

    def lookup_many_json(self, wanted: list[tuple[str, str]]) -> list[dict | None]:
        return read_many_json(self.conn, self.log_name, wanted)

    def records(self, *, active_only: bool = True) -> Iterator[Record]:
        return read_records(self.conn, self.log_name, active_only=active_only)

    def record_count(self) -> tuple[int, int]:
        """(active records, all records) of the merged list."""
        row = self.conn.execute(
            "SELECT count(*), sum(a) FROM ("
            " SELECT max(active) AS a FROM contributions GROUP BY type, value)"
        ).fetchone()
        return (row[1] or 0, row[0])

    # -- peers, keys and grants ----------------------------------------------------

    def add_peer(
        self,
        org: str,
        *,
        url: str | None,
        vkeys: Sequence[str],
        accept_push: bool,
        ca_file: str | None,
        now: str,
    ) -> None:
        """Add or update a peer; its keys are replaced by ``vkeys``."""
        check_org(org)
        verifiers = [_parse_peer_vkey(org, text) for text in vkeys]
        if not verifiers:
            raise ConfigError(f"peer {org}: at least one --key is needed")
        self._trust_cache = None  # this connection's own edits do not move data_version
        with self.transaction():
            self.db["peers"].upsert(
                {
                    "org": org,
                    "url": url,
                    "ca_file": ca_file,
                    "accept_push": int(accept_push),
                    "added_at": now,
                },
                pk="org",
            )
            self.conn.execute("DELETE FROM peer_keys WHERE org = ?", (org,))
            self.conn.executemany(
                "INSERT INTO peer_keys (org, vkey) VALUES (?, ?)",
                [(org, v.vkey()) for v in verifiers],
            )

    def remove_peer(self, org: str) -> None:
        self._trust_cache = None  # this connection's own edits do not move data_version
        with self.transaction():
            found = self.conn.execute("DELETE FROM peers WHERE org = ?", (org,)).rowcount
            if not found:
                raise ConfigError(f"no peer {org}")
            self.conn.execute("DELETE FROM peer_keys WHERE org = ?", (org,))
            self.conn.execute("DELETE FROM grants WHERE reader = ?", (org,))
            self.conn.execute("DELETE FROM peer_status WHERE org = ?", (org,))

    def grant(self, reader: str, log_id: str) -> None:
        check_org(reader)
        parse_log_id(log_id)
        self._trust_cache = None  # this connection's own edits do not move data_version
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO grants (reader, log_id) VALUES (?, ?)", (reader, log_id)
            )

    def revoke(self, reader: str, log_id: str) -> None:
        self._trust_cache = None  # this connection's own edits do not move data_version
        with self.transaction():
            found = self.conn.execute(
                "DELETE FROM grants WHERE reader = ? AND log_id = ?", (reader, log_id)
            ).rowcount
            if not found:
                raise ConfigError(f"{reader} has no grant for {log_id}")

    def trust_store(self, own: Sequence[Signer] = ()) -> TrustStore:
        """The trust store as configured now, with this node's own keys for its org.

        Built once and kept until the database changes: another connection committed (a
        ``hashfed peer add``/``grant``/``revoke`` from outside, seen through
        ``PRAGMA data_version``) or this connection edited peers or grants. So every
        request and every log of a pull may ask for it, and a change still applies at once.
        """
        key = (self.data_version(), tuple(signer.key_id for signer in own))
        if self._trust_cache is not None and self._trust_cache[0] == key:
            return self._trust_cache[1]
        trust = self._build_trust_store(own)
        self._trust_cache = (key, trust)
        return trust

    def _build_trust_store(self, own: Sequence[Signer]) -> TrustStore:
        keys: dict[str, list[Verifier]] = {}
        for org, vkey in self.conn.execute("SELECT org, vkey FROM peer_keys ORDER BY org, vkey"):
            keys.setdefault(org, []).append(Verifier.from_vkey(vkey))
        grants: dict[str, set[str]] = {}
        for reader, log_id in self.conn.execute("SELECT reader, log_id FROM grants"):
            grants.setdefault(reader, set()).add(log_id)
        orgs = []
        for org, url, ca_file, accept_push in self.conn.execute(
            "SELECT org, url, ca_file, accept_push FROM peers ORDER BY org"
        ):
            orgs.append(
                TrustedOrg(
                    org=org,
                    verifiers=tuple(keys.get(org, ())),
                    url=url,
                    readable=frozenset(grants.get(org, ())),
                    accept_push=bool(accept_push),
                    ca_file=ca_file,
                )
            )
        if own:
            orgs.append(TrustedOrg(org=own[0].name, verifiers=tuple(s.verifier() for s in own)))
        return TrustStore(orgs)

    # -- pull status and evidence ----------------------------------------------------

    def note_pull(self, org: str, *, now: str, error: str | None) -> None:
        with self.transaction():
            row = self.conn.execute(
                "SELECT failures FROM peer_status WHERE org = ?", (org,)
            ).fetchone()
            failures = 0 if error is None else (row[0] if row else 0) + 1
            self.conn.execute(
                "INSERT INTO peer_status (org, last_attempt, last_success, last_error, failures)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (org) DO UPDATE SET"
                " last_attempt = excluded.last_attempt,"
                " last_success = coalesce(excluded.last_success, last_success),"
                " last_error = excluded.last_error, failures = excluded.failures",
                (org, now, now if error is None else None, error, failures),
            )

    def peer_status(self) -> dict[str, PeerStatus]:
        rows = self.conn.execute(
            "SELECT org, last_attempt, last_success, last_error, failures FROM peer_status"
        ).fetchall()
        return {row[0]: PeerStatus(*row) for row in rows}

    def record_evidence(
        self,
        *,
        log_id: str,
        kind: str,
        size: int | None,
        ours: bytes | None,
        theirs: bytes | None,
        source: str | None,
        detail: str,
        now: str,
    ) -> bool:
        """Keep evidence of a misbehaving log or peer; the same pair is kept once.
        Returns True when it is new."""
        with self.transaction():
            exists = self.conn.execute(
                "SELECT 1 FROM evidence WHERE log_id = ? AND kind = ? AND size IS ? AND"
                " ours IS ? AND theirs IS ?",
                (log_id, kind, size, ours, theirs),
            ).fetchone()
            if exists:
                return False
            self.conn.execute(
                "INSERT INTO evidence (log_id, kind, size, ours, theirs, source, detail,"
                " detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (log_id, kind, size, ours, theirs, source, detail, now),
            )
            return True

    def evidence(self) -> list[Evidence]:
        rows = self.conn.execute(
            "SELECT id, log_id, kind, size, ours, theirs, source, detail, detected_at"
            " FROM evidence ORDER BY id"
        ).fetchall()
        return [Evidence(*row) for row in rows]


async def run_write(func: Callable[..., T], /, *args: object, **kwargs: object) -> T:
    """Run a store write in a worker thread, off the event loop, and wait for it to end,
    even when the caller is cancelled meanwhile (``finish``)."""
    return await finish(asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs)))


async def finish(future: asyncio.Future[T]) -> T:
    """The result of ``future``, work running in a worker thread on a store.

    A thread cannot be stopped: when the caller is cancelled (a timeout, SIGTERM, a peer
    removed), the wait goes on until the work ends, however many cancellations arrive, and
    the cancellation is raised then. So the caller cannot close the store, or hand its
    connection to another thread, while the worker is still in a transaction.
    """
    interrupted = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.cancelled():
                raise
            interrupted = True
        except Exception:  # the work failed: result() below raises its error
            break
    if interrupted:
        if not future.cancelled() and (error := future.exception()) is not None:
            logger.warning("a store write ended in an error after its caller was cancelled: %s", error)
        raise asyncio.CancelledError
    return future.result()


def _parse_peer_vkey(org: str, text: str) -> Verifier:
    try:
        verifier = Verifier.from_vkey(text.strip())
    except ProtocolError as exc:
        raise ConfigError(f"peer {org}: bad key: {exc}") from exc
    if verifier.name != org:
        raise ConfigError(f"peer {org}: the key is for {verifier.name!r}, not {org!r}")
    return verifier
