"""formats.stix: reading file-hash indicators from STIX 2.1 bundles, writing valid ones."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import stix2
from hypothesis import given, settings

from hashfed.formats._common import FormatError
from hashfed.formats._stix_pattern import HashComparison, parse_hash_pattern
from hashfed.formats.stix import indicator, indicator_id, read_stix, stix_time, write_bundle
from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry
from hashfed.protocol.records import Contributor, Record
from tests.unit.formats_strategies import added, unique_records

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PDQ = "f" * 64
CREATED = datetime(2026, 11, 26, 2, 19, 41, 123456, tzinfo=UTC)
BUNDLE_ID = uuid.UUID("0b7b9a52-4d1e-4c5e-9d2f-4a0f3f0e7c11")


def bundle(*objects: dict) -> str:
    return json.dumps({"type": "bundle", "id": f"bundle--{BUNDLE_ID}", "objects": list(objects)})


def ind(pattern: str, **extra: object) -> dict:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(BUNDLE_ID, pattern)}",
        "created": "2026-11-26T00:00:00.000Z",
        "modified": "2026-11-26T00:00:00.000Z",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2026-11-26T00:00:00Z",
        **extra,
    }


# -- reading --------------------------------------------------------------------------------


def test_reads_what_misp_and_opencti_write() -> None:
    text = bundle(
        {"type": "identity", "spec_version": "2.1", "id": "identity--" + str(BUNDLE_ID), "name": "CIRCL"},
        ind(f"[file:hashes.MD5 = '{MD5.upper()}']", labels=["misp:type=\"md5\"", "tlp:white"]),
        ind(f"[file:hashes.'SHA-256' = '{SHA256}']", labels=["csam"]),
        ind(f"[file:name = 'a.jpg' AND file:hashes.'SHA-1' = '{SHA1}']"),
        ind("[ipv4-addr:value = '198.51.100.7']"),
        ind("[domain-name:value LIKE '%.example']"),
        {"type": "file", "spec_version": "2.1", "id": "file--" + str(BUNDLE_ID), "hashes": {"SHA-512": "ab" * 64, "PDQ": PDQ}},
        {"type": "relationship", "spec_version": "2.1", "id": "relationship--" + str(BUNDLE_ID)},
    )
    drop_misp = lambda label: None if label.startswith("misp:") else label  # noqa: E731
    assert list(read_stix(text, label_map=drop_misp)) == [
        Entry.add("md5", MD5, ["tlp:white"]),
        Entry.add("sha256", SHA256, ["csam"]),
        Entry.add("sha1", SHA1),
        Entry.add("pdq", PDQ),
    ]


def test_ored_comparisons_and_observations() -> None:
    pattern = (
        f"[file:hashes.MD5 = '{MD5}' OR file:hashes.sha256 = '{SHA256}'] "
        f"OR [file:hashes.PDQ = '{PDQ}' OR file:hashes.'SSDEEP' = '3:a:b']"
    )
    assert list(read_stix(bundle(ind(pattern, labels=["x:1"])))) == [
        Entry.add("md5", MD5, ["x:1"]),
        Entry.add("sha256", SHA256, ["x:1"]),
        Entry.add("pdq", PDQ, ["x:1"]),
    ]


def test_revoked_skipped_or_removed() -> None:
    text = bundle(ind(f"[file:hashes.MD5 = '{MD5}']", revoked=True), ind(f"[file:hashes.MD5 = '{MD5[::-1]}']"))
    assert list(read_stix(text)) == [Entry.add("md5", MD5[::-1])]
    assert list(read_stix(text, inactive="remove")) == [Entry.remove("md5", MD5), Entry.add("md5", MD5[::-1])]


def test_taxii_envelope() -> None:
    text = json.dumps({"more": False, "objects": [ind(f"[file:hashes.MD5 = '{MD5}']")]})
    assert list(read_stix(text)) == [Entry.add("md5", MD5)]


PATTERNS = [
    ("md5", f"[file:hashes.MD5 = '{MD5}']", [("MD5", "md5", MD5)]),
    ("quoted-name", f"[file:hashes.'SHA-1' = '{SHA1}']", [("SHA-1", "sha1", SHA1)]),
    ("lower-case-name", f"[file:hashes.sha1 = '{SHA1}']", [("sha1", "sha1", SHA1)]),
    ("photodna", "[file:hashes.PhotoDNA = '" + "a" * 288 + "']", [("PhotoDNA", "photodna", "a" * 288)]),
    ("no-spaces", f"[file:hashes.MD5='{MD5}']", [("MD5", "md5", MD5)]),
    ("escaped-quote", "[file:hashes.MD5 = 'it\\'s']", [("MD5", "md5", "it's")]),
    ("unheld-algorithm", "[file:hashes.'SHA-512' = 'ab']", [("SHA-512", None, "ab")]),
    ("name-dropped", f"[file:name = 'x' AND file:hashes.MD5 = '{MD5}']", [("MD5", "md5", MD5)]),
]


@pytest.mark.parametrize(("pattern", "expected"), [c[1:] for c in PATTERNS], ids=[c[0] for c in PATTERNS])
def test_pattern_parser(pattern: str, expected: list[tuple]) -> None:
    assert parse_hash_pattern(pattern) == [HashComparison(*e) for e in expected]


BAD_PATTERNS = [
    ("not-equals", f"[file:hashes.MD5 != '{MD5}']", "pattern: unexpected \"!= 'd41d8cd98f00b204\" at offset 17"),
    ("like", "[file:hashes.MD5 LIKE 'd4%']", "pattern: expected '=' (the only comparison read), got 'LIKE' at offset 17"),
    ("parentheses", f"([file:hashes.MD5 = '{MD5}'])", "pattern: unexpected '([file:hashes.MD5 = ' at offset 0"),
    ("observation-and", f"[file:hashes.MD5 = '{MD5}'] AND [file:hashes.MD5 = '{MD5}']", "pattern: expected 'OR' or the end after an observation, got 'AND' at offset 55"),
    ("followedby", f"[file:hashes.MD5 = '{MD5}'] FOLLOWEDBY [file:name = 'x']", "pattern: expected 'OR' or the end after an observation, got 'FOLLOWEDBY' at offset 55"),
    ("qualifier", f"[file:hashes.MD5 = '{MD5}'] WITHIN 5 SECONDS", "pattern: expected 'OR' or the end after an observation, got 'WITHIN' at offset 55"),
    ("lower-case-or", f"[file:hashes.MD5 = '{MD5}' or file:name = 'x']", "pattern: expected ']', 'AND' or 'OR', got 'or' at offset 54"),
    ("not", f"[file:hashes.MD5 NOT = '{MD5}']", "pattern: expected '=' (the only comparison read), got 'NOT' at offset 17"),
    ("number", "[file:size = 5 AND file:hashes.MD5 = 'x']", "pattern: unexpected '5 AND file:hashes.MD' at offset 13"),
    ("other-object", f"[file:hashes.MD5 = '{MD5}' OR ipv4-addr:value = '1.2.3.4']", "pattern: 'ipv4-addr:value' at offset 57 is not about a file"),
    ("deep-property", f"[file:hashes.MD5 = '{MD5}' AND file:parent_directory_ref.path = 'x']", "pattern: 'file:parent_directory_ref.path' at offset 58: only file:hashes.<algorithm> and file:<property> are read"),
    ("hashes-without-name", "[file:hashes = 'x']", "pattern: 'file:hashes' at offset 1: expected file:hashes.<algorithm>"),
    ("hash-subkey", "[file:hashes.MD5.x = 'x']", "pattern: 'file:hashes.MD5.x' at offset 1: expected file:hashes.<algorithm>"),
    ("no-hash", "[file:name = 'x.jpg']", "pattern compares no file hash"),
    ("unclosed", f"[file:hashes.MD5 = '{MD5}'", "pattern: expected ']', 'AND' or 'OR', got the end"),
    ("unterminated-string", "[file:hashes.MD5 = 'abc]", "pattern: unexpected \"'abc]\" at offset 19"),
    ("bad-escape", "[file:hashes.MD5 = 'a\\nb']", "pattern: unexpected \"'a\\\\nb']\" at offset 19"),
    ("empty", "", "pattern: expected '[', got the end"),
    ("trailing-or", f"[file:hashes.MD5 = '{MD5}'] OR", "pattern: expected '[', got the end"),
]


@pytest.mark.parametrize(("pattern", "message"), [c[1:] for c in BAD_PATTERNS], ids=[c[0] for c in BAD_PATTERNS])
def test_pattern_parser_refuses(pattern: str, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_hash_pattern(pattern)
    assert str(info.value) == message


def test_pattern_bounds() -> None:
    with pytest.raises(ProtocolError, match="pattern of 65537 characters: at most 65536"):
        parse_hash_pattern("[" + " " * 65535 + "]")
    many = "[" + " OR ".join(f"file:hashes.MD5 = '{MD5}'" for _ in range(1025)) + "]"
    with pytest.raises(ProtocolError, match="pattern has more than 1024 comparisons"):
        parse_hash_pattern(many)


OBJ = "indicator--3f6b5e0a-8d3c-5a51-9f6e-1c2d3e4f5a6b"
BAD_OBJECTS = [
    ("bad-pattern", ind(f"[file:hashes.MD5 != '{MD5}']"), "pattern: unexpected"),
    ("bad-value", ind("[file:hashes.MD5 = 'abc']"), "bad md5 value 'abc': need 32 hex digits"),
    ("sigma", ind("[file:hashes.MD5 = 'x']", pattern_type="sigma"), "pattern_type 'sigma': only stix patterns are read"),
    ("pattern-not-string", {**ind(""), "pattern": 5}, "pattern must be a string, not 5"),
    ("revoked-string", ind(f"[file:hashes.MD5 = '{MD5}']", revoked="yes"), "revoked must be true or false, not 'yes'"),
    ("labels-string", ind(f"[file:hashes.MD5 = '{MD5}']", labels="x"), "labels must be an array, not 'x'"),
    ("foreign-label", ind(f"[file:hashes.MD5 = '{MD5}']", labels=['misp:type="md5"']), "bad label 'misp:type=\"md5\"'"),
    ("label-not-string", ind(f"[file:hashes.MD5 = '{MD5}']", labels=[5]), "a label must be a string, not 5"),
    ("file-hashes-list", {"type": "file", "id": "file--1", "hashes": [MD5]}, "hashes must be an object, not"),
    ("file-hash-number", {"type": "file", "id": "file--1", "hashes": {"MD5": 5}}, "a md5 value must be a string, not 5"),
    ("not-an-object", "indicator", "expected an object, got 'indicator'"),
]


@pytest.mark.parametrize(("obj", "message"), [c[1:] for c in BAD_OBJECTS], ids=[c[0] for c in BAD_OBJECTS])
def test_bad_objects(obj: object, message: str) -> None:
    good = ind(f"[file:hashes.SHA1 = '{SHA1}']")
    text = bundle(good, obj, good)  # type: ignore[arg-type]
    with pytest.raises(FormatError) as info:
        list(read_stix(text, source="in.json"))
    where = f"object 1 ({obj['id']})" if isinstance(obj, dict) else "object 1"
    assert str(info.value).startswith(f"in.json: {where}: {message}")
    errors: list[ProtocolError] = []
    assert list(read_stix(text, errors=errors)) == [Entry.add("sha1", SHA1)] * 2
    assert [e.where for e in errors] == [where]


BAD_DOCUMENTS = [
    ("not-json", "{", {}, "in.json:1: not JSON: Expecting property name enclosed in double quotes (column 2)"),
    ("array", "[]", {}, "in.json: document: expected a STIX bundle (a JSON object), got []"),
    ("indicator-alone", json.dumps(ind("[file:hashes.MD5 = 'x']")), {}, "in.json: document: expected a bundle, got an object of type 'indicator'"),
    ("objects-not-array", '{"type":"bundle","objects":{}}', {}, "in.json: document: objects must be an array, not {}"),
    ("too-many-objects", bundle(*[ind(f"[file:hashes.MD5 = '{MD5}']")] * 3), {"max_objects": 2}, "in.json: document: 3 objects: at most 2"),
    ("too-long", bundle(), {"max_chars": 10}, "in.json: document: 87 characters: at most 10"),
    ("too-long-lines", [bundle()[:50], bundle()[50:]], {"max_chars": 60}, "in.json: document: more than 60 characters"),
    ("infinity", '{"objects": [Infinity]}', {}, "in.json: document: not JSON: Infinity is not JSON"),
]


@pytest.mark.parametrize(("text", "kwargs", "message"), [c[1:] for c in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS])
def test_bad_documents(text: object, kwargs: dict, message: str) -> None:
    """What spoils a whole document raises even in skip-bad mode."""
    with pytest.raises(FormatError) as info:
        list(read_stix(text, source="in.json", errors=[], **kwargs))  # type: ignore[arg-type]
    assert str(info.value) == message


# -- writing --------------------------------------------------------------------------------


RECORD = Record(
    "sha256",
    SHA256,
    True,
    ("csam", "x:1"),
    (Contributor("a.example", "csam", ("csam",)), Contributor("b.example", "default", ("x:1",))),
    (),
)


def test_indicator_shape() -> None:
    obj = indicator(RECORD, created=CREATED)
    assert obj == {
        "type": "indicator",
        "spec_version": "2.1",
        "id": indicator_id("sha256", SHA256),
        "created": "2026-11-26T02:19:41.123Z",
        "modified": "2026-11-26T02:19:41.123Z",
        "name": f"sha256 {SHA256}",
        "pattern": f"[file:hashes.'SHA-256' = '{SHA256}']",
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": "2026-11-26T02:19:41.123Z",
        "labels": ["csam", "x:1"],
        "external_references": [
            {"source_name": "hashfed", "external_id": "a.example/csam"},
            {"source_name": "hashfed", "external_id": "b.example/default"},
        ],
    }
    assert indicator_id("sha256", SHA256) == "indicator--" + str(uuid.uuid5(uuid.UUID("5d3b7e1c-8f0a-5b4e-9c61-2a7d4e9f0b13"), f"sha256:{SHA256}"))
    later = indicator(RECORD._replace(active=False, contributors=(), labels=()), created=CREATED, modified=datetime(2027, 1, 1, tzinfo=UTC))
    assert later["id"] == obj["id"] and later["modified"] == "2027-01-01T00:00:00.000Z" and later["revoked"] is True
    assert "labels" not in later and "external_references" not in later


def test_times_must_be_aware() -> None:
    with pytest.raises(ValueError):
        stix_time(datetime(2026, 1, 1))
    assert stix_time(datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)) == "2026-01-01T00:00:00.999Z"


@settings(max_examples=40, deadline=None)
@given(unique_records())
def test_written_bundles_are_strict_stix_and_read_back(records: list[Record]) -> None:
    text = "".join(write_bundle(records, bundle_id=BUNDLE_ID, created=CREATED))
    # Strictly valid: no custom content at all. (stix2 cannot parse a bundle without
    # objects, which is how an empty one is written: see test_empty_bundle.)
    parsed = stix2.parse(text, allow_custom=False).objects if records else []
    assert len(parsed) == len(records)
    for obj, record in zip(parsed, records, strict=True):
        assert obj.id == indicator_id(record.type, record.value)
        assert obj.revoked is (not record.active)
    assert list(read_stix(text)) == added(records)
    assert list(read_stix(text, inactive="remove")) == [
        Entry.add(r.type, r.value, r.labels) if r.active else Entry.remove(r.type, r.value) for r in records
    ]


def test_empty_bundle() -> None:
    """STIX: a bundle's objects, where present, are one or more; so an empty bundle has none."""
    text = "".join(write_bundle([], bundle_id=BUNDLE_ID, created=CREATED))
    assert json.loads(text) == {"type": "bundle", "id": f"bundle--{BUNDLE_ID}"}
    assert list(read_stix(text)) == []
