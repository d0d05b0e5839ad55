"""Progress bars for long runs (import, publish, pull): on a terminal only, quiet otherwise.

tqdm draws them (rate, ETA, terminal width, smoothing); when stderr is not a terminal the
bar is disabled, so scripts and logs see only the commands' own lines.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from tqdm import tqdm


@contextlib.contextmanager
def progress_bar(
    description: str, *, unit: str, total: int | None = None
) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; draws on stderr only when it is a terminal."""
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
        yield bar.update
