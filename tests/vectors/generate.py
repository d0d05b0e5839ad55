"""Regenerate hashfed's own test vectors: ``python -m tests.vectors.generate``.

Fixed keys (from hex seeds), a fixed time and fixed entries produce the batches, leaf
hashes, roots, signed checkpoints, proofs and a signed request that another implementation
must reproduce byte for byte. ``test_generated_vectors.py`` rebuilds all of it in memory and
requires the files to be identical; a change to any output is a change to the wire format.

Files (under ``tests/vectors/hashfed/``):
    keys.json            seeds (hex) and the vkeys they give
    batch-N.json         batch N's bytes, verbatim (no trailing newline)
    log.json             per size: leaf hashes, roots; inclusion and consistency proofs
    checkpoint-N.note    the signed checkpoint at size N, signed by both keys
    request.json         a signed GET and a signed POST (RFC 9421 headers)
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from hashfed.keys import Signer
from hashfed.protocol.batch import encode_batch
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.httpsig import RequestTarget, new_nonce, sign_request
from hashfed.protocol.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
)

HERE = Path(__file__).resolve().parent / "hashfed"
ORG = "acme.example"
COLLECTION = "csam"
SEEDS = {"key-1": bytes(range(32)), "key-2": bytes(range(32, 64))}
CREATED = datetime(2026, 11, 26, 2, 19, 41, tzinfo=UTC)
REQUEST_CREATED = 1795660781  # 2026-11-26T02:19:41Z
REQUEST_NONCE = new_nonce(bytes(range(100, 116)))

BATCH_ENTRIES = [
    [
        Entry.add("md5", "D41D8CD98F00B204E9800998ECF8427E", ["ncmec:a1", "csam"]),
        Entry.add("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        Entry.add("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ],
    [
        Entry.add("pdq", "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22", ["csam"]),
        Entry.opine("md5", "d41d8cd98f00b204e9800998ecf8427e", "true_positive"),
    ],
    [Entry.add("photodna", "0" * 286 + "ff", ["iwf:x/y_z.1"])],
    [Entry.remove("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709")],
    [Entry.opine("pdq", "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22", "false_positive")],
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build() -> dict[str, bytes]:
    """Every vector file's name and exact bytes."""
    signers = [Signer.from_seed(ORG, seed) for seed in SEEDS.values()]
    files: dict[str, bytes] = {}
    files["keys.json"] = _json(
        {
            "org": ORG,
            "keys": [
                {"name": name, "seed": seed.hex(), "vkey": signer.vkey(), "key_id": signer.key_id}
                for (name, seed), signer in zip(SEEDS.items(), signers, strict=True)
            ],
        }
    )
    batches = [
        encode_batch(org=ORG, collection=COLLECTION, index=i, created=CREATED, entries=entries)
        for i, entries in enumerate(BATCH_ENTRIES)
    ]
    leaves = [leaf_hash(data) for data in batches]
    for i, data in enumerate(batches):
        files[f"batch-{i}.json"] = data
    sizes = range(1, len(batches) + 1)
    log = {
        "log_id": f"{ORG}/{COLLECTION}",
        "leaf_hashes": [b64(h) for h in leaves],
        "roots": {str(n): b64(root_hash(leaves[:n])) for n in range(0, len(batches) + 1)},
        "inclusion": [
            {"index": i, "size": n, "hashes": [b64(h) for h in inclusion_proof(i, n, leaves)]}
            for n in sizes
            for i in range(n)
        ],
        "consistency": [
            {"old": m, "new": n, "hashes": [b64(h) for h in consistency_proof(m, n, leaves)]}
            for n in sizes
            for m in range(1, n + 1)
        ],
    }
    files["log.json"] = _json(log)
    for n in sizes:
        checkpoint = Checkpoint(origin=f"{ORG}/{COLLECTION}", size=n, root=root_hash(leaves[:n]))
        files[f"checkpoint-{n}.note"] = sign_checkpoint(checkpoint, signers)
    get = RequestTarget("GET", "node.example:8470", f"/v1/logs/{ORG}/{COLLECTION}/batches", "start=0&end=2")
    post = RequestTarget("POST", "node.example", f"/v1/logs/{ORG}/{COLLECTION}/batches", "")
    body = batches[0] + b"\n"
    files["request.json"] = _json(
        {
            "signer": "key-1",
            "get": {
                "target": vars(get),
                "headers": sign_request(signers[0], get, None, created=REQUEST_CREATED, nonce=REQUEST_NONCE),
            },
            "post": {
                "target": vars(post),
                "body": body.decode(),
                "headers": sign_request(signers[0], post, body, created=REQUEST_CREATED, nonce=REQUEST_NONCE),
            },
        }
    )
    return files


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def main() -> int:
    HERE.mkdir(exist_ok=True)
    for name, data in build().items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(build())} files to {HERE.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
