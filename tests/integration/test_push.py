"""Push (PROTOCOL §6): an NGO with no server uploads its log to a host that accepts it;
readers the host grants pull it from there and verify it with the NGO's key.

The end-to-end tests drive the CLI in-process (``federation.cli.main``; ``push`` runs its
own event loop, so in a thread). The bad-input table sends hand-built pages, signed with
``sign_request``, and checks each answer's status and problem type and that the host's
store did not change.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from hashfed.federation.cli import main as cli
from hashfed.federation.home import Home, open_home
from hashfed.federation.http.service import NodeService
from hashfed.federation.sync.pusher import push_logs
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys import Signer
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.merkle import consistency_proof, leaf_hash, root_hash
from hashfed.protocol.note import sign_note
from tests.helpers import (
    assert_problem,
    configure,
    md5,
    merged_list,
    pull_from,
    send,
    sign_for,
    signed,
    snapshot,
    stage_and_publish,
)

NGO, HOST, READER, QUIET = "ngo.example", "host.example", "r.example", "quiet.example"
LOG = f"{NGO}/default"
PUSH = f"/v1/logs/{LOG}/batches"


def _cli(home: Path | Home, *args: str) -> int:
    path = home.path if isinstance(home, Home) else home
    return cli(["--home", str(path), *args])


def _log(home: Home, log_id: str = LOG) -> tuple[list[bytes], list[bytes], bytes]:
    """Batch lines, leaf hashes and newest checkpoint of a log as ``home`` holds it."""
    with home.open_store() as store:
        log = store.logs.get(log_id)
        assert log is not None and log.checkpoint is not None
        return list(store.logs.iter_batches(log, 0, log.size)), store.logs.leaf_hashes(log, log.size), log.checkpoint


def _held(home: Home, log_id: str = LOG) -> tuple[int, int]:
    """(served size, batches held) of a log on ``home``; (0, 0) when it has none."""
    with home.open_store() as store:
        log = store.logs.get(log_id)
        return (0, 0) if log is None else (log.size, log.held)


def _pending(home: Home, log_id: str = LOG) -> bytes | None:
    with home.open_store() as store:
        log = store.logs.get(log_id)
        assert log is not None
        return log.pending


def _trace(events: list[tuple[str, int]]) -> aiohttp.TraceConfig:
    """Record (method, status) of every request a session makes."""

    async def on_end(session, context, params) -> None:  # type: ignore[no-untyped-def]
        events.append((params.method, params.response.status))

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    return trace


def _add_peer(home: Home, other: Home, *, url: str | None = None, accept_push: bool = False) -> None:
    with home.open_store() as store:
        store.peers.add(
            other.org,
            url=url,
            vkeys=[s.vkey() for s in other.signers],
            accept_push=accept_push,
            ca_file=None,
            now="2026-11-26T00:00:00Z",
        )


# -- end to end ----------------------------------------------------------------------------


async def test_ngo_pushes_and_a_reader_pulls_from_the_host(tmp_path, make_home, start_node, capsys) -> None:  # type: ignore[no-untyped-def]
    ngo_path = tmp_path / NGO
    assert _cli(ngo_path, "init", "--org", NGO) == 0
    ngo_vkey = capsys.readouterr().out.strip()
    assert _cli(ngo_path, "add", "md5", md5(1).upper(), "--label", "ngo:a") == 0
    assert _cli(ngo_path, "add", "sha256", f" {'ab' * 32} ") == 0
    assert _cli(ngo_path, "publish") == 0
    ngo = open_home(ngo_path)
    assert ngo.signers[0].vkey() == ngo_vkey

    host, reader = make_home(HOST), make_home(READER)
    service = await start_node(host)
    assert _cli(host, "peer", "add", NGO, "--key", ngo_vkey, "--accept-push") == 0
    assert _cli(host, "peer", "add", READER, "--key", reader.signers[0].vkey()) == 0
    assert _cli(host, "grant", READER, LOG) == 0
    assert _cli(ngo, "peer", "add", HOST, "--url", service.url, "--key", host.signers[0].vkey()) == 0
    capsys.readouterr()

    assert await asyncio.to_thread(_cli, ngo, "push", "--to", HOST) == 0
    assert capsys.readouterr().out == f"{LOG}: pushed batches 0..0 to {HOST}\n"
    assert _held(host) == (1, 1)

    # The reader trusts the NGO's key, and not the host's: it verifies the NGO's bytes.
    with reader.open_store() as store:
        store.peers.add(NGO, url=None, vkeys=[ngo_vkey], accept_push=False, ca_file=None, now="x")
    results = await pull_from(reader, service.url)
    assert [(r.log_id, r.status, r.new_size) for r in results] == [(LOG, "updated", 1)]
    assert merged_list(reader) == merged_list(ngo)
    assert [r["value"] for r in merged_list(reader)] == [md5(1), "ab" * 32]
    assert _log(reader) == _log(ngo)

    # Nothing new: the host is up to date. Then a second batch goes the same way.
    assert await asyncio.to_thread(_cli, ngo, "push", "--to", HOST) == 0
    assert capsys.readouterr().out == f"{LOG}: {HOST} is up to date at size 1\n"
    assert _cli(ngo, "remove", "md5", md5(1)) == 0
    assert _cli(ngo, "publish") == 0
    assert await asyncio.to_thread(_cli, ngo, "push", "--to", HOST) == 0
    results = await pull_from(reader, service.url)
    assert [(r.log_id, r.status, r.old_size, r.new_size) for r in results] == [(LOG, "updated", 1, 2)]
    assert merged_list(reader) == merged_list(ngo)
    assert _log(reader) == _log(ngo) == _log(host)


async def test_reader_that_does_not_trust_the_ngo_key_stores_nothing(make_home, start_node) -> None:  # type: ignore[no-untyped-def]
    ngo, host, reader = make_home(NGO), make_home(HOST), make_home(READER)
    stage_and_publish(ngo, [Entry.add("md5", md5(1))])
    service = await start_node(host)
    _add_peer(host, ngo, accept_push=True)
    _add_peer(host, reader)
    with host.open_store() as store:
        store.peers.grant(READER, LOG)
    _add_peer(ngo, host, url=service.url)
    async with aiohttp.ClientSession() as session:
        await push_logs(ngo, session, HOST)
    # The reader trusts the host (its relay) but has no key for the NGO.
    _add_peer(reader, host, url=service.url)
    results = await pull_from(reader, service.url)
    assert [(r.log_id, r.status) for r in results] == [(LOG, "skipped")]
    assert merged_list(reader) == []


async def test_push_in_pages_of_one_batch(make_home, start_node) -> None:  # type: ignore[no-untyped-def]
    ngo = configure(make_home(NGO), pull={"page_batches": 1})
    host = make_home(HOST)
    for n in range(5):
        stage_and_publish(ngo, [Entry.add("md5", md5(n))])
    service = await start_node(host)
    _add_peer(host, ngo, accept_push=True)
    _add_peer(ngo, host, url=service.url)
    events: list[tuple[str, int]] = []
    async with aiohttp.ClientSession(trace_configs=[_trace(events)]) as session:
        report = await push_logs(ngo, session, HOST)
    assert report == [f"{LOG}: pushed batches 0..4 to {HOST}"]
    assert events == [("GET", 200)] + [("POST", 201)] * 5
    assert _held(host) == (5, 5)
    assert _log(host) == _log(ngo)
    assert merged_list(host) == merged_list(ngo)


async def test_pages_are_held_but_not_served_until_the_last(make_home, start_node) -> None:  # type: ignore[no-untyped-def]
    ngo, host = make_home(NGO), make_home(HOST)
    for n in range(5):
        stage_and_publish(ngo, [Entry.add("md5", md5(n))])
    lines, leaves, note = _log(ngo)
    service = await start_node(host)
    _add_peer(host, ngo, accept_push=True)
    async with aiohttp.ClientSession() as session:
        peer = HttpPeer(session, service.url, ngo.signers[0], clock=service.node.clock)
        for start, end in ((0, 2), (2, 4)):
            proof = consistency_proof(end, 5, leaves)
            assert await peer.push(LOG, lines[start:end], note, proof) == end
            assert _held(host) == (0, end)
            assert _pending(host) == note  # what the held pages were proven against
            reply = await signed(session, service.url, ngo.signers[0], "GET", f"/v1/logs/{LOG}/checkpoint")
            assert_problem(reply, 404, "unknown-log")
            assert (await peer.list_logs()) == []
        assert await peer.push(LOG, lines[4:], note, []) == 5
        assert _pending(host) is None
        assert await peer.checkpoint(LOG) == note
        assert [x["size"] for x in await peer.list_logs()] == [5]
    assert merged_list(host) == merged_list(ngo)


async def test_push_resumes_after_a_409(make_home, start_node) -> None:  # type: ignore[no-untyped-def]
    """A push cut short leaves the host holding more than it serves; the next push starts
    from what is served, is told where the host really is (409 with ``size``), and resumes."""
    ngo, host = make_home(NGO), make_home(HOST)
    for n in range(4):
        stage_and_publish(ngo, [Entry.add("md5", md5(n))])
    lines, leaves, note = _log(ngo)
    service = await start_node(host)
    _add_peer(host, ngo, accept_push=True)
    _add_peer(ngo, host, url=service.url)
    events: list[tuple[str, int]] = []
    async with aiohttp.ClientSession(trace_configs=[_trace(events)]) as session:
        peer = HttpPeer(session, service.url, ngo.signers[0], clock=service.node.clock)
        assert await peer.push(LOG, lines[:3], note, consistency_proof(3, 4, leaves)) == 3
        assert _held(host) == (0, 3)
        events.clear()
        report = await push_logs(ngo, session, HOST)
    assert events == [("GET", 200), ("POST", 409), ("POST", 201)]
    assert report == [f"{LOG}: pushed batches 3..3 to {HOST}"]
    assert _held(host) == (4, 4)
    assert _log(host) == _log(ngo)


# -- refused pushes ------------------------------------------------------------------------


@dataclasses.dataclass
class Bench:
    """A host (body cap 4096 bytes) holding batches 0..1 of the NGO's 4-batch log, and
    everything needed to build the next page (2..3) and bad variations of it."""

    host: Home
    ngo: Home
    service: NodeService
    session: aiohttp.ClientSession
    lines: list[bytes]
    leaves: list[bytes]
    note: bytes
    others: dict[str, Home]

    @property
    def signer(self) -> Signer:
        return self.ngo.signers[0]

    def checkpoint(self, size: int, *, origin: str = LOG, root: bytes | None = None, signers=None) -> bytes:  # type: ignore[no-untyped-def]
        cp = Checkpoint(origin, size, root if root is not None else root_hash(self.leaves[:size]))
        return sign_checkpoint(cp, signers or [self.signer])


@dataclasses.dataclass(frozen=True)
class Page:
    """One push request: by default the good next page, 2..3 with the checkpoint at 4."""

    lines: Callable[[Bench], list[bytes]] = lambda b: b.lines[2:4]
    body: Callable[[Bench], bytes] | None = None
    note: Callable[[Bench], str | None] = lambda b: base64.b64encode(b.note).decode()
    proof: Callable[[Bench], str | None] = lambda b: None
    signer: Callable[[Bench], Signer] = lambda b: b.signer
    log_id: str = LOG

    async def send(self, bench: Bench):  # type: ignore[no-untyped-def]
        body = self.body(bench) if self.body else b"".join(l + b"\n" for l in self.lines(bench))
        path = f"/v1/logs/{self.log_id}/batches"
        headers = sign_for(bench.service.url, self.signer(bench), "POST", path, body=body)
        note, proof = self.note(bench), self.proof(bench)
        if note is not None:
            headers["Hashfed-Checkpoint"] = note
        if proof is not None:
            headers["Hashfed-Proof"] = proof
        return await send(bench.session, bench.service.url, "POST", path, body=body, headers=headers)


def _b64(*hashes: bytes) -> str:
    return ",".join(base64.b64encode(h).decode() for h in hashes)


def _flip_signature(note: bytes) -> bytes:
    """The note with one base64 character of its (last) signature changed."""
    i = len(note) - 10
    return note[:i] + (b"B" if note[i : i + 1] == b"A" else b"A") + note[i + 1 :]


def _quiet_page(b: Bench) -> list[bytes]:
    return _log(b.others[QUIET], f"{QUIET}/default")[0]


def _quiet_note(b: Bench) -> str:
    return base64.b64encode(_log(b.others[QUIET], f"{QUIET}/default")[2]).decode()


REFUSED: dict[str, tuple[Page, int, str]] = {
    # 403
    "pushed-by-another-org": (Page(signer=lambda b: b.others[READER].signers[0]), 403, "not-the-log-org"),
    "org-not-accepted": (
        Page(log_id=f"{QUIET}/default", lines=_quiet_page, note=_quiet_note,
             signer=lambda b: b.others[QUIET].signers[0]),
        403, "push-not-accepted",
    ),
    "host-own-log": (
        Page(log_id=f"{HOST}/default", signer=lambda b: b.host.signers[0]), 403, "push-not-accepted"
    ),
    # 400
    "empty-body": (Page(body=lambda b: b""), 400, "malformed"),
    "first-line-not-json": (Page(body=lambda b: b"not a batch\n"), 400, "malformed"),
    "first-line-without-index": (Page(body=lambda b: b'{"v":1}\n'), 400, "malformed"),
    "index-not-an-integer": (Page(body=lambda b: b'{"index":"2"}\n'), 400, "malformed"),
    "index-a-boolean": (Page(body=lambda b: b'{"index":true}\n'), 400, "malformed"),
    "no-final-newline": (Page(body=lambda b: b"\n".join(b.lines[2:4])), 400, "malformed"),
    "empty-line": (Page(body=lambda b: b.lines[2] + b"\n\n" + b.lines[3] + b"\n"), 400, "malformed"),
    "no-checkpoint-header": (Page(note=lambda b: None), 400, "malformed"),
    "checkpoint-header-not-base64": (Page(note=lambda b: "not*base64"), 400, "malformed"),
    "checkpoint-header-not-a-note": (
        Page(note=lambda b: base64.b64encode(b"hello\n").decode()), 400, "malformed"
    ),
    "checkpoint-header-raw-note": (Page(note=lambda b: b.note.decode().split("\n")[0]), 400, "malformed"),
    "proof-missing": (Page(lines=lambda b: b.lines[2:3]), 400, "malformed"),
    "proof-not-base64": (Page(lines=lambda b: b.lines[2:3], proof=lambda b: "%%%"), 400, "malformed"),
    "proof-hash-too-short": (
        Page(lines=lambda b: b.lines[2:3], proof=lambda b: _b64(bytes(31))), 400, "malformed"
    ),
    "proof-where-page-ends-at-checkpoint": (
        Page(proof=lambda b: _b64(b.leaves[0])), 400, "malformed"
    ),
    # 409
    "start-ahead": (Page(lines=lambda b: b.lines[3:4]), 409, "wrong-start"),
    "start-behind": (Page(lines=lambda b: b.lines[0:4]), 409, "wrong-start"),
    "start-at-zero-again": (
        Page(lines=lambda b: b.lines[0:2], proof=lambda b: _b64(*consistency_proof(2, 4, b.leaves))),
        409, "wrong-start",
    ),
    # 422
    "checkpoint-by-untrusted-key": (
        Page(note=lambda b: base64.b64encode(b.checkpoint(4, signers=[Signer.generate(NGO)])).decode()),
        422, "bad-checkpoint",
    ),
    "checkpoint-by-another-org": (
        Page(note=lambda b: base64.b64encode(
            sign_note(Checkpoint(LOG, 4, root_hash(b.leaves)).body(), [b.others[READER].signers[0]])
        ).decode()),
        422, "bad-checkpoint",
    ),
    "checkpoint-for-another-log": (
        Page(note=lambda b: base64.b64encode(b.checkpoint(4, origin=f"{NGO}/other")).decode()),
        422, "bad-checkpoint",
    ),
    "checkpoint-signature-altered": (
        Page(note=lambda b: base64.b64encode(_flip_signature(b.note)).decode()),
        422, "bad-checkpoint",
    ),
    "wrong-root": (  # (at the pending size, 4, a wrong root is equivocation: below)
        Page(lines=lambda b: b.lines[2:3], note=lambda b: base64.b64encode(b.checkpoint(3, root=bytes(32))).decode()),
        422, "verification-failed",
    ),
    "consistency-proof-fails": (
        Page(lines=lambda b: b.lines[2:3], proof=lambda b: _b64(*[bytes(32)] * len(consistency_proof(3, 4, b.leaves)))),
        422, "verification-failed",
    ),
    "consistency-proof-for-other-sizes": (
        Page(lines=lambda b: b.lines[2:3], proof=lambda b: _b64(*consistency_proof(2, 4, b.leaves))),
        422, "verification-failed",
    ),
    "checkpoint-smaller-than-page": (
        Page(note=lambda b: base64.b64encode(b.checkpoint(3)).decode()), 422, "checkpoint-too-small"
    ),
    "batch-tampered": (
        Page(lines=lambda b: [b.lines[2].replace(md5(2).encode(), md5(99).encode()), b.lines[3]]),
        422, "verification-failed",
    ),
    "batch-repeated": (Page(lines=lambda b: [b.lines[2], b.lines[2]]), 422, "verification-failed"),
    "batch-of-another-log": (
        Page(lines=lambda b: [b.lines[2].replace(b'"collection":"default"', b'"collection":"other"'), b.lines[3]]),
        422, "verification-failed",
    ),
    # the order of the checks: 403, 400, 409, 422
    "another-org-and-empty": (
        Page(body=lambda b: b"", signer=lambda b: b.others[READER].signers[0]), 403, "not-the-log-org"
    ),
    "out-of-order-and-malformed": (
        Page(lines=lambda b: b.lines[3:4], note=lambda b: base64.b64encode(b"x\n").decode()),
        400, "malformed",
    ),
    "out-of-order-and-unverifiable": (
        Page(lines=lambda b: b.lines[3:4],
             note=lambda b: base64.b64encode(b.checkpoint(4, signers=[Signer.generate(NGO)])).decode()),
        409, "wrong-start",
    ),
    # 413
    "body-over-the-cap": (
        Page(body=lambda b: b"".join(l + b"\n" for l in b.lines[2:4]) + b" " * 4096), 413, "content-too-large"
    ),
}


@pytest.fixture
async def bench(make_home, start_node) -> Bench:  # type: ignore[no-untyped-def]
    ngo = make_home(NGO)
    host = configure(make_home(HOST), limits={"max_body_bytes": 4096})
    reader, quiet = make_home(READER), make_home(QUIET)
    for n in range(4):
        stage_and_publish(ngo, [Entry.add("md5", md5(n), [f"ngo:{n}"])])
    stage_and_publish(quiet, [Entry.add("md5", md5(7))])
    stage_and_publish(host, [Entry.add("md5", md5(8))])
    lines, leaves, note = _log(ngo)
    service = await start_node(host)
    _add_peer(host, ngo, accept_push=True)
    _add_peer(host, reader)
    _add_peer(host, quiet)
    async with aiohttp.ClientSession() as session:
        peer = HttpPeer(session, service.url, ngo.signers[0], clock=service.node.clock)
        assert await peer.push(LOG, lines[:2], note, consistency_proof(2, 4, leaves)) == 2
        yield Bench(host, ngo, service, session, lines, leaves, note, {READER: reader, QUIET: quiet})


async def test_good_page_is_accepted(bench: Bench) -> None:
    reply = await Page().send(bench)
    assert reply.status == 201, reply
    assert reply.json() == {"size": 4}
    assert _log(bench.host) == _log(bench.ngo)


@pytest.mark.parametrize(("page", "status", "slug"), list(REFUSED.values()), ids=list(REFUSED))
async def test_refused(bench: Bench, page: Page, status: int, slug: str) -> None:
    before = snapshot(bench.host)
    reply = await page.send(bench)
    problem = assert_problem(reply, status, slug)
    if status == 409:
        assert problem["size"] == 2
    assert snapshot(bench.host) == before
    # ... and the page that was due is still welcome.
    assert (await Page().send(bench)).status == 201


def _forked_at_3(b: Bench) -> tuple[list[bytes], list[bytes]]:
    """The NGO's log with batch 3 changed: the same first three leaves, another fourth."""
    lines = [*b.lines[:3], b.lines[3].replace(md5(3).encode(), md5(99).encode())]
    return lines, [*b.leaves[:3], *[leaf_hash(line) for line in lines[3:]]]


def _fork_note(b: Bench) -> bytes:
    return b.checkpoint(4, root=root_hash(_forked_at_3(b)[1]))


# (id, the page, the NGO-signed note at size 4 it carries). The host holds pages 0..1 proven
# against the NGO's checkpoint at 4 (pending); these carry another root for size 4.
SECOND_ROOTS: dict[str, tuple[Page, Callable[[Bench], bytes]]] = {
    "a root the page does not give": (
        Page(note=lambda b: base64.b64encode(b.checkpoint(4, root=bytes(32))).decode()),
        lambda b: b.checkpoint(4, root=bytes(32)),
    ),
    "a fork after the held pages, proven": (
        Page(
            lines=lambda b: b.lines[2:3],
            note=lambda b: base64.b64encode(_fork_note(b)).decode(),
            proof=lambda b: _b64(*consistency_proof(3, 4, _forked_at_3(b)[1])),
        ),
        _fork_note,
    ),
}


@pytest.mark.parametrize(("page", "theirs"), list(SECOND_ROOTS.values()), ids=list(SECOND_ROOTS))
async def test_a_second_root_for_the_pending_size_is_refused_and_kept_as_evidence(
    bench: Bench, page: Page, theirs: Callable[[Bench], bytes]
) -> None:
    """The org signed two roots for size 4: the pair is evidence, whatever the page."""
    with bench.host.open_store() as store:
        assert store.logs.get(LOG).pending == bench.note
    before = snapshot(bench.host)

    problem = assert_problem(await page.send(bench), 422, "equivocation")

    assert "two different roots signed for size 4" in problem["detail"]
    with bench.host.open_store() as store:
        (evidence,) = store.evidence.all()
    assert (evidence.log_id, evidence.kind, evidence.size, evidence.source) == (
        LOG, "equivocation", 4, f"push by {NGO}"
    )
    assert (evidence.ours, evidence.theirs) == (bench.note, theirs(bench))
    after = snapshot(bench.host)
    assert len(after.pop("evidence")) == 1
    before.pop("evidence")
    assert after == before
    assert (await Page().send(bench)).status == 201  # the honest page is still welcome


async def test_size_in_409_is_what_is_held_not_what_is_served(bench: Bench) -> None:
    assert _held(bench.host) == (0, 2)
    problem = assert_problem(await Page(lines=lambda b: b.lines[3:4]).send(bench), 409, "wrong-start")
    assert problem["size"] == 2
    assert "push from index 2" in problem["detail"]
