"""Hash many files on every core: a process pool, results in input order. IO.

:func:`hash_paths` is what ``hashfed hash``/``hashfed match`` call. Decisions:

- **Processes**, not threads: decoding and PDQ hold the GIL for much of their time.
  The pool starts workers with ``spawn`` (not ``fork``): the caller may hold threads or
  open connections that a forked child would copy half-way; spawn costs about a second
  of imports per worker, once per run. One worker (``workers=1``, or one file) runs in
  this process with no pool at all.
- **Input order.** Results come out in the order the inputs name the files (folders in
  sorted order), whatever order workers finish in, so a run's output is reproducible and
  diffable. At most ``8 x workers`` files are in flight or waiting for an earlier one, so
  memory stays bounded for a million paths and one long video holds back only that window.
- **Progress** is ``progress(done, total)``, called in the caller's thread each time a
  file finishes (completion order, so the count moves while an early file is slow);
  ``total`` is known from the start because the inputs are walked before hashing begins
  (walking is stat calls, cheap next to decoding).
- **Nothing escapes for one file**, not even a worker killed by a decoder crash or the
  OOM killer: when the pool breaks, the files that were in flight are hashed again one at
  a time, each in a fresh one-worker pool; a file that kills its worker again is reported
  as such, and the others get their real results. A fresh pool takes the rest.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .hashing import hash_file
from .options import HashOptions
from .results import HashFailure, HashResult
from .walk import iter_inputs

Progress = Callable[[int, int], None]
"""``progress(done, total)``: files finished so far (hashed or failed), and how many."""

WINDOW_PER_WORKER = 8
CRASH_MESSAGE = "the worker process died while hashing this file (decoder crash or out of memory)"


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def hash_paths(
    inputs: Iterable[str],
    *,
    options: HashOptions | None = None,
    workers: int | None = None,
    stdin_lines: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> Iterator[HashResult]:
    """Hash every file named by ``inputs`` (files, folders, ``-`` for ``stdin_lines``).

    Yields one :class:`~hashfed.media.results.MediaHash` or
    :class:`~hashfed.media.results.HashFailure` per file or unwalkable path, in input
    order. ``workers`` defaults to every core this process may use.
    """
    options = options if options is not None else HashOptions()
    targets = list(iter_inputs(inputs, stdin_lines=stdin_lines))
    files = sum(1 for target in targets if isinstance(target, str))
    count = default_workers() if workers is None else workers
    if count < 1:
        raise ValueError(f"workers must be at least 1, got {count}")
    report = progress if progress is not None else (lambda done, total: None)
    if min(count, files) <= 1:
        yield from _serial(targets, options, report)
    else:
        yield from _parallel(targets, options, min(count, files), report)


def _serial(targets: list[str | HashFailure], options: HashOptions, report: Progress) -> Iterator[HashResult]:
    for done, target in enumerate(targets, start=1):
        result = target if isinstance(target, HashFailure) else hash_file(target, options)
        report(done, len(targets))
        yield result


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _isolated(path: str, options: HashOptions) -> HashResult:
    with _new_pool(1) as pool:
        try:
            return pool.submit(hash_file, path, options).result()
        except BrokenProcessPool:
            return HashFailure(path, CRASH_MESSAGE)


def _parallel(
    targets: list[str | HashFailure], options: HashOptions, workers: int, report: Progress
) -> Iterator[HashResult]:
    total = len(targets)
    window = WINDOW_PER_WORKER * workers
    upcoming = iter(enumerate(targets))
    pending: dict[Future[HashResult], int] = {}
    ready: dict[int, HashResult] = {}  # finished, waiting for an earlier file
    done = emitted = 0
    pool = _new_pool(workers)
    try:
        while emitted < total:
            while len(pending) + len(ready) < window and (item := next(upcoming, None)) is not None:
                index, target = item
                if isinstance(target, HashFailure):
                    ready[index] = target
                    done += 1
                    report(done, total)
                else:
                    pending[pool.submit(hash_file, target, options)] = index
            while emitted in ready:
                yield ready.pop(emitted)
                emitted += 1
            if not pending:
                continue
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            crashed: list[int] = []
            for future in finished:
                index = pending.pop(future)
                try:
                    ready[index] = future.result()
                except BrokenProcessPool:
                    crashed.append(index)
                    continue
                done += 1
                report(done, total)
            if crashed:
                # The pool is gone, and with it every file in flight: retry each alone.
                crashed.extend(pending.values())
                pending.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                for index in sorted(crashed):
                    target = targets[index]
                    assert isinstance(target, str)
                    ready[index] = _isolated(target, options)
                    done += 1
                    report(done, total)
                pool = _new_pool(workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["Progress", "hash_paths", "default_workers", "CRASH_MESSAGE"]
