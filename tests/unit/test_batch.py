"""Entries and batches (PROTOCOL §3, §4): canonical encoding and the verifying decoder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hashfed.keys.errors import HashfedError, ProtocolError, VerificationError
from hashfed.keys.names import COLLECTION_RE, LABEL_RE, ORG_RE
from hashfed.protocol.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    MAX_INDEX,
    Batch,
    decode_batch,
    encode_batch,
    format_created,
    parse_created,
    peek_index,
)
from hashfed.protocol.entries import MAX_LABELS, OPINIONS, OPS, Entry
from hashfed.protocol.hashtypes import HASH_TYPES

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PHOTODNA = "0123456789abcdef" * 18

CREATED = datetime(2026, 11, 26, 2, 19, 41, tzinfo=UTC)
ENTRIES = (
    Entry.add("md5", f" {MD5.upper()}\n", ["ncmec:a1", "csam", "ncmec:a1"]),
    Entry.remove("sha1", SHA1),
    Entry.opine("pdq", PDQ, "false_positive"),
    Entry.add("sha256", SHA256),
)
GOLDEN = (
    b'{"collection":"csam","created":"2026-11-26T02:19:41Z","entries":['
    b'{"labels":["csam","ncmec:a1"],"op":"add","type":"md5","value":"d41d8cd98f00b204e9800998ecf8427e"},'
    b'{"op":"remove","type":"sha1","value":"da39a3ee5e6b4b0d3255bfef95601890afd80709"},'
    b'{"op":"opinion","opinion":"false_positive","type":"pdq",'
    b'"value":"f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"},'
    b'{"labels":[],"op":"add","type":"sha256",'
    b'"value":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}'
    b'],"index":0,"org":"acme.example","v":1}'
)
LOG = {"org": "acme.example", "collection": "csam", "index": 0}
REMOVE_TEXT = b'{"op":"remove","type":"sha1","value":"da39a3ee5e6b4b0d3255bfef95601890afd80709"}'


def _encode(entries=ENTRIES, **overrides) -> bytes:
    return encode_batch(**{**LOG, "created": CREATED, "entries": entries, **overrides})


def _decode(data: bytes, **overrides) -> Batch:
    return decode_batch(data, **{**LOG, **overrides})


def _reference_json(obj: object) -> bytes:
    """RFC 8785 for the values a batch holds (ASCII strings, small integers), per the stdlib."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _batch_obj(entries, *, org="acme.example", collection="csam", index=0, created="2026-11-26T02:19:41Z"):
    return {
        "collection": collection,
        "created": created,
        "entries": [e.to_json_obj() for e in entries],
        "index": index,
        "org": org,
        "v": 1,
    }


def _variant(old: bytes, new: bytes) -> bytes:
    """GOLDEN with its one occurrence of ``old`` replaced by ``new``."""
    assert GOLDEN.count(old) == 1, old
    return GOLDEN.replace(old, new)


def _with_entries(*entry_texts: bytes) -> bytes:
    """GOLDEN's header around the given entry texts."""
    head, _, rest = GOLDEN.partition(b'"entries":[')
    _, _, tail = rest.partition(b'],"index"')
    return head + b'"entries":[' + b",".join(entry_texts) + b'],"index"' + tail


def _raises_exactly(error: type[HashfedError], call, *args, **kwargs) -> HashfedError:
    with pytest.raises(error) as info:
        call(*args, **kwargs)
    assert type(info.value) is error, info.value
    return info.value


# --- entries -------------------------------------------------------------------------


def test_entry_constructors_normalise() -> None:
    added = Entry.add("md5", f"  {MD5.upper()} ", iter(["b", "a", "b"]))
    assert added == Entry("add", "md5", MD5, ("a", "b"), None)
    assert Entry.remove("md5", MD5.upper()) == Entry("remove", "md5", MD5)
    assert Entry.opine("md5", MD5, "true_positive") == Entry("opinion", "md5", MD5, (), "true_positive")
    assert OPS == {"add", "remove", "opinion"}
    assert OPINIONS == {"true_positive", "false_positive"}


def test_entry_json_objects_are_exactly_the_protocol_ones() -> None:
    assert [e.to_json_obj() for e in ENTRIES] == [
        {"labels": ["csam", "ncmec:a1"], "op": "add", "type": "md5", "value": MD5},
        {"op": "remove", "type": "sha1", "value": SHA1},
        {"op": "opinion", "opinion": "false_positive", "type": "pdq", "value": PDQ},
        {"labels": [], "op": "add", "type": "sha256", "value": SHA256},
    ]


def test_sixteen_labels_are_allowed() -> None:
    labels = [f"l{i:02d}" for i in range(MAX_LABELS)]
    assert Entry.add("md5", MD5, labels).labels == tuple(labels)


BAD_ENTRY_INPUT = [
    ("add-17-labels", lambda: Entry.add("md5", MD5, [f"l{i:02d}" for i in range(MAX_LABELS + 1)])),
    ("add-bad-label", lambda: Entry.add("md5", MD5, ["NCMEC"])),
    ("add-label-not-str", lambda: Entry.add("md5", MD5, [1])),
    ("add-labels-is-a-string", lambda: Entry.add("md5", MD5, "csam")),
    ("add-bad-value", lambda: Entry.add("md5", MD5[:-1])),
    ("add-unknown-type", lambda: Entry.add("crc32", "deadbeef")),
    ("remove-bad-value", lambda: Entry.remove("sha1", MD5)),
    ("opine-bad-opinion", lambda: Entry.opine("md5", MD5, "maybe")),
    ("opine-opinion-not-str", lambda: Entry.opine("md5", MD5, ["true_positive"])),
    ("opine-bad-value", lambda: Entry.opine("md5", "x", "true_positive")),
]


@pytest.mark.parametrize("build", [c[1] for c in BAD_ENTRY_INPUT], ids=[c[0] for c in BAD_ENTRY_INPUT])
def test_entry_constructors_reject(build) -> None:
    _raises_exactly(ProtocolError, build)


# --- created -------------------------------------------------------------------------


def test_format_created() -> None:
    assert format_created(CREATED) == "2026-11-26T02:19:41Z"
    assert format_created(CREATED.replace(microsecond=999_999)) == "2026-11-26T02:19:41Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_created(datetime(2026, 11, 26, 4, 19, 41, tzinfo=plus_two)) == "2026-11-26T02:19:41Z"
    assert format_created(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"
    assert parse_created("2026-11-26T02:19:41Z") == CREATED


@pytest.mark.parametrize(
    "dt",
    [
        datetime(2026, 11, 26, 2, 19, 41),
        "2026-11-26T02:19:41Z",
        0,
        datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
    ],
    ids=["naive", "string", "int", "out-of-range-in-utc"],
)
def test_format_created_rejects(dt) -> None:
    _raises_exactly(ProtocolError, format_created, dt)


@given(st.datetimes(timezones=st.just(UTC)))
def test_created_round_trip(dt: datetime) -> None:
    text = format_created(dt)
    assert parse_created(text) == dt.replace(microsecond=0)
    assert format_created(parse_created(text)) == text


# --- golden bytes and round trips ----------------------------------------------------


def test_golden_bytes() -> None:
    assert _encode() == GOLDEN
    assert _encode(created="2026-11-26T02:19:41Z") == GOLDEN
    assert _reference_json(_batch_obj(ENTRIES)) == GOLDEN


def test_golden_decode() -> None:
    batch = _decode(GOLDEN)
    assert batch == Batch("acme.example", "csam", 0, "2026-11-26T02:19:41Z", ENTRIES, GOLDEN)
    assert batch.data is GOLDEN
    assert batch.log_id == "acme.example/csam"
    assert "entries" not in repr(batch) and "data" not in repr(batch)


def _values(type_: str) -> st.SearchStrategy[str]:
    digits = HASH_TYPES[type_].hex_digits
    return st.text("0123456789abcdef", min_size=digits, max_size=digits)


hash_types = st.sampled_from(sorted(HASH_TYPES))
label_lists = st.lists(st.from_regex(LABEL_RE, fullmatch=True), max_size=MAX_LABELS, unique=True)
entries = st.one_of(
    hash_types.flatmap(lambda t: st.builds(Entry.add, st.just(t), _values(t), label_lists)),
    hash_types.flatmap(lambda t: st.builds(Entry.remove, st.just(t), _values(t))),
    hash_types.flatmap(
        lambda t: st.builds(Entry.opine, st.just(t), _values(t), st.sampled_from(sorted(OPINIONS)))
    ),
)
batches = st.fixed_dictionaries(
    {
        "org": st.from_regex(ORG_RE, fullmatch=True),
        "collection": st.from_regex(COLLECTION_RE, fullmatch=True),
        "index": st.integers(0, MAX_INDEX),
        "created": st.datetimes(timezones=st.just(UTC)).map(format_created),
        "entries": st.lists(entries, min_size=1, max_size=20).map(tuple),
    }
)


@given(batches)
def test_encode_decode_round_trip(fields: dict) -> None:
    data = encode_batch(**fields)
    assert data == _reference_json(_batch_obj(**fields))
    batch = decode_batch(data, org=fields["org"], collection=fields["collection"], index=fields["index"])
    assert batch == Batch(**fields, data=data)


# --- the verifier's bad-input table --------------------------------------------------

_DEEP = 100_000

BAD_BATCHES = [
    # (id, bytes, error type, a part of the message that says what and where)
    ("over-size-cap", b" " * (MAX_BATCH_BYTES + 1), ProtocolError, "bytes"),
    ("over-size-cap-even-if-valid-json", GOLDEN + b" " * MAX_BATCH_BYTES, ProtocolError, "bytes"),
    ("empty", b"", ProtocolError, "not JSON"),
    ("truncated", GOLDEN[:-1], ProtocolError, "not JSON"),
    ("trailing-garbage", GOLDEN + b"x", ProtocolError, "not JSON"),
    ("two-objects", GOLDEN + GOLDEN, ProtocolError, "not JSON"),
    ("not-utf8", _variant(b'"csam","created"', b'"cs\xffm","created"'), ProtocolError, "non-ASCII"),
    ("non-ascii-label", _variant(b'"ncmec:a1"', '"ncmec:\u00e91"'.encode()), ProtocolError, "non-ASCII"),
    ("escaped-letter", _variant(b'"csam","created"', b'"\\u0063sam","created"'), ProtocolError, "backslash"),
    ("escaped-solidus", _variant(b'"ncmec:a1"', b'"ncmec:a\\/1"'), ProtocolError, "backslash"),
    ("escaped-non-ascii", _variant(b'"ncmec:a1"', b'"ncmec:\\u00e91"'), ProtocolError, "backslash"),
    ("escaped-quote", _variant(b'"ncmec:a1"', b'"ncmec:\\"1"'), ProtocolError, "backslash"),
    ("trailing-newline", GOLDEN + b"\n", ProtocolError, "canonical"),
    ("leading-space", b" " + GOLDEN, ProtocolError, "canonical"),
    ("space-after-colon", _variant(b'"index":0', b'"index": 0'), ProtocolError, "canonical"),
    ("space-in-entry", _variant(b'"op":"remove"', b'"op" :"remove"'), ProtocolError, "canonical"),
    ("pretty-printed", json.dumps(json.loads(GOLDEN), indent=1).encode(), ProtocolError, "canonical"),
    (
        "top-keys-out-of-order",
        _variant(b',"index":0,"org":"acme.example"', b',"org":"acme.example","index":0'),
        ProtocolError,
        "canonical",
    ),
    (
        "entry-keys-out-of-order",
        _variant(b'"type":"sha1","value":"' + SHA1.encode() + b'"', b'"value":"' + SHA1.encode() + b'","type":"sha1"'),
        ProtocolError,
        "canonical",
    ),
    ("duplicate-top-key", _variant(b',"v":1}', b',"v":1,"v":1}'), ProtocolError, "canonical"),
    ("duplicate-key-other-value-first", _variant(b',"index":0,', b',"index":1,"index":0,'), ProtocolError, "canonical"),
    ("duplicate-entry-key", _variant(b'{"op":"remove",', b'{"op":"remove","op":"remove",'), ProtocolError, "canonical"),
    ("minus-zero-index", _variant(b'"index":0', b'"index":-0'), ProtocolError, "canonical"),
    ("top-level-array", b"[" + GOLDEN + b"]", ProtocolError, "object"),
    ("top-level-number", b"1", ProtocolError, "object"),
    ("top-level-string", b'"csam"', ProtocolError, "object"),
    ("top-level-null", b"null", ProtocolError, "object"),
    ("missing-org", _variant(b',"org":"acme.example"', b""), ProtocolError, "missing ['org']"),
    ("missing-v", _variant(b',"v":1', b""), ProtocolError, "missing ['v']"),
    ("unknown-top-key", _variant(b',"v":1}', b',"v":1,"w":1}'), ProtocolError, "unknown ['w']"),
    ("v-2", _variant(b'"v":1', b'"v":2'), ProtocolError, "version"),
    ("v-0", _variant(b'"v":1', b'"v":0'), ProtocolError, "version"),
    ("v-true", _variant(b'"v":1', b'"v":true'), ProtocolError, "version"),
    ("v-string", _variant(b'"v":1', b'"v":"1"'), ProtocolError, "version"),
    ("v-float", _variant(b'"v":1', b'"v":1.0'), ProtocolError, "number"),
    ("v-exponent", _variant(b'"v":1', b'"v":1e0'), ProtocolError, "number"),
    ("v-nan", _variant(b'"v":1', b'"v":NaN'), ProtocolError, "number"),
    ("v-infinity", _variant(b'"v":1', b'"v":Infinity'), ProtocolError, "number"),
    ("index-false", _variant(b'"index":0', b'"index":false'), ProtocolError, "index"),
    ("index-string", _variant(b'"index":0', b'"index":"0"'), ProtocolError, "index"),
    ("index-null", _variant(b'"index":0', b'"index":null'), ProtocolError, "index"),
    ("index-float", _variant(b'"index":0', b'"index":0.0'), ProtocolError, "number"),
    ("index-negative", _variant(b'"index":0', b'"index":-1'), ProtocolError, "index"),
    ("index-leading-zero", _variant(b'"index":0', b'"index":00'), ProtocolError, "not JSON"),
    ("index-2-to-53", _variant(b'"index":0', b'"index":%d' % 2**53), ProtocolError, "index"),
    ("index-5000-digits", _variant(b'"index":0', b'"index":' + b"9" * 5000), ProtocolError, "not JSON"),
    ("org-upper-case", _variant(b'"acme.example"', b'"Acme.example"'), ProtocolError, "org id"),
    ("org-not-string", _variant(b'"org":"acme.example"', b'"org":["acme.example"]'), ProtocolError, "org id"),
    ("collection-bad", _variant(b'"csam","created"', b'"cs.am","created"'), ProtocolError, "collection"),
    ("created-fraction", _variant(b"02:19:41Z", b"02:19:41.5Z"), ProtocolError, "created"),
    ("created-offset", _variant(b"02:19:41Z", b"02:19:41+00:00"), ProtocolError, "created"),
    ("created-lower-case", _variant(b"2026-11-26T02:19:41Z", b"2026-11-26t02:19:41z"), ProtocolError, "created"),
    ("created-no-seconds", _variant(b"02:19:41Z", b"02:19Z"), ProtocolError, "created"),
    ("created-month-13", _variant(b"2026-11-26", b"2026-13-26"), ProtocolError, "created"),
    ("created-feb-30", _variant(b"2026-11-26", b"2026-02-30"), ProtocolError, "created"),
    ("created-leap-second", _variant(b"02:19:41Z", b"23:59:60Z"), ProtocolError, "created"),
    ("created-year-0", _variant(b"2026-11-26", b"0000-11-26"), ProtocolError, "created"),
    ("created-number", _variant(b'"2026-11-26T02:19:41Z"', b"1795746000"), ProtocolError, "created"),
    ("entries-empty", _with_entries(), ProtocolError, "1 to 10000 entries, not 0"),
    ("entries-10001", _with_entries(*[REMOVE_TEXT] * (MAX_BATCH_ENTRIES + 1)), ProtocolError, "not 10001"),
    ("entries-object", _with_entries().replace(b'"entries":[]', b'"entries":{"x":1}'), ProtocolError, "array"),
    ("entries-deeply-nested", _with_entries(b"[" * _DEEP + b"]" * _DEEP), ProtocolError, "not JSON"),
    ("entry-string", _with_entries(REMOVE_TEXT, b'"remove"'), ProtocolError, "entry 1: must be an object"),
    ("entry-array", _with_entries(REMOVE_TEXT, b"[]"), ProtocolError, "entry 1: must be an object"),
    ("op-unknown", _variant(b'"op":"remove"', b'"op":"delete"'), ProtocolError, "entry 1: bad op"),
    ("op-not-string", _variant(b'"op":"remove"', b'"op":1'), ProtocolError, "entry 1: bad op"),
    ("op-missing", _variant(b'"op":"remove",', b""), ProtocolError, "entry 1: bad op"),
    (
        "entry-unknown-key",
        _variant(b'"op":"remove",', b'"op":"remove","reason":"x",'),
        ProtocolError,
        "entry 1: remove entry has wrong keys: unknown ['reason']",
    ),
    (
        "value-missing",
        _variant(b',"value":"' + SHA1.encode() + b'"', b""),
        ProtocolError,
        "entry 1: remove entry has wrong keys: missing ['value']",
    ),
    (
        "remove-with-labels",
        _variant(b'{"op":"remove"', b'{"labels":[],"op":"remove"'),
        ProtocolError,
        "entry 1: remove entry has wrong keys: unknown ['labels']",
    ),
    (
        "add-without-labels",
        _variant(b'{"labels":[],"op":"add"', b'{"op":"add"'),
        ProtocolError,
        "entry 3: add entry has wrong keys: missing ['labels']",
    ),
    (
        "add-with-opinion",
        _variant(b'"op":"add","type":"sha256"', b'"op":"add","opinion":"true_positive","type":"sha256"'),
        ProtocolError,
        "entry 3: add entry has wrong keys: unknown ['opinion']",
    ),
    (
        "opinion-missing",
        _variant(b'"opinion":"false_positive",', b""),
        ProtocolError,
        "entry 2: opinion entry has wrong keys: missing ['opinion']",
    ),
    ("opinion-unknown", _variant(b'"false_positive"', b'"maybe"'), ProtocolError, "entry 2: bad opinion"),
    ("opinion-not-string", _variant(b'"false_positive"', b"false"), ProtocolError, "entry 2: bad opinion"),
    ("type-not-string", _variant(b'"type":"sha1"', b'"type":["sha1"]'), ProtocolError, "entry 1: type"),
    ("value-upper-case", _variant(SHA1.encode(), SHA1.upper().encode()), ProtocolError, "entry 1: bad value"),
    ("value-too-short", _variant(SHA1.encode(), SHA1[:-2].encode()), ProtocolError, "entry 1: bad value"),
    ("value-with-space", _variant(SHA1.encode(), b" " + SHA1[1:].encode()), ProtocolError, "entry 1: bad value"),
    ("value-number", _variant(b'"' + SHA1.encode() + b'"', b"1"), ProtocolError, "entry 1: bad value"),
    ("value-of-other-type", _variant(b'"type":"sha1"', b'"type":"md5"'), ProtocolError, "entry 1: bad value"),
    (
        "labels-unsorted",
        _variant(b'["csam","ncmec:a1"]', b'["ncmec:a1","csam"]'),
        ProtocolError,
        "entry 0: label 1: labels must be sorted and unique",
    ),
    (
        "labels-duplicate",
        _variant(b'["csam","ncmec:a1"]', b'["csam","csam"]'),
        ProtocolError,
        "entry 0: label 1: labels must be sorted and unique",
    ),
    (
        "labels-17",
        _variant(b'["csam","ncmec:a1"]', b"[" + b",".join(b'"l%02d"' % i for i in range(17)) + b"]"),
        ProtocolError,
        "entry 0: 17 labels",
    ),
    ("label-upper-case", _variant(b'"ncmec:a1"', b'"NCMEC:a1"'), ProtocolError, "entry 0: label 1: bad label"),
    ("label-empty", _variant(b'["csam",', b'["",'), ProtocolError, "entry 0: label 0: bad label"),
    ("label-number", _variant(b'["csam",', b"[1,"), ProtocolError, "entry 0: label 0: bad label"),
    ("label-array", _variant(b'["csam",', b'[["csam"],'), ProtocolError, "entry 0: label 0: bad label"),
    ("labels-string", _variant(b'["csam","ncmec:a1"]', b'"csam"'), ProtocolError, "entry 0: labels must be an array"),
    ("labels-null", _variant(b'["csam","ncmec:a1"]', b"null"), ProtocolError, "entry 0: labels must be an array"),
    ("other-org", _variant(b'"acme.example"', b'"evil.example"'), VerificationError, "leaf 0 of evil.example/csam"),
    ("other-collection", _variant(b'"csam","created"', b'"ncii","created"'), VerificationError, "acme.example/ncii"),
    ("other-index", _variant(b'"index":0', b'"index":1'), VerificationError, "expected leaf 0"),
    ("unknown-hash-type", _variant(b'"type":"sha1"', b'"type":"crc32"'), VerificationError, "entry 1: unknown"),
    (
        "unknown-hash-type-odd-value",
        _variant(b'"type":"sha1","value":"' + SHA1.encode(), b'"type":"x","value":"? ~'),
        VerificationError,
        "entry 1: unknown hash type",
    ),
    ("unknown-hash-type-del-char", _variant(b'"type":"sha1"', b'"type":"x\x7f"'), VerificationError, "unknown"),
    # Malformed bytes are reported before anything that fails verification.
    (
        "unknown-hash-type-then-malformed-entry",
        _variant(b'"type":"sha1"', b'"type":"crc32"').replace(b'"false_positive"', b'"maybe"'),
        ProtocolError,
        "entry 2: bad opinion",
    ),
    (
        "unknown-hash-type-and-not-canonical",
        _variant(b'"type":"sha1"', b'"type":"crc32"') + b" ",
        ProtocolError,
        "canonical",
    ),
    ("other-index-and-not-canonical", _variant(b'"index":0', b'"index": 1'), ProtocolError, "canonical"),
    (
        "other-org-and-malformed-entry",
        _variant(b'"acme.example"', b'"evil.example"').replace(b'"false_positive"', b'"maybe"'),
        ProtocolError,
        "entry 2: bad opinion",
    ),
]


@pytest.mark.parametrize(
    ("data", "error", "message"), [c[1:] for c in BAD_BATCHES], ids=[c[0] for c in BAD_BATCHES]
)
def test_decode_batch_rejects(data: bytes, error: type[HashfedError], message: str) -> None:
    raised = _raises_exactly(error, _decode, data)
    assert message in str(raised)


@pytest.mark.parametrize(
    "data", [bytearray(GOLDEN), memoryview(GOLDEN), GOLDEN.decode()], ids=["bytearray", "memoryview", "str"]
)
def test_decode_batch_takes_only_bytes(data) -> None:
    _raises_exactly(ProtocolError, _decode, data)


def test_non_canonical_message_says_where() -> None:
    data = _variant(b'"index":0', b'"index": 0')
    raised = _raises_exactly(ProtocolError, _decode, data)
    assert f"offset {data.index(b' 0')}" in str(raised)


def test_exactly_max_entries_is_accepted() -> None:
    batch = _decode(_with_entries(*[REMOVE_TEXT] * MAX_BATCH_ENTRIES))
    assert len(batch.entries) == MAX_BATCH_ENTRIES
    assert set(batch.entries) == {Entry.remove("sha1", SHA1)}


def _entries_of_size(size: int) -> tuple[Entry, ...]:
    """Photodna adds with long labels whose batch is exactly ``size`` bytes."""
    labels = [f"l{i:02d}" + "x" * 61 for i in range(MAX_LABELS)]
    one = Entry.add("photodna", PHOTODNA, labels)
    per_entry = len(_reference_json(one.to_json_obj())) + 1
    count = -(-(size - len(_reference_json(_batch_obj([])))) // per_entry)
    entries = [one] * count
    excess = len(_reference_json(_batch_obj(entries))) - size
    assert 0 <= excess < per_entry
    position = 0
    while excess:  # shorten labels of the first entries until the size is exact
        cut = min(excess, 61)
        entries[position // MAX_LABELS] = entries[position // MAX_LABELS]._replace(
            labels=tuple(
                label[:-cut] if i == position % MAX_LABELS else label
                for i, label in enumerate(entries[position // MAX_LABELS].labels)
            )
        )
        excess -= cut
        position += 1
    assert len(_reference_json(_batch_obj(entries))) == size
    return tuple(entries)


def test_size_cap_is_exact() -> None:
    at_cap = _entries_of_size(MAX_BATCH_BYTES)
    data = _encode(at_cap)
    assert len(data) == MAX_BATCH_BYTES
    assert _decode(data).entries == at_cap
    over_cap = _entries_of_size(MAX_BATCH_BYTES + 1)
    raised = _raises_exactly(ProtocolError, _encode, over_cap)
    assert str(MAX_BATCH_BYTES) in str(raised)
    over_data = _reference_json(_batch_obj(over_cap))
    assert len(over_data) == MAX_BATCH_BYTES + 1
    _raises_exactly(ProtocolError, _decode, over_data)


# --- flipped bytes -------------------------------------------------------------------


def _content(batch: Batch) -> tuple:
    return batch.org, batch.collection, batch.index, batch.created, batch.entries


def _decode_flipped(data: bytes, position: int, mask: int, fields: dict) -> None:
    """A flipped byte is rejected, or (if still canonical) says something else."""
    flipped = bytearray(data)
    flipped[position] ^= mask
    try:
        batch = decode_batch(
            bytes(flipped), org=fields["org"], collection=fields["collection"], index=fields["index"]
        )
    except (ProtocolError, VerificationError):
        return
    original = tuple(fields[name] for name in ("org", "collection", "index", "created", "entries"))
    assert _content(batch) != original


def test_every_single_bit_flip_of_the_golden_batch() -> None:
    fields = {**LOG, "created": "2026-11-26T02:19:41Z", "entries": ENTRIES}
    for position in range(len(GOLDEN)):
        for bit in range(8):
            _decode_flipped(GOLDEN, position, 1 << bit, fields)


def test_a_flipped_hash_digit_decodes_to_another_entry() -> None:
    flipped = _variant(b'"value":"d41d8', b'"value":"d41d9')
    batch = _decode(flipped)
    assert batch.entries[0].value == "d41d9" + MD5[5:]
    assert batch.entries[1:] == ENTRIES[1:]


@given(batches, st.data())
@example({**LOG, "created": "2026-11-26T02:19:41Z", "entries": ENTRIES}, None)
def test_any_flipped_byte_is_rejected_or_changes_the_batch(fields: dict, data: st.DataObject | None) -> None:
    encoded = encode_batch(**fields)
    if data is None:
        position, mask = encoded.index(b'"v":1') + 4, 0x01
    else:
        position = data.draw(st.integers(0, len(encoded) - 1))
        mask = data.draw(st.integers(1, 255))
    _decode_flipped(encoded, position, mask, fields)


# --- encoding rejects what it must not write -----------------------------------------

BAD_ENCODE = [
    ("org", {"org": "Acme"}),
    ("collection", {"collection": "cs/am"}),
    ("index-negative", {"index": -1}),
    ("index-bool", {"index": True}),
    ("index-str", {"index": "0"}),
    ("index-2-to-53", {"index": 2**53}),
    ("created-naive", {"created": datetime(2026, 11, 26)}),
    ("created-bad-text", {"created": "2026-11-26 02:19:41Z"}),
    ("created-fraction", {"created": "2026-11-26T02:19:41.000Z"}),
    ("no-entries", {"entries": ()}),
    ("too-many-entries", {"entries": (ENTRIES[1],) * (MAX_BATCH_ENTRIES + 1)}),
    ("not-an-entry", {"entries": (ENTRIES[1].to_json_obj(),)}),
    ("plain-tuple", {"entries": (tuple(ENTRIES[1]),)}),
    ("unknown-type", {"entries": (Entry("remove", "crc32", "deadbeef"),)}),
    ("type-not-str", {"entries": (Entry("remove", ["md5"], MD5),)}),
    ("unknown-op", {"entries": (Entry("delete", "md5", MD5),)}),
    ("value-not-normalised", {"entries": (Entry("remove", "md5", MD5.upper()),)}),
    ("labels-unsorted", {"entries": (Entry("add", "md5", MD5, ("b", "a")),)}),
    ("labels-duplicate", {"entries": (Entry("add", "md5", MD5, ("a", "a")),)}),
    ("labels-a-list", {"entries": (Entry("add", "md5", MD5, ["a"]),)}),
    ("labels-bad", {"entries": (Entry("add", "md5", MD5, ("A",)),)}),
    ("labels-on-remove", {"entries": (Entry("remove", "md5", MD5, ("a",)),)}),
    ("opinion-on-add", {"entries": (Entry("add", "md5", MD5, (), "true_positive"),)}),
    ("opinion-missing", {"entries": (Entry("opinion", "md5", MD5),)}),
    ("opinion-bad", {"entries": (Entry("opinion", "md5", MD5, (), "maybe"),)}),
    ("over-size-cap", {"entries": (Entry.add("photodna", PHOTODNA, ["x" * 64]),) * MAX_BATCH_ENTRIES * 2}),
]


@pytest.mark.parametrize("overrides", [c[1] for c in BAD_ENCODE], ids=[c[0] for c in BAD_ENCODE])
def test_encode_batch_rejects(overrides: dict) -> None:
    _raises_exactly(ProtocolError, _encode, **overrides)


def test_encode_names_the_bad_entry() -> None:
    entries = (ENTRIES[0], ENTRIES[1], Entry("remove", "md5", MD5.upper()))
    raised = _raises_exactly(ProtocolError, _encode, entries)
    assert str(raised).startswith("entry 2: ")


# --- peek_index ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "index"),
    [
        (GOLDEN, 0),
        (GOLDEN + b"\n", 0),
        (_variant(b'"index":0', b'"index":41'), 41),
        (b'{"index": 7}', 7),
        (b'{"index":%d}' % MAX_INDEX, MAX_INDEX),
    ],
    ids=["golden", "with-newline", "index-41", "not-a-batch-but-has-index", "max-index"],
)
def test_peek_index(line: bytes, index: int) -> None:
    assert peek_index(line) == index


BAD_PEEKS = [
    ("empty", b""),
    ("newline-only", b"\n"),
    ("not-json", b"{"),
    ("array", b"[0]"),
    ("no-index", _variant(b',"index":0', b"")),
    ("index-bool", b'{"index":true}'),
    ("index-string", b'{"index":"0"}'),
    ("index-float", b'{"index":0.0}'),
    ("index-nan", b'{"index":NaN}'),
    ("index-negative", b'{"index":-1}'),
    ("index-2-to-53", b'{"index":%d}' % 2**53),
    ("not-utf8", b'{"index":0,"x":"\xff"}'),
    ("over-size-cap", b'{"index":0,"x":"' + b"x" * MAX_BATCH_BYTES + b'"}'),
    ("str", GOLDEN.decode()),
]


@pytest.mark.parametrize("line", [c[1] for c in BAD_PEEKS], ids=[c[0] for c in BAD_PEEKS])
def test_peek_index_rejects(line: bytes) -> None:
    _raises_exactly(ProtocolError, peek_index, line)
