"""The node's HTTP API (PROTOCOL §6), on aiohttp.

``create_app(node)`` builds the peer-facing app. Handlers are thin: parse, ask the store,
map errors. Two middlewares run first: ``problem_middleware`` (every error becomes
problem+json) and ``auth_middleware`` (RFC 9421 signature, authority, nonce, rate limits);
after them a handler knows ``request[PEER]``, the verified org of the caller.
Checks run in the protocol's order: signature (401), the log exists (404), may read (403).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hashfed.federation.http.auth import PEER, auth_middleware
from hashfed.federation.http.body import refuse_expect
from hashfed.federation.http.metrics import observe_middleware
from hashfed.federation.http.node import NODE, Node
from hashfed.federation.http.problems import Problem, problem_middleware
from hashfed.federation.http.push import handle_push, push_expect
from hashfed.federation.http.taxii import PREFIX as TAXII_PREFIX
from hashfed.federation.http.taxii import create_taxii_app
from hashfed.federation.store import LogState
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import make_log_id, parse_log_id
from hashfed.protocol.merkle import consistency_proof, encode_proof, inclusion_proof

PROTOCOL_NAME = "hashfed/1"

# The largest index or size a query may name: SQLite's integers are 64-bit signed.
MAX_QUERY_INT = 2**63 - 1


def query_int(request: web.Request, name: str, *, required: bool = True) -> int | None:
    """A non-negative decimal query parameter, strictly parsed (400 otherwise)."""
    values = request.rel_url.query.getall(name, [])
    if not values:
        if required:
            raise Problem(400, "malformed", f"query parameter {name!r} is required")
        return None
    if len(values) > 1:
        raise Problem(400, "malformed", f"query parameter {name!r} is given more than once")
    try:
        return decimal(values[0], what=f"query parameter {name!r}", max_value=MAX_QUERY_INT)
    except ProtocolError as exc:
        raise Problem(400, "malformed", str(exc)) from exc


def only_params(request: web.Request, *names: str) -> None:
    unknown = set(request.rel_url.query) - set(names)
    if unknown:
        raise Problem(400, "malformed", f"unknown query parameter {min(unknown)!r}")


def readable_log(request: web.Request) -> LogState:
    """The log named in the path, if it exists (404) and the caller may read it (403)."""
    node = request.app[NODE]
    try:
        log_id = make_log_id(request.match_info["org"], request.match_info["collection"])
        parse_log_id(log_id)
    except ProtocolError as exc:
        raise Problem(404, "unknown-log", str(exc)) from exc
    log = node.store.logs.get(log_id)
    if log is None or log.checkpoint is None:
        raise Problem(404, "unknown-log", f"this node holds no log {log_id}")
    if not node.trust().may_read(request[PEER], log_id):
        raise Problem(403, "not-a-reader", f"{request[PEER]} may not read {log_id}")
    return log


async def node_info(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.json_response(
        {
            "org": node.org,
            "keys": [signer.vkey() for signer in node.signers],
            "protocol": PROTOCOL_NAME,
        }
    )


async def list_logs(request: web.Request) -> web.Response:
    node = request.app[NODE]
    only_params(request)
    trust = node.trust()
    peer = request[PEER]
    logs = [
        {
            "org": log.org,
            "collection": log.collection,
            "size": log.size,
            "checkpoint": log.checkpoint.decode(),
        }
        for log in node.store.logs.served()
        if trust.may_read(peer, log.log_id)
    ]
    return web.json_response(logs)


async def get_checkpoint(request: web.Request) -> web.Response:
    only_params(request)
    log = readable_log(request)
    assert log.checkpoint is not None
    return web.Response(body=log.checkpoint, content_type="text/plain", charset="utf-8")


async def get_batches(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    only_params(request, "start", "end")
    log = readable_log(request)
    start = query_int(request, "start")
    end = query_int(request, "end", required=False)
    assert start is not None
    if start > log.size:
        raise Problem(400, "out-of-range", f"start {start} is past the log's size {log.size}")
    if end is not None and end < start:
        raise Problem(400, "out-of-range", f"end {end} is before start {start}")
    stop = min(end if end is not None else log.size, log.size)
    stop = min(stop, start + node.config.limits.max_page_batches)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        for index in range(start, stop):
            # One finished statement per batch, never a cursor held across an await: an
            # open statement would pin this connection's read snapshot (grants, keys, logs
            # as they were) for as long as a slow client takes to read the page.
            await response.write(node.store.logs.batch_data(log, index) + b"\n")
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away mid-page; there is no one left to answer
    return response


async def get_inclusion(request: web.Request) -> web.Response:
    node = request.app[NODE]
    only_params(request, "index", "size")
    log = readable_log(request)
    index = query_int(request, "index")
    size = query_int(request, "size")
    assert index is not None and size is not None
    if size > log.size:
        raise Problem(400, "out-of-range", f"size {size} is larger than the log ({log.size})")
    if index >= size:
        raise Problem(400, "out-of-range", f"index {index} is not below size {size}")
    # The leaves are one indexed read on the loop's own connection (a sqlite3 connection
    # must not be shared with another thread); the O(size) hashing runs in a worker
    # thread, so a burst of proof requests cannot stall every other client.
    leaves = node.store.logs.leaf_hashes(log, size)
    proof = await asyncio.to_thread(inclusion_proof, index, size, leaves)
    return web.Response(body=encode_proof(proof), content_type="application/json")


async def get_consistency(request: web.Request) -> web.Response:
    node = request.app[NODE]
    only_params(request, "old", "new")
    log = readable_log(request)
    old = query_int(request, "old")
    new = query_int(request, "new")
    assert old is not None and new is not None
    if old == 0:
        raise Problem(400, "out-of-range", "there is no consistency proof from the empty tree")
    if old > new:
        raise Problem(400, "out-of-range", f"old {old} is larger than new {new}")
    if new > log.size:
        raise Problem(400, "out-of-range", f"new {new} is larger than the log ({log.size})")
    leaves = node.store.logs.leaf_hashes(log, new)  # on the loop, as for inclusion
    proof = await asyncio.to_thread(consistency_proof, old, new, leaves)
    return web.Response(body=encode_proof(proof), content_type="application/json")


def create_app(node: Node) -> web.Application:
    """The peer-facing application. Resources are the caller's (``Node``)."""
    app = web.Application(
        # observe first: it counts and logs the answer the other two made
        middlewares=[observe_middleware, problem_middleware, auth_middleware],
        client_max_size=node.config.limits.max_body_bytes,
    )
    app[NODE] = node
    base = "/v1/logs/{org}/{collection}"
    # Only push takes a body, so only push may answer Expect: 100-continue with an invitation.
    no_body = {"expect_handler": refuse_expect}
    app.router.add_get("/v1/node", node_info, **no_body)
    app.router.add_get("/v1/logs", list_logs, **no_body)
    app.router.add_get(base + "/checkpoint", get_checkpoint, **no_body)
    app.router.add_get(base + "/batches", get_batches, **no_body)
    app.router.add_post(base + "/batches", handle_push, expect_handler=push_expect)
    app.router.add_get(base + "/proof/inclusion", get_inclusion, **no_body)
    app.router.add_get(base + "/proof/consistency", get_consistency, **no_body)
    app.add_subapp(TAXII_PREFIX, create_taxii_app(node))
    return app
