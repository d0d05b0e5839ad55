"""formats.misp: hash attributes of MISP events in, MISP feed folders out (checked with PyMISP)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pymisp
import pytest
from hypothesis import given, settings

from hashfed.formats._common import FormatError
from hashfed.formats.misp import PDQ_COMMENT, event_uuid, read_misp_event, write_feed
from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry
from hashfed.protocol.records import Contributor, Record
from tests.unit.formats_strategies import unique_records

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PDQ = "f" * 64
NAMESPACE = uuid.UUID("7a0c9a8e-2b61-4f0e-8f3e-6c1d2b3a4f50")
WHEN = datetime(2026, 11, 26, 2, 19, 41, tzinfo=UTC)


def event(*attributes: dict, objects: list[dict] = (), tags: list[str] = ()) -> str:  # type: ignore[assignment]
    return json.dumps(
        {
            "Event": {
                "info": "test",
                "uuid": str(NAMESPACE),
                "Tag": [{"name": t} for t in tags],
                "Attribute": list(attributes),
                "Object": list(objects),
            }
        }
    )


def attr(type_: str, value: str, n: int = 0, **extra: object) -> dict:
    return {"type": type_, "value": value, "category": "Payload delivery", "uuid": str(uuid.UUID(int=n, version=4)), **extra}


# -- reading --------------------------------------------------------------------------------


def test_reads_hash_attributes_composites_objects_and_tags() -> None:
    text = event(
        attr("md5", MD5.upper(), Tag=[{"name": "csam"}, {"name": "misp-galaxy:x=\"y\""}]),
        attr("filename|sha1", f"photo.jpg|{SHA1}"),
        attr("ip-dst", "198.51.100.7"),
        attr("sha512", "ab" * 64),
        attr("text", "just a note"),
        attr("text", PDQ, comment=PDQ_COMMENT),
        attr("malware-sample", f"x.exe|{MD5}"),
        objects=[
            {
                "name": "file",
                "Tag": [{"name": "obj:1"}],
                "Attribute": [attr("filename", "a.jpg"), attr("sha256", SHA256), attr("ssdeep", "3:a:b")],
            }
        ],
        tags=["tlp:white"],
    )
    drop_galaxies = lambda tag: None if tag.startswith("misp-galaxy:") else tag  # noqa: E731
    assert list(read_misp_event(text, label_map=drop_galaxies)) == [
        Entry.add("md5", MD5, ["csam", "tlp:white"]),
        Entry.add("sha1", SHA1, ["tlp:white"]),
        Entry.add("pdq", PDQ, ["tlp:white"]),
        Entry.add("md5", MD5, ["tlp:white"]),
        Entry.add("sha256", SHA256, ["obj:1", "tlp:white"]),
    ]


def test_deleted_skipped_or_removed() -> None:
    text = event(attr("md5", MD5, deleted=True), attr("sha1", SHA1, 1, deleted=False))
    assert list(read_misp_event(text)) == [Entry.add("sha1", SHA1)]
    assert list(read_misp_event(text, inactive="remove")) == [Entry.remove("md5", MD5), Entry.add("sha1", SHA1)]


BAD_ATTRIBUTES = [
    ("bad-value", attr("md5", "abc", 9), "bad md5 value 'abc': need 32 hex digits"),
    ("composite-without-bar", attr("filename|md5", MD5, 9), f"a filename|md5 value must be filename|hash, not '{MD5}'"),
    ("composite-two-bars", attr("filename|md5", f"a|b|{MD5}", 9), "a filename|md5 value must be filename|hash"),
    ("value-number", attr("sha1", 5, 9), "value must be a string, not 5"),  # type: ignore[arg-type]
    ("type-missing", {"value": MD5, "uuid": str(uuid.UUID(int=9, version=4))}, "type must be a string, not None"),
    ("deleted-string", attr("md5", MD5, 9, deleted="no"), "deleted must be true or false, not 'no'"),
    ("galaxy-tag", attr("md5", MD5, 9, Tag=[{"name": 'misp-galaxy:x="y"'}]), "bad label 'misp-galaxy:x=\"y\"'"),
    ("tags-not-list", attr("md5", MD5, 9, Tag={"name": "x"}), "Tag must be an array, not {'name': 'x'}"),
    ("not-an-object", "md5", "expected an object, got 'md5'"),
]


@pytest.mark.parametrize(("attribute", "message"), [c[1:] for c in BAD_ATTRIBUTES], ids=[c[0] for c in BAD_ATTRIBUTES])
def test_bad_attributes(attribute: object, message: str) -> None:
    good = attr("sha1", SHA1, 1)
    text = event(good, attribute, objects=[{"Attribute": [good, attribute]}])  # type: ignore[arg-type]
    suffix = f" ({attribute['uuid']})" if isinstance(attribute, dict) and "uuid" in attribute else ""
    with pytest.raises(FormatError) as info:
        list(read_misp_event(text, source="ev.json"))
    assert str(info.value).startswith(f"ev.json: Attribute 1{suffix}: {message}")
    errors: list[ProtocolError] = []
    assert list(read_misp_event(text, errors=errors)) == [Entry.add("sha1", SHA1)] * 2
    assert [e.where for e in errors] == [f"Attribute 1{suffix}", f"Object 0 Attribute 1{suffix}"]


BAD_EVENTS = [
    ("not-json", "{,", {}, "ev.json:1: not JSON: Expecting property name enclosed in double quotes (column 2)"),
    ("no-event", '{"response": []}', {}, 'ev.json: document: expected {"Event": {...}}, got {\'response\': []}'),
    ("event-list", '{"Event": []}', {}, 'ev.json: document: expected {"Event": {...}}, got {\'Event\': []}'),
    ("attributes-object", '{"Event": {"Attribute": {}}}', {}, "ev.json: Event: Attribute must be an array, not {}"),
    ("event-tags-object", '{"Event": {"Tag": 1}}', {}, "ev.json: Event: Tag must be an array, not 1"),
    ("object-not-object", '{"Event": {"Object": [1]}}', {}, "ev.json: Object 0: expected an object, got 1"),
    ("object-attributes", '{"Event": {"Object": [{"Attribute": 1}]}}', {}, "ev.json: Object 0: Attribute must be an array, not 1"),
    ("too-many", event(*[attr("md5", MD5)] * 3), {"max_attributes": 2}, "ev.json: Event: 3 attributes: at most 2"),
    ("too-long", event(), {"max_chars": 20}, "ev.json: document: 117 characters: at most 20"),
]


@pytest.mark.parametrize(("text", "kwargs", "message"), [c[1:] for c in BAD_EVENTS], ids=[c[0] for c in BAD_EVENTS])
def test_bad_events(text: str, kwargs: dict, message: str) -> None:
    """What spoils the event raises even in skip-bad mode."""
    with pytest.raises(FormatError) as info:
        list(read_misp_event(text, source="ev.json", errors=[], **kwargs))
    assert str(info.value) == message


# -- writing --------------------------------------------------------------------------------

LOG = "a.example/csam"
RECORDS = [
    Record("md5", MD5, True, ("csam", "x:1"), (Contributor("a.example", "csam", ("csam",)), Contributor("b.example", "d", ("x:1",))), ()),
    Record("sha256", SHA256, False, (), (), ()),
    Record("pdq", PDQ, True, ("x:1",), (Contributor("b.example", "d", ("x:1",)),), ()),
]


def load(files: dict[str, bytes], name: str) -> pymisp.MISPEvent:
    loaded = pymisp.MISPEvent()
    loaded.load(files[name].decode())
    return loaded


def test_feed_files_as_pymisp_sees_them() -> None:
    files = write_feed({LOG: RECORDS, "b.example/d": RECORDS[:1]}, timestamp=WHEN, namespace=NAMESPACE)
    first, second = event_uuid(NAMESPACE, LOG), event_uuid(NAMESPACE, "b.example/d")
    assert sorted(files) == sorted([f"{first}.json", f"{second}.json", "manifest.json", "hashes.csv"])

    loaded = load(files, f"{first}.json")
    assert (loaded.uuid, loaded.info, loaded.Orgc.name, loaded.date.isoformat()) == (first, "hashfed a.example/csam", "a.example", "2026-11-26")
    assert loaded.timestamp == WHEN and loaded.published is True
    seen = [(a.type, a.value, a.category, a.to_ids, a.deleted, a.comment, [t.name for t in a.tags]) for a in loaded.attributes]
    assert seen == [
        ("md5", MD5, "Payload delivery", True, False, "", ["csam"]),  # the log's own labels
        ("sha256", SHA256, "Payload delivery", False, True, "", []),
        ("text", PDQ, "Payload delivery", False, False, PDQ_COMMENT, ["x:1"]),  # not its log: the record's labels
    ]
    assert [a.uuid for a in loaded.attributes] == [
        str(uuid.uuid5(NAMESPACE, f"attribute:{LOG}:{r.type}:{r.value}")) for r in RECORDS
    ]

    # manifest.json is what PyMISP's own feed generator writes for these events
    manifest = json.loads(files["manifest.json"])
    assert manifest == {**load(files, f"{first}.json").manifest, **load(files, f"{second}.json").manifest}
    # hashes.csv: md5 of each live attribute's value, with its event's uuid
    assert files["hashes.csv"].decode().splitlines() == [
        f"{hashlib.md5(MD5.encode()).hexdigest()},{first}",
        f"{hashlib.md5(PDQ.encode()).hexdigest()},{first}",
        f"{hashlib.md5(MD5.encode()).hexdigest()},{second}",
    ]


def test_feed_is_deterministic_and_reads_back() -> None:
    files = write_feed({LOG: RECORDS}, timestamp=WHEN, namespace=NAMESPACE)
    assert files == write_feed({LOG: RECORDS}, timestamp=WHEN, namespace=NAMESPACE)
    text = files[f"{event_uuid(NAMESPACE, LOG)}.json"].decode()
    assert list(read_misp_event(text, inactive="remove")) == [
        Entry.add("md5", MD5, ["csam"]),
        Entry.remove("sha256", SHA256),
        Entry.add("pdq", PDQ, ["x:1"]),
    ]


@settings(max_examples=40, deadline=None)
@given(unique_records())
def test_round_trip_through_pymisp(records: list[Record]) -> None:
    """Write a feed, load each event with PyMISP, write it back with PyMISP's feed
    writer, read that: every record comes back (the log's own labels, deleted as removes)."""
    files = write_feed({"org-3/ncii_1": records}, timestamp=WHEN, namespace=NAMESPACE)
    loaded = load(files, f"{event_uuid(NAMESPACE, 'org-3/ncii_1')}.json")
    assert len(loaded.attributes) == len(records)
    again = json.dumps(loaded.to_feed())
    own = {(r.type, r.value): next((c.labels for c in r.contributors if (c.org, c.collection) == ("org-3", "ncii_1")), r.labels) for r in records}
    assert list(read_misp_event(again, inactive="remove")) == [
        Entry.add(r.type, r.value, own[r.type, r.value]) if r.active else Entry.remove(r.type, r.value) for r in records
    ]


def test_feed_needs_an_aware_time_and_log_ids() -> None:
    with pytest.raises(ValueError):
        write_feed({LOG: []}, timestamp=datetime(2026, 1, 1), namespace=NAMESPACE)
    with pytest.raises(ProtocolError, match="bad log id 'csam'"):
        write_feed({"csam": []}, timestamp=WHEN, namespace=NAMESPACE)
