"""formats.lines (one value a line) and formats.jsonl (one JSON object a line)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashfed.formats._common import FormatError
from hashfed.formats.jsonl import read_jsonl, write_jsonl
from hashfed.formats.lines import read_lines, write_lines
from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry
from hashfed.protocol.hashtypes import HASH_TYPES
from hashfed.protocol.records import Contributor, OpinionOf, Record
from tests.unit.formats_strategies import added, unique_records

MD5 = [f"{n:032x}" for n in range(10)]

# -- lines ----------------------------------------------------------------------------------


def test_lines_skip_blanks_and_comments() -> None:
    text = f"# list of 2026-11-26\n\n  {MD5[1].upper()}  \r\n\t# indented comment\n{MD5[2]}"
    assert list(read_lines(text, type_="MD5")) == [Entry.add("md5", MD5[1]), Entry.add("md5", MD5[2])]


@given(st.sampled_from(sorted(HASH_TYPES)).flatmap(lambda t: unique_records((t,)).map(lambda rs: (t, rs))))
def test_lines_round_trip(case: tuple[str, list[Record]]) -> None:
    type_, records = case
    text = "".join(write_lines(records, type_=type_))
    assert list(read_lines(text, type_=type_)) == [Entry.add(r.type, r.value) for r in records]


def test_lines_write_refuses_another_type() -> None:
    records = [Record("md5", MD5[1], True, (), (), ()), Record("sha1", "0" * 40, True, (), (), ())]
    with pytest.raises(ProtocolError, match=r"a 'sha1' record in a list of md5 values"):
        list(write_lines(records, type_="md5"))


BAD_LINES = [
    ("bad-value", f"{MD5[1]}\nxyz\n", "in.txt:2: bad md5 value 'xyz': need 32 hex digits"),
    ("second-column", f"{MD5[1]} label\n", f"in.txt:1: bad md5 value '{MD5[1]} label': need 32 hex digits"),
    ("trailing-comment", f"{MD5[1]} # seen\n", f"in.txt:1: bad md5 value '{MD5[1]} # seen': need 32 hex digits"),
    ("sha1-in-md5-list", "\n\n" + "0" * 40 + "\n", "in.txt:3: bad md5 value '" + "0" * 40 + "': need 32 hex digits"),
    ("line-too-long", f"{MD5[1]}\n" + "a" * 65 + "\n", "in.txt:2: line of 66 characters: at most 64"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES])
def test_lines_bad(text: str, message: str) -> None:
    with pytest.raises(FormatError) as info:
        list(read_lines(text, type_="md5", source="in.txt", max_line_chars=64))
    assert str(info.value) == message


def test_lines_skip_bad() -> None:
    errors: list[ProtocolError] = []
    assert list(read_lines(f"zz\n{MD5[1]}\nyy\n", type_="md5", errors=errors)) == [Entry.add("md5", MD5[1])]
    assert [(e.line, e.reason) for e in errors] == [
        (1, "bad md5 value 'zz': need 32 hex digits"),
        (3, "bad md5 value 'yy': need 32 hex digits"),
    ]


# -- JSON lines -----------------------------------------------------------------------------


def test_jsonl_reads_plain_objects() -> None:
    text = (
        json.dumps({"type": "MD5", "value": MD5[1].upper(), "labels": ["b:2", "a:1", "b:2"]})
        + "\n\n"
        + json.dumps({"value": MD5[2], "type": "md5"})
        + "\n"
    )
    assert list(read_jsonl(text)) == [Entry.add("md5", MD5[1], ["a:1", "b:2"]), Entry.add("md5", MD5[2])]


def test_jsonl_writes_the_record_json() -> None:
    record = Record(
        "md5", MD5[1], True, ("x:1",), (Contributor("a.example", "csam", ("x:1",)),), (OpinionOf("b.example", "d", "true_positive"),)
    )
    (line,) = write_jsonl([record])
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert json.loads(line) == record.to_json_obj()
    assert line == json.dumps(record.to_json_obj(), sort_keys=True, separators=(",", ":")) + "\n"


@given(unique_records())
def test_jsonl_round_trip(records: list[Record]) -> None:
    text = "".join(write_jsonl(records))
    assert list(read_jsonl(text)) == added(records)
    assert list(read_jsonl(text, inactive="remove")) == [
        Entry.add(r.type, r.value, r.labels) if r.active else Entry.remove(r.type, r.value) for r in records
    ]


BAD_JSONL = [
    ("not-json", "{", "in.jsonl:1: not JSON: Expecting property name enclosed in double quotes (column 2)"),
    ("nan", '{"type":"md5","value":NaN}', "in.jsonl:1: NaN is not JSON"),
    ("array", "[]", "in.jsonl:1: expected an object, got []"),
    ("missing-type", f'{{"value":"{MD5[1]}"}}', "in.jsonl:1: wrong keys: missing ['type']"),
    ("misspelt-labels", f'{{"type":"md5","value":"{MD5[1]}","lables":[]}}', "in.jsonl:1: wrong keys: unknown ['lables']"),
    ("labels-string", f'{{"type":"md5","value":"{MD5[1]}","labels":"a"}}', "in.jsonl:1: labels must be an array, not 'a'"),
    ("bad-label", f'{{"type":"md5","value":"{MD5[1]}","labels":["A"]}}', "in.jsonl:1: bad label 'A': must match ^[a-z0-9][a-z0-9._:/-]{0,63}$"),
    ("label-not-string", f'{{"type":"md5","value":"{MD5[1]}","labels":[1]}}', "in.jsonl:1: bad label 1: must match ^[a-z0-9][a-z0-9._:/-]{0,63}$"),
    ("value-number", '{"type":"md5","value":5}', "in.jsonl:1: bad md5 value 5: need 32 hex digits"),
    ("type-unknown", f'{{"type":"tlsh","value":"{MD5[1]}"}}', "in.jsonl:1: unknown hash type 'tlsh'; known: md5, sha1, sha256, pdq, photodna"),
    ("active-number", f'{{"type":"md5","value":"{MD5[1]}","active":0}}', "in.jsonl:1: active must be true or false, not 0"),
    ("huge-int", '{"type":"md5","value":' + "9" * 5000 + "}", None),
    ("line-too-long", '{"type":"md5","value":"' + "a" * 200 + '"}', "in.jsonl:1: line of 225 characters: at most 128"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_JSONL], ids=[c[0] for c in BAD_JSONL])
def test_jsonl_bad(text: str, message: str | None) -> None:
    with pytest.raises(FormatError) as info:
        list(read_jsonl(text, source="in.jsonl", max_line_chars=128 if message and "line of" in message else 10_000))
    if message is None:  # Python's message for an integer past its digit limit: just the line
        assert str(info.value).startswith("in.jsonl:1: not JSON: ")
    else:
        assert str(info.value) == message


def test_jsonl_skip_bad() -> None:
    errors: list[ProtocolError] = []
    text = f'{{"type":"md5","value":"{MD5[1]}"}}\n{{\n{{"type":"md5","value":"{MD5[2]}","x":1}}\n{{"type":"md5","value":"{MD5[3]}"}}\n'
    assert list(read_jsonl(text, errors=errors)) == [Entry.add("md5", MD5[1]), Entry.add("md5", MD5[3])]
    assert [e.line for e in errors] == [2, 3]


def test_jsonl_inactive_option_is_checked() -> None:
    with pytest.raises(ValueError):
        list(read_jsonl("", inactive="delete"))  # type: ignore[arg-type]
