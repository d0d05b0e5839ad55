"""Names of PROTOCOL §1: org ids, collections, log ids, labels."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import (
    COLLECTION_RE,
    LABEL_RE,
    ORG_RE,
    check_collection,
    check_label,
    check_org,
    inert,
    make_log_id,
    parse_log_id,
)

orgs = st.from_regex(ORG_RE, fullmatch=True)
collections = st.from_regex(COLLECTION_RE, fullmatch=True)
labels = st.from_regex(LABEL_RE, fullmatch=True)


def _reference_is_org(s: str) -> bool:
    """PROTOCOL §1's org pattern, spelled out without a regex."""
    inner = set(string.ascii_lowercase + string.digits + ".-")
    ends = set(string.ascii_lowercase + string.digits)
    return 1 <= len(s) <= 63 and set(s) <= inner and s[0] in ends and s[-1] in ends


def _reference_is_collection(s: str) -> bool:
    rest = set(string.ascii_lowercase + string.digits + "_-")
    return 1 <= len(s) <= 32 and s[0] in string.ascii_lowercase + string.digits and set(s) <= rest


def _reference_is_label(s: str) -> bool:
    rest = set(string.ascii_lowercase + string.digits + "._:/-")
    return 1 <= len(s) <= 64 and s[0] in string.ascii_lowercase + string.digits and set(s) <= rest


GOOD = [
    (check_org, "acme.example"),
    (check_org, "a"),
    (check_org, "0"),
    (check_org, "a-b.c-d"),
    (check_org, "a" * 63),
    (check_collection, "csam"),
    (check_collection, "a"),
    (check_collection, "ncii_2024-q1"),
    (check_collection, "a" * 32),
    (check_label, "ncmec:a1"),
    (check_label, "a"),
    (check_label, "tag:x/y.z_w-v"),
    (check_label, "a" * 64),
]


@pytest.mark.parametrize(("check", "name"), GOOD, ids=[f"{c.__name__}-{n[:12]}" for c, n in GOOD])
def test_good_names_are_returned_unchanged(check, name) -> None:
    assert check(name) is name


BAD = [
    ("org-empty", check_org, ""),
    ("org-upper", check_org, "Acme.example"),
    ("org-leading-dot", check_org, ".acme"),
    ("org-trailing-dot", check_org, "acme."),
    ("org-leading-hyphen", check_org, "-acme"),
    ("org-trailing-hyphen", check_org, "acme-"),
    ("org-underscore", check_org, "ac_me"),
    ("org-slash", check_org, "acme/csam"),
    ("org-64-chars", check_org, "a" * 64),
    ("org-trailing-newline", check_org, "acme\n"),
    ("org-space", check_org, "ac me"),
    ("org-unicode-digit", check_org, "acme\u0661"),
    ("org-unicode-letter", check_org, "acm\u00e9"),
    ("org-not-str", check_org, 7),
    ("org-bytes", check_org, b"acme"),
    ("collection-empty", check_collection, ""),
    ("collection-upper", check_collection, "CSAM"),
    ("collection-leading-underscore", check_collection, "_csam"),
    ("collection-dot", check_collection, "cs.am"),
    ("collection-33-chars", check_collection, "a" * 33),
    ("collection-trailing-newline", check_collection, "csam\n"),
    ("collection-none", check_collection, None),
    ("label-empty", check_label, ""),
    ("label-upper", check_label, "NCMEC:a1"),
    ("label-leading-colon", check_label, ":a1"),
    ("label-space", check_label, "ncmec a1"),
    ("label-quote", check_label, 'a"b'),
    ("label-backslash", check_label, "a\\b"),
    ("label-65-chars", check_label, "a" * 65),
    ("label-trailing-newline", check_label, "a1\n"),
    ("label-list", check_label, ["a1"]),
]


@pytest.mark.parametrize(("check", "name"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_names_are_protocol_errors_naming_the_value(check, name) -> None:
    with pytest.raises(ProtocolError) as info:
        check(name)
    assert type(info.value) is ProtocolError
    assert repr(name)[:40] in str(info.value)


@given(st.text(alphabet=string.ascii_letters + string.digits + "._:/- \n\u0661\u00e9", max_size=70))
def test_checks_agree_with_the_patterns_spelled_out(s: str) -> None:
    for check, reference in [
        (check_org, _reference_is_org),
        (check_collection, _reference_is_collection),
        (check_label, _reference_is_label),
    ]:
        if reference(s):
            assert check(s) == s
        else:
            with pytest.raises(ProtocolError):
                check(s)


@given(orgs, collections)
def test_log_id_round_trip(org: str, collection: str) -> None:
    log_id = make_log_id(org, collection)
    assert log_id == f"{org}/{collection}"
    assert parse_log_id(log_id) == (org, collection)


def test_parse_log_id_example() -> None:
    assert parse_log_id("acme.example/csam") == ("acme.example", "csam")


BAD_LOG_IDS = [
    ("no-slash", "acme.example"),
    ("two-slashes", "acme.example/csam/x"),
    ("empty-org", "/csam"),
    ("empty-collection", "acme.example/"),
    ("bad-org", "Acme/csam"),
    ("bad-collection", "acme/cs.am"),
    ("trailing-newline", "acme/csam\n"),
    ("empty", ""),
    ("not-str", 1),
]


@pytest.mark.parametrize("log_id", [c[1] for c in BAD_LOG_IDS], ids=[c[0] for c in BAD_LOG_IDS])
def test_bad_log_ids_are_protocol_errors(log_id) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_log_id(log_id)
    assert type(info.value) is ProtocolError


@pytest.mark.parametrize(
    ("org", "collection"),
    [("Acme", "csam"), ("acme", "cs/am"), ("acme/x", "csam"), ("", "csam")],
    ids=["bad-org", "slash-in-collection", "slash-in-org", "empty-org"],
)
def test_make_log_id_checks_both_parts(org: str, collection: str) -> None:
    with pytest.raises(ProtocolError) as info:
        make_log_id(org, collection)
    assert type(info.value) is ProtocolError


def test_long_bad_values_are_shortened_in_messages() -> None:
    with pytest.raises(ProtocolError) as info:
        check_label("A" * 10_000)
    assert len(str(info.value)) < 200


# -- inert: text from elsewhere, safe for a terminal or a log ----------------------------------

INERT_CASES = [
    ("plain", "peer says no", "peer says no"),
    ("csi", "\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
    ("osc title", "\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
    ("c1 csi", "a\x9bb", "a\\x9bb"),
    ("new log line", "ok\r\n2026 ERROR forged", "ok\\r\\n2026 ERROR forged"),
    ("bidi override", "gnp\u202e.exe", "gnp\\u202e.exe"),
    ("del and nul", "\x7f\x00", "\\x7f\\x00"),
    ("printable unicode kept", "café ✓", "café ✓"),
]


@pytest.mark.parametrize(("text", "shown"), [c[1:] for c in INERT_CASES], ids=[c[0] for c in INERT_CASES])
def test_inert_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert inert(text) == shown


def test_inert_is_bounded_and_never_cuts_an_escape() -> None:
    assert inert("x" * 300) == "x" * 300
    assert inert("x" * 301) == "x" * 297 + "..."
    assert inert("\x1b" * 10, 10) == "\\x1b..."


@given(st.text(), st.integers(min_value=3, max_value=400))
def test_inert_output_is_printable_and_within_its_bound(text: str, bound: int) -> None:
    shown = inert(text, bound)
    assert shown.isprintable() and len(shown) <= bound
