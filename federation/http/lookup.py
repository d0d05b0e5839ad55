"""The lookup API for the node's own matching pipeline, on its own listener (loopback by
default, optionally behind a bearer token). Not for peers: they get logs, not answers.

    GET  /v1/hashes/{type}/{value}   the merged record (as ``lookup --json``), or 404
    GET  /v1/hashes/pdq/{value}?distance=N
                                     {"matches": [{"distance": d, …record}, …]}, nearest
                                     first: PDQ matching by Hamming distance (404: none)
    POST /v1/lookup                  {"hashes": [{"type": …, "value": …}, …]} (≤ 10,000)
                                     → {"results": [record or null, …]} in the same order
         … with "distance": N        (pdq hashes) → {"results": [[{"distance", …record}, …]
                                     nearest first, …]}: a batch of perceptual searches
         … with "fields": ["active"] → {"results": [true | false | null, …]}: active, known
                                     but inactive, or never seen; answered from the
                                     in-memory exact index (``merged.exact``), the bulk
                                     path for checking every upload
         {"type": T, "values": [v, …], …}
                                     the same for hashes of one type, without an object a
                                     hash (with "fields": ["active"], the fastest form)
    GET  /v1/changes, POST /v1/opinions
                                     the change feed and opinions (``changes.py``)
    POST /v1/match                   a file's bytes → its matches (``match.py``)

Answers to hashes are as of the last committed page: the in-memory indexes fold in what
was committed before each request.
"""

from __future__ import annotations

import hmac

import numpy as np
import orjson
from aiohttp import web

from hashfed.federation.http import changes, match
from hashfed.federation.http.body import invite_body, read_json, refuse_expect
from hashfed.federation.http.console import is_console_route
from hashfed.federation.http.node import NODE, Node
from hashfed.federation.http.problems import Problem, problem_middleware, problem_response
from hashfed.federation.merged.pdq import MAX_DISTANCE
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ProtocolError
from hashfed.protocol.hashtypes import normalise, parse_hash_type

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
    # The console's pages check their own session (a cookie, after a login form).
    if token and not is_console_route(request):
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
        distance = decimal(text[0], what="distance", max_value=MAX_DISTANCE)
    except ProtocolError as exc:
        raise Problem(400, "malformed", str(exc)) from exc
    node = request.app[NODE]
    (matches,) = await node.matching.near([value], distance)
    if not matches:
        raise Problem(404, "unknown-hash", f"nothing within {distance} bits of pdq {value}")
    return _json({"matches": [{"distance": d, **r.to_json_obj()} for d, r in matches]})


async def post_lookup(request: web.Request) -> web.Response:
    """Three forms of one request (``hashes`` or ``type`` + ``values``), see the module
    docstring. Every hash is checked before anything is looked up: one bad one is a 400
    naming it."""
    node = request.app[NODE]
    body = await read_json(request, max_bytes=MAX_LOOKUP_BODY)
    if not isinstance(body, dict) or not (
        set(body) - _OPTIONS in ({"hashes"}, {"type", "values"})
    ):
        raise Problem(
            400, "malformed",
            'the body must be {"hashes": [{"type", "value"}, ...]} or {"type": T, "values": [...]},'
            ' with "distance" or "fields" optional',
        )
    distance, active_only = _options(body)
    if "values" in body:
        type_, values = body["type"], body["values"]
        if not isinstance(type_, str) or not isinstance(values, list):
            raise Problem(400, "malformed", '"type" must be a string and "values" a list')
        _check_count(len(values))
        if active_only:  # the bulk fast path: no per-hash Python work
            try:
                (states,) = await node.matching.states([(parse_hash_type(type_), values)])
            except ProtocolError as exc:
                raise Problem(400, "malformed", str(exc)) from exc
            return _states_json(states)
        hashes = [{"type": type_, "value": v} for v in values]
    else:
        hashes = body["hashes"]
        if not isinstance(hashes, list):
            raise Problem(400, "malformed", '"hashes" must be a list')
        _check_count(len(hashes))
    wanted = _wanted(hashes)
    if distance is not None:
        if any(t != "pdq" for t, _ in wanted):
            raise Problem(400, "malformed", '"distance" is for pdq hashes; others match exactly')
        answers = await node.matching.near([v for _, v in wanted], distance)
        # A clustered set answers many queries with the same records (one object each
        # here): each record's JSON is built once per request.
        objects: dict[int, dict] = {}
        for matches in answers:
            for _d, record in matches:
                if id(record) not in objects:
                    objects[id(record)] = record.to_json_obj()
        return _json(
            {"results": [[{"distance": d, **objects[id(r)]} for d, r in m] for m in answers]}
        )
    if active_only:
        order: dict[str, list[int]] = {}
        for i, (t, _) in enumerate(wanted):
            order.setdefault(t, []).append(i)
        per_type = await node.matching.states(
            [(t, [wanted[i][1] for i in at]) for t, at in order.items()]
        )
        states = np.empty(len(wanted), dtype=np.int8)
        for at, found in zip(order.values(), per_type, strict=True):
            states[at] = found
        return _states_json(states)
    return _json({"results": node.store.merged.lookup_many_json(wanted)})


_OPTIONS = {"distance", "fields"}
# An answer per state: UNKNOWN (-1), INACTIVE (0), ACTIVE (1), by state + 1.
_STATE_JSON = np.array([b"null", b"false", b"true"], dtype=object)


def _options(body: dict) -> tuple[int | None, bool]:
    distance = body.get("distance")
    if distance is not None and (
        type(distance) is not int or not 0 <= distance <= MAX_DISTANCE
    ):
        raise Problem(400, "malformed", f'"distance" must be a whole number from 0 to {MAX_DISTANCE}')
    fields = body.get("fields")
    if fields is not None and fields != ["active"]:
        raise Problem(400, "malformed", '"fields" may only be ["active"] (true, false or null a hash)')
    if fields is not None and distance is not None:
        raise Problem(400, "malformed", '"fields" and "distance" do not go together')
    return distance, fields is not None


def _check_count(count: int) -> None:
    if count > MAX_LOOKUP_HASHES:
        raise Problem(413, "too-many-hashes", f"at most {MAX_LOOKUP_HASHES} hashes per request")


def _wanted(hashes: list) -> list[tuple[str, str]]:
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
            type_ = parse_hash_type(item["type"])
            wanted.append((type_, normalise(type_, item["value"])))
        except ProtocolError as exc:
            raise Problem(400, "malformed", f"hashes[{i}]: {exc}") from exc
    return wanted


def _states_json(states: np.ndarray) -> web.Response:
    body = b'{"results":[' + b",".join(_STATE_JSON[states + 1].tolist()) + b"]}"
    return web.Response(body=body, content_type="application/json")


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
    changes.add_routes(app, expect_handler=lookup_expect)
    match.add_routes(app, expect_handler=lookup_expect)
    return app
