"""A pull round under a hostile peer and a busy store (federation.transport, federation.rounds).

A peer that answers JSON nested past Python's recursion limit gets a ``ProtocolError``,
never a ``RecursionError`` that would crash the round. A round's store writes (its status
note) wait for another process's write lock in a worker thread, so the node's server keeps
answering meanwhile. The peers are real aiohttp servers on 127.0.0.1; the hostile one is a
few lines of aiohttp that answer every request with the same bytes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from hashfed.federation.clock import timestamp
from hashfed.federation.home import Home
from hashfed.federation.http.service import NodeService
from hashfed.federation.sync.rounds import pull_peer
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys import ProtocolError, Signer, TransportError
from hashfed.protocol.entries import Entry
from tests.helpers import (
    PROBLEM_TABLES,
    FakeClock,
    connect,
    md5,
    merged_list,
    send,
    snapshot,
    stage_and_publish,
    wait_until,
)

MakeHome = Callable[[str], Home]
StartNode = Callable[..., Awaitable[NodeService]]

A, B, HOSTILE = "alpha.example", "beta.example", "hostile.example"
NESTED = b"[" * 100_000  # json.loads gives up with RecursionError long before the end


@dataclass
class HostilePeer:
    """Answers every request with ``NESTED``, with the status set per path."""

    url: str
    status: dict[str, int]


@pytest.fixture
async def hostile() -> AsyncIterator[HostilePeer]:
    peer = HostilePeer("", {})

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            status=peer.status.get(request.path, 200), body=NESTED, content_type="application/json"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    peer.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield peer
    finally:
        await runner.cleanup()


LOG = f"{HOSTILE}/default"

# (id, path, status, the call, error type, its message)
NESTED_ANSWERS: list[tuple[str, str, int, Callable[[HttpPeer], Awaitable[object]], type, str]] = [
    ("a listing", "/v1/logs", 200, lambda p: p.list_logs(), ProtocolError, "/v1/logs is not JSON"),
    ("node info", "/v1/node", 200, lambda p: p.node_info(), ProtocolError, "node info is not JSON"),
    (
        "a push answer",
        f"/v1/logs/{LOG}/batches",
        201,
        lambda p: p.push(LOG, [b"{}"], b"note", []),
        ProtocolError,
        "push answer is not JSON",
    ),
    (
        "the problem body of an error",
        "/v1/logs",
        500,
        lambda p: p.list_logs(),
        TransportError,
        "GET /v1/logs: HTTP 500: [[[[",
    ),
]


@pytest.mark.parametrize(
    ("path", "status", "call", "error", "message"),
    [c[1:] for c in NESTED_ANSWERS],
    ids=[c[0] for c in NESTED_ANSWERS],
)
async def test_deeply_nested_json_is_a_protocol_error(
    hostile: HostilePeer,
    path: str,
    status: int,
    call: Callable[[HttpPeer], Awaitable[object]],
    error: type,
    message: str,
) -> None:
    hostile.status[path] = status
    async with aiohttp.ClientSession() as session:
        peer = HttpPeer(session, hostile.url, Signer.generate(A), clock=FakeClock())
        with pytest.raises(Exception) as caught:
            await call(peer)
    assert type(caught.value) is error
    assert message in str(caught.value)
    if error is TransportError:
        assert (caught.value.status, caught.value.problem) == (500, None)


async def test_a_round_against_a_nested_listing_fails_and_is_recorded(
    make_home: MakeHome, hostile: HostilePeer
) -> None:
    """The round raises (a failure of the whole round, for the scheduler's backoff),
    stores nothing, and ``hashfed status`` shows why."""
    reader = make_home(B)
    with reader.open_store() as store:
        store.peers.add(
            HOSTILE,
            url=hostile.url,
            vkeys=[Signer.generate(HOSTILE).vkey()],
            accept_push=False,
            ca_file=None,
            now="2026-11-26T00:00:00Z",
        )
    before = snapshot(reader, PROBLEM_TABLES)
    clock = FakeClock(1_795_659_581.0)

    async with aiohttp.ClientSession() as session:
        with pytest.raises(ProtocolError) as caught:
            await pull_peer(str(reader.db_path), reader.config, reader.signers, session, HOSTILE, clock=clock)

    assert str(caught.value) == f"{hostile.url}: /v1/logs is not JSON"
    assert snapshot(reader, PROBLEM_TABLES) == before
    with reader.open_store() as store:
        status = store.peers.status()[HOSTILE]
    assert (status.last_attempt, status.last_error, status.failures) == (
        "2026-11-26T02:19:41Z",
        str(caught.value),
        1,
    )


def test_timestamp_is_utc_whole_seconds() -> None:
    assert timestamp(1_795_659_581.0) == "2026-11-26T02:19:41Z"
    assert timestamp(1_795_659_581.999) == "2026-11-26T02:19:41Z"
    assert timestamp(0) == "1970-01-01T00:00:00Z"


# -- the round's writes wait off the event loop ---------------------------------------------------


async def test_the_node_answers_while_a_round_waits_for_the_write_lock(
    make_home: MakeHome, start_node: StartNode
) -> None:
    """Another process (a long ``hashfed import``) holds the reader's write lock while a
    round ends: its status note waits for the lock in a worker thread, up to the busy
    timeout, and the node's server goes on answering. On the event loop, the wait froze
    ``serve`` for up to 30 s."""
    a, b = make_home(A), make_home(B)
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    service_a = await start_node(a)
    connect(b, a, url=service_a.url)
    service_b = await start_node(b)
    finished: list[str] = []

    async def on_request_end(session, context, params) -> None:  # type: ignore[no-untyped-def]
        finished.append(params.url.path)

    tracing = aiohttp.TraceConfig()
    tracing.on_request_end.append(on_request_end)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
        await pull_peer(str(b.db_path), b.config, b.signers, session, A)  # b is up to date
        assert merged_list(b) == merged_list(a)
        holder = sqlite3.connect(b.db_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            finished.clear()
            round_ = asyncio.create_task(pull_peer(str(b.db_path), b.config, b.signers, session, A))
            # The listing and the checkpoint: all the round asks; only its note is left.
            await wait_until(lambda: len(finished) == 2, what="the round's requests")

            reply = await send(session, service_b.url, "GET", "/v1/node")

            assert reply.status == 200 and reply.json()["org"] == B
            assert not round_.done()  # still waiting for the lock, in its thread
            holder.execute("ROLLBACK")
            results = await round_
        finally:
            holder.close()
    assert [(r.log_id, r.status) for r in results] == [(f"{A}/default", "up to date")]
    with b.open_store() as store:
        status = store.peers.status()[A]
    assert (status.last_error, status.failures) == (None, 0)
    assert status.last_success == status.last_attempt


async def test_a_ca_file_gone_since_peer_add_is_the_rounds_recorded_error(make_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hashfed.federation.sync.rounds import pull_peer
    from hashfed.keys.errors import TransportError

    a, b = make_home("a.example"), make_home("b.example")
    with b.open_store() as store:
        store.peers.add(
            a.org, url="https://127.0.0.1:1", vkeys=[s.vkey() for s in a.signers],
            accept_push=False, ca_file=str(tmp_path / "gone.pem"), now="2026-11-26T00:00:00Z",
        )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransportError, match="cannot load CA file"):
            await pull_peer(str(b.db_path), b.config, b.signers, session, a.org)
    with b.open_store() as store:
        status = store.peers.status()[a.org]
    assert "cannot load CA file" in status.last_error and status.last_success is None


async def test_the_puller_takes_a_checkpoint_note_as_large_as_the_protocol_allows() -> None:
    """One MAX_NOTE_BYTES for reader and writer: the transport once capped notes at 64 KiB
    while PROTOCOL §5 allows 128 KiB, so our own puller refused a valid note (a checkpoint
    signed by many keys during rotations). A note just under the protocol's cap comes
    through whole; one byte more than it is refused by the transport."""
    from hashfed.protocol.note import MAX_NOTE_BYTES

    bodies = {"ok": b"x" * MAX_NOTE_BYTES, "over": b"x" * (MAX_NOTE_BYTES + 1)}

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=bodies[request.match_info["collection"]])

    app = web.Application()
    app.router.add_get("/v1/logs/{org}/{collection}/checkpoint", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            peer = HttpPeer(session, url, Signer.generate(A), clock=FakeClock())
            assert await peer.checkpoint(f"{HOSTILE}/ok") == bodies["ok"]
            with pytest.raises(TransportError, match=f"larger than {MAX_NOTE_BYTES} bytes"):
                await peer.checkpoint(f"{HOSTILE}/over")
    finally:
        await runner.cleanup()
