"""Unit and property tests for protocol.merkle (RFC 6962 / RFC 9162 §2.1).

The generators are checked against a literal transcription of the RFC's recursive
definitions (``_ref_*`` below), and the verifiers against the generators.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import inspect
import json
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.keys.errors import ProtocolError, VerificationError
from hashfed.protocol import merkle
from hashfed.protocol.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_PROOF_HASHES,
    CompactRange,
    consistency_proof,
    decode_proof,
    encode_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# Known answers -------------------------------------------------------------------------------

# The leaves of the RFC 6962 reference test tree (certificate-transparency merkle_tree_test)
# and the roots of its first 1..8 leaves.
RFC6962_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_hash([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = bytes(32), bytes([1]) * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(a + b) != node_hash(a, b)


@pytest.mark.parametrize("size", range(1, 9), ids=lambda n: f"size-{n}")
def test_rfc6962_reference_roots(size: int) -> None:
    leaves = [leaf_hash(d) for d in RFC6962_LEAVES[:size]]
    assert root_hash(leaves).hex() == RFC6962_ROOTS[size - 1]


# Reference model: RFC 9162 §2.1 transcribed literally ---------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _ref_mth(d: Sequence[bytes]) -> bytes:
    if len(d) == 0:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node_hash(_ref_mth(d[:k]), _ref_mth(d[k:]))


def _ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return _ref_path(m, d[:k]) + [_ref_mth(d[k:])]
    return _ref_path(m - k, d[k:]) + [_ref_mth(d[:k])]


def _ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [_ref_mth(d)]
    k = _k(n)
    if m <= k:
        return _ref_subproof(m, d[:k], b) + [_ref_mth(d[k:])]
    return _ref_subproof(m - k, d[k:], False) + [_ref_mth(d[:k])]


def _leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


SMALL = 33
SMALL_LEAVES = _leaves(SMALL)


@pytest.mark.parametrize("size", range(1, SMALL + 1), ids=lambda n: f"size-{n}")
def test_generation_matches_rfc_definitions_exhaustively(size: int) -> None:
    d = SMALL_LEAVES[:size]
    root = root_hash(d)
    assert root == _ref_mth(d)
    for index in range(size):
        proof = inclusion_proof(index, size, SMALL_LEAVES)
        assert proof == _ref_path(index, d)
        verify_inclusion(d[index], index, size, proof, root)
    for old in range(1, size + 1):
        proof = consistency_proof(old, size, SMALL_LEAVES)
        assert proof == _ref_subproof(old, d, True)
        verify_consistency(old, size, _ref_mth(d[:old]), root, proof)


# Properties over random trees ----------------------------------------------------------------

LEAVES_300 = _leaves(300, b"p")
ROOTS_300 = [root_hash(LEAVES_300[:n]) for n in range(301)]


@st.composite
def _tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, 300))
    return size, draw(st.integers(0, size - 1))


@st.composite
def _old_and_new(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, 300))
    return draw(st.integers(1, new)), new


@settings(database=None)
@given(_tree_and_index())
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    size, index = case
    proof = inclusion_proof(index, size, LEAVES_300)
    assert len(proof) <= MAX_PROOF_HASHES
    verify_inclusion(LEAVES_300[index], index, size, proof, ROOTS_300[size])


@settings(database=None)
@given(_old_and_new())
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    old, new = case
    proof = consistency_proof(old, new, LEAVES_300)
    assert len(proof) <= MAX_PROOF_HASHES
    verify_consistency(old, new, ROOTS_300[old], ROOTS_300[new], proof)


def _flip(value: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(value)
    out[byte] ^= 1 << bit
    return bytes(out)


@settings(database=None)
@given(_tree_and_index(), st.data())
def test_any_flipped_byte_breaks_inclusion(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    leaf, root = LEAVES_300[index], ROOTS_300[size]
    proof = inclusion_proof(index, size, LEAVES_300)
    target = data.draw(st.integers(-2, len(proof) - 1), label="target")  # -2 leaf, -1 root
    byte, bit = data.draw(st.integers(0, HASH_SIZE - 1)), data.draw(st.integers(0, 7))
    if target == -2:
        leaf = _flip(leaf, byte, bit)
    elif target == -1:
        root = _flip(root, byte, bit)
    else:
        proof[target] = _flip(proof[target], byte, bit)
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, index, size, proof, root)


@settings(database=None)
@given(_old_and_new(), st.data())
def test_any_flipped_byte_breaks_consistency(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    old_root, new_root = ROOTS_300[old], ROOTS_300[new]
    proof = consistency_proof(old, new, LEAVES_300)
    target = data.draw(st.integers(-2, len(proof) - 1), label="target")  # -2 old, -1 new root
    byte, bit = data.draw(st.integers(0, HASH_SIZE - 1)), data.draw(st.integers(0, 7))
    if target == -2:
        old_root = _flip(old_root, byte, bit)
    elif target == -1:
        new_root = _flip(new_root, byte, bit)
    else:
        proof[target] = _flip(proof[target], byte, bit)
    with pytest.raises(VerificationError):
        verify_consistency(old, new, old_root, new_root, proof)


@st.composite
def _two_distinct(draw: st.DrawFn, low: int) -> tuple[int, int, int]:
    """A size in 2..300 and two distinct values in low..(size - 1 + low)."""
    size = draw(st.integers(2, 300))
    a, b = draw(st.lists(st.integers(low, size - 1 + low), min_size=2, max_size=2, unique=True))
    return size, a, b


# The sizes themselves are not bound by a proof: a proof for (old=1, new=3) also passes as one
# for (1, 4), because a verifier cannot tell a subtree root from a leaf. The signed checkpoint
# binds size and root together; what a proof must bind is the position inside that tree.


@settings(database=None)
@given(_two_distinct(low=0))
def test_inclusion_proof_is_bound_to_its_index(case: tuple[int, int, int]) -> None:
    size, index, other = case
    proof = inclusion_proof(index, size, LEAVES_300)
    with pytest.raises(VerificationError):
        verify_inclusion(LEAVES_300[index], other, size, proof, ROOTS_300[size])


@settings(database=None)
@given(_two_distinct(low=1))
def test_consistency_proof_is_bound_to_its_old_size(case: tuple[int, int, int]) -> None:
    new, old, other = case
    proof = consistency_proof(old, new, LEAVES_300)
    with pytest.raises(VerificationError):
        verify_consistency(other, new, ROOTS_300[old], ROOTS_300[new], proof)


# Verifier bad inputs -------------------------------------------------------------------------

T = _leaves(7, b"t")
T_ROOT = root_hash(T)
T_PROOF_3 = inclusion_proof(3, 7, T)
T_ROOT_4 = root_hash(T[:4])
T_ROOT_5 = root_hash(T[:5])
T_CONS_5_7 = consistency_proof(5, 7, T)
T_CONS_4_7 = consistency_proof(4, 7, T)
H = bytes(range(32))

INCLUSION_BAD = [
    ("index-equals-size", (T[3], 7, 7, T_PROOF_3, T_ROOT)),
    ("index-past-size", (T[3], 9, 7, T_PROOF_3, T_ROOT)),
    ("negative-index", (T[3], -1, 7, T_PROOF_3, T_ROOT)),
    ("size-zero", (T[3], 0, 0, [], EMPTY_ROOT)),
    ("size-zero-leaf-is-root", (EMPTY_ROOT, 0, 0, [], EMPTY_ROOT)),
    ("wrong-leaf", (T[2], 3, 7, T_PROOF_3, T_ROOT)),
    ("proof-truncated", (T[3], 3, 7, T_PROOF_3[:-1], T_ROOT)),
    ("proof-extended", (T[3], 3, 7, [*T_PROOF_3, H], T_ROOT)),
    ("proof-reversed", (T[3], 3, 7, T_PROOF_3[::-1], T_ROOT)),
    ("proof-empty", (T[3], 3, 7, [], T_ROOT)),
    ("root-of-other-size", (T[3], 3, 7, T_PROOF_3, T_ROOT_5)),
    ("leaf-31-bytes", (T[3][:31], 3, 7, T_PROOF_3, T_ROOT)),
    ("leaf-33-bytes", (T[3] + b"\0", 3, 7, T_PROOF_3, T_ROOT)),
    ("leaf-empty", (b"", 0, 1, [], b"")),
    ("leaf-str", (T[3].hex(), 3, 7, T_PROOF_3, T_ROOT)),
    ("root-31-bytes", (T[3], 3, 7, T_PROOF_3, T_ROOT[:31])),
    ("proof-hash-33-bytes", (T[3], 3, 7, [T_PROOF_3[0] + b"\0", *T_PROOF_3[1:]], T_ROOT)),
    ("proof-hash-split", (T[3], 3, 7, [T_PROOF_3[0][:16], T_PROOF_3[0][16:]], T_ROOT)),
    ("size-one-with-proof", (T[0], 0, 1, [H], T[0])),
]


@pytest.mark.parametrize("args", [a for _, a in INCLUSION_BAD], ids=[i for i, _ in INCLUSION_BAD])
def test_verify_inclusion_rejects(args: tuple) -> None:
    with pytest.raises(VerificationError):
        verify_inclusion(*args)


def test_verify_inclusion_accepts_the_fixture() -> None:
    verify_inclusion(T[3], 3, 7, T_PROOF_3, T_ROOT)
    verify_inclusion(T[0], 0, 1, [], T[0])


CONSISTENCY_BAD = [
    ("old-zero", (0, 7, EMPTY_ROOT, T_ROOT, [])),
    ("old-zero-with-proof", (0, 7, EMPTY_ROOT, T_ROOT, T_CONS_5_7)),
    ("both-zero", (0, 0, EMPTY_ROOT, EMPTY_ROOT, [])),
    ("negative-old", (-1, 7, T_ROOT_5, T_ROOT, T_CONS_5_7)),
    ("old-greater-than-new", (7, 5, T_ROOT, T_ROOT_5, T_CONS_5_7)),
    ("equal-sizes-other-roots", (5, 5, T_ROOT_5, T_ROOT, [])),
    ("equal-sizes-with-proof", (5, 5, T_ROOT_5, T_ROOT_5, [H])),
    ("empty-proof", (5, 7, T_ROOT_5, T_ROOT, [])),
    ("swapped-roots", (5, 7, T_ROOT, T_ROOT_5, T_CONS_5_7)),
    ("proof-truncated", (5, 7, T_ROOT_5, T_ROOT, T_CONS_5_7[:-1])),
    ("proof-extended", (5, 7, T_ROOT_5, T_ROOT, [*T_CONS_5_7, H])),
    ("proof-prefixed", (5, 7, T_ROOT_5, T_ROOT, [H, *T_CONS_5_7])),
    ("power-of-two-old-root-in-proof", (4, 7, T_ROOT_4, T_ROOT, [T_ROOT_4, *T_CONS_4_7])),
    ("old-root-31-bytes", (5, 7, T_ROOT_5[:31], T_ROOT, T_CONS_5_7)),
    ("new-root-33-bytes", (5, 7, T_ROOT_5, T_ROOT + b"\0", T_CONS_5_7)),
    ("equal-sizes-short-roots", (1, 1, b"don't care", b"don't care", [])),
    ("proof-hash-31-bytes", (5, 7, T_ROOT_5, T_ROOT, [T_CONS_5_7[0][:31], *T_CONS_5_7[1:]])),
    ("proof-hash-str", (5, 7, T_ROOT_5, T_ROOT, [T_CONS_5_7[0].hex(), *T_CONS_5_7[1:]])),
]


@pytest.mark.parametrize(
    "args", [a for _, a in CONSISTENCY_BAD], ids=[i for i, _ in CONSISTENCY_BAD]
)
def test_verify_consistency_rejects(args: tuple) -> None:
    with pytest.raises(VerificationError):
        verify_consistency(*args)


def test_verify_consistency_accepts_the_fixture() -> None:
    verify_consistency(5, 7, T_ROOT_5, T_ROOT, T_CONS_5_7)
    verify_consistency(4, 7, T_ROOT_4, T_ROOT, T_CONS_4_7)
    verify_consistency(7, 7, T_ROOT, T_ROOT, [])


# Generator bad arguments ---------------------------------------------------------------------

GENERATION_BAD: list[tuple[str, Callable[[], object]]] = [
    ("inclusion-index-equals-size", lambda: inclusion_proof(7, 7, T)),
    ("inclusion-negative-index", lambda: inclusion_proof(-1, 7, T)),
    ("inclusion-size-past-leaves", lambda: inclusion_proof(0, 8, T)),
    ("inclusion-size-zero", lambda: inclusion_proof(0, 0, T)),
    ("inclusion-short-leaf-hash", lambda: inclusion_proof(0, 2, [T[0], T[1][:31]])),
    ("consistency-old-zero", lambda: consistency_proof(0, 7, T)),
    ("consistency-old-greater", lambda: consistency_proof(6, 5, T)),
    ("consistency-new-past-leaves", lambda: consistency_proof(5, 8, T)),
    ("consistency-negative-old", lambda: consistency_proof(-1, 5, T)),
    ("consistency-short-leaf-hash", lambda: consistency_proof(1, 2, [T[0], b"x"])),
    ("root-short-leaf-hash", lambda: root_hash([T[0], b"x"])),
    ("root-str-leaf-hash", lambda: root_hash([T[0].hex()])),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    "call", [c for _, c in GENERATION_BAD], ids=[i for i, _ in GENERATION_BAD]
)
def test_generation_rejects_bad_arguments(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


def test_generation_uses_only_the_requested_prefix() -> None:
    extra = [*T, H, H]
    assert inclusion_proof(3, 7, extra) == inclusion_proof(3, 7, T)
    assert consistency_proof(5, 7, extra) == consistency_proof(5, 7, T)
    assert consistency_proof(7, 7, extra) == []


# Cost: O(n) node hashes per call -------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 1000, 1024, 1025, 100_000], ids=lambda n: f"size-{n}")
def test_generation_hashes_at_most_n_minus_1_nodes(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    calls = 0

    def counting_node_hash(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return node_hash(left, right)

    monkeypatch.setattr(merkle, "node_hash", counting_node_hash)
    for run in (
        lambda: merkle.root_hash(leaves),
        lambda: merkle.inclusion_proof(size // 2, size, leaves),
        lambda: merkle.inclusion_proof(size - 1, size, leaves),
        lambda: merkle.consistency_proof(max(1, size // 3), size, leaves),
        lambda: merkle.consistency_proof(max(1, size - 1), size, leaves),
    ):
        calls = 0
        run()
        assert calls <= size - 1


# Compact range -------------------------------------------------------------------------------


def test_compact_range_root_matches_root_hash_at_every_size() -> None:
    cr = CompactRange()
    assert cr.root() == ROOTS_300[0]
    for size in range(1, 301):
        cr.append(LEAVES_300[size - 1])
        assert cr.size == size
        assert len(cr.hashes) == size.bit_count()
        assert cr.root() == ROOTS_300[size]


@settings(database=None, deadline=None)
@given(st.lists(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), max_size=300))
def test_compact_range_matches_root_hash_and_round_trips(hashes: list[bytes]) -> None:
    cr = CompactRange()
    for h in hashes:
        cr.append(h)
    assert cr.root() == root_hash(hashes)
    again = CompactRange.from_bytes(cr.size, cr.to_bytes())
    assert again == cr
    assert again.hashes == cr.hashes
    assert again.root() == cr.root()
    assert CompactRange(cr.size, cr.hashes) == cr


def test_compact_range_resumes_from_storage() -> None:
    cr = CompactRange()
    for h in LEAVES_300[:100]:
        cr.append(h)
    resumed = CompactRange.from_bytes(100, cr.to_bytes())
    for h in LEAVES_300[100:]:
        resumed.append(h)
    assert resumed.root() == ROOTS_300[300]


def test_compact_range_copy_is_independent() -> None:
    cr = CompactRange()
    for h in LEAVES_300[:5]:
        cr.append(h)
    snapshot = cr.copy()
    cr.append(LEAVES_300[5])
    assert snapshot.size == 5
    assert snapshot.root() == ROOTS_300[5]
    assert cr.root() == ROOTS_300[6]


def test_compact_range_hashes_are_perfect_subtree_roots() -> None:
    cr = CompactRange()
    for h in LEAVES_300[:13]:  # 13 = 8 + 4 + 1
        cr.append(h)
    assert cr.hashes == (
        root_hash(LEAVES_300[:8]),
        root_hash(LEAVES_300[8:12]),
        LEAVES_300[12],
    )
    assert cr.to_bytes() == b"".join(cr.hashes)


COMPACT_INIT_BAD = [
    ("too-few-hashes", (3, [H])),
    ("too-many-hashes", (1, [H, H])),
    ("hashes-for-empty", (0, [H])),
    ("negative-size", (-1, [])),
    ("bool-size", (True, [H])),
    ("short-hash", (1, [H[:31]])),
    ("str-hash", (1, [H.hex()])),
]


@pytest.mark.parametrize(
    "args", [a for _, a in COMPACT_INIT_BAD], ids=[i for i, _ in COMPACT_INIT_BAD]
)
def test_compact_range_init_rejects(args: tuple) -> None:
    with pytest.raises(ValueError):
        CompactRange(*args)


COMPACT_FROM_BYTES_BAD = [
    ("empty-data-for-size-1", (1, b"")),
    ("short-data", (3, H + H[:31])),
    ("long-data", (2, H + b"\0")),
    ("data-for-empty", (0, H)),
    ("extra-hash", (4, H + H)),
    ("negative-size", (-1, b"")),
    ("bool-size", (True, H)),
    ("str-size", ("1", H)),
    ("str-data", (1, "x" * 32)),
]


@pytest.mark.parametrize(
    "args", [a for _, a in COMPACT_FROM_BYTES_BAD], ids=[i for i, _ in COMPACT_FROM_BYTES_BAD]
)
def test_compact_range_from_bytes_rejects(args: tuple) -> None:
    with pytest.raises(ProtocolError):
        CompactRange.from_bytes(*args)


@pytest.mark.parametrize("leaf", [H[:31], H + b"\0", b""], ids=["31-bytes", "33-bytes", "empty"])
def test_compact_range_append_rejects_bad_leaf_hash(leaf: bytes) -> None:
    cr = CompactRange()
    with pytest.raises(ValueError):
        cr.append(leaf)
    assert cr.size == 0


# Proof wire form -----------------------------------------------------------------------------


def test_encode_proof_is_compact_json() -> None:
    assert encode_proof([]) == b'{"hashes":[]}'
    assert encode_proof([bytes(32), b"\xff" * 32]) == (
        b'{"hashes":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",'
        b'"//////////////////////////////////////////8="]}'
    )


@settings(database=None)
@given(st.lists(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), max_size=MAX_PROOF_HASHES))
def test_proof_round_trip(hashes: list[bytes]) -> None:
    encoded = encode_proof(hashes)
    assert decode_proof(encoded) == hashes
    assert decode_proof(encoded.decode()) == hashes


def test_decode_proof_allows_json_white_space() -> None:
    text = json.dumps({"hashes": [base64.b64encode(H).decode()]}, indent=2)
    assert decode_proof(text) == [H]


@pytest.mark.parametrize(
    "hashes", [[H[:31]], [H + b"\0"], [H] * (MAX_PROOF_HASHES + 1)],
    ids=["31-bytes", "33-bytes", "65-hashes"],
)  # fmt: skip
def test_encode_proof_rejects(hashes: list[bytes]) -> None:
    with pytest.raises(ValueError):
        encode_proof(hashes)


B64 = base64.b64encode(H).decode()
ZERO_NONCANONICAL = "A" * 42 + "B="  # decodes to 32 zero bytes, but the spare bits are set

DECODE_BAD: list[tuple[str, object]] = [
    ("empty", b""),
    ("not-utf8", b'{"hashes":["\xff"]}'),
    ("utf8-bom", b'\xef\xbb\xbf{"hashes":[]}'),
    ("utf16", '{"hashes":[]}'.encode("utf-16")),
    ("not-json", b"hashes: []"),
    ("trailing-garbage", b'{"hashes":[]}x'),
    ("top-level-array", b"[]"),
    ("top-level-null", b"null"),
    ("empty-object", b"{}"),
    ("extra-key", b'{"hashes":[],"size":1}'),
    ("wrong-key", b'{"hash":[]}'),
    ("key-case", b'{"Hashes":[]}'),
    ("duplicate-key", b'{"hashes":[],"hashes":[]}'),
    ("hashes-null", b'{"hashes":null}'),
    ("hashes-string", ('{"hashes":"%s"}' % B64).encode()),
    ("hashes-object", b'{"hashes":{}}'),
    ("element-int", b'{"hashes":[1]}'),
    ("element-nan", b'{"hashes":[NaN]}'),
    ("element-null", b'{"hashes":[null]}'),
    ("element-nested-list", ('{"hashes":[["%s"]]}' % B64).encode()),
    ("base64-31-bytes", ('{"hashes":["%s"]}' % base64.b64encode(H[:31]).decode()).encode()),
    ("base64-33-bytes", ('{"hashes":["%s"]}' % base64.b64encode(H + b"\0").decode()).encode()),
    ("base64-empty", b'{"hashes":[""]}'),
    ("base64-unpadded", ('{"hashes":["%s"]}' % B64.rstrip("=")).encode()),
    ("base64-urlsafe", ('{"hashes":["%s"]}' % base64.urlsafe_b64encode(b"\xfb" * 32).decode())
     .encode()),
    ("base64-noncanonical-bits", ('{"hashes":["%s"]}' % ZERO_NONCANONICAL).encode()),
    ("base64-inner-space", ('{"hashes":["%s %s"]}' % (B64[:20], B64[20:])).encode()),
    ("base64-newline-escape", ('{"hashes":["%s\\n"]}' % B64).encode()),
    ("base64-hex", ('{"hashes":["%s"]}' % H.hex()).encode()),
    ("base64-non-ascii", ('{"hashes":["%s\u00e9"]}' % B64[:-1]).encode()),
    ("too-many-hashes", json.dumps({"hashes": [B64] * (MAX_PROOF_HASHES + 1)}).encode()),
    ("deeply-nested", b'{"hashes":' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("too-large", b'{"hashes":[]' + b" " * 20_000 + b"}"),
    ("wrong-type-int", 7),
    ("wrong-type-list", [H]),
]


@pytest.mark.parametrize("data", [d for _, d in DECODE_BAD], ids=[i for i, _ in DECODE_BAD])
def test_decode_proof_rejects(data: object) -> None:
    with pytest.raises(ProtocolError):
        decode_proof(data)  # type: ignore[arg-type]


def test_decode_proof_of_a_real_proof() -> None:
    assert decode_proof(encode_proof(T_PROOF_3)) == T_PROOF_3


# Purity --------------------------------------------------------------------------------------


def test_merkle_module_is_pure() -> None:
    tree = ast.parse(inspect.getsource(merkle))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(_top(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(_top(node.module))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open"
    allowed = {"__future__", "base64", "binascii", "collections", "hashlib", "hmac", "json",
               "typing", "hashfed.keys"}  # fmt: skip
    assert imported <= allowed, imported - allowed


def _top(module: str) -> str:
    """A module's package as the purity rule sees it: ``hashfed.X`` for our own parts."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "hashfed" else parts[0]
