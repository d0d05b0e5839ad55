"""What integrations read and say through the local listener (behind its bearer token):

    GET  /v1/changes?after=CURSOR&limit=N
         {"changes": [record, ...], "next": CURSOR}: the records whose state changed,
         in arrival order (``store.changes``); ask again with ``next``. No ``after``:
         from the start. ``limit`` 1..10,000, default 1,000.
    POST /v1/opinions
         {"opinions": [{"type", "value", "opinion"}, ...], "collection"?: C}
         stages each opinion in this org's own log and publishes it (a signed checkpoint),
         as ``hashfed opinion`` and ``hashfed publish`` do: how a tool labels a hash.
         201 {"staged": n, "published": [{"log_id", "size"}, ...]}.

Both answer problem+json on bad input and change nothing then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
from aiohttp import web

from hashfed.federation.http.body import read_json, refuse_expect
from hashfed.federation.http.node import NODE, Node
from hashfed.federation.http.problems import Problem
from hashfed.federation.publish import publish
from hashfed.federation.store import run_write
from hashfed.federation.store.changes import MAX_CHANGES
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import check_collection
from hashfed.protocol.entries import Entry
from hashfed.protocol.hashtypes import parse_hash_type

DEFAULT_CHANGES = 1_000
MAX_OPINIONS = 10_000
MAX_OPINIONS_BODY = 4 * 1024 * 1024
ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
_DIGITS = frozenset("0123456789")


def _limit(request: web.Request) -> int:
    text = request.rel_url.query.get("limit")
    if text is None:
        return DEFAULT_CHANGES
    if not text or len(text) > 5 or not set(text) <= _DIGITS or not 1 <= int(text) <= MAX_CHANGES:
        raise Problem(400, "malformed", f"limit must be a whole number from 1 to {MAX_CHANGES}")
    return int(text)


async def get_changes(request: web.Request) -> web.Response:
    query = request.rel_url.query
    unknown = set(query) - {"after", "limit"}
    if unknown:
        raise Problem(400, "malformed", f"unknown query parameter {sorted(unknown)[0]!r}")
    limit = _limit(request)
    node = request.app[NODE]
    try:
        page = node.store.changes.page(query.get("after"), limit)
    except ProtocolError as exc:
        raise Problem(400, "malformed", str(exc)) from exc
    body = orjson.dumps({"changes": page.records, "next": page.next})
    return web.Response(body=body, content_type="application/json")


def _opinions(body: object, node: Node) -> tuple[str, list[Entry]]:
    if not isinstance(body, dict) or not set(body) <= {"opinions", "collection"}:
        raise Problem(400, "malformed", 'the body must be {"opinions": [...], "collection"?: C}')
    items = body.get("opinions")
    if not isinstance(items, list) or not items:
        raise Problem(400, "malformed", '"opinions" must be a non-empty list')
    if len(items) > MAX_OPINIONS:
        raise Problem(413, "too-many-opinions", f"at most {MAX_OPINIONS} opinions per request")
    collection = body.get("collection", node.config.default_collection)
    entries = []
    try:
        if not isinstance(collection, str):
            raise ProtocolError('"collection" must be a string')
        check_collection(collection)
        for i, item in enumerate(items):
            if not isinstance(item, dict) or set(item) != {"type", "value", "opinion"} or not all(
                isinstance(v, str) for v in item.values()
            ):
                raise ProtocolError(f'opinions[{i}] must be {{"type", "value", "opinion"}} strings')
            try:
                entries.append(Entry.opine(parse_hash_type(item["type"]), item["value"], item["opinion"]))
            except ProtocolError as exc:
                raise ProtocolError(f"opinions[{i}]: {exc}") from exc
    except ProtocolError as exc:
        raise Problem(400, "malformed", str(exc)) from exc
    return collection, entries


async def post_opinions(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_json(request, max_bytes=MAX_OPINIONS_BODY)
    collection, entries = _opinions(body, node)

    def stage_and_publish() -> list[dict]:
        store = node.writer
        with store.transaction():
            store.staging.stage(collection, entries)
        now = datetime.fromtimestamp(node.clock(), UTC).replace(microsecond=0)
        done = publish(store, node.signers, now=now)
        return [{"log_id": p.log_id, "size": p.size} for p in done]

    async with node.write_lock:
        published = await run_write(stage_and_publish)
    return web.json_response({"staged": len(entries), "published": published}, status=201)


def add_routes(app: web.Application, *, expect_handler: ExpectHandler) -> None:
    """The routes, with the listener's ``Expect: 100-continue`` handler for the body."""
    app.router.add_get("/v1/changes", get_changes, expect_handler=refuse_expect)
    app.router.add_post("/v1/opinions", post_opinions, expect_handler=expect_handler)
