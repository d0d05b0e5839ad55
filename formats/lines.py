"""Plain hash lists: one value a line, every line of one given type.

What ``md5sum``-less exports, NCMEC-style drops and ``grep -o`` leave behind. The type is a
parameter (``type_="md5"``, any case), never guessed from the value's length: an MD5 and a
truncated SHA-1 look alike, and a PDQ and a SHA-256 are both 64 hex digits.

Reading skips blank lines and lines whose first non-blank character is ``#``; a value may
have white space around it, nothing else (no second column, no trailing comment: such a
line is an error, not silently half-read). Writing puts one value a line, ``\\n``-ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry
from hashfed.protocol.hashtypes import normalise, parse_hash_type
from hashfed.keys.names import show
from hashfed.protocol.records import Record

from ._common import MAX_LINE_CHARS, Errors, Text, bounded_lines, line_error, report


def read_lines(
    text: Text,
    *,
    type_: str,
    source: str = "<lines>",
    errors: Errors = None,
    max_line_chars: int = MAX_LINE_CHARS,
) -> Iterator[Entry]:
    """Read one ``type_`` value a line as ``add`` entries without labels.

    A bad line raises :class:`FormatError` ``<source>:<line>: <reason>``, or with ``errors``
    a list, is collected there and skipped.
    """
    hash_type = parse_hash_type(type_)
    for number, line in enumerate(bounded_lines(text, source, max_line_chars), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            value = normalise(hash_type, stripped)
        except ProtocolError as exc:
            report(errors, line_error(source, number, str(exc)))
            continue
        yield Entry("add", hash_type, value, (), None)


def write_lines(records: Iterable[Record], *, type_: str) -> Iterator[str]:
    """Stream the values of ``records``, one a line. Every record must be of ``type_``: a
    plain list cannot say a value's type, so a record of another type is an error (filter
    first), never written into a list that would then lie about it."""
    hash_type = parse_hash_type(type_)
    for record in records:
        if record.type != hash_type:
            raise ProtocolError(f"a {show(record.type)} record in a list of {hash_type} values: {record.value}")
        yield record.value + "\n"


__all__ = ["read_lines", "write_lines"]
