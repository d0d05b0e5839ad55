"""hashfed_tx's reading of feed records (no sockets): which records become which signals,
which are deletions, the opinions ThreatExchange aggregates, bad records named exactly;
and that the extension imports nothing from ``hashfed`` (it is installed where the server
is not)."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
from threatexchange.exchanges.fetch_state import AggregateSignalOpinionCategory as Agg

import hashfed_tx
from hashfed_tx.signals import Contributor, HashfedSignalMetadata, RecordError, RecordReader

ALL = ("video_md5", "video_sha256", "pdq", "photodna")


def record(type_: str = "md5", value: str = "a" * 32, *, active: bool = True, **extra: object) -> dict:
    base: dict = {
        "type": type_,
        "value": value,
        "active": active,
        "labels": ["x:1"],
        "contributors": [{"org": "a.example", "collection": "default", "labels": ["x:1"]}],
        "opinions": [],
        "retracted_by": [],
    }
    base.update(extra)
    return base


def test_types_map_to_signal_types_and_unknown_ones_are_left_out() -> None:
    records = [record("md5"), record("sha256", "b" * 64), record("pdq", "c" * 64),
               record("sha1", "d" * 40), record("photodna", "0," * 143 + "0")]
    assert list(RecordReader(ALL).read(records)) == [
        ("video_md5", "a" * 32), ("video_sha256", "b" * 64), ("pdq", "c" * 64), ("photodna", "0," * 143 + "0"),
    ]
    assert list(RecordReader(["pdq"]).read(records)) == [("pdq", "c" * 64)]


def test_inactive_records_are_deletions() -> None:
    gone = record(active=False, contributors=[], retracted_by=[{"org": "a.example", "collection": "default"}])
    assert RecordReader(ALL).read([gone]) == {("video_md5", "a" * 32): None}


OPINIONS = [
    ("vouched", [], Agg.POSITIVE_CLASS),
    ("vouched and confirmed", ["true_positive"], Agg.POSITIVE_CLASS),
    ("vouched and disputed", ["false_positive"], Agg.DISPUTED),
    ("both", ["true_positive", "false_positive"], Agg.DISPUTED),
]


@pytest.mark.parametrize(("said", "category"), [o[1:] for o in OPINIONS], ids=[o[0] for o in OPINIONS])
def test_opinions_aggregate_as_threatexchange_reads_them(said: list[str], category: Agg) -> None:
    opinions = [{"org": f"o{i}.example", "collection": "default", "opinion": s} for i, s in enumerate(said)]
    (metadata,) = RecordReader(ALL).read([record(opinions=opinions)]).values()
    assert metadata is not None
    aggregate = metadata.get_as_aggregate_opinion()
    assert (aggregate.category, aggregate.tags) == (category, {"x:1"})


def test_contributors_are_shared_and_pickle_round_trips() -> None:
    reader = RecordReader(ALL)
    updates = reader.read([record(value=f"{i:032x}") for i in range(3)])
    first, *rest = updates.values()
    assert first is not None and all(r is not None and r.contributors[0] is first.contributors[0] for r in rest)
    assert pickle.loads(pickle.dumps(updates)) == updates


def test_metadata_needs_a_contributor() -> None:
    with pytest.raises(ValueError, match="at least one contributor"):
        HashfedSignalMetadata(())
    assert str(HashfedSignalMetadata((Contributor("a.example", "c", ()),))) == "POSITIVE_CLASS by=a.example/c"


BAD = [
    ("not an object", [1], "changes[0]: a record must be an object"),
    ("no type", [{"value": "a", "active": True}], "changes[0]: 'type'"),
    ("active not a boolean", [record(active=1)], "changes[0]: type and value must be strings, active a boolean"),
    ("contributors not a list", [record(contributors={})], "changes[0]: contributors must be a list"),
    ("a contributor without labels", [record(contributors=[{"org": "a", "collection": "c"}])], "changes[0]: 'labels'"),
    ("labels not strings", [record(contributors=[{"org": "a", "collection": "c", "labels": [1]}])],
     "changes[0]: a contributor's labels must be a list of strings"),
    ("an unknown opinion", [record(opinions=[{"org": "a", "collection": "c", "opinion": "maybe"}])],
     "changes[0]: unknown opinion 'maybe'"),
    ("org not a string", [record(), record(opinions=[{"org": 1, "collection": "c", "opinion": "true_positive"}])],
     "changes[1]: org must be a string"),
]


@pytest.mark.parametrize(("records", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_records_are_named(records: list, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        RecordReader(ALL).read(records)
    assert str(caught.value) == message


def test_the_extension_imports_nothing_from_hashfed() -> None:
    for path in Path(hashfed_tx.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            assert not [n for n in names if n == "hashfed" or n.startswith("hashfed.")], path.name
