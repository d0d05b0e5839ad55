"""The hash lists members already hold, in and out (``hashfed import`` and ``export``).

Every form is run as a user runs it (``main([...])`` in-process, real files and a real
store). What the field's own tools say of what we write is checked by those tools: every
STIX object by ``stix2``, every MISP event by PyMISP. A file with a bad line imports nothing
unless ``--skip-bad`` is given, and the error names the line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pymisp
import pytest
import stix2

from tests.helpers import Cli, db_snapshot, md5, sha256

PDQ = "f" * 32 + "0" * 32


def exported(cli: Cli) -> list[list[str]]:
    return list(csv.reader(io.StringIO(cli.ok("export"))))[1:]


# (id, file name, its text, extra import arguments, the rows export gives after publish)
FORMS = [
    (
        "csv with upper-case types",
        "list.csv",
        f"MD5,{md5(1)},ncmec:a1\nSHA256,{sha256(2)}\nPDQ,{PDQ.upper()}\n",
        [],
        [["md5", md5(1), "ncmec:a1"], ["pdq", PDQ, ""], ["sha256", sha256(2), ""]],
    ),
    (
        "csv with a column map",
        "ngo-export.csv",
        f"Id,HashType,Hash,Tags\n1,MD5,{md5(3)},\"ncmec:a1,ngo:x\"\n2,md5,{md5(4)},\n",
        ["--columns", "type=HashType,value=Hash,labels=Tags"],
        [["md5", md5(3), "ncmec:a1;ngo:x"], ["md5", md5(4), ""]],
    ),
    (
        "one hash a line",
        "hashes.txt",
        f"# from the NGO\n{md5(5)}\n\n{md5(6).upper()}\n",
        ["--type", "MD5"],
        [["md5", md5(5), ""], ["md5", md5(6), ""]],
    ),
    (
        "json lines",
        "list.jsonl",
        json.dumps({"type": "md5", "value": md5(7), "labels": ["set:1"]}) + "\n",
        [],
        [["md5", md5(7), "set:1"]],
    ),
    (
        "a STIX 2.1 bundle",
        "bundle.json",
        json.dumps(
            {
                "type": "bundle",
                "id": "bundle--6f1b3d2e-4c5a-4f8b-9a1e-2d3c4b5a6f70",
                "objects": [
                    {
                        "type": "indicator",
                        "spec_version": "2.1",
                        "id": "indicator--0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3",
                        "created": "2026-11-01T00:00:00.000Z",
                        "modified": "2026-11-01T00:00:00.000Z",
                        "pattern": f"[file:hashes.MD5 = '{md5(8)}']",
                        "pattern_type": "stix",
                        "valid_from": "2026-11-01T00:00:00Z",
                        "labels": ["ncmec:a1"],
                    }
                ],
            }
        ),
        [],
        [["md5", md5(8), "ncmec:a1"]],
    ),
    (
        "a MISP event",
        "event.json",
        json.dumps(
            {
                "Event": {
                    "info": "reported hashes",
                    "Attribute": [
                        {"type": "md5", "value": md5(9), "category": "Payload delivery"},
                        {"type": "sha256", "value": sha256(10), "category": "Payload delivery"},
                    ],
                }
            }
        ),
        [],
        [["md5", md5(9), ""], ["sha256", sha256(10), ""]],
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "extra", "rows"), [f[1:] for f in FORMS], ids=[f[0] for f in FORMS]
)
def test_import_forms_members_hold(
    cli: Cli, tmp_path: Path, name: str, text: str, extra: list[str], rows: list[list[str]]
) -> None:
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    out = cli.ok("import", str(source), *extra)
    assert out == f"staged {len(rows)} entries for a.example/default; run 'hashfed publish'\n"
    cli.ok("publish")
    assert [row[:3] for row in exported(cli)] == rows


def test_type_names_in_any_case(cli: Cli) -> None:
    cli.ok("add", "MD5", md5(1).upper())
    cli.ok("publish")
    assert json.loads(cli.ok("lookup", "Md5", md5(1), "--json"))["type"] == "md5"


BAD = [
    # (id, file name, text, extra args, the error line)
    (
        "a bad value, line 3",
        "list.csv",
        f"md5,{md5(1)}\nmd5,{md5(2)}\nmd5,nothex\n",
        [],
        "list.csv:3: ",
    ),
    ("an unknown type", "list.csv", f"md4,{md5(1)}\n", [], "list.csv:1: "),
    ("one hash a line without --type", "hashes.txt", f"{md5(1)}\n", ["--format", "lines"], "needs --type"),
    ("a column map without the value", "a.csv", "H\nx\n", ["--columns", "type=H"], "must name the value"),
    ("a column map for json", "a.jsonl", "{}\n", ["--columns", "value=H"], "--columns is for CSV"),
    ("a broken STIX bundle", "b.json", '{"type": "bundle", "objects": [', [], "b.json:1: not JSON"),
]


@pytest.mark.parametrize(
    ("name", "text", "extra", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_a_bad_file_imports_nothing(
    cli: Cli, tmp_path: Path, name: str, text: str, extra: list[str], message: str
) -> None:
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    before = db_snapshot(cli.home / "hashfed.db")
    code, out, err = cli("import", str(source), *extra)
    assert (code, out) == (2, "")
    assert err.startswith("hashfed: error: ") and message in err and err.count("\n") == 1
    assert db_snapshot(cli.home / "hashfed.db") == before


def test_skip_bad_imports_the_rest_and_counts(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text(f"md5,{md5(1)}\nmd5,nothex\nmd9,{md5(3)}\nmd5,{md5(4)}\n", encoding="utf-8")
    code, out, err = cli("import", str(source), "--skip-bad")
    assert code == 0
    assert out == "staged 2 entries for a.example/default (2 bad skipped); run 'hashfed publish'\n"
    assert [line.split(": ")[1] for line in err.splitlines()] == ["skipped", "skipped"]
    assert "list.csv:2:" in err and "list.csv:3:" in err
    cli.ok("publish")
    assert [row[1] for row in exported(cli)] == [md5(1), md5(4)]


@pytest.fixture
def published(cli: Cli) -> Cli:
    cli.ok("add", "md5", md5(1), "--label", "ncmec:a1")
    cli.ok("add", "pdq", PDQ)
    cli.ok("add", "sha256", sha256(2), "--collection", "other")
    cli.ok("publish")
    return cli


def test_export_stix_is_valid_stix(published: Cli) -> None:
    bundle = json.loads(published.ok("export", "--format", "stix"))
    parsed = stix2.parse(bundle, allow_custom=False)
    patterns = sorted(obj.pattern for obj in parsed.objects)
    assert patterns == sorted(
        [f"[file:hashes.MD5 = '{md5(1)}']", f"[file:hashes.PDQ = '{PDQ}']",
         f"[file:hashes.'SHA-256' = '{sha256(2)}']"]
    )


def test_export_misp_feed_loads_in_pymisp(published: Cli, tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    assert "2 event(s)" in published.ok("export", "--format", "misp", str(feed))
    manifest = json.loads((feed / "manifest.json").read_text())
    values = set()
    for event_uuid in manifest:
        event = pymisp.MISPEvent()
        event.load_file(str(feed / f"{event_uuid}.json"))
        values |= {a.value for a in event.attributes}
    assert {md5(1), sha256(2), PDQ} <= values
    assert (feed / "hashes.csv").read_text().count("\n") >= 2


def test_export_misp_needs_a_folder_and_jsonl_needs_none(published: Cli, tmp_path: Path) -> None:
    code, _out, err = published("export", "--format", "misp")
    assert code == 2 and "needs a DIR" in err
    code, _out, err = published("export", "--format", "jsonl", str(tmp_path / "x"))
    assert code == 2 and "DIR is for misp" in err
    lines = published.ok("export", "--format", "jsonl").splitlines()
    assert sorted(json.loads(line)["value"] for line in lines) == sorted([md5(1), PDQ, sha256(2)])
