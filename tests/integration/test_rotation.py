"""Key rotation (issue 3 part 6): ``hashfed keys rotate`` adds a key and every checkpoint
is signed by all of the org's keys, so a peer trusting either key accepts it; removing a key
from a trust store stops accepting it at once, for checkpoints and for request signatures.
"""

from __future__ import annotations

import aiohttp
import pytest

from hashfed.federation.cli import main as cli
from hashfed.federation.home import Home, open_home
from hashfed.keys import Signer
from hashfed.keys.errors import VerificationError
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.note import parse_note
from tests.helpers import (
    assert_problem,
    connect,
    md5,
    merged_list,
    pull_from,
    signed,
    snapshot,
    stage_and_publish,
)

A, OLD, NEW = "a.example", "b.example", "c.example"
LOG = f"{A}/default"


def _cli(home: Home, *args: str) -> int:
    return cli(["--home", str(home.path), *args])


def _trust_a(reader: Home, *keys: Signer) -> None:
    with reader.open_store() as store:
        store.peers.add(A, url=None, vkeys=[k.vkey() for k in keys], accept_push=False, ca_file=None, now="x")


def _served(home: Home) -> bytes:
    with home.open_store() as store:
        log = store.logs.get(LOG)
        assert log is not None and log.checkpoint is not None
        return log.checkpoint


async def test_rotation_end_to_end(make_home, start_node, capsys) -> None:  # type: ignore[no-untyped-def]
    a = make_home(A)
    (k1,) = a.signers
    # b will trust only the old key, c only the new one.
    b, c = make_home(OLD), make_home(NEW)
    service = await start_node(a)
    connect(b, a, url=service.url)
    connect(c, a, url=service.url)

    assert _cli(a, "keys", "rotate") == 0
    k2_vkey = capsys.readouterr().out.strip()
    a = open_home(a.path)
    assert sorted(s.vkey() for s in a.signers) == sorted([k1.vkey(), k2_vkey])
    (k2,) = [s for s in a.signers if s.vkey() == k2_vkey]
    _trust_a(b, k1)
    _trust_a(c, k2)

    assert _cli(a, "add", "md5", md5(1)) == 0
    assert _cli(a, "publish") == 0
    note = _served(a)
    assert sorted(s.key_hash for s in parse_note(note).signatures) == sorted([k1.key_hash, k2.key_hash])
    assert verify_checkpoint(note, log_id=LOG, verifiers=[k1.verifier()]).signed_by == (k1.verifier(),)
    assert verify_checkpoint(note, log_id=LOG, verifiers=[k2.verifier()]).signed_by == (k2.verifier(),)

    for reader in (b, c):  # either key is enough
        results = await pull_from(reader, service.url)
        assert [(r.log_id, r.status, r.new_size) for r in results] == [(LOG, "updated", 1)]
        assert merged_list(reader) == merged_list(a)

    # a retires its old key: checkpoints are signed by the new one only.
    assert _cli(a, "keys", "remove", k1.key_id) == 0
    assert [s.key_id for s in open_home(a.path).signers] == [k2.key_id]
    assert _cli(a, "add", "md5", md5(2)) == 0
    assert _cli(a, "publish") == 0
    assert [s.key_hash for s in parse_note(_served(a)).signatures] == [k2.key_hash]

    # b, still trusting only the old key, refuses the new checkpoint and stores nothing.
    before = snapshot(b)
    (result,) = await pull_from(b, service.url)
    assert (result.status, result.new_size) == ("failed", 1)
    assert "no valid signature" in result.detail
    assert snapshot(b) == before
    (result,) = await pull_from(c, service.url)
    assert (result.status, result.new_size) == ("updated", 2)

    # b learns the new key (peer add replaces the keys) and catches up.
    assert _cli(b, "peer", "add", A, "--key", k2.vkey()) == 0
    (result,) = await pull_from(b, service.url)
    assert (result.status, result.old_size, result.new_size) == ("updated", 1, 2)
    assert merged_list(b) == merged_list(c) == merged_list(a)


def test_removed_key_stops_verifying_checkpoints_at_once(make_home) -> None:  # type: ignore[no-untyped-def]
    a, b = make_home(A), make_home(OLD)
    k1, k2 = a.signers[0], Signer.generate(A)
    only_k1 = sign_checkpoint(Checkpoint(LOG, 1, bytes(32)), [k1])
    _trust_a(b, k1, k2)
    with b.open_store() as store:
        verifiers = store.peers.trust_store().verifiers_for(A)
        assert verify_checkpoint(only_k1, log_id=LOG, verifiers=verifiers).signed_by == (k1.verifier(),)
    assert _cli(b, "peer", "add", A, "--key", k2.vkey()) == 0
    with b.open_store() as store:
        verifiers = store.peers.trust_store().verifiers_for(A)
        assert verifiers == (k2.verifier(),)
        with pytest.raises(VerificationError, match="no valid signature"):
            verify_checkpoint(only_k1, log_id=LOG, verifiers=verifiers)


async def test_requests_signed_with_either_key_during_rotation(make_home, start_node, capsys) -> None:  # type: ignore[no-untyped-def]
    """The node side of a peer's rotation: while the node trusts both of b's keys it takes
    requests signed by either; once b's old key is removed, only the new one, at once."""
    a, b = make_home(A), make_home(OLD)
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    service = await start_node(a)
    connect(b, a, url=service.url)
    assert _cli(b, "keys", "rotate") == 0
    new_vkey = capsys.readouterr().out.strip()
    old, new = sorted(open_home(b.path).signers, key=lambda s: s.vkey() == new_vkey)
    path = f"/v1/logs/{A}/default/checkpoint"
    with a.open_store() as store:
        store.peers.add(OLD, url=None, vkeys=[old.vkey(), new.vkey()], accept_push=False, ca_file=None, now="x")
    async with aiohttp.ClientSession() as session:
        for signer in (old, new):
            assert (await signed(session, service.url, signer, "GET", "/v1/logs")).status == 200
        with a.open_store() as store:
            # as `hashfed peer add OLD --key NEW` does: the keys are replaced, grants kept
            store.peers.add(OLD, url=None, vkeys=[new.vkey()], accept_push=False, ca_file=None, now="x")
        assert_problem(await signed(session, service.url, old, "GET", "/v1/logs"), 401, "bad-signature")
        assert (await signed(session, service.url, new, "GET", "/v1/logs")).status == 200
        # b's grant survived the key change.
        reply = await signed(session, service.url, new, "GET", path)
        assert reply.status == 200 and reply.body == _served(a)
