"""Batches, the leaves of a log (PROTOCOL §4): canonical encoding and verifying decoding.

A batch is one JSON object serialised per RFC 8785::

    {"collection":"csam","created":"2026-11-26T02:19:41Z","entries":[...],"index":0,"org":"acme.example","v":1}

:func:`decode_batch` is the verifier, and the hot path of a sync (100 batches of 10,000
entries for a million hashes), so it checks with precompiled patterns over plain tuples.
It proves canonical form by writing what it parsed back out in canonical form (the same
code :func:`encode_batch` uses) and comparing that with the text received. Equality
proves the bytes are the one canonical serialisation of the batch, because of what is
checked around it:

- the bytes are ASCII and hold no backslash, so no string holds an escape, a quote or a
  control character (JSON forbids those raw), and RFC 8785 writes each string verbatim
  between quotes, as the writer does;
- every key is known, and every value has a checked type and shape; the parser refuses
  ``NaN``, ``Infinity`` and numbers with a fraction or exponent, so ``1.0`` cannot pass
  for ``1``, and ``true`` cannot either (``bool`` is not ``int`` here); ``-0`` parses to
  ``0``, which is written back as ``0`` and so differs;
- integers are below 2**53, which RFC 8785 (ECMAScript numbers) writes as plain digits;
- the writer puts keys in sorted order, once each, without white space; bytes with
  duplicate keys (the parser keeps the last), other key order or white space differ.

Errors: :class:`ProtocolError` for malformed bytes, all of which are found before any
:class:`VerificationError`: a batch for another log or index (mix-and-match), then an
entry of a hash type this node does not know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, NoReturn

from hashfed.keys.errors import ProtocolError, VerificationError
from hashfed.keys.names import check_collection, check_org, keys_difference, show
from hashfed.protocol.entries import (
    Entry,
    check_entries,
    check_known_types,
    decode_entries,
    entries_json,
)

MAX_BATCH_ENTRIES: Final = 10_000
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
MAX_INDEX: Final = 2**53 - 1
"""The largest index RFC 8785 writes as plain digits (ECMAScript's largest safe integer)."""

BATCH_VERSION: Final = 1

_KEYS: Final = frozenset({"collection", "created", "entries", "index", "org", "v"})
_NON_ASCII_RE: Final = re.compile(rb"[\x80-\xff]")
_CREATED_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


@dataclass(frozen=True, slots=True)
class Batch:
    """A verified batch: what it says, and the exact bytes it was read from."""

    org: str
    collection: str
    index: int
    created: str
    entries: tuple[Entry, ...] = field(repr=False)
    data: bytes = field(repr=False)
    """The bytes as received; hash and store these, never a re-encoding."""

    @property
    def log_id(self) -> str:
        """``<org>/<collection>``, the log this batch belongs to."""
        return f"{self.org}/{self.collection}"


def format_created(dt: datetime) -> str:
    """``dt`` as a batch's ``created``: UTC, RFC 3339, whole seconds, ``Z``.

    Fractions of a second are dropped. A naive datetime is refused, as its zone is a guess.
    """
    if not isinstance(dt, datetime) or dt.utcoffset() is None:
        raise ProtocolError(f"created must be a timezone-aware datetime, not {show(dt)}")
    try:
        utc = dt.astimezone(UTC)
    except OverflowError as exc:
        raise ProtocolError(f"created {show(dt)} is out of range in UTC") from exc
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )


def parse_created(s: str) -> datetime:
    """Parse a batch's ``created`` into an aware UTC datetime; ProtocolError if malformed."""
    match = _CREATED_RE.fullmatch(s) if type(s) is str else None
    if match is None:
        raise ProtocolError(f"bad created {show(s)}: must be UTC like 2026-11-26T02:19:41Z")
    try:
        return datetime(*map(int, match.groups()), tzinfo=UTC)
    except ValueError as exc:
        raise ProtocolError(f"bad created {show(s)}: {exc}") from exc


def _check_index(index: object) -> int:
    if type(index) is not int or not 0 <= index <= MAX_INDEX:
        raise ProtocolError(f"bad index {show(index)}: must be an integer from 0 to {MAX_INDEX}")
    return index


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_BATCH_ENTRIES:
        raise ProtocolError(f"a batch has 1 to {MAX_BATCH_ENTRIES} entries, not {count}")


def _check_size(size: int) -> None:
    if size > MAX_BATCH_BYTES:
        raise ProtocolError(f"batch is {size} bytes: at most {MAX_BATCH_BYTES} allowed")


def _refuse_number(text: str) -> NoReturn:
    raise ProtocolError(f"number {show(text)}: only integers occur in a batch")


_BATCH_JSON: Final = '{"collection":"%s","created":"%s","entries":%s,"index":%d,"org":"%s","v":%d}'


def _canonical(org: str, collection: str, index: int, created: str, entries: Sequence[Entry]) -> str:
    """The RFC 8785 text of a batch whose parts have all been checked."""
    return _BATCH_JSON % (collection, created, entries_json(entries), index, org, BATCH_VERSION)


_DECODER: Final = json.JSONDecoder(parse_float=_refuse_number, parse_constant=_refuse_number)


def _parse_json(text: str) -> object:
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"batch is not JSON: {exc}") from exc


def encode_batch(
    *,
    org: str,
    collection: str,
    index: int,
    created: str | datetime,
    entries: Sequence[Entry],
) -> bytes:
    """The canonical (RFC 8785) bytes of a batch; ProtocolError if any part is invalid.

    ``created`` is a datetime (formatted by :func:`format_created`) or its text form.
    Entries are written as they are: build them with :meth:`Entry.add` and friends,
    which normalise.
    """
    check_org(org)
    check_collection(collection)
    _check_index(index)
    if isinstance(created, datetime):
        created = format_created(created)
    else:
        parse_created(created)
    _check_count(len(entries))
    data = _canonical(org, collection, index, created, check_entries(entries)).encode("ascii")
    _check_size(len(data))
    return data


def _first_difference(a: str, b: str) -> int:
    """Offset of the first character where ``a`` and ``b`` differ (they do differ)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _check_header(obj: object) -> dict[str, object]:
    if type(obj) is not dict:
        raise ProtocolError(f"batch must be a JSON object, not {show(obj)}")
    if obj.keys() != _KEYS:
        raise ProtocolError(f"batch has wrong keys: {keys_difference(obj.keys(), _KEYS)}")
    if type(obj["v"]) is not int or obj["v"] != BATCH_VERSION:
        raise ProtocolError(f"unsupported batch version {show(obj['v'])}: expected {BATCH_VERSION}")
    check_org(obj["org"])
    check_collection(obj["collection"])
    _check_index(obj["index"])
    parse_created(obj["created"])
    if type(obj["entries"]) is not list:
        raise ProtocolError(f"entries must be an array, not {show(obj['entries'])}")
    _check_count(len(obj["entries"]))
    return obj


def decode_batch(data: bytes, *, org: str, collection: str, index: int) -> Batch:
    """Verify batch bytes served as leaf ``index`` of log ``org/collection``.

    Returns the :class:`Batch` (keeping ``data`` verbatim) or raises: ProtocolError for
    malformed or non-canonical bytes, naming what and where (``"entry 17: ..."``);
    VerificationError for a batch of another log or index, or an unknown hash type.
    """
    if type(data) is not bytes:
        raise ProtocolError(f"batch data must be bytes, not {type(data).__name__}")
    _check_size(len(data))
    if not data.isascii():
        first = _NON_ASCII_RE.search(data)
        raise ProtocolError(f"non-ASCII byte at offset {first.start() if first else '?'}: a batch is ASCII")
    text = data.decode("ascii")
    backslash = text.find("\\")
    if backslash >= 0:
        raise ProtocolError(f"backslash at offset {backslash}: no escape occurs in a batch")
    obj = _check_header(_parse_json(text))
    entries = decode_entries(obj["entries"])
    got_org, got_collection, got_index, created = obj["org"], obj["collection"], obj["index"], obj["created"]
    canonical = _canonical(got_org, got_collection, got_index, created, entries)
    if canonical != text:
        raise ProtocolError(
            "batch is not in canonical form (RFC 8785: sorted unique keys, no white space, "
            f"plain integers): first difference at offset {_first_difference(text, canonical)}"
        )
    if (got_org, got_collection, got_index) != (org, collection, index):
        raise VerificationError(
            f"batch is leaf {got_index} of {got_org}/{got_collection}, "
            f"expected leaf {index} of {org}/{collection}"
        )
    check_known_types(entries)
    return Batch(got_org, got_collection, got_index, created, entries, data)


def peek_index(line: bytes) -> int:
    """The integer ``index`` of a batch line, read without verifying the batch.

    For a push handler, to learn the start index before anything else; the batch is
    verified later by :func:`decode_batch`. A trailing newline is allowed. Raises
    ProtocolError for a line over the size cap, not a JSON object, or without an
    ``index`` that is an integer from 0 to :data:`MAX_INDEX`.
    """
    if type(line) is not bytes:
        raise ProtocolError(f"batch line must be bytes, not {type(line).__name__}")
    _check_size(len(line) - line.endswith(b"\n"))
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"batch line is not UTF-8: {exc}") from exc
    obj = _parse_json(text)
    if type(obj) is not dict or "index" not in obj:
        raise ProtocolError("batch line is not a JSON object with an index")
    return _check_index(obj["index"])


__all__ = [
    "Batch",
    "MAX_BATCH_ENTRIES",
    "MAX_BATCH_BYTES",
    "MAX_INDEX",
    "BATCH_VERSION",
    "format_created",
    "parse_created",
    "encode_batch",
    "decode_batch",
    "peek_index",
]
