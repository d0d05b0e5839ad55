"""The lookup API for the node's own matching pipeline, on its own listener (loopback by
default, optionally behind a bearer token). Not for peers: they get logs, not answers.

    GET  /v1/hashes/{type}/{value}   the merged record (as ``lookup --json``), or 404
    GET  /v1/hashes/pdq/{value}?distance=N
                                     {"matches": [{"distance": d, …record}, …]}, nearest
                                     first: PDQ matching by Hamming distance (404: none)
    POST /v1/lookup                  {"hashes": [{"type": …, "value": …}, …]} (≤ 10,000)
                                     → {"results": [record or null, …]} in the same order
"""

from __future__ import annotations

import asyncio
import hmac

import orjson
from aiohttp import web

from hashfed.federation.http.body import invite_body, read_body, refuse_expect
from hashfed.federation.http.node import NODE, Node
from hashfed.federation.http.problems import Problem, problem_middleware, problem_response
from hashfed.federation.store import Store
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ProtocolError
from hashfed.protocol.hashtypes import normalise
from hashfed.protocol.records import Record

MAX_LOOKUP_HASHES = 10_000
MAX_LOOKUP_BODY = 8 * 1024 * 1024

TOKEN = web.AppKey("token", str)


@web.middleware
async def token_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    check_token(request)
    return await handler(request)


def check_token(request: web.Request) -> None:
    """401 unless the request carries the listener's bearer token (when it has one)."""
    token = request.app.get(TOKEN)
    if token:
        # aiohttp decodes header bytes with surrogateescape: encode them back the same way,
        # so a header with a byte that is not UTF-8 is a wrong token (401), not a crash.
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            raise Problem(
                401, "bad-token", "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )


async def lookup_expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` on ``POST /v1/lookup``: the body is invited only with the
    token (this runs before the middlewares)."""
    try:
        check_token(request)
    except Problem as problem:
        return problem_response(problem)
    return await invite_body(request)


async def get_hash(request: web.Request) -> web.Response:
    node = request.app[NODE]
    try:
        type_ = request.match_info["type"]
        value = normalise(type_, request.match_info["value"])
    except ProtocolError as exc:
        raise Problem(400, "malformed", str(exc)) from exc
    unknown = set(request.rel_url.query) - {"distance"}
    if unknown:
        raise Problem(400, "malformed", f"unknown query parameter {sorted(unknown)[0]!r}")
    if "distance" in request.rel_url.query:
        return await _near(request, type_, value)
    record = node.store.merged.lookup(type_, value)
    if record is None:
        raise Problem(404, "unknown-hash", f"{type_} {value} is not in the merged list")
    return _json(record.to_json_obj())


async def _near(request: web.Request, type_: str, value: str) -> web.Response:
    """``?distance=N`` on a PDQ hash: every record within N bits, nearest first."""
    text = request.rel_url.query.getall("distance")
    if type_ != "pdq":
        raise Problem(400, "malformed", "distance is for pdq hashes; other types match exactly")
    if len(text) != 1:
        raise Problem(400, "malformed", "distance must be given once")
    try:
        distance = decimal(text[0], what="distance", max_value=256)
    except ProtocolError as exc:
        raise Problem(400, "malformed", str(exc)) from exc
    node = request.app[NODE]

    def scan() -> list[tuple[int, Record]]:
        # a scan of every PDQ value held: in a worker thread, on a connection of its own
        with Store(node.home.db_path) as store:
            return store.merged.near_pdq(value, distance)

    matches = await asyncio.to_thread(scan)
    if not matches:
        raise Problem(404, "unknown-hash", f"nothing within {distance} bits of pdq {value}")
    return _json({"matches": [{"distance": d, **r.to_json_obj()} for d, r in matches]})


async def post_lookup(request: web.Request) -> web.Response:
    node = request.app[NODE]
    limits = node.config.limits
    data = await read_body(request, max_bytes=MAX_LOOKUP_BODY, timeout_s=limits.body_timeout_s)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "malformed", "the body is not JSON") from exc
    hashes = body.get("hashes") if isinstance(body, dict) else None
    if not isinstance(hashes, list) or set(body) != {"hashes"}:
        raise Problem(400, "malformed", 'the body must be {"hashes": [...]}')
    if len(hashes) > MAX_LOOKUP_HASHES:
        raise Problem(413, "too-many-hashes", f"at most {MAX_LOOKUP_HASHES} hashes per request")
    wanted = []
    for i, item in enumerate(hashes):
        if (
            not isinstance(item, dict)
            or set(item) != {"type", "value"}
            or not all(isinstance(v, str) for v in item.values())
        ):
            raise Problem(
                400, "malformed", f"hashes[{i}] must be {{\"type\": string, \"value\": string}}"
            )
        try:
            wanted.append((item["type"], normalise(item["type"], item["value"])))
        except ProtocolError as exc:
            raise Problem(400, "malformed", f"hashes[{i}]: {exc}") from exc
    return _json({"results": node.store.merged.lookup_many_json(wanted)})


def _json(value: object) -> web.Response:
    # orjson: the bulk answer is ~2 MB of JSON per 10,000 hashes; it writes it ~10x faster
    return web.Response(body=orjson.dumps(value), content_type="application/json")


def create_lookup_app(node: Node, *, token: str | None) -> web.Application:
    app = web.Application(
        middlewares=[problem_middleware, token_middleware], client_max_size=MAX_LOOKUP_BODY
    )
    app[NODE] = node
    if token:
        app[TOKEN] = token
    app.router.add_get("/v1/hashes/{type}/{value}", get_hash, expect_handler=refuse_expect)
    app.router.add_post("/v1/lookup", post_lookup, expect_handler=lookup_expect)
    return app
