"""hashfed's own vectors: fixed seeds and times must give these bytes, exactly.

A failure here means the wire format changed. If that was intended, regenerate with
``python -m tests.vectors.generate`` and review the diff as a protocol change.
"""

import base64
import json

import pytest

from hashfed.keys import Verifier
from hashfed.protocol.batch import decode_batch
from hashfed.protocol.checkpoint import verify_checkpoint
from hashfed.protocol.httpsig import RequestTarget, verify_request
from hashfed.protocol.merkle import (
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.vectors.generate import HERE, build

EXPECTED = build()


def test_no_stale_or_missing_files():
    on_disk = {p.name for p in HERE.iterdir()}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_file_is_byte_identical(name):
    assert (HERE / name).read_bytes() == EXPECTED[name]


def test_vkeys_are_the_hand_computed_form():
    keys = json.loads((HERE / "keys.json").read_bytes())
    for key in keys["keys"]:
        verifier = Verifier.from_vkey(key["vkey"])
        assert verifier.key_id == key["key_id"]


def test_files_verify_as_a_reader_would():
    keys = json.loads((HERE / "keys.json").read_bytes())
    verifiers = [Verifier.from_vkey(k["vkey"]) for k in keys["keys"]]
    log = json.loads((HERE / "log.json").read_bytes())
    org, collection = log["log_id"].split("/")
    leaves = []
    for i, expected in enumerate(log["leaf_hashes"]):
        data = (HERE / f"batch-{i}.json").read_bytes()
        decode_batch(data, org=org, collection=collection, index=i)
        leaves.append(leaf_hash(data))
        assert base64.b64encode(leaves[-1]).decode() == expected
    for n in range(1, len(leaves) + 1):
        for verifier in verifiers:  # each of the two keys alone is enough
            signed = verify_checkpoint(
                (HERE / f"checkpoint-{n}.note").read_bytes(), log_id=log["log_id"], verifiers=[verifier]
            )
            assert signed.checkpoint.root == root_hash(leaves[:n])
    for case in log["inclusion"]:
        proof = [base64.b64decode(h) for h in case["hashes"]]
        verify_inclusion(leaves[case["index"]], case["index"], case["size"], proof, root_hash(leaves[: case["size"]]))
    for case in log["consistency"]:
        proof = [base64.b64decode(h) for h in case["hashes"]]
        verify_consistency(
            case["old"], case["new"], root_hash(leaves[: case["old"]]), root_hash(leaves[: case["new"]]), proof
        )


@pytest.mark.parametrize("kind", ["get", "post"])
def test_signed_requests_verify(kind):
    keys = json.loads((HERE / "keys.json").read_bytes())
    verifier = Verifier.from_vkey(keys["keys"][0]["vkey"])
    vector = json.loads((HERE / "request.json").read_bytes())[kind]
    body = vector["body"].encode() if "body" in vector else None
    verified = verify_request(
        RequestTarget(**vector["target"]),
        vector["headers"],
        body,
        lookup_key={verifier.key_id: verifier}.get,
        now=1795660781,
    )
    assert verified.org == keys["org"]
