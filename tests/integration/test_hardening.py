"""Findings of a security review, each against a real node (PROTOCOL §6):

- a node with a public URL answers to that URL only, not to its listener's address;
- a restarted node refuses requests dated before its start (their nonces may have been
  used with the previous run, whose nonce cache is gone);
- proof hashing runs off the event loop;
- ``Expect: 100-continue``: the interim ``100 Continue`` does not restart the head
  deadline, so a slow body after it is not cut off;
- a client that disconnects mid-request is not logged as an internal error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from types import FrameType
from typing import Self

import aiohttp
import pytest

from hashfed.federation.home import Home
from hashfed.federation.http.node import Node
from hashfed.federation.http.service import NodeService
from hashfed.protocol import merkle
from hashfed.protocol.checkpoint import verify_checkpoint
from hashfed.protocol.entries import Entry
from tests.helpers import (
    FakeClock,
    Reply,
    assert_problem,
    configure,
    connect,
    md5,
    send,
    sign_for,
    signed,
    snapshot,
    stage_and_publish,
    wait_until,
)
from tests.integration.test_limits import (
    _ngo_and_host,
    _open,
    _signed_push_head,
    _trickle,
)

A, B, C = "a.example", "b.example", "c.example"
LOG = f"{A}/default"
CHECKPOINT = f"/v1/logs/{LOG}/checkpoint"
PUBLIC = "https://hashfed.a.example"
WINDOW_S = 300


@pytest.fixture
def homes(make_home):  # type: ignore[no-untyped-def]
    """``a`` serves a log of three batches to ``b``; ``c`` is a peer."""
    a, b, c = make_home(A), make_home(B), make_home(C)
    for n in range(3):
        stage_and_publish(a, [Entry.add("md5", md5(n))])
    connect(b, a)
    connect(c, a)
    return a, b, c


def _host(url: str) -> str:
    return url.split("://", 1)[1]


async def _get_as(session: aiohttp.ClientSession, service: NodeService, headers: dict[str, str], signed_for: str) -> Reply:
    """Send signed ``headers`` to the node's socket, with the Host they were signed for."""
    return await send(session, service.url, "GET", CHECKPOINT, headers={**headers, "Host": _host(signed_for)})


# -- the @authority allow-list -------------------------------------------------------------

# (where the public URL is configured, the URL the request is signed for: "listener",
#  "localhost" or the public URL) → status, problem type
AUTHORITY_CASES = {
    "public-url-in-config-refuses-listener": ("config", "listener", 401, "wrong-authority"),
    "public-url-flag-refuses-listener": ("serve-flag", "listener", 401, "wrong-authority"),
    "public-url-flag-refuses-localhost": ("serve-flag", "localhost", 401, "wrong-authority"),
    "public-url-in-config-refuses-localhost": ("config", "localhost", 401, "wrong-authority"),
    "public-url-in-config-serves-it": ("config", PUBLIC, 200, None),
    "public-url-flag-serves-it": ("serve-flag", PUBLIC, 200, None),
    "no-public-url-serves-listener": (None, "listener", 200, None),
    "no-public-url-serves-localhost": (None, "localhost", 200, None),
    "no-public-url-refuses-a-public-name": (None, PUBLIC, 401, "wrong-authority"),
}


@pytest.mark.parametrize(
    ("public", "target", "status", "slug"), list(AUTHORITY_CASES.values()), ids=list(AUTHORITY_CASES)
)
async def test_authority_allow_list(homes, start_node, public, target, status, slug) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = homes
    kwargs: dict[str, object] = {}
    if public == "config":
        a = configure(a, server={"public_urls": [PUBLIC]})
    elif public == "serve-flag":
        kwargs["public_urls"] = (PUBLIC,)
    service = await start_node(a, **kwargs)
    url = {"listener": service.url, "localhost": f"http://localhost:{service.bound_port}"}.get(target, target)
    headers = sign_for(url, b.signers[0], "GET", CHECKPOINT)
    before = snapshot(a)
    async with aiohttp.ClientSession() as session:
        reply = await _get_as(session, service, headers, url)
    if slug is None:
        assert reply.status == 200, reply
        assert len(service.node.nonces) == 1
    else:
        assert_problem(reply, status, slug)
        assert len(service.node.nonces) == 0
    assert snapshot(a) == before


# -- nonces across a restart ---------------------------------------------------------------


def _run(home: Home, clock: FakeClock) -> NodeService:
    """One run of ``home``'s node on ``clock``, reached at its public URL (so a request
    captured from one run is valid, Host and all, for the next on another port)."""
    return NodeService(
        home, host="127.0.0.1", port=0, sync=False, public_urls=(PUBLIC,), node=Node(home, clock=clock)
    )


# (seconds the restart takes, created relative to the new run's start, whether the request
# was already served by the previous run) → refused as "replayed" by the new run
RESTART_CASES = {
    "exact-replay-after-restart": (10, -10, True),
    "exact-replay-after-quick-restart": (1, -1, True),
    "exact-replay-dated-at-window-start": (WINDOW_S - 1, -(WINDOW_S - 1), True),
    "in-flight-during-restart": (10, -1, False),
}


@pytest.mark.parametrize(
    ("downtime_s", "created_offset", "served_before"), list(RESTART_CASES.values()), ids=list(RESTART_CASES)
)
async def test_restart_refuses_requests_signed_before_it(homes, downtime_s, created_offset, served_before) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = homes
    clock = FakeClock()
    first_start = int(clock.now)
    restart_at = first_start + downtime_s
    created = restart_at + created_offset
    assert created >= first_start
    headers = sign_for(PUBLIC, b.signers[0], "GET", CHECKPOINT, created=created)
    async with aiohttp.ClientSession() as session:
        async with _run(a, clock) as first:
            if served_before:
                clock.now = float(created)
                assert (await _get_as(session, first, headers, PUBLIC)).status == 200
                assert_problem(await _get_as(session, first, headers, PUBLIC), 401, "replayed")
        clock.now = float(restart_at)
        async with _run(a, clock) as second:
            before = snapshot(a)
            problem = assert_problem(await _get_as(session, second, headers, PUBLIC), 401, "replayed")
            assert "before this node started" in problem["detail"]
            assert len(second.node.nonces) == 0
            assert snapshot(a) == before
            # The same request is still refused late in the window since the start...
            clock.now = float(created + WINDOW_S)
            assert_problem(await _get_as(session, second, headers, PUBLIC), 401, "replayed")
            # ... and past it, the verifier refuses it as too old (a clock-skew problem).
            clock.now += 1
            assert_problem(await _get_as(session, second, headers, PUBLIC), 401, "clock-skew")
            assert snapshot(a) == before
            # Requests signed after the restart are served.
            for created_now in (restart_at, int(clock.now)):
                fresh = sign_for(PUBLIC, b.signers[0], "GET", CHECKPOINT, created=created_now)
                assert (await _get_as(session, second, fresh, PUBLIC)).status == 200


# -- proofs are hashed off the event loop ---------------------------------------------------

_PROOF_CODE = {merkle.inclusion_proof.__code__, merkle.consistency_proof.__code__}


class _ProofCallsOnThisThread:
    """Records calls of the proof functions made on the current thread (the event loop's):
    ``sys.setprofile`` is per thread, so calls in a worker thread are not seen."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._outer: object = None

    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code in _PROOF_CODE:
            self.calls.append(frame.f_code.co_name)

    def __enter__(self) -> Self:
        self._outer = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(self._outer)  # type: ignore[arg-type]


async def test_proofs_are_hashed_off_the_event_loop(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = homes
    service = await start_node(a)
    base = f"/v1/logs/{LOG}"
    async with aiohttp.ClientSession() as session:
        reply = await signed(session, service.url, b.signers[0], "GET", f"{base}/checkpoint")
        checkpoint = verify_checkpoint(reply.body, log_id=LOG, verifiers=[s.verifier() for s in a.signers]).checkpoint
        batches = (await signed(session, service.url, b.signers[0], "GET", f"{base}/batches", query="start=0")).body
        with _ProofCallsOnThisThread() as on_loop:  # this thread runs the node's loop too
            inclusion = await signed(
                session, service.url, b.signers[0], "GET", f"{base}/proof/inclusion", query="index=1&size=3"
            )
            consistency = await signed(
                session, service.url, b.signers[0], "GET", f"{base}/proof/consistency", query="old=2&new=3"
            )
    assert on_loop.calls == []
    # The proofs were computed (elsewhere) and are right.
    leaves = [merkle.leaf_hash(line) for line in batches.splitlines()]
    assert checkpoint.size == 3
    merkle.verify_inclusion(leaves[1], 1, 3, merkle.decode_proof(inclusion.body), checkpoint.root)
    merkle.verify_consistency(
        2, 3, merkle.root_hash(leaves[:2]), checkpoint.root, merkle.decode_proof(consistency.body)
    )


# -- Expect: 100-continue ------------------------------------------------------------------

HEADER_TIMEOUT_S = 1.0


async def test_slow_body_after_100_continue_is_not_cut_off(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, c, body = _ngo_and_host(homes, {"header_timeout_s": HEADER_TIMEOUT_S})
    service = await start_node(a)
    before = snapshot(a)
    reader, writer = await _open(service)
    step = len(body) // 5 + 1
    pieces = [body[i : i + step] for i in range(0, len(body), step)]
    try:
        writer.write(_signed_push_head(service, c, body, extra="Expect: 100-continue\r\n"))
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        # The body over ~1.5 s after the 100: longer than the head deadline.
        await _trickle(writer, pieces, 0.3)
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 201"), answer
    assert snapshot(a) != before
    with a.open_store() as store:
        log = store.logs.get(f"{c.org}/default")
        assert log is not None and log.size == 1


def _expect_head(service: NodeService, a: Home, c: Home, body: bytes, case: str) -> bytes:
    """A push head with ``Expect: 100-continue`` that the host must refuse before the body."""
    if case == "unsigned":
        return (
            f"POST /v1/logs/{c.org}/default/batches HTTP/1.1\r\nHost: 127.0.0.1:{service.bound_port}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
    if case == "not-accepted":
        with a.open_store() as store:  # c is still trusted, but may no longer push here
            store.peers.add(c.org, url=None, vkeys=[s.vkey() for s in c.signers],
                           accept_push=False, ca_file=None, now="2026-11-26T00:00:00Z")
    return _signed_push_head(service, c, body, extra="Expect: 100-continue\r\n")


@pytest.mark.parametrize(
    ("case", "status", "slug"),
    [("unsigned", 401, "bad-signature"), ("not-accepted", 403, "push-not-accepted")],
    ids=["unsigned", "not-accepted"],
)
async def test_expect_100_continue_invites_only_a_sender_it_will_take_a_body_from(
    homes, start_node, case, status, slug  # type: ignore[no-untyped-def]
) -> None:
    a, c, body = _ngo_and_host(homes, {})
    service = await start_node(a)
    before = snapshot(a)
    reader, writer = await _open(service)
    try:
        writer.write(_expect_head(service, a, c, body, case))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(next(
            line.split(b":")[1] for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ))
        problem = await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()
    # The final answer comes at once, no "100 Continue": the body is never invited.
    assert head.startswith(f"HTTP/1.1 {status}".encode()), head
    assert b"application/problem+json" in head
    assert f"urn:hashfed:problem:{slug}".encode() in problem
    assert snapshot(a) == before


async def _first_answer(port: int, head: bytes) -> tuple[bytes, dict]:
    """Send ``head`` on a raw connection; the first answer's head and its problem body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(next(
            line.split(b":")[1] for line in answer.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ))
        return answer, json.loads(await asyncio.wait_for(reader.readexactly(length), 5))
    finally:
        writer.close()


TOKEN_HEADER = "Authorization: Bearer s3cret\r\n"

# (listener, method, path, headers) -> status, problem type: no route but push (and the
# lookup POST, once its token is checked) answers Expect: 100-continue with an invitation.
EXPECT_ELSEWHERE = {
    "open node info": ("peer", "GET", "/v1/node", "", 417, "expectation-failed"),
    "listing": ("peer", "GET", "/v1/logs", "", 417, "expectation-failed"),
    "checkpoint": ("peer", "GET", CHECKPOINT, "", 417, "expectation-failed"),
    "batches": ("peer", "GET", f"/v1/logs/{LOG}/batches?start=0", "", 417, "expectation-failed"),
    "lookup get": ("lookup", "GET", f"/v1/hashes/md5/{md5(1)}", "", 417, "expectation-failed"),
    "lookup post without token": ("lookup", "POST", "/v1/lookup", "", 401, "bad-token"),
    # What no route serves: the listener's credentials first, then 404 or 405, at once.
    "peer unknown path": ("peer", "POST", "/v1/nothing", "", 401, "bad-signature"),
    "peer wrong method": ("peer", "PUT", "/v1/logs", "", 401, "bad-signature"),
    "lookup unknown path without token": ("lookup", "POST", "/v1/nothing", "", 401, "bad-token"),
    "lookup unknown path": ("lookup", "POST", "/v1/nothing", TOKEN_HEADER, 404, "not-found"),
    "lookup wrong method": ("lookup", "PUT", "/v1/lookup", TOKEN_HEADER, 405, "method-not-allowed"),
    "metrics": ("lookup", "GET", "/metrics", TOKEN_HEADER, 417, "expectation-failed"),
    "openapi": ("lookup", "GET", "/v1/openapi.json", TOKEN_HEADER, 417, "expectation-failed"),
}


@pytest.mark.parametrize(
    ("listener", "method", "path", "extra", "status", "slug"),
    list(EXPECT_ELSEWHERE.values()),
    ids=list(EXPECT_ELSEWHERE),
)
async def test_expect_100_continue_is_not_answered_before_authentication_elsewhere(
    homes, start_node, listener, method, path, extra, status, slug  # type: ignore[no-untyped-def]
) -> None:
    a, _, _ = homes
    a = configure(a, server={"local_token": "s3cret"})
    service = await start_node(a, local_port=0)
    port = service.bound_port if listener == "peer" else service.local_bound_port
    before = snapshot(a)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 10\r\n"
        f"Expect: 100-continue\r\n{extra}\r\n"
    ).encode()
    answer, problem = await _first_answer(port, head)
    # The final answer at once, no "100 Continue": no body is invited.
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert problem["type"] == f"urn:hashfed:problem:{slug}"
    if status == 405:
        assert b"\r\nAllow: POST\r\n" in answer
    assert snapshot(a) == before
    assert len(service.node.nonces) == 0


async def test_head_of_node_info_is_open_like_its_get(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, _, _ = homes
    service = await start_node(a)
    async with aiohttp.ClientSession() as session:
        get = await send(session, service.url, "GET", "/v1/node")
        head = await send(session, service.url, "HEAD", "/v1/node")
        assert (get.status, head.status, head.body) == (200, 200, b"")
        assert head.headers["Content-Type"] == get.headers["Content-Type"]
        # The other routes still need a signature, HEAD as much as GET.
        assert_problem(await send(session, service.url, "GET", CHECKPOINT), 401, "bad-signature")
        assert (await send(session, service.url, "HEAD", CHECKPOINT)).status == 401


# -- a client that goes away ---------------------------------------------------------------


async def test_client_gone_mid_body_is_not_an_internal_error(homes, start_node, caplog) -> None:  # type: ignore[no-untyped-def]
    a, c, body = _ngo_and_host(homes, {})
    service = await start_node(a)
    before = snapshot(a)
    caplog.set_level(logging.DEBUG, logger="hashfed.federation.http.problems")
    _, writer = await _open(service)
    writer.write(_signed_push_head(service, c, body) + body[:10])  # then hang up
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    def went_away() -> bool:
        return any("client went away" in r.getMessage() for r in caplog.records)

    await wait_until(went_away, what="the push handler to see the client go")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert snapshot(a) == before
    # The node is fine and serves the next client.
    async with aiohttp.ClientSession() as session:
        _, b, _ = homes
        assert (await signed(session, service.url, b.signers[0], "GET", CHECKPOINT)).status == 200
