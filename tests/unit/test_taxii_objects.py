"""The TAXII page writer (``ObjectWriter``) builds exactly what ``formats.stix.indicator``
builds for a log's own record (``stix_indicator``, the reference), and stix2 accepts it
strictly; Accept headers and query parameters parse as the tables say."""

from __future__ import annotations

import pytest
import stix2
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from hashfed.federation.http.taxii_query import (
    MAX_CURSOR,
    MAX_LIMIT,
    MAX_LIMIT_TEXT,
    ObjectWriter,
    TaxiiError,
    accepts_taxii,
    parse_query,
    stix_indicator,
)
from hashfed.federation.store.indicators import (
    IndicatorRow,
    _indicator_uuid_bytes,
    _stix_id,
    indicator_uuid,
)

LABELS = st.lists(st.from_regex(r"[a-z0-9][a-z0-9:]{0,8}", fullmatch=True), max_size=3, unique=True).map(
    lambda ls: tuple(sorted(ls))
)


@given(
    kind=st.sampled_from([("md5", 32), ("sha1", 40), ("sha256", 64), ("pdq", 64), ("photodna", 288)]),
    n=st.integers(0, 2**64),
    labels=LABELS,
    revoked=st.booleans(),
    created_ms=st.integers(1_600_000_000_000, 1_900_000_000_000),
    later_ms=st.integers(0, 10**9),
    generation=st.integers(0, 3),
)
def test_page_writer_equals_the_reference(kind, n, labels, revoked, created_ms, later_ms, generation) -> None:  # type: ignore[no-untyped-def]
    hash_type, digits = kind
    value = f"{n:0{digits}x}"[-digits:]
    uid = indicator_uuid("a.example/default", hash_type, value, generation)
    row = IndicatorRow(
        type=hash_type,
        value=value,
        stix_id=_stix_id(uid.bytes),
        labels=() if revoked else labels,
        revoked=revoked,
        created_ms=created_ms,
        modified_ms=created_ms + later_ms,
        added_us=created_ms * 1000,
    )
    assert row.stix_id == f"indicator--{uid}"
    fast = ObjectWriter("a.example", "default")(row)
    assert fast == stix_indicator(row, "a.example", "default")
    stix2.parse(fast, allow_custom=False)


ACCEPT = {
    "taxii 2.1": ("application/taxii+json;version=2.1", True),
    "spaces and case": ("Application/TAXII+json ; version=2.1", True),
    "no version": ("application/taxii+json", True),
    "in a list": ("application/json, application/taxii+json;version=2.1", True),
    "refused with q=0": ("application/taxii+json;version=2.1;q=0", False),
    "taxii 2.0": ("application/taxii+json;version=2.0", False),
    "stix": ("application/stix+json;version=2.1", False),
    "wildcard": ("*/*", False),
    "json": ("application/json", False),
    "none": (None, False),
}


@pytest.mark.parametrize("name", list(ACCEPT), ids=list(ACCEPT))
def test_accept(name: str) -> None:
    header, expected = ACCEPT[name]
    assert accepts_taxii(header) is expected



_LIMIT_RANGE = f"limit must be a whole number from 0 to {MAX_LIMIT_TEXT}, not "
_NEXT_RANGE = f"next must be a whole number from 0 to {MAX_CURSOR}, not "

BAD_QUERIES = {
    "limit zero": ({"limit": "0"}, "limit must be at least 1"),
    "limit sign": ({"limit": "+5"}, _LIMIT_RANGE + "'+5'"),
    "limit text": ({"limit": "ten"}, _LIMIT_RANGE + "'ten'"),
    "limit leading zero": ({"limit": "05"}, _LIMIT_RANGE + "'05'"),
    "limit superscript two": ({"limit": "\u00b2"}, _LIMIT_RANGE + repr("\u00b2")),
    "limit arabic-indic three": ({"limit": "\u0663"}, _LIMIT_RANGE + repr("\u0663")),
    "limit 5000 digits": ({"limit": "9" * 5000}, None),
    "limit twice": (MultiDict([("limit", "1"), ("limit", "2")]), "limit is given more than once"),
    "next text": ({"next": "abc"}, _NEXT_RANGE + "'abc'"),
    "next negative": ({"next": "-1"}, _NEXT_RANGE + "'-1'"),
    "next fullwidth digit": ({"next": "\uff17"}, _NEXT_RANGE + repr("\uff17")),
    "next past sqlite": ({"next": str(2**63)}, _NEXT_RANGE + repr(str(2**63))),
    "added_after date only": ({"added_after": "2026-01-01"}, None),
    "added_after offset": ({"added_after": "2026-01-01T00:00:00+01:00"}, None),
    "added_after month 13": ({"added_after": "2026-13-01T00:00:00Z"}, None),
    "match id not stix": ({"match[id]": "indicator-1"}, None),
    "match id empty item": ({"match[id]": "indicator--00000000-0000-0000-0000-000000000000,"}, None),
    "match type bad": ({"match[type]": "Indicator!"}, None),
    "match version bad": ({"match[version]": "latest"}, None),
}


@pytest.mark.parametrize("name", list(BAD_QUERIES), ids=list(BAD_QUERIES))
def test_bad_queries_are_400(name: str) -> None:
    params, description = BAD_QUERIES[name]
    with pytest.raises(TaxiiError) as caught:
        parse_query(MultiDictProxy(MultiDict(params)))
    assert caught.value.status == 400
    if description is not None:
        assert caught.value.description == description
    assert len(caught.value.description) < 200  # a 5,000-digit value is not echoed


def test_good_queries() -> None:
    parsed = parse_query(MultiDictProxy(MultiDict({"limit": "999999", "added_after": "2026-01-01T00:00:00.5Z", "next": "7"})))
    assert parsed.limit == MAX_LIMIT and parsed.after_us == 1767225600_500000 and not parsed.nothing
    assert parse_query(MultiDictProxy(MultiDict({"match[type]": "malware,tool"}))).nothing
    assert parse_query(MultiDictProxy(MultiDict({"match[version]": "first"}))).modified_ms is None
    assert parse_query(MultiDictProxy(MultiDict({"match[version]": "2026-01-01T00:00:00.001Z"}))).modified_ms == (1767225600001,)
    assert parse_query(MultiDictProxy(MultiDict({"match[id]": "malware--00000000-0000-4000-8000-000000000000"}))).nothing
    assert parse_query(MultiDictProxy(MultiDict({"match[foo]": "bar"}))) == parse_query(MultiDictProxy(MultiDict()))


@given(
    log_id=st.text(min_size=1, max_size=40),
    value=st.text(max_size=70),
    generation=st.integers(0, 3),
)
def test_the_folds_id_bytes_are_uuid5s(log_id: str, value: str, generation: int) -> None:
    assert _indicator_uuid_bytes(log_id, "md5", value, generation) == indicator_uuid(log_id, "md5", value, generation).bytes
