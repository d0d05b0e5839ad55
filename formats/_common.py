"""What every reader of ``hashfed.formats`` shares: the error it raises, the skip-bad mode,
text as lines, bounded JSON documents, and the options for foreign labels and retractions.

**Errors.** A reader raises :class:`FormatError` (a :class:`ProtocolError`) whose text is
``<source>:<line>: <reason>`` for line formats and ``<source>: <item>: <reason>`` for JSON
documents (``object 3 (indicator--…)``, ``Attribute 7 (uuid …)``), the compiler's form
that editors and people read. The parts are attributes too, so a caller can count or
group them without parsing the text.

**Skip-bad mode.** Every reader takes ``errors``: ``None`` (the default) raises on the
first bad line or object; a list collects the error of each bad item and goes on, so a CLI
can offer ``--skip-bad`` and say how many it skipped. What spoils the whole input (not
JSON at all, over a size bound, broken CSV quoting) always raises.

**Bounds.** A line may hold at most :data:`MAX_LINE_CHARS` characters and a JSON document
:data:`MAX_DOCUMENT_CHARS`; the JSON formats bound their object counts too. A bound is a
parameter with these defaults, and going over it names the bound.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Literal

from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry, normalise_labels
from hashfed.keys.names import show

MAX_LINE_CHARS: Final = 1 << 20
"""Longest line a line format reads (1 Mi characters): far past any real row."""

MAX_DOCUMENT_CHARS: Final = 256 << 20
"""Longest JSON document (STIX bundle, MISP event) read whole (256 Mi characters)."""

Text = str | Iterable[str]
"""What a reader reads: a whole text, or its lines (an open text file, ``str.splitlines``)."""

Errors = list[ProtocolError] | None
"""``None``: raise on the first bad item. A list: collect each bad item's error, go on."""

LabelMap = Callable[[str], str | None]
"""Maps a foreign label or tag to a hashfed label, or to ``None`` to drop it."""

Inactive = Literal["skip", "remove"]
"""What a retracted item (revoked indicator, deleted attribute, inactive record) becomes:
nothing, or an ``Entry.remove`` so that a mirror of a feed retracts it too."""


class FormatError(ProtocolError):
    """A bad line or object of an input file. ``str()`` is the whole one-line message."""

    def __init__(self, source: str, where: str, reason: str, *, line: int | None = None) -> None:
        super().__init__(f"{source}:{where}: {reason}" if line is not None else f"{source}: {where}: {reason}")
        self.source = source
        self.where = where
        self.reason = reason
        self.line = line


def line_error(source: str, line: int, reason: str) -> FormatError:
    return FormatError(source, str(line), reason, line=line)


def report(errors: Errors, error: FormatError) -> None:
    """Raise ``error``, or collect it in skip-bad mode."""
    if errors is None:
        raise error
    errors.append(error)


def lines_of(text: Text) -> Iterator[str]:
    """The lines of ``text``, line ends kept. A ``str`` splits as a file opened with
    ``newline=""`` does (at ``\\n``, ``\\r\\n`` and ``\\r``), so CSV sees what it would
    see in a file."""
    if isinstance(text, str):
        return iter(io.StringIO(text, newline=""))
    return iter(text)


def bounded_lines(text: Text, source: str, max_line_chars: int) -> Iterator[str]:
    """:func:`lines_of`, raising on a line longer than ``max_line_chars`` (it counts lines
    itself, so the number is the physical line's)."""
    for number, line in enumerate(lines_of(text), 1):
        if len(line) > max_line_chars:
            raise line_error(source, number, f"line of {len(line)} characters: at most {max_line_chars}")
        yield line


def load_json_document(text: Text, source: str, max_chars: int) -> object:
    """Parse one JSON document, bounded. Raises :class:`FormatError` naming the line and
    column where it stops parsing."""
    if isinstance(text, str):
        whole = text
        if len(whole) > max_chars:
            raise FormatError(source, "document", f"{len(whole)} characters: at most {max_chars}")
    else:
        parts: list[str] = []
        size = 0
        for part in text:
            size += len(part)
            if size > max_chars:
                raise FormatError(source, "document", f"more than {max_chars} characters")
            parts.append(part)
        whole = "".join(parts)
    try:
        return json.loads(whole, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise line_error(source, exc.lineno, f"not JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:  # NaN / Infinity, or an integer past Python's digit limit
        raise FormatError(source, "document", f"not JSON: {exc}") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def foreign_labels(names: Iterable[object], label_map: LabelMap | None) -> tuple[str, ...]:
    """Labels from another tool's labels or tags: each mapped by ``label_map`` (``None`` to
    drop it), then checked as hashfed labels. Raises :class:`ProtocolError` naming the first
    that is not a label, or on more than 16."""
    kept: list[str] = []
    for name in names:
        if type(name) is not str:
            raise ProtocolError(f"a label must be a string, not {show(name)}")
        mapped = label_map(name) if label_map is not None else name
        if mapped is not None:
            kept.append(mapped)
    return normalise_labels(kept)


def entry_for(type_: str, value: str, labels: tuple[str, ...], *, retracted: bool, inactive: Inactive) -> Entry | None:
    """The entry an item stands for: an add, a remove of a retracted item, or ``None``."""
    if not retracted:
        return Entry.add(type_, value, labels)
    if inactive == "remove":
        return Entry.remove(type_, value)
    return None


def check_inactive(inactive: object) -> None:
    if inactive not in ("skip", "remove"):
        raise ValueError(f"inactive must be 'skip' or 'remove', not {inactive!r}")


__all__ = [
    "MAX_LINE_CHARS",
    "MAX_DOCUMENT_CHARS",
    "Text",
    "Errors",
    "LabelMap",
    "Inactive",
    "FormatError",
]
