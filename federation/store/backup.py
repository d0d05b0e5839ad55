"""An online, consistent copy of the store: ``hashfed backup FILE``, safe while ``serve``
runs.

Decisions:

- SQLite's backup API, from a connection that holds one read transaction for the whole
  copy. In WAL mode that reader never blocks the node's writer, and the copy is the one
  snapshot it began with. Without the held transaction every step re-reads the source and
  SQLite restarts the copy from page one whenever another connection committed since the
  last step: under a steady stream of pulled pages it would never finish. The copy still
  goes in steps (``STEP_PAGES``), so progress can be reported and nothing else in this
  process waits on one long call. (While it runs the WAL cannot be reset past the
  snapshot, so it grows by what is committed meanwhile; the next checkpoint shrinks it.)
- Written to a temporary name in the destination's folder (created 0600), switched to a
  plain rollback journal so that the copy is one self-contained file, fsynced, renamed
  over the final name, and the folder fsynced: a crash leaves the old file or the new
  one, never half of one. An existing file is replaced only when asked (``force``). On
  any failure (a full disk: ``DiskFull`` naming the destination's folder) the temporary
  file is removed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from hashfed.federation.store.connection import DiskFull, is_disk_full
from hashfed.keys.errors import StoreError

STEP_PAGES = 4096  # 16 MiB of 4 KiB pages a step

Progress = Callable[[int, int], None]  # (pages copied, pages in all)


def backup_store(
    source: Path, dest: Path, *, force: bool = False, progress: Progress | None = None
) -> int:
    """Copy the store at ``source`` to ``dest``; returns the copy's size in bytes."""
    if not source.is_file():
        raise StoreError(f"no store at {source}")
    if dest.exists() and not force:
        raise StoreError(f"{dest} exists; pass --force to replace it")
    if dest.exists() and not dest.is_file():
        raise StoreError(f"{dest} is not a file")
    folder = dest.parent
    tmp = folder / f".{dest.name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        os.close(fd)
        _copy(source, tmp, progress)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
        _fsync_dir(folder)
    except OSError as exc:
        _remove(tmp)
        if is_disk_full(exc):
            raise DiskFull(folder, exc) from exc
        raise
    except BaseException:
        _remove(tmp)
        raise
    return dest.stat().st_size


def _remove(tmp: Path) -> None:
    for leftover in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _copy(source: Path, tmp: Path, progress: Progress | None) -> None:
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {source} to read: {exc}") from exc
    try:
        dst = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot, now
            src.backup(
                dst,
                pages=STEP_PAGES,
                progress=None if progress is None else lambda _s, left, total: progress(total - left, total),
            )
            src.execute("COMMIT")
            # One self-contained file: no -wal beside it to lose on the way to tape.
            dst.execute("PRAGMA journal_mode = DELETE")
            dst.execute("PRAGMA synchronous = FULL")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the copy of {source} fails SQLite's quick_check: {check}")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        if is_disk_full(exc):
            raise DiskFull(tmp.parent, exc) from exc
        raise StoreError(f"cannot copy the store {source} to {tmp.parent}: {exc}") from exc
    finally:
        src.close()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
