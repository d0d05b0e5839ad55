"""formats.csv: the CLI's CSV import, plus named columns, any-case types and a fixed type."""

from __future__ import annotations

import csv as stdlib_csv
import io

import pytest
from hypothesis import given

from hashfed.formats._common import FormatError
from hashfed.formats.csv import read_csv, write_csv
from hashfed.keys.errors import ProtocolError
from hashfed.protocol.entries import Entry
from hashfed.protocol.records import Contributor, Record
from tests.unit.formats_strategies import added, unique_records

MD5 = [f"{n:032x}" for n in range(10)]
SHA256 = f"{2:064x}"


def entries(text: str, **kwargs) -> list[Entry]:
    return list(read_csv(text, source="in.csv", **kwargs))


def test_the_cli_forms() -> None:
    """The file of the CLI's import test reads as it always has."""
    text = (
        "type,value,labels\n"
        "# a comment\n"
        "\n"
        f"md5, {MD5[1].upper()} ,ncmec:a1;  ncmec:b2 ;\n"
        f"sha256,{SHA256}\n"
        f'md5,{MD5[3]},"x:1;\n y:2"\n'
        f"md5,{MD5[4]},\n"
    )
    assert entries(text) == [
        Entry.add("md5", MD5[1], ["ncmec:a1", "ncmec:b2"]),
        Entry.add("sha256", SHA256),
        Entry.add("md5", MD5[3], ["x:1", "y:2"]),
        Entry.add("md5", MD5[4]),
    ]


def test_lines_as_an_iterable_read_like_a_string() -> None:
    text = f"md5,{MD5[1]},a\r\nmd5,{MD5[2]}\r\n"
    assert entries(io.StringIO(text, newline="")) == entries(text) == [
        Entry.add("md5", MD5[1], ["a"]),
        Entry.add("md5", MD5[2]),
    ]


def test_type_names_in_any_case() -> None:
    assert entries(f"MD5,{MD5[1]}\n Sha256 ,{SHA256}\n") == [Entry.add("md5", MD5[1]), Entry.add("sha256", SHA256)]


def test_labels_split_at_semicolons_and_commas() -> None:
    assert entries(f'md5,{MD5[1]},"b:2,a:1;c:3, a:1"\n') == [Entry.add("md5", MD5[1], ["a:1", "b:2", "c:3"])]


def test_named_columns_in_any_order_extra_columns_ignored() -> None:
    text = (
        "# exported by a tool\n"
        "Source,TAGS,hash,HashType\n"
        f"x,a:1;b:2,{MD5[1].upper()},MD5\n"
        f"y,,{SHA256},sha256\n"
    )
    assert entries(text, columns={"type": "HashType", "value": "Hash", "labels": "Tags"}) == [
        Entry.add("md5", MD5[1], ["a:1", "b:2"]),
        Entry.add("sha256", SHA256),
    ]


def test_fixed_type_positional_and_named() -> None:
    assert entries(f"value,labels\n{MD5[1]},a:1\n{MD5[2]}\n", type_="MD5") == [
        Entry.add("md5", MD5[1], ["a:1"]),
        Entry.add("md5", MD5[2]),
    ]
    assert entries(f"id,hash\n1,{MD5[1]}\n", type_="md5", columns={"value": "hash"}) == [Entry.add("md5", MD5[1])]


def test_export_reads_back_by_its_header() -> None:
    record = Record("md5", MD5[1], True, ("x:1",), (Contributor("a.example", "csam", ("x:1",)),), ())
    text = "".join(write_csv([record]))
    assert text == f"type,value,labels,contributors\nmd5,{MD5[1]},x:1,a.example/csam\n"
    assert entries(text) == [Entry.add("md5", MD5[1], ["x:1"])]


def test_write_matches_the_cli_export() -> None:
    records = [
        Record("md5", MD5[1], True, ("x:1", "y:2"), (Contributor("a.example", "default", ("x:1", "y:2")),), ()),
        Record("sha256", SHA256, True, (), (Contributor("a.example", "csam", ()), Contributor("b.example", "x", ())), ()),
    ]
    assert "".join(write_csv(records)) == (
        "type,value,labels,contributors\n"
        f"md5,{MD5[1]},x:1;y:2,a.example/default\n"
        f"sha256,{SHA256},,a.example/csam;b.example/x\n"
    )
    assert "".join(write_csv(records[:1], header=False)) == f"md5,{MD5[1]},x:1;y:2,a.example/default\n"


def test_write_streams_in_chunks() -> None:
    records = [Record("md5", f"{n:032x}", True, (), (), ()) for n in range(5000)]
    chunks = list(write_csv(records))
    assert len(chunks) > 1
    assert len(list(stdlib_csv.reader(io.StringIO("".join(chunks))))) == 5001


@given(unique_records())
def test_round_trip(records: list[Record]) -> None:
    """Write then read: every active record comes back as its add."""
    assert list(read_csv("".join(write_csv(r for r in records if r.active)))) == added(records)


GOOD = f"md5,{MD5[1]},x:1\nsha256,{SHA256}\n"
BAD_ROWS = [
    ("four-fields", GOOD + "md5,x,y,z\n", "in.csv:3: expected type,value[,labels], got 4 fields"),
    ("bad-value", GOOD + "\n# c\nmd5,nothex\n", "in.csv:5: bad md5 value 'nothex': need 32 hex digits"),
    ("bad-label", GOOD + f"md5,{MD5[3]},ok:1;NOT OK\n", "in.csv:3: bad label 'NOT OK': must match ^[a-z0-9][a-z0-9._:/-]{0,63}$"),
    ("unknown-type", f"tlsh,{MD5[1]}\n", "in.csv:1: unknown hash type 'tlsh'; known: md5, sha1, sha256, pdq, photodna"),
    ("line-after-quoted-newline", GOOD + f'md5,{MD5[3]},"x:1;\n y:2"\nmd5,bad\n', "in.csv:5: bad md5 value 'bad': need 32 hex digits"),
    ("one-field", GOOD + f"{MD5[3]}\n", "in.csv:3: expected type,value[,labels], got 1 fields"),
    ("17-labels", f"md5,{MD5[3]},{';'.join(f'l:{i}' for i in range(17))}\n", "in.csv:1: 17 labels: at most 16 allowed"),
    ("header-not-on-line-1", f"md5,{MD5[1]}\ntype,value\n", "in.csv:2: unknown hash type 'type'; known: md5, sha1, sha256, pdq, photodna"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_rows(text: str, message: str) -> None:
    with pytest.raises(FormatError) as info:
        entries(text)
    assert str(info.value) == message
    assert isinstance(info.value, ProtocolError) and info.value.line == int(message.split(":")[1])


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_skip_bad_collects_and_goes_on(text: str, message: str) -> None:
    errors: list[ProtocolError] = []
    list(read_csv(text, source="in.csv", errors=errors))
    assert [str(e) for e in errors] == [message]


def test_skip_bad_keeps_the_good_rows() -> None:
    errors: list[ProtocolError] = []
    text = f"md5,{MD5[1]}\nmd5,zz\nmd5,{MD5[2]},a;B\nmd5,{MD5[3]}\n"
    assert entries(text, errors=errors) == [Entry.add("md5", MD5[1]), Entry.add("md5", MD5[3])]
    assert [e.line for e in errors] == [2, 3]


BAD_FILES = [
    ("field-too-large", GOOD + "md5," + "a" * 200_000 + "\n", {}, "in.csv:3: not CSV: field larger than field limit (131072)"),
    ("stray-quote", GOOD + f'md5,"{MD5[3]}"x\n', {}, "in.csv:3: not CSV: ',' expected after '\"'"),
    ("unterminated-quote", GOOD + f'md5,"{MD5[3]}\n', {}, "in.csv:3: not CSV: unexpected end of data"),
    ("line-too-long", GOOD + "#" + "x" * 100 + "\n", {"max_line_chars": 100}, "in.csv:3: line of 102 characters: at most 100"),
    (
        "column-missing",
        "hash,tags\n",
        {"columns": {"type": "kind", "value": "hash"}},
        "in.csv:1: header has no column 'kind' (for type): it has ['hash', 'tags']",
    ),
    (
        "column-twice",
        "hash,Hash,kind\n",
        {"columns": {"type": "kind", "value": "hash"}},
        "in.csv:1: header names column 'hash' (for value) 2 times",
    ),
    (
        "row-shorter-than-header",
        f"kind,hash,tags\nmd5,{MD5[1]}\n",
        {"columns": {"type": "kind", "value": "hash"}},
        "in.csv:2: expected 3 fields as the header has, got 2 fields",
    ),
]


@pytest.mark.parametrize(("text", "kwargs", "message"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_files(text: str, kwargs: dict, message: str) -> None:
    """What spoils a file raises even in skip-bad mode (a bad header, broken quoting);
    a short row is a bad row."""
    errors: list[ProtocolError] = []
    try:
        list(read_csv(text, source="in.csv", errors=errors, **kwargs))
    except FormatError as exc:
        errors.append(exc)
    assert [str(e) for e in errors] == [message]


BAD_CALLS = [
    ("unknown-column-field", {"columns": {"hash": "x", "value": "v"}}, ValueError),
    ("no-value-column", {"columns": {"type": "t"}}, ValueError),
    ("type-column-and-fixed-type", {"columns": {"type": "t", "value": "v"}, "type_": "md5"}, ValueError),
    ("unknown-fixed-type", {"type_": "tlsh"}, ProtocolError),
]


@pytest.mark.parametrize(("kwargs", "error"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_calls(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        list(read_csv(f"t,v\nmd5,{MD5[1]}\n", **kwargs))
