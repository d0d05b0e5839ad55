"""The hash-type registry of PROTOCOL §3: normalising user input, checking batch values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashfed.keys.errors import ProtocolError, VerificationError
from hashfed.protocol.hashtypes import (
    HASH_TYPES,
    PDQ_MATCH_DISTANCE,
    HashType,
    check_known,
    check_normalised,
    normalise,
    parse_hash_type,
)

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def test_registry_is_the_table_of_the_protocol() -> None:
    assert {name: row.hex_digits for name, row in HASH_TYPES.items()} == {
        "md5": 32,
        "sha1": 40,
        "sha256": 64,
        "pdq": 64,
        "photodna": 288,
    }
    assert all(row.name == name and row.description for name, row in HASH_TYPES.items())
    assert PDQ_MATCH_DISTANCE == 31


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        HASH_TYPES["crc32"] = HashType("crc32", 8, "CRC-32")  # type: ignore[index]


def test_a_new_row_brings_its_own_check() -> None:
    row = HashType("crc32", 8, "CRC-32 of the file's bytes")
    assert row.pattern.fullmatch("deadbeef")
    assert not row.pattern.fullmatch("DEADBEEF")
    assert not row.pattern.fullmatch("deadbee")


NORMALISED = [
    ("already-normal", "md5", MD5, MD5),
    ("upper-case", "md5", MD5.upper(), MD5),
    ("mixed-case", "md5", "D41d8CD98f00B204e9800998ECF8427E", MD5),
    ("surrounding-spaces", "md5", f"  {MD5}  ", MD5),
    ("tabs-and-newlines", "md5", f"\t{MD5.upper()}\r\n", MD5),
    ("no-break-space", "md5", f"\u00a0{MD5}\u00a0", MD5),
    ("sha1", "sha1", "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ("sha256", "sha256", "E3B0" + "0" * 60, "e3b0" + "0" * 60),
    ("pdq", "pdq", "F" * 64, "f" * 64),
    ("photodna", "photodna", "A" * 288, "a" * 288),
]


@pytest.mark.parametrize(("type_", "raw", "expected"), [c[1:] for c in NORMALISED], ids=[c[0] for c in NORMALISED])
def test_normalise(type_: str, raw: str, expected: str) -> None:
    assert normalise(type_, raw) == expected
    assert check_normalised(type_, expected) is None


NOT_NORMALISABLE = [
    ("too-short", "md5", MD5[:-1]),
    ("too-long", "md5", MD5 + "0"),
    ("sha256-length-for-md5", "md5", "0" * 64),
    ("non-hex-letter", "md5", "g" + MD5[1:]),
    ("inner-space", "md5", MD5[:16] + " " + MD5[16:]),
    ("hex-prefix", "md5", "0x" + MD5[2:]),
    ("fullwidth-digits", "md5", "\uff10" * 32),
    ("arabic-indic-digits", "md5", "\u0661" * 32),
    ("kelvin-sign", "md5", "\u212a" * 32),
    ("empty", "md5", ""),
    ("only-space", "md5", "   "),
    ("none", "md5", None),
    ("bytes", "md5", MD5.encode()),
    ("unknown-type", "crc32", "deadbeef"),
    ("type-upper-case", "MD5", MD5),
    ("type-not-str", ["md5"], MD5),
    ("photodna-odd-length", "photodna", "a" * 287),
]


@pytest.mark.parametrize(("type_", "raw"), [c[1:] for c in NOT_NORMALISABLE], ids=[c[0] for c in NOT_NORMALISABLE])
def test_normalise_rejects(type_, raw) -> None:
    with pytest.raises(ProtocolError) as info:
        normalise(type_, raw)
    assert type(info.value) is ProtocolError


NOT_NORMALISED = [
    ("upper-case", "md5", MD5.upper(), ProtocolError),
    ("one-upper-digit", "md5", "D" + MD5[1:], ProtocolError),
    ("surrounding-space", "md5", f" {MD5}", ProtocolError),
    ("trailing-newline", "md5", f"{MD5}\n", ProtocolError),
    ("too-short", "sha1", MD5, ProtocolError),
    ("non-hex", "pdq", "g" * 64, ProtocolError),
    ("not-str", "md5", 5, ProtocolError),
    ("unknown-type", "crc32", "deadbeef", VerificationError),
    ("type-upper-case", "MD5", MD5, VerificationError),
    ("type-not-str", 5, MD5, VerificationError),
]


@pytest.mark.parametrize(
    ("type_", "value", "error"), [c[1:] for c in NOT_NORMALISED], ids=[c[0] for c in NOT_NORMALISED]
)
def test_check_normalised_rejects(type_, value, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        check_normalised(type_, value)
    assert type(info.value) is error


def test_check_known_returns_the_row() -> None:
    assert check_known("pdq") is HASH_TYPES["pdq"]
    with pytest.raises(VerificationError):
        check_known("crc32")


@given(
    st.sampled_from(sorted(HASH_TYPES)),
    st.data(),
    st.sampled_from(["", " ", "\t", "\n", " \r\n "]),
    st.sampled_from(["", " ", "\n"]),
)
def test_normalise_round_trip(type_: str, data: st.DataObject, before: str, after: str) -> None:
    digits = HASH_TYPES[type_].hex_digits
    value = data.draw(st.text("0123456789abcdefABCDEF", min_size=digits, max_size=digits))
    normal = normalise(type_, before + value + after)
    assert normal == value.lower()
    check_normalised(type_, normal)
    assert normalise(type_, normal) == normal


TYPE_NAMES = [
    ("registry-name", "md5", "md5"),
    ("upper-case", "MD5", "md5"),
    ("mixed-case", "Sha256", "sha256"),
    ("surrounding-space", "  pdq\t", "pdq"),
    ("photodna-upper", "PHOTODNA", "photodna"),
    ("trailing-newline", "SHA1\n", "sha1"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in TYPE_NAMES], ids=[c[0] for c in TYPE_NAMES])
def test_parse_hash_type(text: str, expected: str) -> None:
    assert parse_hash_type(text) == expected


KNOWN = "known: md5, sha1, sha256, pdq, photodna"
BAD_TYPE_NAMES = [
    ("unknown", "tlsh", f"unknown hash type 'tlsh'; {KNOWN}"),
    ("unknown-shown-stripped", " TLSH ", f"unknown hash type 'TLSH'; {KNOWN}"),
    ("hyphenated", "SHA-256", f"unknown hash type 'SHA-256'; {KNOWN}"),
    ("empty", "", f"unknown hash type ''; {KNOWN}"),
    ("inner-space", "sha 1", f"unknown hash type 'sha 1'; {KNOWN}"),
    # U+212A KELVIN SIGN lower-cases to "k"; a dotless/dotted i likewise: never folded.
    ("non-ascii-fold", "\u0130MD5", f"unknown hash type '\u0130MD5'; {KNOWN}"),
    ("not-str", b"md5", f"unknown hash type b'md5'; {KNOWN}"),
    ("none", None, f"unknown hash type None; {KNOWN}"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_TYPE_NAMES], ids=[c[0] for c in BAD_TYPE_NAMES])
def test_parse_hash_type_rejects(text, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_hash_type(text)
    assert type(info.value) is ProtocolError
    assert str(info.value) == message


@given(st.sampled_from(sorted(HASH_TYPES)), st.data())
def test_parse_hash_type_folds_any_case(name: str, data: st.DataObject) -> None:
    spelled = "".join(data.draw(st.sampled_from([c, c.upper()])) for c in name)
    assert parse_hash_type(spelled) == name


def test_batch_side_stays_strict_on_case() -> None:
    """Folding is for input only: a batch's upper-case type is still unknown there."""
    with pytest.raises(VerificationError):
        check_known("MD5")
    with pytest.raises(ProtocolError):
        normalise("MD5", MD5)
