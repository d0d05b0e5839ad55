"""Every GET route of PROTOCOL §6 on a real node, with good and bad parameters.

A node ``a`` serves a log of five batches (page cap 3) to reader ``b``; ``c`` is a peer
with no grant; ``n`` has pushed the first page of its own log, so the node holds a log
with no complete checkpoint. Proofs are verified with ``protocol.merkle`` against the
checkpoint the node serves, never against anything the test computed from the node's
store. Errors are problem+json; nothing a client sends gives a 500.
"""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
import pytest_asyncio

from hashfed.federation.home import Home, init_home, open_home
from hashfed.federation.http.service import NodeService
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys import Signer
from hashfed.keys.errors import ProtocolError
from hashfed.protocol.checkpoint import Checkpoint, verify_checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.httpsig import RequestTarget
from hashfed.protocol.merkle import (
    consistency_proof,
    decode_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.helpers import (
    Reply,
    assert_problem,
    configure,
    connect,
    md5,
    send,
    signed,
    snapshot,
    stage_and_publish,
)

A, B, C, N = "a.example", "b.example", "c.example", "n.example"
LOG = f"{A}/default"
BASE = f"/v1/logs/{LOG}"
SIZE = 5
PAGE_CAP = 3

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclasses.dataclass
class Site:
    a: Home
    b: Home
    c: Home
    n: Home
    service: NodeService
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.service.url

    async def get(self, path: str, query: str = "", *, signer: Signer | None = None) -> Reply:
        signer = signer or self.b.signers[0]
        return await signed(self.session, self.url, signer, "GET", path, query=query)

    def served(self, reply: Reply) -> Checkpoint:
        """Verify a served checkpoint with a's key; the checkpoint."""
        assert reply.status == 200, reply
        return verify_checkpoint(reply.body, log_id=LOG, verifiers=[s.verifier() for s in self.a.signers]).checkpoint


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory) -> Site:  # type: ignore[no-untyped-def]
    """One node for the whole module: every test here only reads."""
    root = tmp_path_factory.mktemp("routes")

    def make_home(org: str) -> Home:
        init_home(root / org, org)
        return open_home(root / org)

    a = configure(make_home(A), limits={"max_page_batches": PAGE_CAP})
    b, c, n = make_home(B), make_home(C), make_home(N)
    for i in range(SIZE):
        stage_and_publish(a, [Entry.add("md5", md5(i), [f"x:{i}"]), Entry.add("md5", md5(100 + i))])
    for i in range(3):
        stage_and_publish(n, [Entry.add("md5", md5(200 + i))])
    connect(b, a)
    with a.open_store() as store:
        store.peers.add(C, url=None, vkeys=[c.signers[0].vkey()], accept_push=False, ca_file=None, now="x")
        store.peers.add(N, url=None, vkeys=[n.signers[0].vkey()], accept_push=True, ca_file=None, now="x")
        store.peers.grant(B, f"{N}/default")
    with n.open_store() as store:
        log = store.logs.get(f"{N}/default")
        assert log is not None and log.checkpoint is not None
        lines = list(store.logs.iter_batches(log, 0, 1))
        proof = consistency_proof(1, log.size, store.logs.leaf_hashes(log, log.size))
        note = log.checkpoint
    async with (
        NodeService(a, host="127.0.0.1", port=0, sync=False) as service,
        aiohttp.ClientSession() as session,
    ):
        pusher = HttpPeer(session, service.url, n.signers[0], clock=service.node.clock)
        assert await pusher.push(f"{N}/default", lines, note, proof) == 1
        yield Site(a, b, c, n, service, session)


def _stored_batches(home: Home) -> list[bytes]:
    with home.open_store() as store:
        log = store.logs.get(LOG)
        assert log is not None
        return list(store.logs.iter_batches(log, 0, log.size))


# -- good requests -------------------------------------------------------------------------


async def test_node_is_open_to_anyone(site: Site) -> None:
    reply = await send(site.session, site.url, "GET", "/v1/node")
    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert reply.json() == {"org": A, "keys": [s.vkey() for s in site.a.signers], "protocol": "hashfed/1"}


async def test_logs_lists_what_the_caller_may_read(site: Site) -> None:
    listing = (await site.get("/v1/logs")).json()
    # n's log is held but has no complete checkpoint: not listed.
    assert [(x["org"], x["collection"], x["size"]) for x in listing] == [(A, "default", SIZE)]
    checkpoint = site.served(await site.get(f"{BASE}/checkpoint"))
    assert listing[0]["checkpoint"].encode() == (await site.get(f"{BASE}/checkpoint")).body
    assert checkpoint.size == SIZE
    assert (await site.get("/v1/logs", signer=site.c.signers[0])).json() == []


async def test_checkpoint(site: Site) -> None:
    reply = await site.get(f"{BASE}/checkpoint")
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    checkpoint = site.served(reply)
    leaves = [leaf_hash(data) for data in _stored_batches(site.a)]
    assert (checkpoint.size, checkpoint.root) == (SIZE, root_hash(leaves))


@pytest.mark.parametrize(
    ("query", "indices"),
    [
        ("start=0", [0, 1, 2]),  # the page cap
        ("start=0&end=2", [0, 1]),
        ("start=3", [3, 4]),
        ("start=4&end=100", [4]),
        ("end=5&start=2", [2, 3, 4]),
        ("start=2&end=2", []),
        ("start=5", []),
        ("start=5&end=9", []),
    ],
    ids=["page-cap", "end", "to-size", "end-past-size", "order-free", "empty-range", "at-size", "at-size-end-past"],
)
async def test_batches(site: Site, query: str, indices: list[int]) -> None:
    reply = await site.get(f"{BASE}/batches", query)
    assert reply.status == 200
    assert reply.content_type == "application/x-ndjson"
    stored = _stored_batches(site.a)
    assert reply.body == b"".join(stored[i] + b"\n" for i in indices)


async def test_inclusion_proofs_verify_against_the_served_checkpoint(site: Site) -> None:
    checkpoint = site.served(await site.get(f"{BASE}/checkpoint"))
    batches = (await site.get(f"{BASE}/batches", "start=0&end=3")).body.splitlines()
    batches += (await site.get(f"{BASE}/batches", "start=3")).body.splitlines()
    leaves = [leaf_hash(data) for data in batches]
    assert root_hash(leaves) == checkpoint.root
    for size in range(1, SIZE + 1):
        root = checkpoint.root if size == SIZE else root_hash(leaves[:size])
        for index in range(size):
            reply = await site.get(f"{BASE}/proof/inclusion", f"index={index}&size={size}")
            assert reply.content_type == "application/json"
            verify_inclusion(leaves[index], index, size, decode_proof(reply.body), root)


async def test_consistency_proofs_verify_against_the_served_checkpoint(site: Site) -> None:
    checkpoint = site.served(await site.get(f"{BASE}/checkpoint"))
    leaves = [leaf_hash(data) for data in _stored_batches(site.a)]
    for new in range(1, SIZE + 1):
        new_root = checkpoint.root if new == SIZE else root_hash(leaves[:new])
        for old in range(1, new + 1):
            reply = await site.get(f"{BASE}/proof/consistency", f"old={old}&new={new}")
            assert reply.content_type == "application/json"
            proof = decode_proof(reply.body)
            verify_consistency(old, new, root_hash(leaves[:old]), new_root, proof)
            assert (proof == []) == (old == new)


# -- bad parameters ------------------------------------------------------------------------

BAD_PARAMS = {
    # batches
    "batches-no-start": ("batches", "", 400, "malformed"),
    "batches-start-not-decimal": ("batches", "start=abc", 400, "malformed"),
    "batches-start-negative": ("batches", "start=-1", 400, "malformed"),
    "batches-start-leading-zero": ("batches", "start=01", 400, "malformed"),
    "batches-start-plus-sign": ("batches", "start=%2B1", 400, "malformed"),
    "batches-start-fraction": ("batches", "start=1.0", 400, "malformed"),
    "batches-start-exponent": ("batches", "start=1e1", 400, "malformed"),
    "batches-start-empty": ("batches", "start=", 400, "malformed"),
    "batches-start-no-value": ("batches", "start", 400, "malformed"),
    "batches-start-fullwidth-digit": ("batches", "start=%EF%BC%91", 400, "malformed"),
    "batches-start-with-space": ("batches", "start=%201", 400, "malformed"),
    "batches-start-twice": ("batches", "start=0&start=1", 400, "malformed"),
    "batches-start-huge": ("batches", "start=" + "9" * 30, 400, "malformed"),
    "batches-start-past-size": ("batches", "start=6", 400, "out-of-range"),
    "batches-end-before-start": ("batches", "start=3&end=2", 400, "out-of-range"),
    "batches-end-not-decimal": ("batches", "start=0&end=x", 400, "malformed"),
    "batches-end-huge": ("batches", "start=0&end=" + "9" * 19, 400, "malformed"),
    "batches-unknown-param": ("batches", "start=0&limit=1", 400, "malformed"),
    "batches-param-upper-case": ("batches", "Start=0", 400, "malformed"),
    # inclusion
    "inclusion-index-at-size": ("proof/inclusion", "index=5&size=5", 400, "out-of-range"),
    "inclusion-index-past-size": ("proof/inclusion", "index=7&size=5", 400, "out-of-range"),
    "inclusion-size-past-log": ("proof/inclusion", "index=0&size=6", 400, "out-of-range"),
    "inclusion-size-zero": ("proof/inclusion", "index=0&size=0", 400, "out-of-range"),
    "inclusion-no-size": ("proof/inclusion", "index=0", 400, "malformed"),
    "inclusion-no-index": ("proof/inclusion", "size=5", 400, "malformed"),
    "inclusion-index-negative": ("proof/inclusion", "index=-1&size=5", 400, "malformed"),
    "inclusion-unknown-param": ("proof/inclusion", "index=0&size=5&old=1", 400, "malformed"),
    # consistency
    "consistency-old-zero": ("proof/consistency", "old=0&new=5", 400, "out-of-range"),
    "consistency-old-past-new": ("proof/consistency", "old=3&new=2", 400, "out-of-range"),
    "consistency-new-past-log": ("proof/consistency", "old=1&new=6", 400, "out-of-range"),
    "consistency-both-past-log": ("proof/consistency", "old=6&new=6", 400, "out-of-range"),
    "consistency-no-new": ("proof/consistency", "old=1", 400, "malformed"),
    "consistency-no-old": ("proof/consistency", "new=1", 400, "malformed"),
    "consistency-new-twice": ("proof/consistency", "old=1&new=5&new=5", 400, "malformed"),
    "consistency-hex": ("proof/consistency", "old=0x1&new=5", 400, "malformed"),
    # checkpoint and listing take no parameters
    "checkpoint-with-param": ("checkpoint", "start=0", 400, "malformed"),
    "logs-with-param": (None, "org=a.example", 400, "malformed"),
}


@pytest.mark.parametrize(("route", "query", "status", "slug"), list(BAD_PARAMS.values()), ids=list(BAD_PARAMS))
async def test_bad_parameters(site: Site, route: str | None, query: str, status: int, slug: str) -> None:
    path = f"{BASE}/{route}" if route else "/v1/logs"
    before = snapshot(site.a)
    reply = await site.get(path, query)
    assert_problem(reply, status, slug)
    assert snapshot(site.a) == before


ROUTES = ["checkpoint", "batches?start=0", "proof/inclusion?index=0&size=1", "proof/consistency?old=1&new=1"]

UNKNOWN_LOGS = {
    "unknown-org": "zz.example/default",
    "unknown-collection": f"{A}/other",
    "org-not-a-name": "A.EXAMPLE/default",
    "collection-not-a-name": f"{A}/Default",
    "org-too-long": "a" * 70 + "/default",
    "no-complete-checkpoint": f"{N}/default",
}


@pytest.mark.parametrize("route", ROUTES, ids=[r.split("?")[0] for r in ROUTES])
@pytest.mark.parametrize("log_id", list(UNKNOWN_LOGS.values()), ids=list(UNKNOWN_LOGS))
async def test_unknown_log_is_404(site: Site, log_id: str, route: str) -> None:
    path, _, query = f"/v1/logs/{log_id}/{route}".partition("?")
    assert_problem(await site.get(path, query), 404, "unknown-log")
    # 404 before 403: a caller with no grant at all learns the same.
    assert_problem(await site.get(path, query, signer=site.c.signers[0]), 404, "unknown-log")


async def test_log_with_no_complete_checkpoint_is_404_even_to_its_org(site: Site) -> None:
    for route in ROUTES:
        path, _, query = f"/v1/logs/{N}/default/{route}".partition("?")
        assert_problem(await site.get(path, query, signer=site.n.signers[0]), 404, "unknown-log")
    assert (await site.get("/v1/logs", signer=site.n.signers[0])).json() == []


@pytest.mark.parametrize("route", ROUTES, ids=[r.split("?")[0] for r in ROUTES])
async def test_existing_log_is_403_to_a_caller_without_a_grant(site: Site, route: str) -> None:
    path, _, query = f"{BASE}/{route}".partition("?")
    assert_problem(await site.get(path, query, signer=site.c.signers[0]), 403, "not-a-reader")


# -- unknown routes and methods ------------------------------------------------------------

UNKNOWN_ROUTES = {
    "no-such-path": ("GET", "/v1/nope", 404, "not-found"),
    "root": ("GET", "/", 404, "not-found"),
    "log-without-route": ("GET", BASE, 404, "not-found"),
    "proof-without-kind": ("GET", f"{BASE}/proof", 404, "not-found"),
    "batch-by-index": ("GET", f"{BASE}/batches/0", 404, "not-found"),
    "trailing-slash": ("GET", f"{BASE}/checkpoint/", 404, "not-found"),
    "v2": ("GET", "/v2/logs", 404, "not-found"),
    "delete-logs": ("DELETE", "/v1/logs", 405, "method-not-allowed"),
    "put-batches": ("PUT", f"{BASE}/batches", 405, "method-not-allowed"),
    "post-checkpoint": ("POST", f"{BASE}/checkpoint", 405, "method-not-allowed"),
    "post-node": ("POST", "/v1/node", 405, "method-not-allowed"),
    "patch-proof": ("PATCH", f"{BASE}/proof/inclusion", 405, "method-not-allowed"),
}


@pytest.mark.parametrize(
    ("method", "path", "status", "slug"), list(UNKNOWN_ROUTES.values()), ids=list(UNKNOWN_ROUTES)
)
async def test_unknown_routes_are_problems(site: Site, method: str, path: str, status: int, slug: str) -> None:
    body = None if method == "GET" else b""
    reply = await signed(site.session, site.url, site.b.signers[0], method, path, body=body)
    assert_problem(reply, status, slug)
    if status == 405:
        assert "GET" in reply.headers["Allow"]


async def test_unknown_route_without_signature_is_401(site: Site) -> None:
    assert_problem(await send(site.session, site.url, "GET", "/v1/nope"), 401, "bad-signature")


# -- hostile requests ----------------------------------------------------------------------

HOSTILE = [
    "/v1/logs/%2e%2e/%2e%2e/checkpoint",
    "/v1/logs/../../etc/passwd",
    f"/v1/logs/{A}%2Fdefault/x/checkpoint",
    f"/v1/logs/{A}/default%00/checkpoint",
    "/v1/logs/%ff%fe/default/checkpoint",
    "/v1/logs/" + "a" * 2000 + "/default/checkpoint",
    "//v1/logs",
    "/v1//logs",
    "/v1/logs/",
    "/v1/node/",
    f"{BASE}/batches?start=0%00",
    f"{BASE}/batches?start=%ff",
    f"{BASE}/batches?%ff=0",
    f"{BASE}/batches?&&&start=0&&",
    f"{BASE}/batches?start=0;end=1",
    f"{BASE}/batches?start=" + "9" * 4000,
    f"{BASE}/batches?start=0&end=18446744073709551616",
    f"{BASE}/batches?start=0&end=-0",
    f"{BASE}/batches?start=%E2%80%94",
    f"{BASE}/batches?start[]=0",
    f"{BASE}/proof/inclusion?index=4&size=5&index=4",
    f"{BASE}/proof/inclusion?index=999999999999999999&size=999999999999999999",
    f"{BASE}/proof/consistency?old=1&new=5%3B",
    f"{BASE}/proof/consistency?old=NaN&new=Infinity",
    f"{BASE}/batches?start=0%",
    f"{BASE}/batches?start=%zz",
    "/v1/logs?%",
]


def _signable(path: str, query: str) -> bool:
    try:
        RequestTarget("GET", "127.0.0.1", path, query)
    except ProtocolError:
        return False
    return True


@pytest.mark.parametrize("target", HOSTILE, ids=[f"hostile-{i}" for i in range(len(HOSTILE))])
async def test_hostile_requests_never_500(site: Site, target: str) -> None:
    path, _, query = target.partition("?")
    before = snapshot(site.a)
    if _signable(path, query):
        reply = await site.get(path, query)
    else:  # cannot even be signed: the node must still answer, with 401
        reply = await send(site.session, site.url, "GET", path, query=query)
    assert reply.status < 500, reply
    if reply.status >= 400:
        assert reply.content_type == "application/problem+json", reply
        assert reply.json()["status"] == reply.status
    assert snapshot(site.a) == before


@pytest.mark.parametrize(
    "head",
    [
        b"GET /v1/logs HTTP/1.0\r\n\r\n",
        b"GET /v1/logs HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        b"GET /v1/logs HTTP/1.1\r\nHost: 127.0.0.1:1:2\r\nConnection: close\r\n\r\n",
        b"GET /v1/logs HTTP/1.1\r\nHost: user@127.0.0.1\r\nConnection: close\r\n\r\n",
        b"GET /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nSignature-Input: \xff\r\nSignature: x\r\nConnection: close\r\n\r\n",
    ],
    ids=["no-host-http10", "empty-host", "bad-port", "userinfo", "non-ascii-signature-input"],
)
async def test_raw_requests_with_bad_hosts_are_401(site: Site, head: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", site.service.bound_port)
    try:
        writer.write(head)
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ")[1] == b"401", answer
    assert b"application/problem+json" in rest
