"""Unit and property tests for protocol.checkpoint (PROTOCOL §5, C2SP tlog-checkpoint)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.keys import ConfigError, ProtocolError, Signer, VerificationError
from hashfed.protocol.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    SignedCheckpoint,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from hashfed.protocol.note import add_signatures, sign_note

ACME = Signer.from_seed("acme.example", bytes(range(32)))
ACME_NEW = Signer.from_seed("acme.example", bytes(range(1, 33)))
WITNESS = Signer.from_seed("witness.example", bytes(range(2, 34)))
NGO = Signer.from_seed("ngo.example", bytes(range(3, 35)))
LOG = "acme.example/csam"
EMPTY_ROOT = hashlib.sha256(b"").digest()
ROOT = hashlib.sha256(b"root").digest()

# The empty tree of acme.example/csam signed with the key of seed 00..1f. The signature line is
# computed independently: base64(6148f0f7 || Ed25519(seed, body)), see test_keys for the hash.
EMPTY_CHECKPOINT_NOTE = (
    b"acme.example/csam\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n"
    b"\xe2\x80\x94 acme.example YUjw9zsBHE6rCIqqd+9SRS7u2T66F+G+ns7/3B5VggepBTEhP8tIe0yEcORjjSGzPgcV75ge"
    b"06PDACqLZDke0nUMzw0=\n"
)

ORG_IDS = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?", fullmatch=True)
COLLECTIONS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
CHECKPOINTS = st.builds(
    Checkpoint,
    origin=st.builds(lambda o, c: f"{o}/{c}", ORG_IDS, COLLECTIONS),
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
)


# Body ------------------------------------------------------------------------------------------


def test_body_is_three_lines() -> None:
    checkpoint = Checkpoint(LOG, 5, bytes(32))
    assert checkpoint.body() == "acme.example/csam\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    assert (checkpoint.org, checkpoint.collection) == ("acme.example", "csam")


@settings(max_examples=200, deadline=None)
@given(checkpoint=CHECKPOINTS)
def test_body_round_trips(checkpoint: Checkpoint) -> None:
    assert parse_checkpoint_body(checkpoint.body()) == checkpoint


_ROOT64 = base64.b64encode(ROOT).decode()
_URLSAFE = base64.urlsafe_b64encode(bytes([0xFF]) * 32).decode()
BAD_BODIES = [
    ("empty", ""),
    ("no_final_newline", f"{LOG}\n1\n{_ROOT64}"),
    ("two_lines", f"{LOG}\n1\n"),
    ("extension_line", f"{LOG}\n1\n{_ROOT64}\nextension\n"),
    ("empty_line", f"{LOG}\n1\n{_ROOT64}\n\n"),
    ("crlf", f"{LOG}\r\n1\r\n{_ROOT64}\r\n"),
    ("empty_origin", f"\n1\n{_ROOT64}\n"),
    ("origin_without_collection", f"acme.example\n1\n{_ROOT64}\n"),
    ("origin_upper_case", f"Acme.example/csam\n1\n{_ROOT64}\n"),
    ("origin_with_two_slashes", f"{LOG}/x\n1\n{_ROOT64}\n"),
    ("origin_with_scheme", f"https://{LOG}\n1\n{_ROOT64}\n"),
    ("origin_trailing_space", f"{LOG} \n1\n{_ROOT64}\n"),
    ("size_empty", f"{LOG}\n\n{_ROOT64}\n"),
    ("size_negative", f"{LOG}\n-1\n{_ROOT64}\n"),
    ("size_plus_sign", f"{LOG}\n+1\n{_ROOT64}\n"),
    ("size_leading_zero", f"{LOG}\n01\n{_ROOT64}\n"),
    ("size_double_zero", f"{LOG}\n00\n{_ROOT64}\n"),
    ("size_decimal_point", f"{LOG}\n1.0\n{_ROOT64}\n"),
    ("size_spaces", f"{LOG}\n 1\n{_ROOT64}\n"),
    ("size_underscore", f"{LOG}\n1_000\n{_ROOT64}\n"),
    ("size_hex", f"{LOG}\n0x10\n{_ROOT64}\n"),
    ("size_non_ascii_digit", f"{LOG}\n\u0661\n{_ROOT64}\n"),
    ("size_over_int64", f"{LOG}\n{MAX_TREE_SIZE + 1}\n{_ROOT64}\n"),
    ("size_twenty_digits", f"{LOG}\n{10**19}\n{_ROOT64}\n"),
    ("root_empty", f"{LOG}\n1\n\n"),
    ("root_bad_char", f"{LOG}\n1\n{_ROOT64[:-2]}!=\n"),
    ("root_missing_padding", f"{LOG}\n1\n{_ROOT64[:-1]}\n"),
    ("root_nonzero_padding_bits", f"{LOG}\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n"),
    ("root_urlsafe", f"{LOG}\n1\n{_URLSAFE}\n"),
    ("root_31_bytes", f"{LOG}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n"),
    ("root_33_bytes", f"{LOG}\n1\n{base64.b64encode(ROOT + b'x').decode()}\n"),
    ("root_hex", f"{LOG}\n1\n{ROOT.hex()}\n"),
    ("not_a_string", f"{LOG}\n1\n{_ROOT64}\n".encode()),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[i for i, _ in BAD_BODIES])
def test_malformed_body_is_a_protocol_error(body: str) -> None:
    with pytest.raises(ProtocolError):
        parse_checkpoint_body(body)


BAD_FIELDS = [
    ("origin_not_a_log_id", {"origin": "acme.example"}),
    ("size_negative", {"size": -1}),
    ("size_too_large", {"size": MAX_TREE_SIZE + 1}),
    ("size_bool", {"size": True}),
    ("size_str", {"size": "1"}),
    ("root_31_bytes", {"root": bytes(31)}),
    ("root_bytearray", {"root": bytearray(32)}),
]


@pytest.mark.parametrize("fields", [f for _, f in BAD_FIELDS], ids=[i for i, _ in BAD_FIELDS])
def test_checkpoint_rejects_out_of_range_fields(fields: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        Checkpoint(**{"origin": LOG, "size": 1, "root": ROOT, **fields})  # type: ignore[arg-type]


# Signing and verifying ------------------------------------------------------------------------------


def test_fixed_key_signs_the_known_note_byte_for_byte() -> None:
    assert sign_checkpoint(Checkpoint(LOG, 0, EMPTY_ROOT), [ACME]) == EMPTY_CHECKPOINT_NOTE


def test_verify_returns_the_checkpoint_the_note_and_the_signers() -> None:
    verified = verify_checkpoint(EMPTY_CHECKPOINT_NOTE, log_id=LOG, verifiers=[ACME.verifier()])
    assert verified == SignedCheckpoint(Checkpoint(LOG, 0, EMPTY_ROOT), EMPTY_CHECKPOINT_NOTE, (ACME.verifier(),))


@settings(max_examples=50, deadline=None)
@given(checkpoint=CHECKPOINTS)
def test_sign_verify_round_trip(checkpoint: Checkpoint) -> None:
    signer = Signer.from_seed(checkpoint.org, bytes(range(32)))
    data = sign_checkpoint(checkpoint, [signer])
    verified = verify_checkpoint(data, log_id=checkpoint.origin, verifiers=[signer.verifier()])
    assert verified.checkpoint == checkpoint and verified.note == data


def test_every_single_bit_flip_is_rejected() -> None:
    for index in range(len(EMPTY_CHECKPOINT_NOTE)):
        for bit in range(8):
            flipped = bytearray(EMPTY_CHECKPOINT_NOTE)
            flipped[index] ^= 1 << bit
            with pytest.raises((ProtocolError, VerificationError)):
                verify_checkpoint(bytes(flipped), log_id=LOG, verifiers=[ACME.verifier()])


@settings(max_examples=300, deadline=None)
@given(checkpoint=CHECKPOINTS, data=st.data())
def test_any_flipped_byte_is_rejected(checkpoint: Checkpoint, data: st.DataObject) -> None:
    signer = Signer.from_seed(checkpoint.org, bytes(range(32)))
    signed = bytearray(sign_checkpoint(checkpoint, [signer]))
    signed[data.draw(st.integers(0, len(signed) - 1), label="index")] ^= data.draw(st.integers(1, 255), label="mask")
    with pytest.raises((ProtocolError, VerificationError)):
        verify_checkpoint(bytes(signed), log_id=checkpoint.origin, verifiers=[signer.verifier()])


def test_witness_cosignature_is_kept_and_ignored() -> None:
    cosigned = add_signatures(EMPTY_CHECKPOINT_NOTE, [WITNESS])
    verified = verify_checkpoint(cosigned, log_id=LOG, verifiers=[ACME.verifier(), WITNESS.verifier()])
    assert verified.signed_by == (ACME.verifier(),) and verified.note == cosigned


def test_a_witness_signature_alone_does_not_count_for_the_org() -> None:
    witnessed = sign_note(Checkpoint(LOG, 0, EMPTY_ROOT).body(), [WITNESS])
    with pytest.raises(VerificationError):
        verify_checkpoint(witnessed, log_id=LOG, verifiers=[WITNESS.verifier(), ACME.verifier()])


@pytest.mark.parametrize("trusted", [(ACME,), (ACME_NEW,), (ACME, ACME_NEW)], ids=["old", "new", "both"])
def test_rotation_a_checkpoint_signed_by_both_keys_verifies_with_either(trusted: tuple[Signer, ...]) -> None:
    data = sign_checkpoint(Checkpoint(LOG, 3, ROOT), [ACME, ACME_NEW])
    verified = verify_checkpoint(data, log_id=LOG, verifiers=[t.verifier() for t in trusted])
    assert verified.signed_by == tuple(t.verifier() for t in trusted)


def test_checkpoint_of_another_collection_of_the_same_org_is_rejected() -> None:
    data = sign_checkpoint(Checkpoint("acme.example/other", 3, ROOT), [ACME])
    with pytest.raises(VerificationError, match="acme.example/other"):
        verify_checkpoint(data, log_id=LOG, verifiers=[ACME.verifier()])


def test_checkpoint_of_another_org_is_rejected_even_with_that_orgs_key_at_hand() -> None:
    data = sign_checkpoint(Checkpoint("ngo.example/csam", 3, ROOT), [NGO])
    with pytest.raises(VerificationError):
        verify_checkpoint(data, log_id=LOG, verifiers=[ACME.verifier(), NGO.verifier()])


def test_no_trusted_key_of_the_org_is_rejected() -> None:
    with pytest.raises(VerificationError):
        verify_checkpoint(EMPTY_CHECKPOINT_NOTE, log_id=LOG, verifiers=[])


def test_signed_note_with_a_malformed_body_is_a_protocol_error() -> None:
    data = sign_note("acme.example/csam\n01\n" + base64.b64encode(ROOT).decode() + "\n", [ACME])
    with pytest.raises(ProtocolError):
        verify_checkpoint(data, log_id=LOG, verifiers=[ACME.verifier()])


@pytest.mark.parametrize("log_id", ["acme.example", "acme.example/CSAM", ""], ids=["no_collection", "upper", "empty"])
def test_malformed_log_id_argument_is_a_protocol_error(log_id: str) -> None:
    with pytest.raises(ProtocolError):
        verify_checkpoint(EMPTY_CHECKPOINT_NOTE, log_id=log_id, verifiers=[ACME.verifier()])


def test_only_the_logs_org_may_sign() -> None:
    with pytest.raises(ConfigError):
        sign_checkpoint(Checkpoint(LOG, 0, EMPTY_ROOT), [WITNESS])
    with pytest.raises(ConfigError):
        sign_checkpoint(Checkpoint(LOG, 0, EMPTY_ROOT), [])
