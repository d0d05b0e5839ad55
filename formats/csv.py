"""CSV hash lists: ``type,value[,labels]`` in, ``type,value,labels,contributors`` out.

**Reading** (:func:`read_csv`) keeps what ``hashfed import`` has always read:

- rows ``type,value[,labels]``; blank lines and rows whose first cell starts with ``#``
  skipped; a quoted cell may span lines, and an error names the line its row ends on;
- a header ``type,value[,labels]`` on line 1 (any case) skipped;
- cells stripped, values normalised (any case, white space around), labels checked,
  sorted and deduplicated; a broken quote or a cell past the ``csv`` module's field limit
  spoils the file (no row after it can be trusted) and always raises.

and adds:

- **type names in any case** (``MD5``), through :func:`protocol.hashtypes.parse_hash_type`;
- **labels split at ``;`` or ``,``** inside their cell. A label can hold neither, so both
  split without ambiguity: ``"a:1;b:2"`` (hashfed's own) and ``"a:1,b:2"`` (what MISP and
  spreadsheets write in a quoted cell) read alike. Writing uses ``;``;
- **named columns.** ``columns={"type": "HashType", "value": "Hash", "labels": "Tags"}``
  maps our fields to header names (matched case-insensitively, white space stripped): the
  first row that is not blank or a comment must be that header, other columns are
  ignored, and every row must have as many fields as the header. A line-1 header that
  starts ``type,value`` and names more columns than ``type,value,labels`` (``export``'s
  ``type,value,labels,contributors``) names its columns the same way, so an export reads
  back as it is;
- **a fixed type** (``type_="md5"``) for files without a type column: rows are then
  ``value[,labels]`` (a line-1 header ``value[,labels]`` is skipped), or ``columns``
  names no ``type``.

**Writing** (:func:`write_csv`) streams ``export --format csv``: a header, then per record
``type,value,labels,contributors`` with labels and contributor log ids joined by ``;``.
Opinions are not written: CSV carries the list, not the reviews of it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry, normalise_labels
from hashfed.protocol.hashtypes import normalise, parse_hash_type
from hashfed.keys.names import make_log_id, show
from hashfed.protocol.records import Record

from ._common import MAX_LINE_CHARS, Errors, FormatError, Text, bounded_lines, line_error, report

FIELDS: Final = ("type", "value", "labels")
"""The fields a column map may name."""

EXPORT_HEADER: Final = ("type", "value", "labels", "contributors")

LABEL_SPLIT: Final = re.compile(r"[;,]")


class _Layout:
    """Where the fields of a row are: positions, and how many fields a row may have."""

    def __init__(self, type_at: int | None, value_at: int, labels_at: int | None, counts: tuple[int, ...], expected: str) -> None:
        self.type_at = type_at
        self.value_at = value_at
        self.labels_at = labels_at
        self.counts = counts
        self.expected = expected


def _positional(fixed_type: str | None) -> _Layout:
    if fixed_type is None:
        return _Layout(0, 1, 2, (2, 3), "expected type,value[,labels]")
    return _Layout(None, 0, 1, (1, 2), "expected value[,labels]")


def _named(header: list[str], columns: Mapping[str, str], fixed_type: str | None) -> _Layout:
    """The layout a header row gives ``columns``; raises ProtocolError naming what is missing."""
    names = [cell.strip().lower() for cell in header]
    at: dict[str, int | None] = {}
    for field in FIELDS:
        wanted = columns.get(field)
        if wanted is None:
            at[field] = None
            continue
        hits = [i for i, name in enumerate(names) if name == wanted.strip().lower()]
        if not hits:
            raise ProtocolError(f"header has no column {show(wanted)} (for {field}): it has {show(header)}")
        if len(hits) > 1:
            raise ProtocolError(f"header names column {show(wanted)} (for {field}) {len(hits)} times")
        at[field] = hits[0]
    if at["value"] is None:
        raise ValueError("columns must name the value column")
    if (at["type"] is None) == (fixed_type is None):
        raise ValueError("give exactly one of a type column and a fixed type_")
    return _Layout(
        at["type"], at["value"], at["labels"], (len(header),), f"expected {len(header)} fields as the header has"
    )


def _is_default_header(row: list[str], fixed_type: str | None) -> bool:
    first = ["value"] if fixed_type is not None else ["type", "value"]
    return [cell.strip().lower() for cell in row[: len(first)]] == first


def _own_names(header: list[str], fixed_type: str | None) -> dict[str, str]:
    """The column map of a header in our own names: the fields it has (not type, if fixed)."""
    names = {cell.strip().lower() for cell in header}
    return {f: f for f in FIELDS if f in names and not (f == "type" and fixed_type is not None)}


def read_csv(
    text: Text,
    *,
    source: str = "<csv>",
    type_: str | None = None,
    columns: Mapping[str, str] | None = None,
    errors: Errors = None,
    max_line_chars: int = MAX_LINE_CHARS,
) -> Iterator[Entry]:
    """Read CSV hash rows as ``add`` entries (see the module docstring for the forms).

    ``type_`` fixes the type of every row (any case); ``columns`` maps ``type``, ``value``
    and ``labels`` to header names. A bad row raises :class:`FormatError`
    ``<source>:<line>: <reason>``, or with ``errors`` a list, is collected there and skipped.
    """
    fixed_type = parse_hash_type(type_) if type_ is not None else None
    if columns is not None:
        unknown = set(columns) - set(FIELDS)
        if unknown:
            raise ValueError(f"columns may name {FIELDS}, not {sorted(unknown)}")
    layout = _positional(fixed_type) if columns is None else None
    reader = csv.reader(bounded_lines(text, source, max_line_chars), strict=True)
    label_sets: dict[str, tuple[str, ...]] = {"": ()}
    types: dict[str, str] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise line_error(source, reader.line_num, f"not CSV: {exc}") from None
        number = reader.line_num  # the line the row ends on: a quoted field may span lines
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if layout is None or (number == 1 and _is_default_header(row, fixed_type)):
            if layout is None:  # columns given: this first row is the header
                names = columns or {}
            elif len(row) > max(layout.counts):  # a longer header of ours (export's)
                names = _own_names(row, fixed_type)
            else:  # type,value[,labels]: skipped, the positions are the usual ones
                continue
            try:
                layout = _named(row, names, fixed_type)
            except ProtocolError as exc:
                raise line_error(source, number, str(exc)) from None
            continue
        if len(row) not in layout.counts:
            report(errors, line_error(source, number, f"{layout.expected}, got {len(row)} fields"))
            continue
        try:
            field = row[layout.labels_at] if layout.labels_at is not None and layout.labels_at < len(row) else ""
            labels = label_sets.get(field)
            if labels is None:  # label cells repeat across a file: parse each once
                labels = normalise_labels(x.strip() for x in LABEL_SPLIT.split(field) if x.strip())
                label_sets[field] = labels
            if layout.type_at is None:
                hash_type = fixed_type
            else:
                cell = row[layout.type_at]
                hash_type = types.get(cell)
                if hash_type is None:
                    hash_type = types[cell] = parse_hash_type(cell)
            assert hash_type is not None
            entry = Entry("add", hash_type, normalise(hash_type, row[layout.value_at]), labels, None)
        except ProtocolError as exc:
            report(errors, line_error(source, number, str(exc)))
            continue
        yield entry


def csv_row(record: Record) -> tuple[str, str, str, str]:
    """``type,value,labels,contributors`` of one record, as ``export --format csv`` writes it."""
    logs = ";".join(make_log_id(c.org, c.collection) for c in record.contributors)
    return (record.type, record.value, ";".join(record.labels), logs)


def write_csv(records: Iterable[Record], *, header: bool = True) -> Iterator[str]:
    """Stream records as CSV text, a header line first (unless ``header=False``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(EXPORT_HEADER)
    for record in records:
        writer.writerow(csv_row(record))
        if buffer.tell() >= 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


__all__ = ["read_csv", "write_csv", "csv_row", "FIELDS", "EXPORT_HEADER", "FormatError"]
