"""RFC 6962 / RFC 9162 §2.1 Merkle trees: hashes, proofs, and the compact range.

A log's leaves are batch bytes. With SHA-256 as ``H``::

    leaf hash   H(0x00 || data)
    node hash   H(0x01 || left || right)
    empty tree  H(b"")

The Merkle Tree Hash (MTH) of ``n > 1`` leaves splits them at ``k``, the largest power of two
below ``n``, and hashes the two subtrees' roots together (§2.1.1). Everything in this module
works on *leaf hashes*; callers hash batch bytes with :func:`leaf_hash` first.

Three kinds of function live here:

- **Generation** (:func:`root_hash`, :func:`inclusion_proof`, :func:`consistency_proof`) runs
  on the log's own leaf hashes. Bad arguments are the caller's bug: ``ValueError``. Each call
  does at most ``n - 1`` node hashes for ``n`` leaves.
- **Verification** (:func:`verify_inclusion`, :func:`verify_consistency`) follows the
  algorithms of §2.1.3.2 and §2.1.4.2 step by step. Both return ``None`` or raise
  :class:`~keys.errors.VerificationError`; every hash must be exactly 32 bytes. A proof
  binds a position inside a tree, not the tree's size (a verifier cannot tell a subtree root
  from a leaf hash), so take each size and root together from a verified checkpoint.
- **Wire form** (:func:`encode_proof`, :func:`decode_proof`): ``{"hashes":["<base64>",...]}``.
  Malformed input raises :class:`~keys.errors.ProtocolError`.

:class:`CompactRange` is the right edge of a tree: the roots of its perfect subtrees, one per
set bit of the size. It lets a reader extend a verified root leaf by leaf without old leaves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from hashfed.keys.encoding import b64decode
from hashfed.keys.errors import ProtocolError, VerificationError

HASH_SIZE = 32
"""Bytes in every hash: leaf, node, root and proof element."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

MAX_PROOF_HASHES = 64
"""The most hashes a decoded proof may carry (a tree of up to 2**64 leaves needs no more)."""

_MAX_PROOF_JSON_CHARS = 16_384
"""A proof of 64 hashes is about 3 KiB; anything far larger is refused before parsing."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


# Hashing -------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash of ``data``: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash over ``leaf_hashes`` (``EMPTY_ROOT`` when there are none).

    Raises ``ValueError`` if a leaf hash is not 32 bytes.
    """
    _check_leaf_hashes(leaf_hashes, len(leaf_hashes))
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


# Generation ----------------------------------------------------------------------------------


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the audit path of leaf ``index`` in the tree of the first ``size`` leaf hashes.

    RFC 9162 §2.1.3.1, ``PATH(index, D[0:size])``; ordered from the leaf's sibling up to the
    root's child. Raises ``ValueError`` unless ``0 <= index < size <= len(leaf_hashes)``.
    """
    if not 0 <= index < size <= len(leaf_hashes):
        raise ValueError(
            f"inclusion proof needs 0 <= index < size <= {len(leaf_hashes)}, "
            f"got index={index} size={size}"
        )
    _check_leaf_hashes(leaf_hashes, size)
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        split = lo + _largest_power_of_two_below(hi - lo)
        if index < split:
            path.append(_subtree_root(leaf_hashes, split, hi))
            hi = split
        else:
            path.append(_subtree_root(leaf_hashes, lo, split))
            lo = split
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the proof that the tree of ``old_size`` leaves is a prefix of that of ``new_size``.

    RFC 9162 §2.1.4.1, ``PROOF(old_size, D[0:new_size])``; empty when the sizes are equal.
    Raises ``ValueError`` unless ``0 < old_size <= new_size <= len(leaf_hashes)``: there is no
    proof from the empty tree.
    """
    if not 0 < old_size <= new_size <= len(leaf_hashes):
        raise ValueError(
            f"consistency proof needs 0 < old_size <= new_size <= {len(leaf_hashes)}, "
            f"got old_size={old_size} new_size={new_size}"
        )
    _check_leaf_hashes(leaf_hashes, new_size)
    # SUBPROOF(m, D[lo:hi], b), unrolled: each step narrows [lo, hi) to the subtree holding the
    # old tree's right edge and records the root of the other half.
    proof: list[bytes] = []
    lo, hi, m = 0, new_size, old_size
    complete_subtree = True  # b in the RFC: is D[lo:lo+m] a subtree the verifier already knows?
    while m != hi - lo:
        split = _largest_power_of_two_below(hi - lo)
        if m <= split:
            proof.append(_subtree_root(leaf_hashes, lo + split, hi))
            hi = lo + split
        else:
            proof.append(_subtree_root(leaf_hashes, lo, lo + split))
            lo, m = lo + split, m - split
            complete_subtree = False
    if not complete_subtree:
        proof.append(_subtree_root(leaf_hashes, lo, hi))
    proof.reverse()
    return proof


# Verification --------------------------------------------------------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 §2.1.3.2. Returns ``None``; raises ``VerificationError`` on any failure,
    including an index outside the tree and any hash that is not 32 bytes.
    """
    _require_hash(leaf_hash, "leaf hash")
    _require_hash(root, "root")
    _require_proof(proof)
    if not 0 <= index < size:
        raise VerificationError(f"inclusion: index {index} is not inside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion: proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion: proof is shorter than the path to the root")
    if not hmac.compare_digest(r, root):
        raise VerificationError("inclusion: proof does not lead to the expected root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    RFC 9162 §2.1.4.2; with equal sizes the proof must be empty and the roots equal. There is
    no proof from the empty tree, so ``old_size == 0`` always fails. Returns ``None``; raises
    ``VerificationError`` on any failure, including any hash that is not 32 bytes.
    """
    _require_hash(old_root, "old root")
    _require_hash(new_root, "new root")
    _require_proof(proof)
    if not 0 < old_size <= new_size:
        raise VerificationError(
            f"consistency: needs 0 < old_size <= new_size, got {old_size} and {new_size}"
        )
    if old_size == new_size:
        if proof:
            raise VerificationError("consistency: sizes are equal but the proof is not empty")
        if not hmac.compare_digest(old_root, new_root):
            raise VerificationError("consistency: sizes are equal but the roots differ")
        return
    if not proof:
        raise VerificationError("consistency: proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old tree is a perfect subtree: its root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency: proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency: proof is shorter than the path to the root")
    # Compare both before raising, so the error does not depend on which one differs first.
    old_ok = hmac.compare_digest(fr, old_root)
    new_ok = hmac.compare_digest(sr, new_root)
    if not (old_ok and new_ok):
        raise VerificationError("consistency: proof does not lead to the expected roots")


# Compact range -------------------------------------------------------------------------------


class CompactRange:
    """The right edge of a tree (RFC 9162 / transparency-dev "compact range" from 0).

    ``hashes`` are the roots of the perfect subtrees that make up the first ``size`` leaves,
    left (largest) to right: one per set bit of ``size``. That is O(log n) hashes, enough to
    compute the root and to extend it leaf by leaf without the old leaves.
    """

    __slots__ = ("_size", "_hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Build a range; ``ValueError`` unless ``hashes`` holds one 32-byte hash per set bit."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"compact range size must be a non-negative int, got {size!r}")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} has {size.bit_count()} hashes, got {len(hashes)}"
            )
        for h in hashes:
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise ValueError("compact range hashes must be 32-byte bytes")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Perfect-subtree roots, left (largest) to right."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Extend the range by one leaf hash, merging equal-sized subtrees as they complete."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise ValueError("leaf hash must be 32-byte bytes")
        h = leaf_hash
        carry = self._size
        while carry & 1:
            h = node_hash(self._hashes.pop(), h)
            carry >>= 1
        self._hashes.append(h)
        self._size += 1

    def root(self) -> bytes:
        """Return the Merkle Tree Hash of the covered leaves (``EMPTY_ROOT`` for size 0)."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> CompactRange:
        """Return an independent copy."""
        return CompactRange(self._size, self._hashes)

    def to_bytes(self) -> bytes:
        """Return the hashes concatenated, for storage next to ``size``."""
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Rebuild a range from ``size`` and :meth:`to_bytes` output; ``ProtocolError`` if they
        do not fit together."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ProtocolError(f"compact range size must be a non-negative int, got {size!r}")
        if not isinstance(data, (bytes, bytearray)):
            raise ProtocolError(f"compact range data must be bytes, got {type(data).__name__}")
        if len(data) != size.bit_count() * HASH_SIZE:
            raise ProtocolError(
                f"a compact range of size {size} takes {size.bit_count() * HASH_SIZE} bytes, "
                f"got {len(data)}"
            )
        data = bytes(data)
        hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


# Wire form -----------------------------------------------------------------------------------


def encode_proof(hashes: Sequence[bytes]) -> bytes:
    """Return the proof JSON ``{"hashes":["<base64>",...]}``, compact, standard base64.

    Raises ``ValueError`` if a hash is not 32 bytes or there are more than 64.
    """
    if len(hashes) > MAX_PROOF_HASHES:
        raise ValueError(f"a proof has at most {MAX_PROOF_HASHES} hashes, got {len(hashes)}")
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ValueError("proof hashes must be 32-byte bytes")
    body = {"hashes": [base64.b64encode(h).decode("ascii") for h in hashes]}
    return json.dumps(body, separators=(",", ":")).encode("ascii")


def decode_proof(data: bytes | str) -> list[bytes]:
    """Parse proof JSON: exactly ``{"hashes":[...]}`` with up to 64 standard-base64 strings,
    each 32 bytes once decoded. Insignificant JSON white space is allowed; duplicate keys,
    other keys and non-canonical base64 are not. Raises ``ProtocolError``."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("proof is not UTF-8") from exc
    elif isinstance(data, str):
        text = data
    else:
        raise ProtocolError(f"proof must be bytes or str, got {type(data).__name__}")
    if len(text) > _MAX_PROOF_JSON_CHARS:
        raise ProtocolError("proof JSON is too large")
    try:
        doc = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ProtocolError(f"proof is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or list(doc) != ["hashes"]:
        raise ProtocolError('proof must be an object with exactly one key, "hashes"')
    items = doc["hashes"]
    if not isinstance(items, list):
        raise ProtocolError('proof "hashes" must be an array')
    if len(items) > MAX_PROOF_HASHES:
        raise ProtocolError(f"proof has {len(items)} hashes, at most {MAX_PROOF_HASHES} allowed")
    return [_decode_hash(item) for item in items]


# Helpers -------------------------------------------------------------------------------------


def _largest_power_of_two_below(n: int) -> int:
    """The ``k`` of RFC 9162 §2.1.1: the largest power of two strictly less than ``n > 1``."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of ``leaf_hashes[lo:hi]`` with ``hi - lo - 1`` node hashes.

    Pairing neighbours level by level and carrying a lone last node up unchanged builds the
    same left-balanced tree as the RFC's recursive split.
    """
    if lo == hi:
        return EMPTY_ROOT
    level = [leaf_hashes[i] for i in range(lo, hi)]
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _check_leaf_hashes(leaf_hashes: Sequence[bytes], size: int) -> None:
    for i in range(size):
        h = leaf_hashes[i]
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash {i} is not 32-byte bytes")


def _require_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is not a {HASH_SIZE}-byte hash")


def _require_proof(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        _require_hash(p, f"proof hash {i}")


def _decode_hash(item: object) -> bytes:
    if not isinstance(item, str) or not item.isascii():
        raise ProtocolError("proof hashes must be base64 strings")
    raw = b64decode(item, what="proof hash")
    if len(raw) != HASH_SIZE:
        raise ProtocolError(f"proof hash decodes to {len(raw)} bytes, not {HASH_SIZE}")
    return raw


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ProtocolError(f"duplicate key {key!r} in proof JSON")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> None:
    raise ProtocolError(f"{name} is not JSON")


__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "MAX_PROOF_HASHES",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "inclusion_proof",
    "consistency_proof",
    "verify_inclusion",
    "verify_consistency",
    "CompactRange",
    "encode_proof",
    "decode_proof",
]
