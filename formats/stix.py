"""STIX 2.1: file-hash Indicators in and out, what TAXII servers, MISP and OpenCTI exchange.

**Reading** (:func:`read_stix`) takes one JSON document: a bundle
(``{"type": "bundle", "objects": [...]}``) or a TAXII 2.1 envelope (``{"objects": [...]}``).

- An ``indicator`` whose ``pattern`` mentions ``file:hashes`` is parsed by our own strict
  parser (:mod:`._stix_pattern`: the exact subset it reads and refuses is written there)
  and gives one entry per hash comparison, OR'ed or not; its ``labels`` are the entries'
  labels. ``pattern_type`` must be ``stix``.
- A ``file`` SCO gives one entry per hash in its ``hashes`` (SCOs have no labels).
- Hash algorithms hashfed does not hold (``SHA-512``, ``SSDEEP``, ``TLSH``) are passed
  over; an indicator or file with none that hashfed holds gives nothing.
- Everything else (identities, reports, relationships, indicators about addresses or
  domains: their pattern does not mention ``file:hashes``) is not a hash list and is
  passed over without a word.
- **Revoked indicators** are skipped by default: a revocation says the producer no longer
  stands behind it, which for an importer means "do not add". With ``inactive="remove"``
  they are read as ``remove`` entries, so a node that mirrors a feed into its own log
  retracts what the feed revoked. ``valid_until`` is not read: a reader has no clock, and
  a hash does not expire the way an address does.
- ``label_map`` maps each foreign label to a hashfed label or drops it (``None``); without
  it, labels must already be hashfed labels (``misp:type="md5"`` is not), or the object
  is bad.

An error names the object by index and id: ``<source>: object 3 (indicator--…): <reason>``.

**Writing** (:func:`indicator` for one object, :func:`write_bundle` streaming a bundle)
makes one Indicator per record:

- ``id``: ``indicator--`` + UUIDv5 of :data:`INDICATOR_NAMESPACE` and ``type:value``, so a
  record keeps its id across exports and a TAXII client sees versions of one object (STIX
  says SDO ids SHOULD be v4; the stable id is worth the SHOULD);
- ``created`` and ``valid_from`` from the ``created`` argument, ``modified`` from
  ``modified`` (default: ``created``), at millisecond precision;
- ``pattern`` ``[file:hashes.<name> = '<value>']`` (names as :mod:`._stix_pattern` says:
  ``MD5``, ``'SHA-1'``, ``'SHA-256'``, ``PDQ``, ``PhotoDNA``), ``pattern_type: stix``,
  ``pattern_version: 2.1``, ``spec_version: 2.1``;
- ``labels``: the record's labels (omitted when there are none: STIX forbids an empty list);
- ``revoked: true`` for an inactive record;
- **contributors as external references**: one ``{"source_name": "hashfed",
  "external_id": "<org>/<collection>"}`` per contributing log, a strictly valid STIX form
  (a custom property would need every consumer to allow custom content). Per-log labels
  and opinions are not written: the labels' union is the indicator's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Final

from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry
from hashfed.protocol.hashtypes import normalise
from hashfed.keys.names import make_log_id, show
from hashfed.protocol.records import Record

from ._common import (
    MAX_DOCUMENT_CHARS,
    Errors,
    FormatError,
    Inactive,
    LabelMap,
    Text,
    check_inactive,
    entry_for,
    foreign_labels,
    load_json_document,
    report,
)
from ._stix_pattern import ALGORITHMS, hash_pattern, parse_hash_pattern

MAX_OBJECTS: Final = 1_000_000
"""Most objects a bundle may hold by default."""

INDICATOR_NAMESPACE: Final = uuid.UUID("5d3b7e1c-8f0a-5b4e-9c61-2a7d4e9f0b13")
"""The UUIDv5 namespace of the ids of the indicators hashfed writes (fixed forever)."""

EXTERNAL_SOURCE: Final = "hashfed"


def read_stix(
    text: Text,
    *,
    source: str = "<stix>",
    inactive: Inactive = "skip",
    label_map: LabelMap | None = None,
    errors: Errors = None,
    max_chars: int = MAX_DOCUMENT_CHARS,
    max_objects: int = MAX_OBJECTS,
) -> Iterator[Entry]:
    """Read the file-hash entries of a STIX 2.1 bundle (see the module docstring)."""
    check_inactive(inactive)
    document = load_json_document(text, source, max_chars)
    objects = _objects(document, source, max_objects)
    for index, obj in enumerate(objects):
        where = f"object {index}" + (f" ({obj['id']})" if type(obj) is dict and type(obj.get("id")) is str else "")
        try:
            entries = _entries(obj, inactive, label_map)
        except ProtocolError as exc:
            report(errors, FormatError(source, where, str(exc)))
            continue
        yield from entries


def _objects(document: object, source: str, max_objects: int) -> list[object]:
    if type(document) is not dict:
        raise FormatError(source, "document", f"expected a STIX bundle (a JSON object), got {show(document)}")
    kind = document.get("type")
    if kind is not None and kind != "bundle":
        raise FormatError(source, "document", f"expected a bundle, got an object of type {show(kind)}")
    objects = document.get("objects", [])
    if type(objects) is not list:
        raise FormatError(source, "document", f"objects must be an array, not {show(objects)}")
    if len(objects) > max_objects:
        raise FormatError(source, "document", f"{len(objects)} objects: at most {max_objects}")
    return objects


def _entries(obj: object, inactive: Inactive, label_map: LabelMap | None) -> list[Entry]:
    if type(obj) is not dict:
        raise ProtocolError(f"expected an object, got {show(obj)}")
    kind = obj.get("type")
    if kind == "indicator":
        return _indicator_entries(obj, inactive, label_map)
    if kind == "file":
        hashes = obj.get("hashes", {})
        if type(hashes) is not dict:
            raise ProtocolError(f"hashes must be an object, not {show(hashes)}")
        found = [(ALGORITHMS.get(name.lower()), value) for name, value in hashes.items()]
        return [Entry.add(t, _value(t, v), ()) for t, v in found if t is not None]
    return []


def _indicator_entries(obj: dict, inactive: Inactive, label_map: LabelMap | None) -> list[Entry]:
    pattern = obj.get("pattern")
    if type(pattern) is not str:
        raise ProtocolError(f"pattern must be a string, not {show(pattern)}")
    if "file:hashes" not in pattern:
        return []  # an indicator of something else: an address, a domain, a name
    if obj.get("pattern_type", "stix") != "stix":
        raise ProtocolError(f"pattern_type {show(obj.get('pattern_type'))}: only stix patterns are read")
    revoked = obj.get("revoked", False)
    if type(revoked) is not bool:
        raise ProtocolError(f"revoked must be true or false, not {show(revoked)}")
    labels_in = obj.get("labels", [])
    if type(labels_in) is not list:
        raise ProtocolError(f"labels must be an array, not {show(labels_in)}")
    labels = foreign_labels(labels_in, label_map)
    entries = []
    for comparison in parse_hash_pattern(pattern):
        if comparison.type is None:
            continue
        entry = entry_for(
            comparison.type, _value(comparison.type, comparison.value), labels, retracted=revoked, inactive=inactive
        )
        if entry is not None:
            entries.append(entry)
    return entries


def _value(hash_type: str, value: object) -> str:
    if type(value) is not str:
        raise ProtocolError(f"a {hash_type} value must be a string, not {show(value)}")
    return normalise(hash_type, value)


# -- writing ------------------------------------------------------------------------------


def stix_time(moment: datetime) -> str:
    """A STIX timestamp at millisecond precision: ``2026-11-26T02:19:41.000Z``."""
    if moment.tzinfo is None:
        raise ValueError("a STIX time needs a timezone-aware datetime")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def indicator_id(hash_type: str, value: str) -> str:
    """The stable id of the indicator of one hash."""
    return f"indicator--{uuid.uuid5(INDICATOR_NAMESPACE, f'{hash_type}:{value}')}"


def indicator(record: Record, *, created: datetime, modified: datetime | None = None) -> dict[str, object]:
    """The STIX 2.1 Indicator of one record, as a JSON object."""
    created_text = stix_time(created)
    obj: dict[str, object] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": indicator_id(record.type, record.value),
        "created": created_text,
        "modified": stix_time(modified) if modified is not None else created_text,
        "name": f"{record.type} {record.value}",
        "pattern": hash_pattern(record.type, record.value),
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": created_text,
    }
    if record.labels:
        obj["labels"] = list(record.labels)
    if not record.active:
        obj["revoked"] = True
    if record.contributors:
        obj["external_references"] = [
            {"source_name": EXTERNAL_SOURCE, "external_id": make_log_id(c.org, c.collection)}
            for c in record.contributors
        ]
    return obj


def write_bundle(
    records: Iterable[Record], *, bundle_id: uuid.UUID, created: datetime, modified: datetime | None = None
) -> Iterator[str]:
    """Stream a STIX 2.1 bundle of one Indicator per record, as JSON text.

    ``bundle_id`` is the caller's (a bundle is one delivery, so a fresh UUIDv4 each time:
    randomness, like time, is passed in).
    """
    if bundle_id.variant != uuid.RFC_4122:
        raise ValueError(f"bundle_id {bundle_id} is not an RFC 4122 UUID")
    head = f'{{"type":"bundle","id":"bundle--{bundle_id}"'
    written = 0
    for record in records:
        text = json.dumps(indicator(record, created=created, modified=modified), separators=(",", ":"))
        yield (",\n" if written else head + ',"objects":[\n') + text
        written += 1
    # STIX: a bundle's objects, when present, are "one or more"; an empty bundle has none
    yield "\n]}\n" if written else head + "}\n"


__all__ = [
    "read_stix",
    "write_bundle",
    "indicator",
    "indicator_id",
    "stix_time",
    "INDICATOR_NAMESPACE",
    "MAX_OBJECTS",
]
