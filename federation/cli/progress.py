"""Progress bars for long runs (import, publish, pull): on a terminal only, quiet otherwise.

tqdm draws them (count, rate, ETA, terminal width, smoothing); when stderr is not a
terminal the bar is disabled, so scripts and logs see only the commands' own lines.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm


class Bar:
    """What a long run reports: ``advance(n)`` as work is done, and ``expect(total)`` once
    the total is known or estimated (which gives the ETA)."""

    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def advance(self, n: int) -> None:
        self._bar.update(n)

    def expect(self, total: int) -> None:
        if total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()

    def __call__(self, n: int) -> None:
        self.advance(n)


@contextlib.contextmanager
def progress_bar(description: str, *, unit: str, total: int | None = None) -> Iterator[Bar]:
    """A bar on stderr, drawn only when stderr is a terminal."""
    enabled = sys.stderr is not None and sys.stderr.isatty()  # None under pythonw
    with tqdm(
        total=total,
        desc=description,
        unit=f" {unit}",
        unit_scale=True,
        disable=not enabled,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        yield Bar(bar)


def count_lines(path: str) -> int | None:
    """Lines in a regular file, counted fast (bytes, no decoding), for an import's ETA."""
    try:
        with open(path, "rb") as file:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
    except OSError:
        return None
