"""What keeps a node up under hostile clients (PROTOCOL §6; federation.connguard, guard):
a deadline for the request head, a cap on connections per address, per-key and
per-address rate limits, and the nonce budget. Limits are set small in each node's
config.toml; where time matters the node runs on a clock the test holds.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from hashfed.federation.home import Home
from hashfed.federation.http.node import Node
from hashfed.federation.http.service import NodeService
from hashfed.protocol.entries import Entry
from tests.helpers import (
    FakeClock,
    Reply,
    assert_problem,
    configure,
    connect,
    md5,
    send,
    signed,
    snapshot,
    stage_and_publish,
    wait_until,
)

A, B, C = "a.example", "b.example", "c.example"
CHECKPOINT = f"/v1/logs/{A}/default/checkpoint"
HEADER_TIMEOUT_S = 1.0


async def _open(service: NodeService, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", service.bound_port, local_addr=(source, 0))


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """Read until the server closes (EOF or reset); what it sent before."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def _raw_get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: NodeService, path: str = "/v1/node"
) -> bytes:
    """One keep-alive GET on an open connection; the response head and body."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{service.bound_port}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(next(
        line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    ))
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def _trickle(writer: asyncio.StreamWriter, lines: list[bytes], every_s: float) -> None:
    """Send one line every ``every_s`` until done or the connection is gone."""
    for line in lines:
        if writer.is_closing():
            return
        try:
            writer.write(line)
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every_s)  # the pace of the attack, not a wait for a result


def _node(home: Home, **limits: object) -> tuple[Home, FakeClock]:
    return configure(home, limits=limits), FakeClock()


@pytest.fixture
def homes(make_home):  # type: ignore[no-untyped-def]
    a, b, c = make_home(A), make_home(B), make_home(C)
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    connect(b, a)
    connect(c, a)
    return a, b, c


# -- slow request heads ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["silent", "first-request", "keep-alive", "leading-blank-lines"])
async def test_slow_request_head_is_cut_off(homes, start_node, mode: str) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = homes
    a = configure(a, limits={"header_timeout_s": HEADER_TIMEOUT_S})
    service = await start_node(a)
    reader, writer = await _open(service)
    if mode == "keep-alive":  # a first request in time, then a slow one
        assert (await _raw_get(reader, writer, service)).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    head = [f"GET /v1/node HTTP/1.1\r\nHost: 127.0.0.1:{service.bound_port}\r\n".encode()]
    lines = head + [f"X-Slow-{i}: {i}\r\n".encode() for i in range(30)]  # 9 s of headers
    if mode == "silent":  # connects and never sends a byte
        lines = []
    if mode == "leading-blank-lines":  # skipped by the parser: not the end of a head
        lines = [b"\r\n\r\n", *lines]
    trickle = asyncio.create_task(_trickle(writer, lines, 0.3))
    try:
        # Meanwhile, a normal request on another connection is served.
        async with aiohttp.ClientSession() as session:
            assert (await send(session, service.url, "GET", "/v1/node")).status == 200
            reply = await signed(session, service.url, b.signers[0], "GET", CHECKPOINT)
            assert reply.status == 200, reply
        assert await asyncio.wait_for(_closed(reader), HEADER_TIMEOUT_S + 2) == b""
        elapsed = time.monotonic() - started
        assert HEADER_TIMEOUT_S * 0.9 <= elapsed <= HEADER_TIMEOUT_S + 1.5, elapsed
    finally:
        trickle.cancel()
        writer.close()


def _signed_push_head(service: NodeService, ngo: Home, body: bytes, extra: str = "") -> bytes:
    """The head of a push from ``ngo`` of ``body``, signed, for a raw socket."""
    import base64

    from tests.helpers import sign_for

    with ngo.open_store() as store:
        note = store.logs.get(f"{ngo.org}/default").checkpoint
    path = f"/v1/logs/{ngo.org}/default/batches"
    headers = sign_for(service.url, ngo.signers[0], "POST", path, body=body)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{service.bound_port}",
        f"Content-Length: {len(body)}",
        f"Hashfed-Checkpoint: {base64.b64encode(note).decode()}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def _ngo_and_host(homes, limits):  # type: ignore[no-untyped-def]
    """``a`` hosts the pushes of ``c`` (an NGO with one published batch)."""
    a, _, c = homes
    stage_and_publish(c, [Entry.add("md5", md5(7))])
    with a.open_store() as store:
        store.peers.add(
            c.org, url=None, vkeys=[s.vkey() for s in c.signers], accept_push=True,
            ca_file=None, now="2026-11-26T00:00:00Z",
        )
    with c.open_store() as store:
        body = b"".join(data + b"\n" for data in store.logs.iter_batches(store.logs.get(f"{c.org}/default"), 0, 1))
    return configure(a, limits=limits), c, body


async def test_slow_body_is_not_cut_off_by_the_head_deadline(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, c, body = _ngo_and_host(homes, {"header_timeout_s": HEADER_TIMEOUT_S})
    service = await start_node(a)
    reader, writer = await _open(service)
    pieces = [body[i : i + len(body) // 5 + 1] for i in range(0, len(body), len(body) // 5 + 1)]
    try:
        # The head at once, then the body over ~1.5 s: longer than the head deadline.
        await _trickle(writer, [_signed_push_head(service, c, body), *pieces], 0.3)
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    # The whole body was read, verified and stored: the head deadline stopped at the head.
    assert answer.startswith(b"HTTP/1.1 201"), answer
    with a.open_store() as store:
        assert store.logs.get(f"{c.org}/default").size == 1


async def test_a_body_is_read_only_from_an_authenticated_sender(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    """An unsigned POST declaring a large body is answered from its head alone: the node
    never waits for, or buffers, a stranger's body."""
    a, _, _ = homes
    service = await start_node(a)
    reader, writer = await _open(service)
    try:
        writer.write(
            f"POST /v1/logs/{A}/default/batches HTTP/1.1\r\nHost: 127.0.0.1:{service.bound_port}\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        # (aiohttp may linger a while to drain an unread body before closing; the answer
        # itself comes at once)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # no body sent
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer


async def test_a_stalled_body_gets_408(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, c, body = _ngo_and_host(homes, {"body_timeout_s": 0.5})
    service = await start_node(a)
    reader, writer = await _open(service)
    try:
        writer.write(_signed_push_head(service, c, body) + body[:10])  # then nothing more
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(next(
            line.split(b":")[1] for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ))
        answer = head + await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"urn:hashfed:problem:body-timeout" in answer
    with a.open_store() as store:
        assert store.logs.get(f"{c.org}/default") is None  # nothing stored


# -- connections per address -----------------------------------------------------------------


async def _served_again(service: NodeService, source: str = "127.0.0.1") -> None:
    """Wait until a new connection from ``source`` is served (a slot was freed)."""

    async def served() -> bool:
        reader, writer = await _open(service, source=source)
        try:
            return (await _raw_get(reader, writer, service)).startswith(b"HTTP/1.1 200")
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
        finally:
            writer.close()

    await wait_until(served, what="a free connection slot")


async def test_connections_per_address_are_capped(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, _, _ = homes
    a = configure(a, limits={"max_connections_per_address": 3})
    service = await start_node(a)
    held = [await _open(service) for _ in range(3)]
    try:
        for reader, writer in held:  # all three are open and served
            assert (await _raw_get(reader, writer, service)).startswith(b"HTTP/1.1 200")
        reader, writer = await _open(service)
        writer.write(f"GET /v1/node HTTP/1.1\r\nHost: 127.0.0.1:{service.bound_port}\r\n\r\n".encode())
        assert await asyncio.wait_for(_closed(reader), 5) == b""
        writer.close()

        # Another address is not affected (any 127/8 address is loopback on Linux).
        reader2, writer2 = await _open(service, source="127.0.0.2")
        assert (await _raw_get(reader2, writer2, service)).startswith(b"HTTP/1.1 200")
        writer2.close()

        # Once one of the three closes, a new connection is served again.
        held[0][1].close()
        await held[0][1].wait_closed()

        await _served_again(service)
    finally:
        for _, writer in held[1:]:
            writer.close()


async def test_connections_per_listener_are_capped_whatever_their_addresses(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    """Many addresses, one connection each, cannot take every descriptor: past the
    listener's cap a new connection is closed at once, and the lookup listener (its own
    cap) still answers; a freed slot is served again."""
    a, _, _ = homes
    a = configure(a, limits={"max_connections": 3}, server={"local_token": "s3cret"})
    service = await start_node(a, local_port=0)
    held = [await _open(service, source=f"127.0.0.{n}") for n in (2, 3, 4)]
    try:
        for reader, writer in held:
            assert (await _raw_get(reader, writer, service)).startswith(b"HTTP/1.1 200")
        reader, writer = await _open(service, source="127.0.0.5")  # a fourth address
        writer.write(f"GET /v1/node HTTP/1.1\r\nHost: 127.0.0.1:{service.bound_port}\r\n\r\n".encode())
        assert await asyncio.wait_for(_closed(reader), 5) == b""
        writer.close()

        async with aiohttp.ClientSession() as session:
            reply = await session.get(
                f"http://127.0.0.1:{service.local_bound_port}/v1/hashes/md5/{'0' * 32}",
                headers={"Authorization": "Bearer s3cret"},
            )
            assert reply.status == 404  # answered: not in the list

        held[0][1].close()
        await held[0][1].wait_closed()

        await _served_again(service, source="127.0.0.5")
    finally:
        for _, writer in held[1:]:
            writer.close()


# -- rate limits -----------------------------------------------------------------------------


async def _get(session: aiohttp.ClientSession, service: NodeService, home: Home, clock: FakeClock) -> Reply:
    return await signed(session, service.url, home.signers[0], "GET", CHECKPOINT, created=int(clock.now))


async def test_flood_from_one_key_is_429_while_another_key_is_served(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, b, c = homes
    a, clock = _node(a, requests_per_second_per_key=1.0, burst_per_key=3)
    service = await start_node(a, node=Node(a, clock=clock))
    async with aiohttp.ClientSession() as session:
        statuses = [(await _get(session, service, b, clock)).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        for _ in range(5):
            reply = await _get(session, service, b, clock)
            problem = assert_problem(reply, 429, "rate-limited")
            assert reply.headers["Retry-After"] == "1"
            assert "key" in problem["detail"]
        # The same address, another key: served.
        assert (await _get(session, service, c, clock)).status == 200
        # After Retry-After, b gets one request (the rate), not a new burst.
        clock.now += 1
        assert (await _get(session, service, b, clock)).status == 200
        assert_problem(await _get(session, service, b, clock), 429, "rate-limited")


async def test_address_backstop_is_429_before_any_signature_check(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = homes
    a, clock = _node(a, requests_per_second_per_address=1.0, burst_per_address=4)
    service = await start_node(a, node=Node(a, clock=clock))
    async with aiohttp.ClientSession() as session:
        for _ in range(4):
            assert (await _get(session, service, b, clock)).status == 200
        unsigned = await send(session, service.url, "GET", CHECKPOINT)
        assert_problem(unsigned, 429, "rate-limited")  # not 401: no crypto was spent
        reply = await _get(session, service, b, clock)
        problem = assert_problem(reply, 429, "rate-limited")
        assert "address" in problem["detail"] and reply.headers["Retry-After"] == "1"
        # GET /v1/node is open and not counted.
        assert (await send(session, service.url, "GET", "/v1/node")).status == 200
    # Another client address is served.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        assert (await _get(session, service, b, clock)).status == 200


async def test_nonce_budget_is_429_never_an_eviction(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, b, c = homes
    a, clock = _node(a, max_nonces_per_key=3, signature_window_s=300)
    service = await start_node(a, node=Node(a, clock=clock))
    async with aiohttp.ClientSession() as session:
        first = await _get(session, service, b, clock)
        for _ in range(2):
            assert (await _get(session, service, b, clock)).status == 200
        reply = await _get(session, service, b, clock)
        assert_problem(reply, 429, "rate-limited")
        # The oldest nonce is forgotten once int(now) - created > 300, i.e. in 301 s.
        assert reply.headers["Retry-After"] == "301"
        assert (await _get(session, service, c, clock)).status == 200
        assert first.status == 200
        clock.now += 301
        assert (await _get(session, service, b, clock)).status == 200


# -- memory a key can make the node hold -------------------------------------------------------


def _signed_with_nonce(service: NodeService, signer, nonce: str, created: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Headers of a GET of the checkpoint signed with ``nonce`` as it is (``sign_request``
    would refuse a nonce past the bound; a hostile peer need not use it)."""
    import base64

    from hashfed.protocol.httpsig import (
        ALG,
        BASE_COMPONENTS,
        LABEL,
        TAG,
        RequestTarget,
        SignatureParams,
        authority_of,
        signature_base,
    )

    target = RequestTarget("GET", authority_of(service.url), CHECKPOINT, "")
    params = SignatureParams(BASE_COMPONENTS, created, nonce, signer.key_id, ALG, TAG)
    text = params.serialise()
    base = signature_base(params.components, target.component_values(), text)
    signature = base64.b64encode(signer.sign(base)).decode()
    return {"Signature-Input": f"{LABEL}={text}", "Signature": f"{LABEL}=:{signature}:"}


@pytest.mark.parametrize("length", [65, 3900], ids=["65-chars", "3900-chars"])
async def test_a_nonce_past_64_characters_is_401_and_never_recorded(homes, start_node, length: int) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = homes
    a, clock = _node(a)
    service = await start_node(a, node=Node(a, clock=clock))
    async with aiohttp.ClientSession() as session:
        headers = _signed_with_nonce(service, b.signers[0], "A" * length, int(clock.now))
        problem = assert_problem(await send(session, service.url, "GET", CHECKPOINT, headers=headers), 401, "bad-signature")
        assert problem["detail"] == f"nonce is {length} characters, more than 64"
        assert len(service.node.nonces) == 0
        # 64 characters (48 random bytes) is still a nonce.
        headers = _signed_with_nonce(service, b.signers[0], "A" * 64, int(clock.now))
        assert (await send(session, service.url, "GET", CHECKPOINT, headers=headers)).status == 200
        assert len(service.node.nonces) == 1


async def test_a_key_over_its_rate_has_no_nonce_recorded(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = homes
    a, clock = _node(a, requests_per_second_per_key=1.0, burst_per_key=3)
    service = await start_node(a, node=Node(a, clock=clock))
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            assert (await _get(session, service, b, clock)).status == 200
        for _ in range(20):
            assert_problem(await _get(session, service, b, clock), 429, "rate-limited")
    assert len(service.node.nonces) == 3  # one per request served, none per refusal


async def test_one_push_at_a_time_per_org(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    """While an org's push is in progress, its next push, of that log or of another of its
    collections, is 429 from its head alone: one body per org is held at a time."""
    a, c, body = _ngo_and_host(homes, {})
    service = await start_node(a)
    node = service.node
    before = snapshot(a)
    reader, writer = await _open(service)
    try:
        # A first push sends its head and part of its body, then waits.
        writer.write(_signed_push_head(service, c, body) + body[:10])
        await writer.drain()
        await wait_until(lambda: node.pushing == {C: f"{C}/default"}, what="the first push to start")
        async with aiohttp.ClientSession() as session:
            for collection in ("default", "other"):
                for expect in ({}, {"Expect": "100-continue"}):
                    reply = await signed(
                        session, service.url, c.signers[0], "POST", f"/v1/logs/{C}/{collection}/batches",
                        body=body, headers={"Content-Type": "application/x-ndjson", **expect},
                    )
                    problem = assert_problem(reply, 429, "push-in-progress")
                    assert problem["detail"] == (
                        f"a push of {C}/default is in progress; {C} may push again once it has ended"
                    )
                    assert reply.headers["Retry-After"] == "5"
        assert node.pushing == {C: f"{C}/default"}  # one slot, held by the first
        assert snapshot(a) == before
        writer.write(body[10:])  # the first push ends, and is stored
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 201")
    finally:
        writer.close()
    assert node.pushing == {}
