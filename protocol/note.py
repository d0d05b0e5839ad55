"""C2SP signed notes (``c2sp.org/signed-note``, Go's ``golang.org/x/mod/sumdb/note``).

A signed note is a text, a blank line, and one or more signature lines::

    <text: one or more non-empty lines, each ending in "\\n">
    \\n
    — <key name> <base64(key hash 4 || signature)>\\n      (U+2014 EM DASH, then a space)
    ...

The signature is over the text bytes, final newline included, blank line excluded.

Parsing is at least as strict as Go's ``note.Open``, and stricter where the stricter
reading is the only one hashfed ever writes:

- the whole note is valid UTF-8 with no control character but ``\\n``, at most
  ``MAX_NOTE_BYTES`` long, with at most ``MAX_SIGNATURES`` signature lines;
- the text has no empty line (C2SP allows them; a checkpoint never has one), so the
  note's only ``"\\n\\n"`` separates text from signatures;
- key names are non-empty, without Unicode white space or ``+``;
- base64 is standard, padded and canonical (Go also accepts non-zero padding bits),
  so one signature has exactly one encoding and a note's bytes are its only form.

Verification follows C2SP: lines from unknown keys are ignored, a line from a known key
(same name and key hash) must verify or the whole note is rejected, and at least one
known key must have signed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from hashfed.keys.ed25519 import Signer, Verifier
from hashfed.keys.encoding import b64decode
from hashfed.keys.errors import ConfigError, ProtocolError, VerificationError

MAX_NOTE_BYTES = 128 * 1024
"""Cap on a whole note: room for C2SP's required 16 signatures even of post-quantum size."""

MAX_SIGNATURES = 100
"""Cap on signature lines, as Go's ``note.Open`` has."""

KEY_HASH_BYTES = 4

_SIG_PREFIX = "\u2014 "  # EM DASH, SPACE
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
# Unicode White_Space (what Go's unicode.IsSpace tests), plus '+': never in a key name.
_NOT_IN_NAME = re.compile(r"[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000+]")

__all__ = [
    "KEY_HASH_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Note",
    "NoteSignature",
    "add_signatures",
    "parse_note",
    "sign_note",
    "verify_note",
]


@dataclass(frozen=True)
class NoteSignature:
    """One signature line, ``— <name> <base64(key_hash || signature)>``, not yet verified."""

    name: str
    key_hash: bytes
    signature: bytes

    @property
    def key_id(self) -> str:
        """``<name>+<hash8>``, the key this line claims to be from."""
        return f"{self.name}+{self.key_hash.hex()}"

    def line(self) -> str:
        """The signature line, newline included."""
        encoded = base64.b64encode(self.key_hash + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    """A parsed note: its text (final newline included) and its signature lines in order."""

    text: str
    signatures: tuple[NoteSignature, ...]


def parse_note(data: bytes) -> Note:
    """Parse a signed note without verifying it. ProtocolError when malformed."""
    if not isinstance(data, bytes):
        raise ProtocolError("a note must be bytes")
    if len(data) > MAX_NOTE_BYTES:
        raise ProtocolError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("note is not valid UTF-8") from None
    if _CONTROL.search(message):
        raise ProtocolError("note contains a control character other than newline")
    split = message.rfind("\n\n")
    if split < 0:
        raise ProtocolError("note has no blank line before its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    _check_text(text)
    if not block:
        raise ProtocolError("note has no signature lines")
    if not block.endswith("\n"):
        raise ProtocolError("note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise ProtocolError(f"note has more than {MAX_SIGNATURES} signatures")
    return Note(text=text, signatures=tuple(_parse_signature_line(line) for line in lines))


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """The signed note of ``text`` with one signature line per signer, in order.

    ProtocolError when the text is not a valid note text; ConfigError when there is no
    signer or a key is given twice.
    """
    _check_text(text)
    return _assemble(text, (), signers)


def add_signatures(data: bytes, signers: Sequence[Signer]) -> bytes:
    """Co-sign a note: its signature lines are kept in order and the signers' appended.

    An existing line from one of the signers' keys is replaced by the new signature, as
    Go's ``note.Sign`` does. Existing signatures are not verified here: verify the note
    before co-signing it.
    """
    note = parse_note(data)
    return _assemble(note.text, note.signatures, signers)


def verify_note(data: bytes, verifiers: Sequence[Verifier]) -> tuple[Note, tuple[Verifier, ...]]:
    """Parse and verify a signed note against the trusted ``verifiers``.

    Returns the note and the verifiers whose signatures verified, in line order.
    Raises ProtocolError when the note is malformed, VerificationError when a line from a
    trusted key fails to verify or no trusted key signed it.
    """
    note = parse_note(data)
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        other = known.setdefault((verifier.name, verifier.key_hash), verifier)
        if other != verifier:
            raise VerificationError(f"two trusted keys share the key id {verifier.key_id}")
    message = note.text.encode("utf-8")
    verified: list[Verifier] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_hash))
        if verifier is None:
            continue  # C2SP: ignore signatures from unknown keys
        verifier.verify(message, sig.signature)
        if verifier not in verified:
            verified.append(verifier)
    if not verified:
        raise VerificationError("note has no valid signature from a trusted key")
    return note, tuple(verified)


def _assemble(text: str, kept: Sequence[NoteSignature], signers: Sequence[Signer]) -> bytes:
    """Text, blank line, the kept lines not replaced by a signer, then the signers' lines."""
    if not signers:
        raise ConfigError("a note needs at least one signer")
    new_ids = [(s.name, s.key_hash) for s in signers]
    if len(set(new_ids)) != len(new_ids):
        raise ConfigError("the same key is given twice to sign one note")
    message = text.encode("utf-8")
    lines = [sig.line() for sig in kept if (sig.name, sig.key_hash) not in new_ids]
    lines += [NoteSignature(s.name, s.key_hash, s.sign(message)).line() for s in signers]
    if len(lines) > MAX_SIGNATURES:
        raise ProtocolError(f"note would have more than {MAX_SIGNATURES} signatures")
    data = (text + "\n" + "".join(lines)).encode("utf-8")
    if len(data) > MAX_NOTE_BYTES:
        raise ProtocolError(f"note would be larger than {MAX_NOTE_BYTES} bytes")
    return data


def _check_text(text: str) -> None:
    """A note text: non-empty lines, each ending in newline, UTF-8, no control characters."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise ProtocolError("note text must end with a newline")
    if text.startswith("\n") or "\n\n" in text:
        raise ProtocolError("note text must not contain an empty line")
    if _CONTROL.search(text):
        raise ProtocolError("note text contains a control character other than newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError("note text is not valid Unicode") from None


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise ProtocolError("signature line does not start with an em dash and a space")
    name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    if not name or _NOT_IN_NAME.search(name):
        raise ProtocolError(f"signature line has a bad key name {name[:80]!r}")
    raw = b64decode(encoded, what=f"signature by {name[:80]!r}")
    if len(raw) <= KEY_HASH_BYTES:
        raise ProtocolError(f"signature by {name[:80]!r} is too short")
    return NoteSignature(name=name, key_hash=raw[:KEY_HASH_BYTES], signature=raw[KEY_HASH_BYTES:])
