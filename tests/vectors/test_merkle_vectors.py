"""Conformance with the RFC 6962 proof vectors of transparency-dev/merkle (Apache-2.0).

The vectors are third-party data. They live beside the project, in
``../shared/vectors/merkle`` (or wherever ``HASHFED_MERKLE_VECTORS`` points), and are read
from there, never copied into this repository. Without them these tests fail: they do not skip.

Each JSON file is one case (see the folder's NOTICE.md): a verifier must accept exactly the
cases with ``wantErr: false``, except for those listed in ``STRICTER_THAN_VECTORS``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hashfed.keys.errors import VerificationError
from hashfed.protocol.merkle import (
    HASH_SIZE,
    consistency_proof,
    decode_proof,
    encode_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS = Path(
    os.environ.get("HASHFED_MERKLE_VECTORS") or REPO_ROOT.parent / "shared" / "vectors" / "merkle"
)
MISSING = (
    f"RFC 6962 proof vectors not found in {VECTORS}: put the shared folder beside the "
    "repository or set HASHFED_MERKLE_VECTORS to the vectors' merkle folder"
)

# Cases the vectors expect to pass that we reject on purpose, by relative path.
STRICTER_THAN_VECTORS = {
    # Equal sizes (1, 1) and an empty proof, with equal 12-byte placeholder roots
    # ("don't care"). The reference verifier only compares the two roots; ours also insists
    # that every hash is 32 bytes, so it raises VerificationError here.
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
}

# The leaves of the RFC 6962 reference test tree; the numbered folders' happy paths are
# proofs in the trees of its first 1..8 leaves.
RFC6962_LEAVES = [
    leaf_hash(bytes.fromhex(h))
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip


def _params(kind: str, pattern: str = "*.json") -> list[Any]:
    folder = VECTORS / kind
    files = sorted(folder.rglob(pattern)) if folder.is_dir() else []
    if not files:  # one failing case rather than an empty (skipped) parametrization
        return [pytest.param(None, id=f"{kind}/MISSING")]
    return [pytest.param(path, id=path.relative_to(VECTORS).as_posix()) for path in files]


def _load(path: Path | None) -> dict[str, Any]:
    if path is None:
        pytest.fail(MISSING)
    case = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(case, dict) and isinstance(case.get("wantErr"), bool), path
    return case


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in case["proof"] or []]  # null means an empty proof


def _expects_error(path: Path, case: dict[str, Any]) -> bool:
    return case["wantErr"] or path.relative_to(VECTORS).as_posix() in STRICTER_THAN_VECTORS


@pytest.mark.parametrize("path", _params("inclusion"))
def test_inclusion_vector(path: Path | None) -> None:
    case = _load(path)
    assert path is not None
    args = (_b64(case["leafHash"]), case["leafIdx"], case["treeSize"])
    proof, root = _proof(case), _b64(case["root"])
    if _expects_error(path, case):
        with pytest.raises(VerificationError):
            verify_inclusion(*args, proof, root)
    else:
        verify_inclusion(*args, proof, root)
        verify_inclusion(*args, decode_proof(encode_proof(proof)), root)


@pytest.mark.parametrize("path", _params("consistency"))
def test_consistency_vector(path: Path | None) -> None:
    case = _load(path)
    assert path is not None
    sizes = (case["size1"], case["size2"])
    roots = (_b64(case["root1"]), _b64(case["root2"]))
    proof = _proof(case)
    if _expects_error(path, case):
        with pytest.raises(VerificationError):
            verify_consistency(*sizes, *roots, proof)
    else:
        verify_consistency(*sizes, *roots, proof)
        verify_consistency(*sizes, *roots, decode_proof(encode_proof(proof)))


@pytest.mark.parametrize("path", _params("inclusion", "[0-9]*/happy-path.json"))
def test_inclusion_generation_matches_vector(path: Path | None) -> None:
    case = _load(path)
    index, size = case["leafIdx"], case["treeSize"]
    assert _b64(case["root"]) == root_hash(RFC6962_LEAVES[:size])
    assert _b64(case["leafHash"]) == RFC6962_LEAVES[index]
    assert inclusion_proof(index, size, RFC6962_LEAVES) == _proof(case)


@pytest.mark.parametrize("path", _params("consistency", "[0-9]*/happy-path.json"))
def test_consistency_generation_matches_vector(path: Path | None) -> None:
    case = _load(path)
    old, new = case["size1"], case["size2"]
    assert _b64(case["root1"]) == root_hash(RFC6962_LEAVES[:old])
    assert _b64(case["root2"]) == root_hash(RFC6962_LEAVES[:new])
    assert consistency_proof(old, new, RFC6962_LEAVES) == _proof(case)


@pytest.mark.parametrize("rel", sorted(STRICTER_THAN_VECTORS))
def test_stricter_cases_are_the_non_32_byte_placeholders(rel: str) -> None:
    """Each exemption must still exist, expect success, and carry a hash that is not 32 bytes."""
    path = VECTORS / rel
    if not path.is_file():
        pytest.fail(f"{MISSING} (looking for {rel})")
    case = _load(path)
    assert case["wantErr"] is False
    hashes = [case.get(k, "") for k in ("root", "leafHash", "root1", "root2")]
    decoded = [_b64(h) for h in hashes if h] + _proof(case)
    assert any(len(h) != HASH_SIZE for h in decoded)
