"""Text forms of Ed25519 note keys, as C2SP signed-note and Go's ``sumdb/note`` write them.

Two forms, one line each (PROTOCOL §2)::

    verifier key  <name>+<hash8>+<base64(0x01 || public key 32)>
    signer key    PRIVATE+KEY+<name>+<hash8>+<base64(0x01 || seed 32)>

``hash8`` is the key hash as 8 lowercase hex digits and ``name`` is an org id (PROTOCOL §1).
Base64 is standard, padded, and must be canonical: text that decodes but would not be
written back identically is rejected, so every key has exactly one text form.

This module only converts text; it does no cryptography beyond the key hash.
"""

from __future__ import annotations

import base64
import hashlib
import re

from hashfed.keys.encoding import b64decode
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import ORG_RE

ALG_ED25519 = 0x01
"""The signature type byte of Ed25519 in C2SP signed-note."""

ED25519_KEY_BYTES = 32
"""Length of an Ed25519 public key and of the private seed."""

_HASH8 = re.compile(r"[0-9a-f]{8}")
_SIGNER_PREFIX = "PRIVATE+KEY+"


def is_org_id(name: object) -> bool:
    """Whether ``name`` is an org id (PROTOCOL §1), the only names hashfed keys carry."""
    return isinstance(name, str) and ORG_RE.fullmatch(name) is not None


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key hash: ``SHA-256(name || 0x0A || 0x01 || public_key)[:4]``.

    ``public_key`` is the raw 32-byte Ed25519 key, without the algorithm byte.
    """
    material = name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    return hashlib.sha256(material).digest()[:4]


def format_vkey(name: str, public_key: bytes) -> str:
    """The verifier key text of an Ed25519 public key."""
    return f"{name}+{key_hash(name, public_key).hex()}+{_b64(bytes([ALG_ED25519]) + public_key)}"


def parse_vkey(text: str) -> tuple[str, bytes]:
    """Parse a verifier key into ``(name, public_key)``.

    Raises ProtocolError when the text is malformed, the name is not an org id, the
    algorithm is not Ed25519, the key has the wrong length, or the hash does not match.
    """
    if not isinstance(text, str):
        raise ProtocolError("a verifier key must be text")
    # Split on the first two '+' only: the base64 part may itself contain '+'.
    name, sep1, rest = text.partition("+")
    hash8, sep2, key64 = rest.partition("+")
    if not (sep1 and sep2):
        raise ProtocolError("malformed verifier key: expected <name>+<hash8>+<base64 key>")
    public_key = _decode_key(name, hash8, key64, what="verifier key")
    if key_hash(name, public_key).hex() != hash8:
        raise ProtocolError(f"verifier key for {name!r}: key hash {hash8} does not match the key")
    return name, public_key


def format_signer_key(name: str, seed: bytes, public_key: bytes) -> str:
    """The signer key text (Go's ``PRIVATE+KEY+…``) of an Ed25519 seed.

    The hash is over the public key, which the caller derives from the seed.
    """
    encoded = _b64(bytes([ALG_ED25519]) + seed)
    return f"{_SIGNER_PREFIX}{name}+{key_hash(name, public_key).hex()}+{encoded}"


def parse_signer_key(text: str) -> tuple[str, bytes, bytes]:
    """Parse a signer key into ``(name, claimed key hash, seed)``.

    The caller must derive the public key from the seed and compare its hash with the
    claimed one; this module cannot, having no Ed25519 arithmetic. Raises ProtocolError.
    """
    if not isinstance(text, str) or not text.startswith(_SIGNER_PREFIX):
        raise ProtocolError("malformed signer key: expected PRIVATE+KEY+<name>+<hash8>+<base64 seed>")
    name, sep1, rest = text[len(_SIGNER_PREFIX) :].partition("+")
    hash8, sep2, key64 = rest.partition("+")
    if not (sep1 and sep2):
        raise ProtocolError("malformed signer key: expected PRIVATE+KEY+<name>+<hash8>+<base64 seed>")
    seed = _decode_key(name, hash8, key64, what="signer key")
    return name, bytes.fromhex(hash8), seed


def _decode_key(name: str, hash8: str, key64: str, *, what: str) -> bytes:
    """Check the name and hash fields and return the 32 key bytes after the algorithm byte."""
    if not is_org_id(name):
        raise ProtocolError(f"{what}: name {name!r} is not an org id")
    if _HASH8.fullmatch(hash8) is None:
        raise ProtocolError(f"{what} for {name!r}: key hash must be 8 lowercase hex digits")
    raw = _unb64(key64, what=f"{what} for {name!r}")
    if len(raw) != 1 + ED25519_KEY_BYTES:
        raise ProtocolError(f"{what} for {name!r}: key must be 1 + 32 bytes, got {len(raw)}")
    if raw[0] != ALG_ED25519:
        raise ProtocolError(f"{what} for {name!r}: unknown algorithm byte 0x{raw[0]:02x}")
    return raw[1:]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, *, what: str) -> bytes:
    """Decode canonical standard base64 (padded, alphabet only, zero padding bits)."""
    return b64decode(text, what=what)
