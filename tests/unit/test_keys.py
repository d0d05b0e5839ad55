"""Unit and property tests for keys.ed25519 and keys.vkey (PROTOCOL §2)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed import keys
from hashfed.keys import (
    ConfigError,
    ProtocolError,
    Signer,
    VerificationError,
    Verifier,
    key_hash,
)
from hashfed.keys.vkey import parse_signer_key

SEED = bytes(range(32))
ORG = "acme.example"
# RFC 8032 Ed25519 public key of the seed 00 01 .. 1f.
PUBLIC_KEY = bytes.fromhex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
VKEY = "acme.example+6148f0f7+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"

ORG_IDS = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?", fullmatch=True)
SEEDS = st.binary(min_size=32, max_size=32)


def _vkey_of(name: str, payload: bytes, *, hash_over: bytes | None = None) -> str:
    """A vkey written by hand: the hash over ``hash_over`` (default: the payload)."""
    digest = hashlib.sha256(name.encode() + b"\n" + (payload if hash_over is None else hash_over)).digest()
    return f"{name}+{digest[:4].hex()}+{base64.b64encode(payload).decode()}"


# Known answers -------------------------------------------------------------------------------


def test_fixed_seed_gives_the_vkey_computed_by_hand() -> None:
    signer = Signer.from_seed(ORG, SEED)
    expected_hash = hashlib.sha256(b"acme.example\n\x01" + PUBLIC_KEY).digest()[:4]
    expected_vkey = "acme.example+" + expected_hash.hex() + "+" + base64.b64encode(b"\x01" + PUBLIC_KEY).decode()

    assert signer.public_key == PUBLIC_KEY
    assert signer.key_hash == expected_hash
    assert signer.key_id == "acme.example+" + expected_hash.hex()
    assert signer.vkey() == expected_vkey == VKEY
    assert signer.verifier().vkey() == VKEY


def test_key_hash_matches_go_sumdb_note_example() -> None:
    # The example key of golang.org/x/mod/sumdb/note's package documentation.
    vkey_payload = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    assert key_hash("PeterNeumann", vkey_payload[1:]) == bytes.fromhex("c74f20a3")


def test_signature_matches_rfc8032_test_1() -> None:
    signer = Signer.from_seed(
        "rfc8032.example", bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    assert signer.public_key.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert signer.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
        "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


# Signer --------------------------------------------------------------------------------------


def test_generate_gives_fresh_keys_and_from_seed_is_deterministic() -> None:
    assert Signer.generate(ORG).public_key != Signer.generate(ORG).public_key
    assert Signer.from_seed(ORG, SEED).sign(b"m") == Signer.from_seed(ORG, SEED).sign(b"m")


def test_repr_shows_no_private_material() -> None:
    signer = Signer.from_seed(ORG, SEED)
    shown = repr(signer) + str(signer)
    assert "acme.example+6148f0f7" in shown
    for secret in (SEED.hex(), base64.b64encode(SEED).decode(), base64.b64encode(b"\x01" + SEED).decode()):
        assert secret not in shown


def test_signer_and_verifier_are_immutable() -> None:
    signer = Signer.from_seed(ORG, SEED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        signer.name = "evil.example"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        signer.verifier().public_key = bytes(32)  # type: ignore[misc]


BAD_NAMES = [
    ("empty", ""),
    ("upper_case", "Acme.example"),
    ("trailing_dot", "acme.example."),
    ("leading_hyphen", "-acme.example"),
    ("too_long", "a" * 64),
    ("space", "acme example"),
    ("plus", "acme+example"),
    ("slash", "acme.example/csam"),
    ("non_ascii", "acmé.example"),
    ("trailing_newline", "acme.example\n"),
    ("not_a_string", b"acme.example"),
]


@pytest.mark.parametrize("name", [n for _, n in BAD_NAMES], ids=[i for i, _ in BAD_NAMES])
def test_signer_rejects_a_name_that_is_not_an_org_id(name: str) -> None:
    with pytest.raises(ConfigError):
        Signer.from_seed(name, SEED)
    with pytest.raises(ConfigError):
        Signer.generate(name)


@pytest.mark.parametrize("name", [n for _, n in BAD_NAMES], ids=[i for i, _ in BAD_NAMES])
def test_verifier_rejects_a_name_that_is_not_an_org_id(name: str) -> None:
    with pytest.raises(ProtocolError):
        Verifier(name, PUBLIC_KEY)


@pytest.mark.parametrize(
    "seed", [b"", bytes(31), bytes(33), bytearray(32), "0" * 32], ids=["empty", "31", "33", "bytearray", "str"]
)
def test_from_seed_rejects_a_seed_that_is_not_32_bytes(seed: bytes) -> None:
    with pytest.raises(ConfigError):
        Signer.from_seed(ORG, seed)


@pytest.mark.parametrize("public_key", [b"", bytes(31), bytes(33), "x" * 32], ids=["empty", "31", "33", "str"])
def test_verifier_rejects_a_public_key_that_is_not_32_bytes(public_key: bytes) -> None:
    with pytest.raises(ProtocolError):
        Verifier(ORG, public_key)


# Verifier ------------------------------------------------------------------------------------


def test_verify_accepts_a_good_signature_and_returns_nothing() -> None:
    signer = Signer.from_seed(ORG, SEED)
    assert signer.verifier().verify(b"message", signer.sign(b"message")) is None


def test_verify_rejects_another_keys_signature() -> None:
    other = Signer.generate(ORG)
    with pytest.raises(VerificationError):
        Signer.from_seed(ORG, SEED).verifier().verify(b"message", other.sign(b"message"))


@pytest.mark.parametrize("length", [0, 63, 65, 128], ids=["empty", "63", "65", "128"])
def test_verify_rejects_a_signature_of_the_wrong_length(length: int) -> None:
    signer = Signer.from_seed(ORG, SEED)
    signature = (signer.sign(b"m") * 2)[:length]
    with pytest.raises(VerificationError):
        signer.verifier().verify(b"m", signature)


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, 63), mask=st.integers(1, 255))
def test_any_flipped_signature_byte_is_rejected(index: int, mask: int) -> None:
    signer = Signer.from_seed(ORG, SEED)
    signature = bytearray(signer.sign(b"message"))
    signature[index] ^= mask
    with pytest.raises(VerificationError):
        signer.verifier().verify(b"message", bytes(signature))


@settings(max_examples=200, deadline=None)
@given(message=st.binary(min_size=1, max_size=64), data=st.data())
def test_any_flipped_message_byte_is_rejected(message: bytes, data: st.DataObject) -> None:
    signer = Signer.from_seed(ORG, SEED)
    signature = signer.sign(message)
    flipped = bytearray(message)
    flipped[data.draw(st.integers(0, len(message) - 1))] ^= data.draw(st.integers(1, 255))
    with pytest.raises(VerificationError):
        signer.verifier().verify(bytes(flipped), signature)


def test_verifiers_compare_and_hash_by_name_and_public_key() -> None:
    a = Verifier.from_vkey(VKEY)
    b = Signer.from_seed(ORG, SEED).verifier()
    c = Signer.from_seed("other.example", SEED).verifier()
    assert a == b and hash(a) == hash(b) and len({a, b, c}) == 2
    assert a != c and sorted([c, a]) == [a, c]


# vkey text -----------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(name=ORG_IDS, seed=SEEDS)
def test_vkey_round_trips(name: str, seed: bytes) -> None:
    signer = Signer.from_seed(name, seed)
    parsed = Verifier.from_vkey(signer.vkey())
    assert parsed == signer.verifier()
    assert parsed.vkey() == signer.vkey()
    assert parsed.key_id == signer.key_id


def test_vkey_base64_containing_plus_is_split_on_the_first_two_plus_only() -> None:
    assert "+" in VKEY.split("+", 2)[2]
    assert Verifier.from_vkey(VKEY).public_key == PUBLIC_KEY


_GOOD_HASH = VKEY.split("+")[1]
_FLIPPED_HASH = _GOOD_HASH[:-1] + ("0" if _GOOD_HASH[-1] != "0" else "1")
_KEY64 = VKEY.split("+", 2)[2]
MALFORMED_VKEYS = [
    ("empty", ""),
    ("name_only", ORG),
    ("no_key", f"{ORG}+{_GOOD_HASH}"),
    ("empty_key", f"{ORG}+{_GOOD_HASH}+"),
    ("upper_case_hash", f"{ORG}+{_GOOD_HASH.upper()}+{_KEY64}"),
    ("short_hash", f"{ORG}+{_GOOD_HASH[:7]}+{_KEY64}"),
    ("long_hash", f"{ORG}+{_GOOD_HASH}0+{_KEY64}"),
    ("non_hex_hash", f"{ORG}+6148f0fg+{_KEY64}"),
    ("hash_mismatch", f"{ORG}+{_FLIPPED_HASH}+{_KEY64}"),
    ("name_not_hashed", f"other.example+{_GOOD_HASH}+{_KEY64}"),
    ("name_not_an_org_id", _vkey_of("Acme.example", b"\x01" + PUBLIC_KEY)),
    ("go_style_name", _vkey_of("PeterNeumann", b"\x01" + PUBLIC_KEY)),
    ("bad_base64_char", f"{ORG}+{_GOOD_HASH}+{_KEY64[:-1]}!"),
    ("urlsafe_base64", f"{ORG}+{_GOOD_HASH}+{_KEY64.replace('+', '-').replace('/', '_')}"),
    ("extra_padding", f"{VKEY}=="),
    ("trailing_newline", f"{VKEY}\n"),
    ("leading_space", f" {VKEY}"),
    ("unknown_algorithm", _vkey_of(ORG, b"\x02" + PUBLIC_KEY, hash_over=b"\x01" + PUBLIC_KEY)),
    ("go_hash_of_unknown_algorithm", _vkey_of(ORG, b"\x02" + PUBLIC_KEY)),
    ("key_too_short", _vkey_of(ORG, b"\x01" + PUBLIC_KEY[:31])),
    ("key_too_long", _vkey_of(ORG, b"\x01" + PUBLIC_KEY + b"\x00")),
    ("no_algorithm_byte", _vkey_of(ORG, PUBLIC_KEY, hash_over=b"\x01" + PUBLIC_KEY)),
    ("private_key_form", "PRIVATE+KEY+" + VKEY),
    ("bytes", VKEY.encode()),
]


@pytest.mark.parametrize("text", [t for _, t in MALFORMED_VKEYS], ids=[i for i, _ in MALFORMED_VKEYS])
def test_malformed_vkey_is_a_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        Verifier.from_vkey(text)


def test_signer_key_text_parses_back_to_its_seed() -> None:
    from hashfed.keys.vkey import format_signer_key

    text = format_signer_key(ORG, SEED, PUBLIC_KEY)
    assert text == "PRIVATE+KEY+acme.example+6148f0f7+" + base64.b64encode(b"\x01" + SEED).decode()
    assert parse_signer_key(text) == (ORG, bytes.fromhex("6148f0f7"), SEED)


def test_package_exports_the_api() -> None:
    for name in ("Signer", "Verifier", "key_hash", "TrustStore", "TrustedOrg", "load_signer", "write_signer"):
        assert name in keys.__all__ and hasattr(keys, name)
