"""Unit and property tests for protocol.note (C2SP signed-note)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.keys import ConfigError, ProtocolError, Signer, VerificationError
from hashfed.protocol.note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    add_signatures,
    parse_note,
    sign_note,
    verify_note,
)

ACME = Signer.from_seed("acme.example", bytes(range(32)))
ACME_NEW = Signer.from_seed("acme.example", bytes(range(1, 33)))
WITNESS = Signer.from_seed("witness.example", bytes(range(2, 34)))
STRANGER = Signer.from_seed("stranger.example", bytes(range(3, 35)))
TEXT = "acme.example/csam\n2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"

# The example of golang.org/x/mod/sumdb/note's package documentation: key, text, signed note.
GO_SKEY_B64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY_B64 = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT + "\n"
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()


@dataclass(frozen=True)
class _GoSigner:
    """A signer named as Go's example is (not an org id), for a byte-for-byte comparison."""

    name: str
    key_hash: bytes
    seed: bytes

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def _line(name: str, payload: bytes) -> bytes:
    return f"— {name} {base64.b64encode(payload).decode()}\n".encode()


# Interoperability with Go ----------------------------------------------------------------------


def test_parses_gos_example_note() -> None:
    note = parse_note(GO_NOTE)
    assert note.text == GO_TEXT
    (sig,) = note.signatures
    assert (sig.name, sig.key_hash.hex(), sig.key_id) == ("PeterNeumann", "c74f20a3", "PeterNeumann+c74f20a3")
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(GO_VKEY_B64)[1:])
    assert public.verify(sig.signature, GO_TEXT.encode()) is None


def test_signs_gos_example_byte_for_byte() -> None:
    signer = _GoSigner("PeterNeumann", bytes.fromhex("c74f20a3"), base64.b64decode(GO_SKEY_B64)[1:])
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE  # type: ignore[list-item]


# Round trips and verification ------------------------------------------------------------------

_LINE_CHARS = st.characters(blacklist_categories=("Cs",), min_codepoint=0x20)
TEXTS = st.lists(st.text(_LINE_CHARS, min_size=1, max_size=40), min_size=1, max_size=5).map(
    lambda lines: "".join(line + "\n" for line in lines)
)


@settings(max_examples=100, deadline=None)
@given(text=TEXTS)
def test_sign_parse_verify_round_trip(text: str) -> None:
    data = sign_note(text, [ACME, WITNESS])
    note, signed_by = verify_note(data, [ACME.verifier()])
    assert note == parse_note(data)
    assert note.text == text
    assert [s.key_id for s in note.signatures] == [ACME.key_id, WITNESS.key_id]
    assert signed_by == (ACME.verifier(),)


def test_signed_note_layout() -> None:
    data = sign_note(TEXT, [ACME])
    signature = ACME.sign(TEXT.encode())
    assert data == TEXT.encode() + b"\n" + _line("acme.example", ACME.key_hash + signature)


def test_unknown_key_lines_are_ignored_when_a_trusted_key_signed() -> None:
    data = sign_note(TEXT, [STRANGER, ACME, WITNESS])
    note, signed_by = verify_note(data, [ACME.verifier()])
    assert signed_by == (ACME.verifier(),)
    assert len(note.signatures) == 3


def test_signed_only_by_an_unknown_key_is_rejected() -> None:
    data = sign_note(TEXT, [STRANGER])
    with pytest.raises(VerificationError):
        verify_note(data, [ACME.verifier()])


def test_no_trusted_keys_at_all_is_rejected() -> None:
    with pytest.raises(VerificationError):
        verify_note(sign_note(TEXT, [ACME]), [])


@pytest.mark.parametrize(
    ("signers", "trusted"),
    [
        ((ACME, ACME_NEW), (ACME,)),
        ((ACME, ACME_NEW), (ACME_NEW,)),
        ((ACME,), (ACME, ACME_NEW)),
        ((ACME_NEW,), (ACME, ACME_NEW)),
    ],
    ids=["both_signed_trust_old", "both_signed_trust_new", "old_signed_trust_both", "new_signed_trust_both"],
)
def test_rotation_either_trusted_key_suffices(signers: tuple[Signer, ...], trusted: tuple[Signer, ...]) -> None:
    _, signed_by = verify_note(sign_note(TEXT, signers), [t.verifier() for t in trusted])
    assert set(signed_by) == {s.verifier() for s in signers} & {t.verifier() for t in trusted}


def test_both_rotation_keys_are_reported_when_both_signed_and_trusted() -> None:
    _, signed_by = verify_note(sign_note(TEXT, [ACME, ACME_NEW]), [ACME_NEW.verifier(), ACME.verifier()])
    assert signed_by == (ACME.verifier(), ACME_NEW.verifier())


def test_a_bad_line_from_a_trusted_key_rejects_the_whole_note() -> None:
    good = sign_note(TEXT, [ACME])
    bad_signature = bytearray(ACME_NEW.sign(TEXT.encode()))
    bad_signature[0] ^= 1
    data = good + _line("acme.example", ACME_NEW.key_hash + bytes(bad_signature))
    with pytest.raises(VerificationError):
        verify_note(data, [ACME.verifier(), ACME_NEW.verifier()])
    # Without ACME_NEW trusted the bad line is just an unknown key's, and is ignored.
    assert verify_note(data, [ACME.verifier()])[1] == (ACME.verifier(),)


def test_a_trusted_key_line_with_a_short_signature_is_rejected() -> None:
    data = sign_note(TEXT, [WITNESS]) + _line("acme.example", ACME.key_hash + b"\x00" * 10)
    with pytest.raises(VerificationError):
        verify_note(data, [ACME.verifier(), WITNESS.verifier()])


def test_lines_sharing_only_the_name_or_only_the_key_hash_are_unknown_keys() -> None:
    signature = ACME.sign(TEXT.encode())
    data = (
        sign_note(TEXT, [WITNESS])
        + _line("acme.example", b"\x00\x00\x00\x00" + signature)  # name known, hash not
        + _line("other.example", ACME.key_hash + signature)  # hash known, name not
    )
    with pytest.raises(VerificationError):
        verify_note(data, [ACME.verifier()])
    assert verify_note(data, [ACME.verifier(), WITNESS.verifier()])[1] == (WITNESS.verifier(),)


def test_a_repeated_line_counts_once() -> None:
    data = sign_note(TEXT, [ACME])
    repeated = data + data[len(TEXT) + 1 :]
    note, signed_by = verify_note(repeated, [ACME.verifier()])
    assert len(note.signatures) == 2 and signed_by == (ACME.verifier(),)


def test_exactly_max_signatures_is_accepted() -> None:
    filler = b"".join(_line(f"w{i}.example", bytes(68)) for i in range(MAX_SIGNATURES - 1))
    data = sign_note(TEXT, [ACME]) + filler
    assert len(verify_note(data, [ACME.verifier()])[0].signatures) == MAX_SIGNATURES


# Flipped bytes ----------------------------------------------------------------------------------


def test_every_single_bit_flip_is_rejected() -> None:
    data = sign_note(TEXT, [ACME])
    trusted = [ACME.verifier()]
    for index in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[index] ^= 1 << bit
            with pytest.raises((ProtocolError, VerificationError)):
                verify_note(bytes(flipped), trusted)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), text=TEXTS)
def test_any_flipped_byte_is_rejected(data: st.DataObject, text: str) -> None:
    # Only the trusted key signs: a flip in an untrusted line just makes it another unknown key.
    signed = bytearray(sign_note(text, [ACME]))
    signed[data.draw(st.integers(0, len(signed) - 1), label="index")] ^= data.draw(st.integers(1, 255), label="mask")
    with pytest.raises((ProtocolError, VerificationError)):
        verify_note(bytes(signed), [ACME.verifier()])


# Co-signing --------------------------------------------------------------------------------------


def test_add_signatures_appends_after_the_existing_lines() -> None:
    data = sign_note(TEXT, [ACME])
    cosigned = add_signatures(data, [WITNESS])
    assert cosigned.startswith(data)
    assert [s.key_id for s in parse_note(cosigned).signatures] == [ACME.key_id, WITNESS.key_id]
    assert verify_note(cosigned, [ACME.verifier(), WITNESS.verifier()])[1] == (ACME.verifier(), WITNESS.verifier())


def test_add_signatures_replaces_a_signers_existing_line() -> None:
    data = sign_note(TEXT, [STRANGER, WITNESS])
    cosigned = add_signatures(data, [STRANGER])
    assert [s.key_id for s in parse_note(cosigned).signatures] == [WITNESS.key_id, STRANGER.key_id]


def test_add_signatures_keeps_unverified_lines_verbatim() -> None:
    data = sign_note(TEXT, [ACME]) + _line("witness.example/w1", b"\x01\x02\x03\x04" + bytes(100))
    assert add_signatures(data, [WITNESS]).startswith(data)


def test_add_signatures_to_a_malformed_note_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        add_signatures(TEXT.encode(), [WITNESS])


# Bad input tables --------------------------------------------------------------------------------

BAD_TEXTS = [
    ("empty", ""),
    ("no_final_newline", "a\nb"),
    ("only_newline", "\n"),
    ("leading_empty_line", "\na\n"),
    ("inner_empty_line", "a\n\nb\n"),
    ("trailing_empty_line", "a\n\n"),
    ("carriage_return", "a\r\n"),
    ("tab", "a\tb\n"),
    ("nul", "a\x00\n"),
    ("lone_surrogate", "a\ud800\n"),
    ("not_a_string", b"a\n"),
]


@pytest.mark.parametrize("text", [t for _, t in BAD_TEXTS], ids=[i for i, _ in BAD_TEXTS])
def test_sign_note_rejects_a_bad_text(text: str) -> None:
    with pytest.raises(ProtocolError):
        sign_note(text, [ACME])


@pytest.mark.parametrize(
    "signers", [(), (ACME, ACME), (ACME, WITNESS, ACME)], ids=["no_signer", "same_key_twice", "same_key_apart"]
)
def test_sign_note_rejects_bad_signer_lists(signers: tuple[Signer, ...]) -> None:
    with pytest.raises(ConfigError):
        sign_note(TEXT, signers)


def test_sign_note_refuses_more_than_max_signatures() -> None:
    signers = [Signer.from_seed(f"s{i}.example", bytes([i]) * 32) for i in range(MAX_SIGNATURES + 1)]
    with pytest.raises(ProtocolError):
        sign_note(TEXT, signers)


_T = TEXT.encode()
_SIG = ACME.key_hash + ACME.sign(_T)
_B64 = base64.b64encode(_SIG).decode()
_GOOD = _T + b"\n" + _line("acme.example", _SIG)
# 68 bytes encode to 92 characters ending in one '='; the last letter carries 2 padding bits.
_LAST = _B64[-2]
_NONCANONICAL = _B64[:-2] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(_LAST) | 1
] + "="
MALFORMED_NOTES = [
    ("empty", b""),
    ("text_only", _T),
    ("no_final_newline", _GOOD[:-1]),
    ("no_blank_line", _T + _line("acme.example", _SIG)),
    ("no_signature_lines", _T + b"\n"),
    ("blank_line_after_signatures", _GOOD + b"\n"),
    ("two_blank_lines", _T + b"\n\n" + _line("acme.example", _SIG)),
    ("blank_line_between_signatures", _GOOD + b"\n" + _line("acme.example", _SIG)),
    ("empty_line_in_text", b"a\n\n" + _GOOD),
    ("leading_empty_line", b"\n" + _GOOD),
    ("hyphen_instead_of_em_dash", _T + b"\n- acme.example " + _B64.encode() + b"\n"),
    ("en_dash_instead_of_em_dash", _T + "\n– acme.example ".encode() + _B64.encode() + b"\n"),
    ("em_dash_without_space", _T + "\n—acme.example ".encode() + _B64.encode() + b"\n"),
    ("two_spaces_after_dash", _T + "\n—  acme.example ".encode() + _B64.encode() + b"\n"),
    ("no_space_before_signature", _T + "\n— acme.example".encode() + _B64.encode() + b"\n"),
    ("two_spaces_before_signature", _T + "\n— acme.example  ".encode() + _B64.encode() + b"\n"),
    ("trailing_space", _GOOD[:-1] + b" \n"),
    ("empty_signature", _T + "\n— acme.example \n".encode()),
    ("bad_base64_char", _T + "\n— acme.example ".encode() + _B64[:-3].encode() + b"!A=\n"),
    ("base64_missing_padding", _T + "\n— acme.example ".encode() + _B64[:-1].encode() + b"\n"),
    ("base64_extra_padding", _T + "\n— acme.example ".encode() + _B64.encode() + b"==\n"),
    ("base64_nonzero_padding_bits", _T + "\n— acme.example ".encode() + _NONCANONICAL.encode() + b"\n"),
    ("urlsafe_base64", _T + "\n— acme.example ".encode() + _B64.replace("+", "-").replace("/", "_").encode() + b"\n"),
    ("signature_only_key_hash", _T + b"\n" + _line("acme.example", ACME.key_hash)),
    ("name_with_plus", _T + b"\n" + _line("acme+example", _SIG)),
    ("name_with_nbsp", _T + b"\n" + _line("acme\u00a0example", _SIG)),
    ("name_with_ideographic_space", _T + b"\n" + _line("acme\u3000example", _SIG)),
    ("name_with_line_separator", _T + b"\n" + _line("acme\u2028example", _SIG)),
    ("too_many_signatures", _GOOD + b"".join(_line(f"w{i}.example", bytes(68)) for i in range(MAX_SIGNATURES))),
    ("too_large", _T + b"\n" + _line("big.example", bytes(MAX_NOTE_BYTES))),
    ("invalid_utf8", b"\xff" + _GOOD),
    ("overlong_utf8", b"\xc0\xaf" + _GOOD),
    ("utf8_surrogate", b"\xed\xa0\x80" + _GOOD),
    ("truncated_utf8", _GOOD[:-1] + b"\xe2\x80\n"),
    ("crlf_line_endings", _GOOD.replace(b"\n", b"\r\n")),
    ("carriage_return_in_text", b"a\rb\n" + _GOOD),
    ("tab_in_text", b"a\tb\n" + _GOOD),
    ("nul_in_text", b"a\x00b\n" + _GOOD),
    ("escape_in_signature_line", _GOOD[:-1] + b"\x1b\n"),
    ("not_bytes", _GOOD.decode()),
]


@pytest.mark.parametrize("data", [d for _, d in MALFORMED_NOTES], ids=[i for i, _ in MALFORMED_NOTES])
def test_malformed_note_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_note(data)
    with pytest.raises(ProtocolError):
        verify_note(data, [ACME.verifier()])


def test_the_base_of_the_malformed_table_is_valid() -> None:
    assert verify_note(_GOOD, [ACME.verifier()]) == (
        Note(TEXT, (NoteSignature("acme.example", ACME.key_hash, _SIG[4:]),)),
        (ACME.verifier(),),
    )
    assert _NONCANONICAL != _B64 and base64.b64decode(_NONCANONICAL) == _SIG
