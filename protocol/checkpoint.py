"""Checkpoints (PROTOCOL §5, ``c2sp.org/tlog-checkpoint``): a log's signed tree head.

A checkpoint is a signed note (``protocol.note``) whose text is exactly three lines::

    <origin: the log id, org/collection>
    <tree size: decimal, no sign, no leading zero>
    <root hash: standard base64 of 32 bytes>

hashfed writes no extension lines and accepts none. The log's org signs with its key(s),
named by the org id; other keys (witnesses) may add lines, which verification ignores.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from hashfed.keys.ed25519 import Signer, Verifier
from hashfed.keys.encoding import b64decode
from hashfed.keys.errors import ConfigError, ProtocolError, VerificationError
from hashfed.keys.names import parse_log_id
from hashfed.protocol.note import parse_note, sign_note, verify_note

ROOT_BYTES = 32
"""Length of a SHA-256 root hash."""

MAX_TREE_SIZE = 2**63 - 1
"""The largest tree size accepted: fits a signed 64-bit integer, as SQLite and Go's tlog need."""

_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")

__all__ = [
    "MAX_TREE_SIZE",
    "ROOT_BYTES",
    "Checkpoint",
    "SignedCheckpoint",
    "parse_checkpoint_body",
    "sign_checkpoint",
    "verify_checkpoint",
]


@dataclass(frozen=True)
class Checkpoint:
    """The tree head of one log: its origin (log id), size, and root hash.

    Raises ProtocolError when a field is out of its range.
    """

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        parse_log_id(self.origin)
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise ProtocolError(f"checkpoint size must be an integer from 0 to {MAX_TREE_SIZE}")
        if type(self.root) is not bytes or len(self.root) != ROOT_BYTES:
            raise ProtocolError(f"checkpoint root must be {ROOT_BYTES} bytes")

    @property
    def org(self) -> str:
        """The org id of the log."""
        return self.origin.partition("/")[0]

    @property
    def collection(self) -> str:
        """The collection of the log."""
        return self.origin.partition("/")[2]

    def body(self) -> str:
        """The note text: ``<origin>\\n<size>\\n<base64 root>\\n``."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A verified checkpoint, its signed note verbatim, and the org keys that signed it."""

    checkpoint: Checkpoint
    note: bytes
    signed_by: tuple[Verifier, ...]


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse a checkpoint's note text, strictly. ProtocolError when malformed."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise ProtocolError("checkpoint body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise ProtocolError(f"checkpoint body must have exactly 3 lines, not {len(lines)}")
    origin, size_text, root_text = lines
    if _SIZE.fullmatch(size_text) is None:
        raise ProtocolError(f"checkpoint size {size_text[:40]!r} is not a decimal without leading zeros")
    return Checkpoint(origin=origin, size=int(size_text), root=_decode_root(root_text))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> bytes:
    """The signed note of ``checkpoint``. Every signer must be a key of the log's org (ConfigError)."""
    for signer in signers:
        if signer.name != checkpoint.org:
            raise ConfigError(f"key {signer.key_id} cannot sign a checkpoint of {checkpoint.origin}")
    return sign_note(checkpoint.body(), signers)


def verify_checkpoint(data: bytes, *, log_id: str, verifiers: Sequence[Verifier]) -> SignedCheckpoint:
    """Verify a signed checkpoint of the log ``log_id``.

    Only the ``verifiers`` named by the log's org count; pass that org's trusted keys.
    Raises ProtocolError when the note or its body is malformed, VerificationError when no
    trusted key of the org signed it, a signature of one fails, or it is for another log.
    """
    org, _ = parse_log_id(log_id)
    checkpoint = parse_checkpoint_body(parse_note(data).text)
    org_verifiers = [v for v in verifiers if v.name == org]
    if not org_verifiers:
        raise VerificationError(f"no trusted key for {org} to verify a checkpoint of {log_id}")
    _, signed_by = verify_note(data, org_verifiers)
    if checkpoint.origin != log_id:
        raise VerificationError(f"checkpoint is for log {checkpoint.origin}, not {log_id}")
    return SignedCheckpoint(checkpoint=checkpoint, note=data, signed_by=signed_by)


def _decode_root(text: str) -> bytes:
    """Canonical standard base64 of exactly 32 bytes."""
    root = b64decode(text, what="checkpoint root hash")
    if len(root) != ROOT_BYTES:
        raise ProtocolError(f"checkpoint root hash must be {ROOT_BYTES} bytes, not {len(root)}")
    return root
