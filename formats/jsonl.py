"""JSON lines: one JSON object a line.

**Reading** (:func:`read_jsonl`) takes objects ``{"type", "value", "labels"?}``: ``type`` in
any case, ``value`` normalised, ``labels`` an array of labels (checked, sorted, deduplicated).
It also takes the objects :func:`write_jsonl` writes, so an export reads back: their
``active``, ``contributors`` and ``opinions`` keys are allowed, and a record with
``"active": false`` is skipped, or read as a ``remove`` with ``inactive="remove"``. Any
other key is an error (a misspelt ``"lables"`` must not drop labels silently). Blank lines
are skipped; JSON has no comments.

**Writing** (:func:`write_jsonl`) streams each record as ``Record.to_json_obj()`` on its own
line, keys sorted, no spaces: the lookup API's record, one a line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Final

from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry, normalise_labels
from hashfed.protocol.hashtypes import normalise, parse_hash_type
from hashfed.keys.names import keys_difference, show
from hashfed.protocol.records import Record

from ._common import (
    MAX_LINE_CHARS,
    Errors,
    Inactive,
    Text,
    bounded_lines,
    check_inactive,
    entry_for,
    line_error,
    report,
)

REQUIRED: Final = frozenset({"type", "value"})
ALLOWED: Final = frozenset({"type", "value", "labels", "active", "contributors", "opinions"})


def _refuse_constant(name: str) -> object:
    raise ProtocolError(f"{name} is not JSON")


def _entry(obj: object, inactive: Inactive) -> Entry | None:
    if type(obj) is not dict:
        raise ProtocolError(f"expected an object, got {show(obj)}")
    keys = obj.keys()
    if not REQUIRED <= keys or not keys <= ALLOWED:
        # missing counted against the required keys, unknown against the allowed ones
        raise ProtocolError(f"wrong keys: {keys_difference(keys & REQUIRED | (keys - ALLOWED), REQUIRED)}")
    hash_type = parse_hash_type(obj["type"])
    value = normalise(hash_type, obj["value"])
    labels = obj.get("labels", [])
    if type(labels) is not list:
        raise ProtocolError(f"labels must be an array, not {show(labels)}")
    active = obj.get("active", True)
    if type(active) is not bool:
        raise ProtocolError(f"active must be true or false, not {show(active)}")
    return entry_for(hash_type, value, normalise_labels(labels), retracted=not active, inactive=inactive)


def read_jsonl(
    text: Text,
    *,
    source: str = "<jsonl>",
    inactive: Inactive = "skip",
    errors: Errors = None,
    max_line_chars: int = MAX_LINE_CHARS,
) -> Iterator[Entry]:
    """Read JSON lines as entries (see the module docstring).

    A bad line raises :class:`FormatError` ``<source>:<line>: <reason>``, or with ``errors``
    a list, is collected there and skipped.
    """
    check_inactive(inactive)
    for number, line in enumerate(bounded_lines(text, source, max_line_chars), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_refuse_constant)
            entry = _entry(obj, inactive)
        except json.JSONDecodeError as exc:
            report(errors, line_error(source, number, f"not JSON: {exc.msg} (column {exc.colno})"))
            continue
        except ProtocolError as exc:
            report(errors, line_error(source, number, str(exc)))
            continue
        except ValueError as exc:  # an integer past Python's digit limit
            report(errors, line_error(source, number, f"not JSON: {exc}"))
            continue
        if entry is not None:
            yield entry


def write_jsonl(records: Iterable[Record]) -> Iterator[str]:
    """Stream records as JSON lines: ``Record.to_json_obj()``, keys sorted, one a line."""
    for record in records:
        yield json.dumps(record.to_json_obj(), sort_keys=True, separators=(",", ":")) + "\n"


__all__ = ["read_jsonl", "write_jsonl"]
