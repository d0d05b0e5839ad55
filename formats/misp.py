"""MISP: hash attributes of an event in, a MISP feed folder out.

**Reading** (:func:`read_misp_event`) takes one event as MISP exports it
(``{"Event": {..., "Attribute": [...], "Object": [{..., "Attribute": [...]}], "Tag": [...]}}``)
and reads the attributes of the event and of its objects:

- types ``md5``, ``sha1``, ``sha256`` give their value; the composites ``filename|md5``,
  ``filename|sha1``, ``filename|sha256`` and ``malware-sample`` (``filename|md5``) give the
  hash after the ``|`` (the file name is dropped: the hash names the file);
- MISP has no PDQ or PhotoDNA type (PyMISP's ``describeTypes.json`` lists none, nor do its
  object templates). hashfed writes them as ``text`` attributes whose ``comment`` is
  :data:`PDQ_COMMENT` or :data:`PHOTODNA_COMMENT`, and reads those back; a ``pdq`` or
  ``photodna`` type, should MISP add one, is read too. Every other type (addresses,
  domains, ``sha512``, ``ssdeep``, plain ``text``) is not a hash hashfed holds and is passed
  over;
- labels are the names of the event's tags and the attribute's own (an object's
  attributes also get the object's), through ``label_map`` as in :mod:`.stix`: MISP tags
  such as ``tlp:white`` are labels as they stand, ``misp-galaxy:x="y"`` are not;
- a ``deleted`` attribute is skipped, or read as a ``remove`` with ``inactive="remove"``.

An error names the attribute: ``<source>: Attribute 3 (<uuid>): <reason>`` or
``Object 1 Attribute 0 (<uuid>): ...``.

**Writing** (:func:`write_feed`) makes the files of a MISP feed folder, as PyMISP's feed
generator lays it out, from ``{log_id: records}``:

- one event ``<uuid>.json`` per log: ``info`` ``hashfed <org>/<collection>``, ``Orgc`` the
  log's org, ``date``/``timestamp``/``publish_timestamp`` from the ``timestamp`` argument,
  ``published``, ``analysis`` 2 (complete), ``threat_level_id`` 4 (undefined: MISP
  recommends tags for that), and one attribute per record: MISP's own type where one exists
  (``md5``, ``sha1``, ``sha256``, category ``Payload delivery``, ``to_ids`` true), ``text``
  with the comment above for ``pdq`` and ``photodna`` (``to_ids`` false: MISP cannot match
  them), the log's own labels for this record as tags (the record's labels when the log is
  not among its contributors). An inactive record is written ``deleted`` so that a consumer
  that fetched it before drops it;
- ``manifest.json``: ``{event uuid: {Orgc, Tag, info, date, analysis, threat_level_id,
  timestamp}}``;
- ``hashes.csv``: ``<md5 of the attribute value>,<event uuid>`` per live attribute, the
  correlation cache MISP fills from feeds.

Every UUID is a UUIDv5 under the ``namespace`` argument (the event's of the log id, an
attribute's of log id, type and value), so a feed written again updates the same events
and attributes in a consumer. JSON keys are sorted; numbers are strings in events, as
MISP writes them, and integers in the manifest, as PyMISP writes it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Final

from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry
from hashfed.protocol.hashtypes import normalise
from hashfed.keys.names import make_log_id, parse_log_id, show
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

MAX_ATTRIBUTES: Final = 1_000_000
"""Most attributes (the event's and its objects', together) an event may hold by default."""

PDQ_COMMENT: Final = "hashfed:pdq"
PHOTODNA_COMMENT: Final = "hashfed:photodna"

SIMPLE_TYPES: Final = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "pdq": "pdq", "photodna": "photodna"}
"""MISP attribute types whose value is one hash, to hashfed types."""

COMPOSITE_TYPES: Final = {
    "filename|md5": "md5",
    "filename|sha1": "sha1",
    "filename|sha256": "sha256",
    "malware-sample": "md5",
}
"""MISP ``filename|hash`` types, to the hashfed type of their second part."""

TEXT_COMMENTS: Final = {PDQ_COMMENT: "pdq", PHOTODNA_COMMENT: "photodna"}

WRITTEN_TYPES: Final = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "pdq": "text", "photodna": "text"}
"""The MISP type each hashfed type is written as."""

CATEGORY: Final = "Payload delivery"


# -- reading ------------------------------------------------------------------------------


def read_misp_event(
    text: Text,
    *,
    source: str = "<misp>",
    inactive: Inactive = "skip",
    label_map: LabelMap | None = None,
    errors: Errors = None,
    max_chars: int = MAX_DOCUMENT_CHARS,
    max_attributes: int = MAX_ATTRIBUTES,
) -> Iterator[Entry]:
    """Read the hash entries of a MISP event (see the module docstring)."""
    check_inactive(inactive)
    document = load_json_document(text, source, max_chars)
    event = document.get("Event") if type(document) is dict else None
    if type(event) is not dict:
        raise FormatError(source, "document", f'expected {{"Event": {{...}}}}, got {show(document)}')
    try:
        event_tags = _tag_names(event)
    except ProtocolError as exc:
        raise FormatError(source, "Event", str(exc)) from None
    try:
        attributes = list(_attributes(event))
    except _BadPart as exc:
        raise FormatError(source, exc.where, exc.reason) from None
    if len(attributes) > max_attributes:
        raise FormatError(source, "Event", f"{len(attributes)} attributes: at most {max_attributes}")
    for where, attribute, tags in attributes:
        if type(attribute) is dict and type(attribute.get("uuid")) is str:
            where += f" ({attribute['uuid']})"
        try:
            entry = _entry(attribute, event_tags + tags, inactive, label_map)
        except ProtocolError as exc:
            report(errors, FormatError(source, where, str(exc)))
            continue
        if entry is not None:
            yield entry


class _BadPart(Exception):
    """A malformed event or object (not an attribute): it spoils the event."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason


def _list(obj: dict, key: str) -> list:
    value = obj.get(key, [])
    if type(value) is not list:
        raise ProtocolError(f"{key} must be an array, not {show(value)}")
    return value


def _tag_names(obj: dict) -> list[object]:
    return [tag.get("name") if type(tag) is dict else tag for tag in _list(obj, "Tag")]


def _attributes(event: dict) -> Iterator[tuple[str, object, list[object]]]:
    try:
        attributes = _list(event, "Attribute")
        objects = _list(event, "Object")
    except ProtocolError as exc:
        raise _BadPart("Event", str(exc)) from None
    for index, attribute in enumerate(attributes):
        yield f"Attribute {index}", attribute, []
    for index, obj in enumerate(objects):
        where = f"Object {index}"
        if type(obj) is not dict:
            raise _BadPart(where, f"expected an object, got {show(obj)}")
        try:
            object_tags = _tag_names(obj)
            object_attributes = _list(obj, "Attribute")
        except ProtocolError as exc:
            raise _BadPart(where, str(exc)) from None
        for position, attribute in enumerate(object_attributes):
            yield f"{where} Attribute {position}", attribute, object_tags


def _entry(attribute: object, tags: list[object], inactive: Inactive, label_map: LabelMap | None) -> Entry | None:
    if type(attribute) is not dict:
        raise ProtocolError(f"expected an object, got {show(attribute)}")
    kind = attribute.get("type")
    value = attribute.get("value")
    if type(kind) is not str:
        raise ProtocolError(f"type must be a string, not {show(kind)}")
    if kind in SIMPLE_TYPES:
        hash_type = SIMPLE_TYPES[kind]
    elif kind in COMPOSITE_TYPES:
        hash_type = COMPOSITE_TYPES[kind]
        if type(value) is not str or value.count("|") != 1:
            raise ProtocolError(f"a {kind} value must be filename|hash, not {show(value)}")
        value = value.partition("|")[2]
    elif kind == "text" and attribute.get("comment") in TEXT_COMMENTS:
        hash_type = TEXT_COMMENTS[attribute["comment"]]
    else:
        return None  # not a hash hashfed holds
    if type(value) is not str:
        raise ProtocolError(f"value must be a string, not {show(value)}")
    deleted = attribute.get("deleted", False)
    if deleted not in (True, False):  # MISP writes booleans; some exports say 0 / 1
        raise ProtocolError(f"deleted must be true or false, not {show(deleted)}")
    labels = foreign_labels(tags + _tag_names(attribute), label_map)
    return entry_for(hash_type, normalise(hash_type, value), labels, retracted=bool(deleted), inactive=inactive)


# -- writing ------------------------------------------------------------------------------


def write_feed(
    logs: Mapping[str, Iterable[Record]], *, timestamp: datetime, namespace: uuid.UUID
) -> dict[str, bytes]:
    """The files of a MISP feed folder, ``{name: bytes}``: one ``<uuid>.json`` event per
    log, ``manifest.json`` and ``hashes.csv`` (see the module docstring)."""
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be a timezone-aware datetime")
    seconds = str(int(timestamp.timestamp()))
    day = timestamp.astimezone(UTC).date().isoformat()
    files: dict[str, bytes] = {}
    manifest: dict[str, object] = {}
    hashes: list[str] = []
    for log_id in sorted(logs):
        event = _event(log_id, logs[log_id], namespace, seconds, day)
        body = event["Event"]
        files[f"{body['uuid']}.json"] = _dump(event)
        manifest[body["uuid"]] = {
            "Orgc": body["Orgc"],
            "Tag": body["Tag"],
            "analysis": int(body["analysis"]),
            "date": day,
            "info": body["info"],
            "threat_level_id": int(body["threat_level_id"]),
            "timestamp": int(seconds),
        }
        hashes.extend(
            f"{hashlib.md5(a['value'].encode()).hexdigest()},{body['uuid']}\n"
            for a in body["Attribute"]
            if not a["deleted"]
        )
    files["manifest.json"] = _dump(manifest)
    files["hashes.csv"] = "".join(hashes).encode()
    return files


def event_uuid(namespace: uuid.UUID, log_id: str) -> str:
    return str(uuid.uuid5(namespace, f"event:{log_id}"))


def _event(log_id: str, records: Iterable[Record], namespace: uuid.UUID, seconds: str, day: str) -> dict:
    org, collection = parse_log_id(log_id)
    attributes = [_attribute(record, log_id, namespace, seconds) for record in records]
    return {
        "Event": {
            "Attribute": attributes,
            "Orgc": {"name": org, "uuid": str(uuid.uuid5(namespace, f"org:{org}"))},
            "Tag": [],
            "analysis": "2",
            "date": day,
            "extends_uuid": "",
            "info": f"hashfed {make_log_id(org, collection)}",
            "protected": False,
            "publish_timestamp": seconds,
            "published": True,
            "threat_level_id": "4",
            "timestamp": seconds,
            "uuid": event_uuid(namespace, log_id),
        }
    }


def _attribute(record: Record, log_id: str, namespace: uuid.UUID, seconds: str) -> dict:
    kind = WRITTEN_TYPES.get(record.type)
    if kind is None:
        raise ProtocolError(f"hash type {show(record.type)} has no MISP form")
    own = [c.labels for c in record.contributors if make_log_id(c.org, c.collection) == log_id]
    labels = own[0] if own else record.labels
    attribute: dict[str, object] = {
        "category": CATEGORY,
        "comment": {"pdq": PDQ_COMMENT, "photodna": PHOTODNA_COMMENT}.get(record.type, ""),
        "deleted": not record.active,
        "disable_correlation": False,
        "timestamp": seconds,
        "to_ids": kind != "text" and record.active,
        "type": kind,
        "uuid": str(uuid.uuid5(namespace, f"attribute:{log_id}:{record.type}:{record.value}")),
        "value": record.value,
    }
    if labels:
        attribute["Tag"] = [{"name": label} for label in labels]
    return attribute


def _dump(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


__all__ = [
    "read_misp_event",
    "write_feed",
    "event_uuid",
    "PDQ_COMMENT",
    "PHOTODNA_COMMENT",
    "MAX_ATTRIBUTES",
]
