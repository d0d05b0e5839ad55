"""Request authentication and access control (PROTOCOL §6) against a real node.

Every refused request is answered with problem+json, serves nothing and stores nothing:
no nonce is recorded for a request whose signature did not verify, and the node's store is
byte-for-byte what it was. Requests are built with ``protocol.httpsig.sign_request`` and
sent raw with aiohttp, so a test can tamper with any part after signing. The node runs on a
clock the test holds (``FakeClock``), so ``created`` limits are tested to the second.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from hashfed.federation.cli import main as cli
from hashfed.federation.home import Home, add_key
from hashfed.federation.http.node import Node
from hashfed.federation.http.service import NodeService
from hashfed.keys import Signer
from hashfed.protocol.entries import Entry
from hashfed.protocol.httpsig import content_digest
from tests.helpers import (
    FakeClock,
    Reply,
    assert_problem,
    connect,
    md5,
    send,
    sign_for,
    signed,
    snapshot,
    stage_and_publish,
)

A, B, C = "a.example", "b.example", "c.example"
CHECKPOINT = f"/v1/logs/{A}/default/checkpoint"
BATCHES = f"/v1/logs/{A}/default/batches"
PUSH = f"/v1/logs/{B}/default/batches"
WINDOW_S = 300


@dataclasses.dataclass
class World:
    """Node ``a`` (on a fake clock) serving its log; ``b`` is a granted reader that may
    also push its own log there; ``c`` is a known peer with no grant; ``a2`` is another
    node that trusts ``b`` too (the target of a replay)."""

    a: Home
    b: Home
    c: Home
    service: NodeService
    other: NodeService
    clock: FakeClock
    session: aiohttp.ClientSession
    push_body: bytes
    push_headers: dict[str, str]

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def node(self) -> Node:
        return self.service.node

    @property
    def checkpoint(self) -> bytes:
        with self.a.open_store() as store:
            log = store.logs.get(f"{A}/default")
            assert log is not None and log.checkpoint is not None
            return log.checkpoint

    def headers(self, signer: Signer, method: str, path: str, **kwargs: object) -> dict[str, str]:
        kwargs.setdefault("created", int(self.clock.now))
        return sign_for(self.url, signer, method, path, **kwargs)  # type: ignore[arg-type]


def _peer(home: Home, other: Home, *, accept_push: bool = False) -> None:
    with home.open_store() as store:
        store.peers.add(
            other.org,
            url=None,
            vkeys=[s.vkey() for s in other.signers],
            accept_push=accept_push,
            ca_file=None,
            now="2026-11-26T00:00:00Z",
        )


@pytest.fixture
async def world(make_home, start_node) -> World:  # type: ignore[no-untyped-def]
    a, b, c, a2 = make_home(A), make_home(B), make_home(C), make_home("a2.example")
    stage_and_publish(a, [Entry.add("md5", md5(1), ["x:1"]), Entry.add("md5", md5(2))])
    stage_and_publish(b, [Entry.add("md5", md5(3))])
    clock = FakeClock()
    service = await start_node(a, node=Node(a, clock=clock))
    other = await start_node(a2)
    connect(b, a, url=service.url)
    _peer(a, b, accept_push=True)
    _peer(a, c)
    _peer(a2, b)
    with b.open_store() as store:
        log = store.logs.get(f"{B}/default")
        assert log is not None and log.checkpoint is not None
        push_body = b"".join(line + b"\n" for line in store.logs.iter_batches(log, 0, log.size))
        push_headers = {"Hashfed-Checkpoint": base64.b64encode(log.checkpoint).decode()}
    async with aiohttp.ClientSession() as session:
        yield World(a, b, c, service, other, clock, session, push_body, push_headers)


# -- the happy paths the bad cases are variations of ---------------------------------------


async def test_granted_reader_is_served(world: World) -> None:
    reply = await send(
        world.session, world.url, "GET", CHECKPOINT,
        headers=world.headers(world.b.signers[0], "GET", CHECKPOINT),
    )
    assert reply.status == 200, reply
    assert reply.body == world.checkpoint
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_signed_push_is_accepted(world: World) -> None:
    headers = world.headers(world.b.signers[0], "POST", PUSH, body=world.push_body)
    reply = await send(
        world.session, world.url, "POST", PUSH,
        body=world.push_body, headers={**world.push_headers, **headers},
    )
    assert reply.status == 201, reply
    assert reply.json() == {"size": 1}


@pytest.mark.parametrize("offset", [-WINDOW_S, 0, WINDOW_S], ids=["window-start", "now", "window-end"])
async def test_created_inside_the_window_is_accepted(world: World, offset: int) -> None:
    # A window after the node's start: nothing inside the window predates the start (a
    # request dated before it is refused as a possible replay, test_hardening.py).
    world.clock.now += WINDOW_S
    created = int(world.clock.now) + offset
    reply = await send(
        world.session, world.url, "GET", CHECKPOINT,
        headers=world.headers(world.b.signers[0], "GET", CHECKPOINT, created=created),
    )
    assert reply.status == 200, reply


# -- refused requests ----------------------------------------------------------------------


async def _unsigned(w: World) -> Reply:
    return await send(w.session, w.url, "GET", CHECKPOINT)


async def _signature_input_malformed(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT)
    headers["Signature-Input"] = headers["Signature-Input"].replace(";created=", ";created=x")
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _signature_input_unparseable(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT)
    headers["Signature-Input"] = 'hashfed=("@method" "@authority"'
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _other_label(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT)
    headers = {k: v.replace("hashfed=", "sig1=", 1) for k, v in headers.items()}
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _components_missing_query(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT)
    headers["Signature-Input"] = headers["Signature-Input"].replace(' "@query"', "")
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _signature_bytes_wrong(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT)
    headers["Signature"] = "hashfed=:" + base64.b64encode(bytes(64)).decode() + ":"
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _unknown_org_key(w: World) -> Reply:
    stranger = Signer.generate("d.example")
    return await send(
        w.session, w.url, "GET", CHECKPOINT, headers=w.headers(stranger, "GET", CHECKPOINT)
    )


async def _untrusted_key_of_known_org(w: World) -> Reply:
    impostor = Signer.generate(B)
    return await send(
        w.session, w.url, "GET", CHECKPOINT, headers=w.headers(impostor, "GET", CHECKPOINT)
    )


async def _created_too_old(w: World) -> Reply:
    created = int(w.clock.now) - WINDOW_S - 1
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT, created=created)
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _created_too_far_ahead(w: World) -> Reply:
    created = int(w.clock.now) + WINDOW_S + 1
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT, created=created)
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _exact_replay(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT)
    first = await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)
    assert first.status == 200, first
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _replay_after_time_passed(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT)
    first = await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)
    assert first.status == 200, first
    w.clock.now += WINDOW_S + 0.5  # int(now) - created is still the window: inside
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _signed_before_the_node_started(w: World) -> Reply:
    # Its nonce may have been used with a previous run of the node (nonces are in memory).
    created = w.node.started_s - 1
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT, created=created)
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _replayed_to_another_node(w: World) -> Reply:
    # Signed for a2, which serves it; the same bytes (Host included) sent to a.
    path = "/v1/logs"
    headers = sign_for(w.other.url, w.b.signers[0], "GET", path, created=int(w.clock.now))
    first = await send(w.session, w.other.url, "GET", path, headers=headers)
    assert first.status == 200, first
    host = w.other.url.removeprefix("http://")
    return await send(w.session, w.url, "GET", path, headers={**headers, "Host": host})


async def _signed_for_another_node_host_rewritten(w: World) -> Reply:
    headers = sign_for(w.other.url, w.b.signers[0], "GET", CHECKPOINT, created=int(w.clock.now))
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _body_swapped(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "POST", PUSH, body=w.push_body)
    swapped = w.push_body.replace(b'"index":0', b'"index":1')
    return await send(
        w.session, w.url, "POST", PUSH, body=swapped, headers={**w.push_headers, **headers}
    )


async def _body_and_digest_swapped(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "POST", PUSH, body=w.push_body)
    swapped = w.push_body + w.push_body
    headers["Content-Digest"] = content_digest(swapped)
    return await send(
        w.session, w.url, "POST", PUSH, body=swapped, headers={**w.push_headers, **headers}
    )


async def _digest_missing(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "POST", PUSH, body=w.push_body)
    del headers["Content-Digest"]
    return await send(
        w.session, w.url, "POST", PUSH, body=w.push_body, headers={**w.push_headers, **headers}
    )


async def _body_not_covered(w: World) -> Reply:
    # Signed as a request without a body; sent with one.
    headers = w.headers(w.b.signers[0], "POST", PUSH)
    return await send(
        w.session, w.url, "POST", PUSH, body=w.push_body, headers={**w.push_headers, **headers}
    )


async def _query_changed(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", BATCHES, query="start=0")
    return await send(w.session, w.url, "GET", BATCHES, query="start=1", headers=headers)


async def _query_added(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", CHECKPOINT)
    return await send(w.session, w.url, "GET", CHECKPOINT, query="x=1", headers=headers)


async def _path_changed(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", f"/v1/logs/{B}/default/checkpoint")
    return await send(w.session, w.url, "GET", CHECKPOINT, headers=headers)


async def _method_changed(w: World) -> Reply:
    headers = w.headers(w.b.signers[0], "GET", PUSH)
    return await send(w.session, w.url, "POST", PUSH, headers={**w.push_headers, **headers})


async def _reader_not_granted(w: World) -> Reply:
    return await send(
        w.session, w.url, "GET", CHECKPOINT,
        headers=w.headers(w.c.signers[0], "GET", CHECKPOINT),
    )


async def _reader_not_granted_batches(w: World) -> Reply:
    return await send(
        w.session, w.url, "GET", BATCHES, query="start=0",
        headers=w.headers(w.c.signers[0], "GET", BATCHES, query="start=0"),
    )


async def _push_by_reader_of_another_org(w: World) -> Reply:
    # c is authenticated, but the log is b's: only b may push it.
    headers = w.headers(w.c.signers[0], "POST", PUSH, body=w.push_body)
    return await send(
        w.session, w.url, "POST", PUSH, body=w.push_body, headers={**w.push_headers, **headers}
    )


Case = Callable[[World], Awaitable[Reply]]

# (case, status, problem slug, nonces the case itself leaves recorded)
REFUSED: dict[str, tuple[Case, int, str, int]] = {
    "no-signature": (_unsigned, 401, "bad-signature", 0),
    "signature-input-malformed": (_signature_input_malformed, 401, "bad-signature", 0),
    "signature-input-unparseable": (_signature_input_unparseable, 401, "bad-signature", 0),
    "signature-under-another-label": (_other_label, 401, "bad-signature", 0),
    "covered-components-incomplete": (_components_missing_query, 401, "bad-signature", 0),
    "signature-bytes-wrong": (_signature_bytes_wrong, 401, "bad-signature", 0),
    "unknown-org": (_unknown_org_key, 401, "bad-signature", 0),
    "untrusted-key-of-known-org": (_untrusted_key_of_known_org, 401, "bad-signature", 0),
    "created-too-old": (_created_too_old, 401, "clock-skew", 0),
    "created-too-far-ahead": (_created_too_far_ahead, 401, "clock-skew", 0),
    "exact-replay": (_exact_replay, 401, "replayed", 1),
    "replay-late-in-window": (_replay_after_time_passed, 401, "replayed", 1),
    "signed-before-the-node-started": (_signed_before_the_node_started, 401, "replayed", 0),
    "replayed-to-another-node": (_replayed_to_another_node, 401, "wrong-authority", 0),
    "signed-for-another-node": (_signed_for_another_node_host_rewritten, 401, "bad-signature", 0),
    # The head is authenticated before the body is read (so no stranger can make the node
    # buffer a body): a signed head spends its nonce even if the body then fails its digest.
    "body-swapped": (_body_swapped, 401, "bad-signature", 1),
    "body-and-digest-swapped": (_body_and_digest_swapped, 401, "bad-signature", 0),
    "content-digest-missing": (_digest_missing, 401, "bad-signature", 0),
    "body-not-covered": (_body_not_covered, 401, "bad-signature", 0),
    "query-changed": (_query_changed, 401, "bad-signature", 0),
    "query-added": (_query_added, 401, "bad-signature", 0),
    "path-changed": (_path_changed, 401, "bad-signature", 0),
    "method-changed": (_method_changed, 401, "bad-signature", 0),
    "reader-not-granted": (_reader_not_granted, 403, "not-a-reader", 1),
    "reader-not-granted-batches": (_reader_not_granted_batches, 403, "not-a-reader", 1),
    "push-by-another-org": (_push_by_reader_of_another_org, 403, "not-the-log-org", 1),
}


@pytest.mark.parametrize(
    ("case", "status", "slug", "nonces"), list(REFUSED.values()), ids=list(REFUSED)
)
async def test_refused(world: World, case: Case, status: int, slug: str, nonces: int) -> None:
    before = snapshot(world.a)
    recorded = len(world.node.nonces)
    checkpoint = world.checkpoint

    reply = await case(world)

    assert_problem(reply, status, slug)
    assert checkpoint not in reply.body
    assert snapshot(world.a) == before
    assert len(world.node.nonces) == recorded + nonces


# -- trust and grants change on a running node, at once ------------------------------------


async def _get(w: World, signer: Signer, path: str = CHECKPOINT) -> Reply:
    return await signed(w.session, w.url, signer, "GET", path, created=int(w.clock.now))


async def test_removed_key_is_refused_at_once(world: World) -> None:
    old = world.b.signers[0]
    new = add_key(world.b.path, B)
    assert (await _get(world, old)).status == 200
    assert_problem(await _get(world, new), 401, "bad-signature")

    # a re-adds b with only its new key, from the CLI, while the node runs.
    assert cli(["--home", str(world.a.path), "peer", "add", B, "--key", new.vkey()]) == 0

    before = snapshot(world.a)
    problem = assert_problem(await _get(world, old), 401, "bad-signature")
    assert old.key_id in problem["detail"]
    assert snapshot(world.a) == before
    # The grant belongs to the org, not the key.
    reply = await _get(world, new)
    assert reply.status == 200 and reply.body == world.checkpoint


async def test_removed_peer_is_refused_at_once(world: World) -> None:
    assert (await _get(world, world.b.signers[0])).status == 200
    assert cli(["--home", str(world.a.path), "peer", "remove", B]) == 0
    assert_problem(await _get(world, world.b.signers[0]), 401, "bad-signature")


async def test_grant_and_revoke_take_effect_at_once(world: World, capsys) -> None:  # type: ignore[no-untyped-def]
    reader = world.c.signers[0]
    log_id = f"{A}/default"
    assert_problem(await _get(world, reader), 403, "not-a-reader")
    assert (await _get(world, reader, "/v1/logs")).json() == []

    assert cli(["--home", str(world.a.path), "grant", C, log_id]) == 0
    assert f"{C} may now read {log_id}" in capsys.readouterr().out
    reply = await _get(world, reader)
    assert reply.status == 200 and reply.body == world.checkpoint
    listing = (await _get(world, reader, "/v1/logs")).json()
    assert [(x["org"], x["collection"], x["size"]) for x in listing] == [(A, "default", 1)]

    assert cli(["--home", str(world.a.path), "revoke", C, log_id]) == 0
    assert_problem(await _get(world, reader), 403, "not-a-reader")
    reply = await signed(
        world.session, world.url, reader, "GET", BATCHES, query="start=0", created=int(world.clock.now)
    )
    assert_problem(reply, 403, "not-a-reader")
    assert (await _get(world, reader, "/v1/logs")).json() == []
    # b's grant was never touched.
    assert (await _get(world, world.b.signers[0])).status == 200


async def test_grant_through_the_store_api_takes_effect_at_once(world: World) -> None:
    reader = world.c.signers[0]
    assert_problem(await _get(world, reader), 403, "not-a-reader")
    with world.a.open_store() as store:
        store.peers.grant(C, f"{A}/default")
    assert (await _get(world, reader)).status == 200
    with world.a.open_store() as store:
        store.peers.revoke(C, f"{A}/default")
    assert_problem(await _get(world, reader), 403, "not-a-reader")


async def test_grant_of_unknown_peer_is_refused(world: World, capsys) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(world.a, ("grants", "peers"))
    assert cli(["--home", str(world.a.path), "grant", "d.example", f"{A}/default"]) == 2
    assert "no peer d.example" in capsys.readouterr().err
    assert snapshot(world.a, ("grants", "peers")) == before


async def test_log_org_may_always_read_its_log_wherever_held(world: World) -> None:
    # b pushed its log to a; b reads it back from a without any grant on a.
    headers = world.headers(world.b.signers[0], "POST", PUSH, body=world.push_body)
    pushed = await send(
        world.session, world.url, "POST", PUSH, body=world.push_body,
        headers={**world.push_headers, **headers},
    )
    assert pushed.status == 201, pushed
    path = f"/v1/logs/{B}/default/checkpoint"
    reply = await _get(world, world.b.signers[0], path)
    assert reply.status == 200
    assert reply.body == base64.b64decode(world.push_headers["Hashfed-Checkpoint"])
    assert_problem(await _get(world, world.c.signers[0], path), 403, "not-a-reader")


async def test_revoke_is_not_delayed_by_a_download_in_progress(make_home, start_node) -> None:  # type: ignore[no-untyped-def]
    """A reader that stops reading half-way through a large page must not freeze the node's
    view of its store (grants included) at the moment its download started."""
    a, b, c = make_home(A), make_home(B), make_home(C)
    # Two batches of ~3.3 MB, then a small one: more than the socket buffers hold.
    stage_and_publish(a, [Entry.add("photodna", f"{n:0288x}") for n in range(1, 20_001)])
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    service = await start_node(a)
    connect(b, a, url=service.url)
    connect(c, a, url=service.url)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", service.bound_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        headers = sign_for(service.url, b.signers[0], "GET", BATCHES, query="start=0")
        head = f"GET {BATCHES}?start=0 HTTP/1.1\r\nHost: 127.0.0.1:{service.bound_port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode())
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 200"), status
        # ... and read no more: the server is stuck writing the first batches.

        assert cli(["--home", str(a.path), "revoke", C, f"{A}/default"]) == 0
        async with aiohttp.ClientSession() as session:
            reply = await signed(session, service.url, c.signers[0], "GET", CHECKPOINT)
        assert_problem(reply, 403, "not-a-reader")
    finally:
        writer.close()
