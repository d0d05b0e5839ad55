"""Sources that misbehave (PROTOCOL §4, §5, §7): the puller rejects, keeps evidence, or
carries on, and the reader's store holds exactly what it should.

The log is real: acme.example publishes four batches into a real store with its real key.
The sources are fakes of the ``Fetcher`` interface that serve those bytes, or bytes
altered from them. A bad batch is signed into a checkpoint with acme's own key over the
bad bytes (``forged``), so the signature and the Merkle tree are right and only the batch
check can catch it; a batch altered under acme's real checkpoint (``tampered``) is what a
relay can do, and only the tree catches it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
import pytest

from hashfed.federation.cli import main as cli_main
from hashfed.federation.home import Home
from hashfed.federation.http.service import NodeService
from hashfed.federation.store import Store
from hashfed.federation.sync.puller import MAX_LISTING, LogResult, Puller
from hashfed.federation.sync.scheduler import LogLocks
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys import (
    EquivocationError,
    ProtocolError,
    Signer,
    TransportError,
    VerificationError,
)
from hashfed.protocol.checkpoint import Checkpoint, sign_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.merkle import consistency_proof, leaf_hash, root_hash
from tests.helpers import md5, merged_list, pdq, snapshot, stage_and_publish, wait_until

ACME = "acme.example"
LOG = f"{ACME}/default"
TABLES = ("logs", "batches", "checkpoints", "contributions", "evidence")
NOW = 1_795_659_581.0  # 2026-11-26T02:19:41Z

# What acme publishes, one batch per publish: adds with labels, a retraction, an opinion.
PUBLISHES = [
    [Entry.add("md5", md5(0xA1), ["ncmec:a1"]), Entry.add("pdq", pdq(0xB1))],
    [Entry.add("md5", md5(0xA2)), Entry.opine("md5", md5(0xC0), "false_positive")],
    [Entry.add("md5", md5(0xA3), ["x:1"]), Entry.remove("md5", md5(0xA1))],
    [Entry.add("md5", md5(0xA4)), Entry.remove("md5", md5(0xA2))],
]


# -- sources ------------------------------------------------------------------------------------


class LogSource:
    """A source serving one log from memory. Proofs are computed from ``leaves`` (by default
    the leaf hashes of the bytes served), as a node computes them from its stored leaf
    hashes. Subclasses misbehave on purpose."""

    def __init__(
        self,
        lines: Sequence[bytes],
        note: bytes,
        *,
        leaves: Sequence[bytes] | None = None,
        page_cap: int | None = None,
    ) -> None:
        self.lines = list(lines)
        self.note = note
        self.leaves = list(leaves) if leaves is not None else [leaf_hash(b) for b in lines]
        self.page_cap = page_cap
        self.source = "fake://source"
        self.requests: list[tuple[str, int, int]] = []

    def _check(self, log_id: str) -> None:
        if log_id != LOG:
            raise TransportError(f"GET {log_id}: HTTP 404", status=404)

    async def list_logs(self) -> list[dict]:
        return [
            {
                "org": ACME,
                "collection": "default",
                "size": len(self.lines),
                "checkpoint": self.note.decode(),
            }
        ]

    async def checkpoint(self, log_id: str) -> bytes:
        self._check(log_id)
        self.requests.append(("checkpoint", 0, 0))
        return self.note

    async def batches(self, log_id: str, start: int, end: int) -> list[bytes]:
        self._check(log_id)
        self.requests.append(("batches", start, end))
        stop = min(end, len(self.lines))
        if self.page_cap is not None:
            stop = min(stop, start + self.page_cap)
        return self.lines[start:stop]

    async def consistency(self, log_id: str, old: int, new: int) -> list[bytes]:
        self._check(log_id)
        self.requests.append(("consistency", old, new))
        return consistency_proof(old, new, self.leaves)

    def batch_requests(self) -> list[tuple[int, int]]:
        return [(s, e) for kind, s, e in self.requests if kind == "batches"]


class DroppingSource(LogSource):
    """The connection drops on the ``drop_on``-th batch request (counted from 1)."""

    def __init__(self, lines: Sequence[bytes], note: bytes, *, drop_on: int) -> None:
        super().__init__(lines, note)
        self.drop_on = drop_on

    async def batches(self, log_id: str, start: int, end: int) -> list[bytes]:
        if len(self.batch_requests()) + 1 == self.drop_on:
            self.requests.append(("batches", start, end))
            raise TransportError(f"{self.source}: GET batches: Connection reset by peer")
        return await super().batches(log_id, start, end)


class StallingSource(LogSource):
    """Never answers the ``stall_on``-th batch request."""

    def __init__(self, lines: Sequence[bytes], note: bytes, *, stall_on: int) -> None:
        super().__init__(lines, note)
        self.stall_on = stall_on
        self.stalled = asyncio.Event()

    async def batches(self, log_id: str, start: int, end: int) -> list[bytes]:
        if len(self.batch_requests()) + 1 == self.stall_on:
            self.requests.append(("batches", start, end))
            self.stalled.set()
            await asyncio.Event().wait()  # forever
        return await super().batches(log_id, start, end)


class OverfullSource(LogSource):
    """Answers a page with one batch more than asked for."""

    async def batches(self, log_id: str, start: int, end: int) -> list[bytes]:
        self.requests.append(("batches", start, end))
        return self.lines[start:end] + [self.lines[start]]


class EmptyPageSource(LogSource):
    """Answers every page with nothing, though its checkpoint is bigger."""

    async def batches(self, log_id: str, start: int, end: int) -> list[bytes]:
        self.requests.append(("batches", start, end))
        return []


class ListingSource(LogSource):
    """Lists its log ``repeat`` times, then ``padding`` logs of orgs nobody trusts."""

    def __init__(
        self, lines: Sequence[bytes], note: bytes, *, repeat: int = 1, padding: int = 0
    ) -> None:
        super().__init__(lines, note)
        self.repeat = repeat
        self.padding = padding

    async def list_logs(self) -> list[dict]:
        others = [
            {"org": f"o{n}.example", "collection": "default", "size": 1, "checkpoint": ""}
            for n in range(self.padding)
        ]
        return (await super().list_logs()) * self.repeat + others


class BadProofSource(LogSource):
    """Honest bytes, but a consistency proof that leads elsewhere."""

    async def consistency(self, log_id: str, old: int, new: int) -> list[bytes]:
        proof = await super().consistency(log_id, old, new)
        return [bytes(32)] + proof[1:]


# -- the published log and the reader ----------------------------------------------------------


@dataclass
class World:
    acme: Home
    reader: Home
    lines: list[bytes]  # acme's batch bytes, verbatim
    notes: dict[int, bytes]  # acme's signed checkpoint at every size it published

    def honest(
        self, size: int, cls: Callable[..., LogSource] = LogSource, **kwargs: int
    ) -> LogSource:
        """acme's log at ``size``, served by ``cls`` (made with ``kwargs``)."""
        return cls(self.lines[:size], self.notes[size], **kwargs)

    def forged(self, lines: Sequence[bytes], signers: Sequence[Signer] | None = None) -> LogSource:
        """A log of these bytes under a checkpoint validly signed by acme's key."""
        tree = Checkpoint(LOG, len(lines), root_hash([leaf_hash(b) for b in lines]))
        return LogSource(lines, sign_checkpoint(tree, signers or self.acme.signers))

    def tampered(self, size: int, index: int, old: bytes, new: bytes, *, proofs: str) -> LogSource:
        """acme's log and real checkpoint, with batch ``index`` altered by a relay that
        leaves its stored leaf hashes alone (``proofs="real"``) or rewrites them too
        (``proofs="tampered"``), so its proofs follow the altered bytes."""
        lines = self.lines[:size]
        assert lines[index].count(old) == 1
        lines[index] = lines[index].replace(old, new)
        real = [leaf_hash(b) for b in self.lines[:size]]
        return LogSource(lines, self.notes[size], leaves=real if proofs == "real" else None)

    def with_batch(self, index: int, old: bytes, new: bytes) -> list[bytes]:
        lines = list(self.lines)
        assert lines[index].count(old) == 1
        lines[index] = lines[index].replace(old, new)
        return lines

    def puller(
        self,
        store: Store,
        page_batches: int = 2,
        log_lock: Callable[[str], contextlib.AbstractAsyncContextManager[None]] | None = None,
    ) -> Puller:
        return Puller(
            store,
            lambda: store.peers.trust_store(self.reader.signers),
            own_org=self.reader.org,
            clock=lambda: NOW,
            page_batches=page_batches,
            log_lock=log_lock,
        )

    async def pull(self, source: LogSource, *, page_batches: int = 2) -> LogResult:
        with Store(self.reader.db_path) as store:
            return await self.pull_with(store, source, page_batches)

    async def pull_with(self, store: Store, source: LogSource, page_batches: int) -> LogResult:
        return await self.puller(store, page_batches).pull_log(source, LOG)

    async def pull_source(self, source: LogSource) -> list[LogResult]:
        with Store(self.reader.db_path) as store:
            return await self.puller(store).pull_source(source)


@pytest.fixture
def world(make_home: Callable[[str], Home]) -> World:
    acme = make_home(ACME)
    reader = make_home("reader.example")
    notes: dict[int, bytes] = {}
    for entries in PUBLISHES:
        stage_and_publish(acme, entries)
        size, _, note = served(acme)
        assert note is not None
        notes[size] = note
    assert sorted(notes) == list(range(1, len(PUBLISHES) + 1))
    with acme.open_store() as store:
        log = store.logs.get(LOG)
        assert log is not None and log.size == len(PUBLISHES)
        lines = list(store.logs.iter_batches(log, 0, log.size))
    with reader.open_store() as store:
        store.peers.add(
            ACME,
            url=None,
            vkeys=[s.vkey() for s in acme.signers],
            accept_push=False,
            ca_file=None,
            now="2026-11-26T00:00:00Z",
        )
    return World(acme, reader, lines, notes)


async def holding(world: World, size: int) -> World:
    """The reader, having pulled acme's log honestly up to ``size``."""
    result = await world.pull(world.honest(size))
    assert (result.status, result.new_size) == ("updated", size)
    return world


def served(home: Home) -> tuple[int, int, bytes | None]:
    """(served size, held batches, served checkpoint) of acme's log at ``home``."""
    with home.open_store() as store:
        log = store.logs.get(LOG)
        return (log.size, log.held, log.checkpoint) if log else (0, 0, None)


def status_json(home: Home, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert cli_main(["--home", str(home.path), "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# -- bad batches: rejected whole, nothing stored -------------------------------------------------

A3 = md5(0xA3).encode()

# (id, source built from the world, error type, message fragment). The reader holds batches
# 0..1; the bad batch is index 2, on the first page it fetches, so nothing may be stored.
BAD_BATCHES: list[tuple[str, Callable[[World], LogSource], type[Exception], str]] = [
    (
        "flipped byte (a valid batch, under acme's real checkpoint)",
        lambda w: w.tampered(4, 2, A3, md5(0xA5).encode(), proofs="real"),
        VerificationError,
        "batches 0..3 do not give the signed root",
    ),
    (
        "flipped byte that breaks the JSON",
        lambda w: w.tampered(4, 2, b'"index":2,', b'"index":2;', proofs="real"),
        ProtocolError,
        "batch is not JSON",
    ),
    (
        "flipped byte, with proofs made to match",
        lambda w: w.tampered(4, 2, A3, md5(0xA5).encode(), proofs="tampered"),
        VerificationError,
        "fake://source did not prove that checkpoint 4 of acme.example/default extends ours (2)",
    ),
    (
        "wrong index",
        lambda w: w.forged(w.with_batch(2, b'"index":2', b'"index":3')),
        VerificationError,
        "batch is leaf 3 of acme.example/default, expected leaf 2 of acme.example/default",
    ),
    (
        "wrong org",
        lambda w: w.forged(w.with_batch(2, b'"org":"acme.example"', b'"org":"mallory.example"')),
        VerificationError,
        "batch is leaf 2 of mallory.example/default, expected leaf 2 of acme.example/default",
    ),
    (
        "wrong collection",
        lambda w: w.forged(w.with_batch(2, b'"collection":"default"', b'"collection":"other"')),
        VerificationError,
        "batch is leaf 2 of acme.example/other",
    ),
    (
        "unknown hash type",
        lambda w: w.forged(
            w.with_batch(2, b'"type":"md5","value":"' + A3, b'"type":"xxh64","value":"' + A3)
        ),
        VerificationError,
        "unknown hash type 'xxh64'",
    ),
    (
        "unnormalised value",
        lambda w: w.forged(w.with_batch(2, A3, A3.upper())),
        ProtocolError,
        "entry 0: bad",
    ),
    (
        "duplicate JSON key",
        lambda w: w.forged(w.with_batch(2, b'"v":1}', b'"v":1,"v":1}')),
        ProtocolError,
        "not in canonical form",
    ),
    (
        "a page with more batches than asked",
        lambda w: w.honest(4, OverfullSource),
        ProtocolError,
        "asked for 2 batches, got 3",
    ),
    (
        "an empty page below the checkpoint",
        lambda w: w.honest(4, EmptyPageSource),
        ProtocolError,
        "no batches from 2 for acme.example/default",
    ),
    (
        "a consistency proof that leads elsewhere",
        lambda w: w.honest(4, BadProofSource),
        VerificationError,
        "did not prove that checkpoint 4 of acme.example/default extends ours (2)",
    ),
    (
        "a signed longer log that does not extend ours",
        lambda w: w.forged(w.with_batch(1, md5(0xA2).encode(), md5(0xA6).encode())),
        VerificationError,
        "did not prove that checkpoint 4 of acme.example/default extends ours (2)",
    ),
    (
        "checkpoint signed by an unknown key",
        lambda w: w.forged(w.lines, [Signer.generate(ACME)]),
        VerificationError,
        "note has no valid signature from a trusted key",
    ),
    (
        "checkpoint of another log",
        lambda w: LogSource(
            w.lines, sign_checkpoint(Checkpoint(f"{ACME}/other", 4, bytes(32)), w.acme.signers)
        ),
        VerificationError,
        "checkpoint is for log acme.example/other, not acme.example/default",
    ),
]


@pytest.mark.parametrize(
    ("make_source", "error", "message"),
    [c[1:] for c in BAD_BATCHES],
    ids=[c[0] for c in BAD_BATCHES],
)
async def test_bad_source_is_rejected_and_nothing_is_stored(
    world: World, make_source: Callable[[World], LogSource], error: type[Exception], message: str
) -> None:
    await holding(world, 2)
    before, list_before = snapshot(world.reader, TABLES), merged_list(world.reader)

    result = await world.pull(make_source(world))

    assert (result.status, result.old_size, result.new_size) == ("failed", 2, 2)
    assert type(result.error) is error, result.error
    assert message in result.detail
    # Nothing stored, and no evidence: none of these proves the org did anything wrong.
    assert snapshot(world.reader, TABLES) == before
    assert merged_list(world.reader) == list_before
    # The honest log still pulls cleanly afterwards.
    assert (await world.pull(world.honest(4))).status == "updated"
    assert merged_list(world.reader) == merged_list(world.acme)


async def test_a_bad_batch_on_the_first_pull_stores_no_log(world: World) -> None:
    before = snapshot(world.reader, TABLES)
    result = await world.pull(world.forged(world.with_batch(0, b'"index":0', b'"index":1')))
    assert result.status == "failed" and type(result.error) is VerificationError
    assert snapshot(world.reader, TABLES) == before
    assert served(world.reader) == (0, 0, None)


# -- equivocation: evidence kept, both notes, shown by status ------------------------------------

A4 = md5(0xA4).encode()

# (id, forged source, message fragment, size of the forged checkpoint). The reader holds
# acme's log at size 4.
EQUIVOCATIONS: list[tuple[str, Callable[[World], LogSource], str, int]] = [
    (
        "same size, another root",
        lambda w: w.forged(w.with_batch(3, A4, md5(0xA6).encode())),
        "two different roots signed for size 4",
        4,
    ),
    (
        "a shorter log that contradicts ours",
        lambda w: w.forged(w.with_batch(2, A3, md5(0xA5).encode())[:3]),
        "a checkpoint at size 3 contradicts our log at size 4",
        3,
    ),
]


@pytest.mark.parametrize(
    ("make_source", "message", "size"),
    [c[1:] for c in EQUIVOCATIONS],
    ids=[c[0] for c in EQUIVOCATIONS],
)
async def test_equivocation_keeps_both_notes_as_evidence(
    world: World,
    make_source: Callable[[World], LogSource],
    message: str,
    size: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await holding(world, 4)
    before, list_before = snapshot(world.reader, TABLES), merged_list(world.reader)
    source = make_source(world)

    # Through pull_source the listing is gossip too; the same pair is kept once.
    (result,) = await world.pull_source(source)
    again = await world.pull(source)

    for r in (result, again):
        assert (r.status, r.old_size, r.new_size) == ("failed", 4, 4)
        assert type(r.error) is EquivocationError
        assert message in r.detail and r.detail.startswith("EQUIVOCATION")
    with world.reader.open_store() as store:
        (evidence,) = store.evidence.all()
    assert (evidence.log_id, evidence.kind, evidence.source) == (
        LOG,
        "equivocation",
        "fake://source",
    )
    assert evidence.ours == world.notes[4]  # the note we hold
    assert evidence.theirs == source.note  # the note that contradicts it, verbatim
    assert evidence.size == size  # the contradicting checkpoint's
    assert evidence.detected_at == "2026-11-26T02:19:41Z"  # the puller's clock, UTC seconds
    assert message in evidence.detail
    # Nothing else moved: we keep serving our own view, and merge nothing of theirs.
    after = snapshot(world.reader, TABLES)
    after.pop("evidence"), before.pop("evidence")
    assert after == before
    assert merged_list(world.reader) == list_before
    assert [kind for kind, *_ in source.requests if kind == "batches"] == []

    shown = status_json(world.reader, capsys)["evidence"]
    assert [(e["log_id"], e["kind"], e["source"]) for e in shown] == [
        (LOG, "equivocation", "fake://source")
    ]
    assert message in shown[0]["detail"]


# -- sources that are behind, short-paged, stalled or dropped: no alarm --------------------------


@pytest.mark.parametrize("behind", [1, 3], ids=["relay far behind", "relay one behind"])
async def test_a_source_merely_behind_raises_no_alarm(world: World, behind: int) -> None:
    await holding(world, 4)
    before = snapshot(world.reader, TABLES)
    source = world.honest(behind)

    results = await world.pull_source(source)

    assert [(r.status, r.old_size, r.new_size, r.error) for r in results] == [
        ("source behind", 4, 4, None)
    ]
    assert source.batch_requests() == []
    assert snapshot(world.reader, TABLES) == before  # no evidence either


async def test_an_up_to_date_source_fetches_nothing(world: World) -> None:
    await holding(world, 4)
    before = snapshot(world.reader, TABLES)
    source = world.honest(4)
    assert (await world.pull(source)).status == "up to date"
    assert source.requests == [("checkpoint", 0, 0)]
    assert snapshot(world.reader, TABLES) == before


async def test_a_source_that_truncates_pages_is_fine(world: World) -> None:
    source = world.honest(4, page_cap=1)
    result = await world.pull(source, page_batches=3)
    assert (result.status, result.new_size, result.entries) == ("updated", 4, 8)
    # Asked for pages of three, given one batch each time: the pull goes on from there.
    assert source.batch_requests() == [(0, 3), (1, 4), (2, 4), (3, 4)]
    assert merged_list(world.reader) == merged_list(world.acme)
    assert served(world.reader) == (4, 4, world.notes[4])


async def test_a_stalled_source_keeps_the_pages_committed(world: World) -> None:
    """A source that stops answering mid-pull is given up on (the caller's timeout, as the
    scheduler's ``timeout_s``): the pages proven before it stay, the served view does not
    move, and the next pull picks up where the stall began."""
    await holding(world, 1)
    source = world.honest(4, StallingSource, stall_on=2)
    with Store(world.reader.db_path) as store:
        pull = asyncio.create_task(world.pull_with(store, source, 2))
        await asyncio.wait_for(source.stalled.wait(), timeout=10.0)
        assert not pull.done()
        pull.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pull
    assert source.batch_requests() == [(1, 3), (3, 4)]
    assert served(world.reader) == (1, 3, world.notes[1])

    resumed = world.honest(4)
    result = await world.pull(resumed)
    assert (result.status, result.old_size, result.new_size) == ("updated", 1, 4)
    assert resumed.batch_requests() == [(3, 4)]
    assert merged_list(world.reader) == merged_list(world.acme)


# (id, size held before, batch request that drops). Pages are one batch each.
DROPS = [("first pull", 0, 2), ("update", 1, 2), ("update, late drop", 1, 3)]


@pytest.mark.parametrize(("held", "drop_on"), [c[1:] for c in DROPS], ids=[c[0] for c in DROPS])
async def test_a_dropped_connection_keeps_the_committed_pages_and_resumes(
    world: World,
    start_node: Callable[..., Awaitable[NodeService]],
    held: int,
    drop_on: int,
) -> None:
    if held:
        await holding(world, held)
    old_note = world.notes.get(held)
    committed = held + drop_on - 1
    source = world.honest(4, DroppingSource, drop_on=drop_on)

    result = await world.pull(source, page_batches=1)

    assert (result.status, result.old_size, result.new_size) == ("failed", held, held)
    assert type(result.error) is TransportError
    assert "Connection reset by peer" in result.detail
    # The pages before the drop are stored; the served checkpoint has not moved.
    assert served(world.reader) == (held, committed, old_note)
    with world.reader.open_store() as store:
        log = store.logs.get(LOG)
        assert log is not None
        assert list(store.logs.iter_batches(log, 0, 4)) == world.lines[:committed]

    # The node keeps serving its previous checkpoint (or none) until the pull completes.
    service = await start_node(world.reader)
    async with aiohttp.ClientSession() as session:
        acme_client = HttpPeer(session, service.url, world.acme.signers[0], clock=time.time)
        if old_note is None:
            with pytest.raises(TransportError) as caught:
                await acme_client.checkpoint(LOG)
            assert caught.value.status == 404
            assert await acme_client.list_logs() == []
        else:
            assert await acme_client.checkpoint(LOG) == old_note
            assert [(x["size"], x["checkpoint"]) for x in await acme_client.list_logs()] == [
                (held, old_note.decode())
            ]

        # The next pull resumes from the stored count, not from the served size.
        resumed = world.honest(4)
        result = await world.pull(resumed, page_batches=1)
        assert (result.status, result.old_size, result.new_size) == ("updated", held, 4)
        assert resumed.batch_requests()[0] == (committed, committed + 1)
        assert served(world.reader) == (4, 4, world.notes[4])
        assert await acme_client.checkpoint(LOG) == world.notes[4]
    assert merged_list(world.reader) == merged_list(world.acme)


async def test_held_leaves_that_complete_a_smaller_checkpoint_are_served(world: World) -> None:
    """A pull towards 4 dropped after batch 2 is stored; a source now offering the
    checkpoint at 3 needs no batch: every leaf is held, so that checkpoint is served."""
    await holding(world, 1)
    await world.pull(world.honest(4, DroppingSource, drop_on=3), page_batches=1)
    assert served(world.reader) == (1, 3, world.notes[1])

    source = world.honest(3)
    result = await world.pull(source)

    assert (result.status, result.old_size, result.new_size) == ("updated", 1, 3)
    assert source.batch_requests() == []
    assert served(world.reader) == (3, 3, world.notes[3])


# -- a branch held but not served yet: its checkpoint is kept, and defended -----------------------


async def cut_short(world: World, served_size: int) -> World:
    """The reader serves acme's log at ``served_size`` (0: nothing); a pull towards 4 then
    dropped after two pages of one batch: batches held past what is served, proven
    against acme's checkpoint at 4, which is not served."""
    if served_size:
        await holding(world, served_size)
    await world.pull(world.honest(4, DroppingSource, drop_on=3), page_batches=1)
    assert served(world.reader) == (
        served_size,
        served_size + 2,
        world.notes.get(served_size),
    )
    return world


def pending(home: Home) -> bytes | None:
    with home.open_store() as store:
        log = store.logs.get(LOG)
        assert log is not None
        return log.pending


@pytest.mark.parametrize("served_size", [0, 1], ids=["nothing served yet", "an older one served"])
async def test_a_pull_cut_short_keeps_the_checkpoint_its_pages_were_proven_against(
    world: World, served_size: int
) -> None:
    await cut_short(world, served_size)
    assert pending(world.reader) == world.notes[4]

    result = await world.pull(world.honest(4))

    assert (result.status, result.new_size) == ("updated", 4)
    assert served(world.reader) == (4, 4, world.notes[4])
    assert pending(world.reader) is None  # every leaf served: nothing pending
    assert merged_list(world.reader) == merged_list(world.acme)


# (id, size served before the cut, forged source, message fragment, forged size). The reader
# holds batches up to served + 2, proven against acme's checkpoint at 4, and serves `served`.
PENDING_FORKS: list[tuple[str, int, Callable[[World], LogSource], str, int]] = [
    (
        "the pending size, another root (nothing served yet)",
        0,
        lambda w: w.forged(w.with_batch(3, A4, md5(0xA6).encode())),
        "two different roots signed for size 4 (ours held in part, not yet served)",
        4,
    ),
    (
        "the pending size, another root",
        1,
        lambda w: w.forged(w.with_batch(3, A4, md5(0xA6).encode())),
        "two different roots signed for size 4 (ours held in part, not yet served)",
        4,
    ),
    (
        "a smaller checkpoint that contradicts the leaves held",
        1,
        lambda w: w.forged(w.with_batch(2, A3, md5(0xA5).encode())[:3]),
        "checkpoint 3 contradicts the leaves held",
        3,
    ),
]


@pytest.mark.parametrize(
    ("served_size", "make_source", "message", "size"),
    [c[1:] for c in PENDING_FORKS],
    ids=[c[0] for c in PENDING_FORKS],
)
async def test_a_fork_of_the_branch_held_is_evidence_against_its_checkpoint(
    world: World,
    served_size: int,
    make_source: Callable[[World], LogSource],
    message: str,
    size: int,
) -> None:
    """The pair is acme's checkpoint at 4, which the held leaves were proven against, and
    the one that contradicts them: a pair that proves itself, though none of those leaves
    is served yet (the served checkpoint alone would not contradict it)."""
    await cut_short(world, served_size)
    before, list_before = snapshot(world.reader, TABLES), merged_list(world.reader)
    source = make_source(world)

    (result,) = await world.pull_source(source)  # gossip, then the pull: one pair kept
    again = await world.pull(source)

    for r in (result, again):
        assert (r.status, r.old_size, r.new_size) == ("failed", served_size, served_size)
        assert type(r.error) is EquivocationError
        assert message in r.detail
    with world.reader.open_store() as store:
        (evidence,) = store.evidence.all()
    assert (evidence.log_id, evidence.kind, evidence.size, evidence.source) == (
        LOG,
        "equivocation",
        size,
        "fake://source",
    )
    assert (evidence.ours, evidence.theirs) == (world.notes[4], source.note)
    assert message in evidence.detail
    after = snapshot(world.reader, TABLES)
    after.pop("evidence"), before.pop("evidence")
    assert after == before  # nothing of the fork stored, nothing served moved
    assert merged_list(world.reader) == list_before
    assert source.batch_requests() == []

    # acme's own log still completes the branch.
    assert (await world.pull(world.honest(4))).status == "updated"
    assert served(world.reader) == (4, 4, world.notes[4])
    assert merged_list(world.reader) == merged_list(world.acme)


# -- listings: each log once, and not without end ---------------------------------------------


async def test_a_log_listed_again_is_checked_and_pulled_once(world: World) -> None:
    source = world.honest(4, ListingSource, repeat=3)

    results = await world.pull_source(source)

    assert [(r.log_id, r.status, r.new_size) for r in results] == [(LOG, "updated", 4)]
    assert [kind for kind, *_ in source.requests if kind == "checkpoint"] == ["checkpoint"]
    assert served(world.reader) == (4, 4, world.notes[4])


async def test_a_listing_at_the_cap_is_read(world: World) -> None:
    source = world.honest(4, ListingSource, padding=MAX_LISTING - 1)

    results = await world.pull_source(source)

    assert collections.Counter(r.status for r in results) == {"updated": 1, "skipped": MAX_LISTING - 1}
    assert served(world.reader) == (4, 4, world.notes[4])


async def test_a_listing_past_the_cap_is_refused_whole(world: World) -> None:
    await holding(world, 2)
    before = snapshot(world.reader, TABLES)
    source = world.honest(4, ListingSource, padding=MAX_LISTING)

    with pytest.raises(ProtocolError) as caught:
        await world.pull_source(source)

    assert type(caught.value) is ProtocolError
    assert str(caught.value) == (
        f"fake://source: the listing names {MAX_LISTING + 1} logs, more than {MAX_LISTING}"
    )
    assert source.requests == []  # not one checkpoint fetched
    assert snapshot(world.reader, TABLES) == before


# -- one log, two pulls at once ---------------------------------------------------------------


async def test_one_log_from_two_sources_at_once_is_pulled_from_one(world: World) -> None:
    """The serve scheduler pulls every peer at once; alpha's log comes from alpha and from
    a relay. With the node's lock per log, the second pull waits, then finds the log up
    to date; without it, it fetched the same pages and failed ("page starts at 0, store
    holds 4"), which showed in the status and fed the relay's backoff."""
    locks = LogLocks()
    origin, relay = world.honest(4), world.honest(4)
    relay.source = "fake://relay"
    with Store(world.reader.db_path) as one, Store(world.reader.db_path) as two:
        results = await asyncio.gather(
            world.puller(one, 4, locks).pull_log(origin, LOG),
            world.puller(two, 4, locks).pull_log(relay, LOG),
        )
    assert len(locks) == 0  # none kept once no pull needs it

    assert [(r.status, r.old_size, r.new_size, r.detail) for r in results] == [
        ("updated", 0, 4, ""),
        ("up to date", 4, 4, ""),
    ]
    assert relay.requests == [("checkpoint", 0, 0)]
    assert served(world.reader) == (4, 4, world.notes[4])
    assert merged_list(world.reader) == merged_list(world.acme)


async def test_log_locks_are_kept_only_while_a_pull_needs_them() -> None:
    """A peer may list any number of log ids; the scheduler keeps a lock only for those a
    round holds or waits for (it kept one per id ever listed, forever)."""
    locks = LogLocks()
    for n in range(1000):
        async with locks(f"org{n}.example/default"):
            assert len(locks) == 1
    assert len(locks) == 0

    order: list[str] = []

    async def second() -> None:
        async with locks(LOG):
            order.append("second")

    async with locks(LOG):
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0)  # let it start waiting: still one lock, now two users
        assert len(locks) == 1
        order.append("first")
    await waiting
    assert order == ["first", "second"] and len(locks) == 0


async def test_a_pull_overtaken_by_another_process_ends_without_failure(world: World) -> None:
    """Two processes (``hashfed pull`` beside ``serve``) share no lock: both fetch the same
    page, and the one that commits second finds the log already held past it."""
    origin, relay = world.honest(4), world.honest(4)
    with Store(world.reader.db_path) as one, Store(world.reader.db_path) as two:
        results = await asyncio.gather(
            world.puller(one, 4).pull_log(origin, LOG),
            world.puller(two, 4).pull_log(relay, LOG),
        )

    assert origin.batch_requests() == relay.batch_requests() == [(0, 4)]
    assert sorted((r.status, r.old_size, r.new_size, r.error) for r in results) == [
        ("up to date", 0, 4, None),
        ("updated", 0, 4, None),
    ]
    (overtaken,) = [r for r in results if r.status == "up to date"]
    assert overtaken.detail == "another pull of acme.example/default got further (it holds 4 batches)"
    assert served(world.reader) == (4, 4, world.notes[4])
    assert merged_list(world.reader) == merged_list(world.acme)
    with world.reader.open_store() as store:
        assert store.evidence.all() == []


# -- cancelled mid-commit -----------------------------------------------------------------------


async def test_a_pull_cancelled_mid_commit_finishes_the_page_before_the_store_closes(
    world: World,
) -> None:
    """A timeout or SIGTERM lands while a verified page is being written, and the write is
    slow (another process holds the write lock). The cancellation waits for the page's
    transaction, so the caller closes the store after it, never under it."""
    holder = sqlite3.connect(world.reader.db_path, isolation_level=None, check_same_thread=False)
    began = threading.Event()
    source = world.honest(4)
    try:
        with Store(world.reader.db_path) as store:
            store.conn.set_trace_callback(lambda sql: sql == "BEGIN IMMEDIATE" and began.set())
            holder.execute("BEGIN IMMEDIATE")
            pull = asyncio.create_task(world.pull_with(store, source, 4))
            await wait_until(began.is_set, what="the page's commit to start")
            for _ in range(2):  # a timeout, then SIGTERM: neither abandons the commit
                pull.cancel()
                for _ in range(10):
                    await asyncio.sleep(0)
                assert not pull.done()
            holder.execute("ROLLBACK")  # the other process is done
            with pytest.raises(asyncio.CancelledError):
                await pull
            store.conn.set_trace_callback(None)
        # The page was committed whole before the store closed: a consistent store.
        assert served(world.reader) == (4, 4, world.notes[4])
        assert pending(world.reader) is None
        assert merged_list(world.reader) == merged_list(world.acme)
        assert holder.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        holder.execute("BEGIN IMMEDIATE")  # and nobody kept the write lock
        holder.execute("ROLLBACK")
    finally:
        holder.close()
