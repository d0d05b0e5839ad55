"""The store's connection: one SQLite file in WAL mode, its schema brought up to date by
numbered migrations (``migrations.py``), and the unit of work.

Every unit of work (a publish page, one pulled or pushed page, a peer change) is one
``transaction()``: either all of it is stored or none. The connection runs in autocommit
mode and transactions are explicit ``BEGIN IMMEDIATE``, so a writer takes the write lock up
front instead of failing half-way on a busy database. A ``Store`` belongs to one thread at a
time; open a second one for another thread.

A new store file is created 0600 before SQLite opens it, so that it, and the ``-wal`` and
``-shm`` files SQLite gives the mode of the database file, are the owner's alone.

On the event loop, reads are fine (WAL readers never wait), but a write may wait up to
``BUSY_TIMEOUT_MS`` for another process's lock: run writes with ``run_write``, which also
lets the write finish when its caller is cancelled, so nobody closes a store under a
running transaction.

The store's concerns each have a repository of their own, reached from the ``Store``:
``store.logs`` (logs, batches, leaves, checkpoints, and the one commit path),
``store.staging`` (own entries not yet published), ``store.peers`` (peers, keys, grants,
pull status, the trust store), ``store.evidence`` (equivocation), ``store.merged`` (reads
of the merged list, whose only writer is the commit path) and ``store.changes`` (the
merged list's change feed), ``store.tokens`` (TAXII reader tokens) and
``store.indicators`` (what each log's TAXII collection serves).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from hashfed.federation.merged.records import MergedList
from hashfed.federation.store import migrations
from hashfed.federation.store.changes import Changes
from hashfed.federation.store.evidence import EvidenceLog
from hashfed.federation.store.indicators import Indicators
from hashfed.federation.store.logs import Logs
from hashfed.federation.store.peers import Peers
from hashfed.federation.store.staging import Staging
from hashfed.federation.store.tokens import Tokens
from hashfed.keys.errors import StoreError

if TYPE_CHECKING:
    import sqlite_utils

BUSY_TIMEOUT_MS = 30_000
_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL; extended codes keep it in the low byte


class DiskFull(StoreError):
    """The file system holding the store is full (SQLITE_FULL, or ENOSPC writing it). The
    unit of work was rolled back whole: nothing of it is stored, and the same command
    succeeds once there is room. ``folder`` is where room is needed."""

    def __init__(self, folder: Path, cause: BaseException) -> None:
        super().__init__(f"the disk holding {folder} is full: {cause}; nothing of this was stored")
        self.folder = folder


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database or disk is full" or an ENOSPC."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == _SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Store:
    """The node's database. Open with ``Store(path)``; close with ``close()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        conn: sqlite3.Connection | None = None
        try:
            _create_private(self.path)
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is durable when it returns. The publisher signs only after
            # its leaves are committed; under NORMAL a power cut could undo a commit whose
            # tree was already signed and served, and the republished batch (a new
            # `created`) would give a second root for that size (PROTOCOL §5).
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            if is_disk_full(exc):
                raise DiskFull(self.path.parent, exc) from exc
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        self.conn = conn
        try:
            self._migrate()
        except BaseException:
            conn.close()  # a refused store must not keep its file open
            raise
        self.logs = Logs(self)
        self.staging = Staging(self)
        self.peers = Peers(self)
        self.evidence = EvidenceLog(self)
        self.merged = MergedList(conn, self.logs.name)
        self.changes = Changes(self)
        self.tokens = Tokens(self)
        self.indicators = Indicators(self)

    @functools.cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for migrations and upserts. Imported on
        first use: it imports numpy when numpy is installed, and most commands never need
        it, so it stays out of every command's start-up time."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        except BaseException as exc:
            # SQLite may have rolled back already (RAISE(ROLLBACK), some I/O errors); a
            # second ROLLBACK would fail and hide the error that caused the first.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if is_disk_full(exc):
                raise DiskFull(self.path.parent, exc) from exc
            raise

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap 'reload?' signal."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def _migrate(self) -> None:
        known = len(migrations.MIGRATIONS)
        try:
            # Opening an up-to-date store takes no write lock (the common case, and the
            # one that must not wait behind another connection's commit).
            if self.conn.execute("PRAGMA user_version").fetchone()[0] == known:
                return
            with self.transaction():
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                if version > known:
                    raise StoreError(
                        f"the store {self.path} has schema version {version}, newer than this "
                        f"hashfed knows ({known}); upgrade hashfed"
                    )
                for number, migration in enumerate(
                    migrations.MIGRATIONS[version:], start=version + 1
                ):
                    migration(self.db)
                    self.conn.execute(f"PRAGMA user_version = {number}")
        except DiskFull:
            raise
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                raise DiskFull(self.path.parent, exc) from exc
            raise StoreError(f"cannot set up the store {self.path}: {exc}") from exc


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (exactly, whatever the umask) if it does not
    exist; SQLite makes an empty file a new database. (``:memory:`` is no file.)"""
    if str(path) == ":memory:":
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


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
