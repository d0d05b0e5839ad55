"""Turn the command line's inputs into the files to hash, in a stable order. IO.

Each input is a file, a folder (walked recursively, entries sorted by name so two runs
list the same order), or ``-``: the caller's lines (``hashfed hash -`` passes stdin's
lines), one path a line, each walked the same way; trailing ``\\n``/``\\r\\n`` is removed
and nothing else (names may start or end with spaces), empty lines are skipped.

Symlinks are followed, to files and to folders. A folder is identified by its
(device, inode), and the walk keeps the chain of folders above the current one: a link
leading back to one of them is a **symlink loop**, reported once at the link and not
followed. A folder already walked by another route (two links to one folder) is skipped
without a message, so each file is listed once per folder route. A chain of file links
that never ends (``a -> b -> a``) is the OS's ELOOP, reported as a symlink loop too.

The walk yields each file's path as a ``str`` or a
:class:`~hashfed.media.results.HashFailure` for what cannot be walked (missing, loop,
unlistable folder), in the order met; it never raises for one path.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator

from .errors import os_error_message
from .results import HashFailure

STDIN = "-"


def _stdin_paths(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        path = line.removesuffix("\n").removesuffix("\r")
        if path:
            yield path


def _stat_failure(path: str, exc: OSError) -> HashFailure:
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return HashFailure(path, "broken symlink: its target does not exist", str(exc))
    return HashFailure(path, os_error_message(exc), str(exc))


def iter_inputs(inputs: Iterable[str], *, stdin_lines: Iterable[str] | None = None) -> Iterator[str | HashFailure]:
    """The files named by ``inputs`` (``-`` reads ``stdin_lines``), folders walked."""
    visited: set[tuple[int, int]] = set()
    for item in inputs:
        if item == STDIN:
            if stdin_lines is None:
                raise ValueError("'-' given but no stdin lines passed")
            for path in _stdin_paths(stdin_lines):
                yield from _expand(path, visited)
        else:
            yield from _expand(item, visited)


def _expand(path: str, visited: set[tuple[int, int]]) -> Iterator[str | HashFailure]:
    try:
        info = os.stat(path)
    except OSError as exc:
        yield _stat_failure(path, exc)
        return
    if not stat.S_ISDIR(info.st_mode):
        yield path
        return
    key = (info.st_dev, info.st_ino)
    if key in visited:
        return
    visited.add(key)
    yield from _walk(path, key, visited)


def _listing(folder: str) -> list[os.DirEntry[str]] | HashFailure:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exc:
        reason = os_error_message(exc).removeprefix("unreadable: ")
        return HashFailure(folder, f"cannot list folder: {reason}", str(exc))


def _walk(root: str, root_key: tuple[int, int], visited: set[tuple[int, int]]) -> Iterator[str | HashFailure]:
    # Depth first without recursion (a deep tree must not hit Python's recursion limit):
    # a stack of (folder key, remaining entries), and the chain of folders above us.
    listing = _listing(root)
    if isinstance(listing, HashFailure):
        yield listing
        return
    chain: dict[tuple[int, int], str] = {root_key: root}
    stack: list[tuple[tuple[int, int], Iterator[os.DirEntry[str]]]] = [(root_key, iter(listing))]
    while stack:
        key, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            del chain[key]
            continue
        try:
            info = entry.stat()  # follows symlinks
        except OSError as exc:
            yield _stat_failure(entry.path, exc)
            continue
        if not stat.S_ISDIR(info.st_mode):
            yield entry.path
            continue
        child = (info.st_dev, info.st_ino)
        if child in chain:
            yield HashFailure(entry.path, f"symlink loop: leads back to {chain[child]}")
            continue
        if child in visited:
            continue
        visited.add(child)
        listing = _listing(entry.path)
        if isinstance(listing, HashFailure):
            yield listing
            continue
        chain[child] = entry.path
        stack.append((child, iter(listing)))


__all__ = ["STDIN", "iter_inputs"]
