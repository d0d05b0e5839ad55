"""Deterministic sample data: N distinct hashes, mixed md5 / sha256 / pdq, with labels."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

TYPES = ("md5", "sha256", "pdq")


def sample_rows(n: int, *, seed: str = "hashfed-bench") -> Iterator[tuple[str, str, str]]:
    """(type, value, labels) rows; value i is a hash of the seed and i, so rows are
    distinct, reproducible, and spread over the key space like real hashes."""
    prefix = seed.encode()
    for i in range(n):
        digest = hashlib.sha256(prefix + i.to_bytes(8, "big")).hexdigest()
        type_ = TYPES[i % 3]
        value = digest[:32] if type_ == "md5" else digest
        labels = "bench:a" if i % 2 else "bench:a;bench:b"
        yield type_, value, labels


def write_csv(path: Path, n: int, *, seed: str = "hashfed-bench") -> None:
    """The rows as ``hashfed import`` reads them: type,value,label;label."""
    with path.open("w", encoding="utf-8") as out:
        for type_, value, labels in sample_rows(n, seed=seed):
            out.write(f"{type_},{value},{labels}\n")
