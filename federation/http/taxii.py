"""A read-only TAXII 2.1 server on the peer listener, for clients that cannot sign
requests: MISP, OpenCTI, any TAXII client (PROTOCOL §6, "surfaces for clients that cannot
sign requests").

**Who reads what.** A request carries a reader token (``hashfed token add ORG``;
``store/tokens.py``) as HTTP Basic (user = the org, password = the token: what
``taxii2-client`` sends) or as ``Authorization: Bearer``. The token stands for its org,
and the org reads exactly what the trust store lets it read on ``/v1/``
(``TrustStore.may_read``, re-read when the database changes): its grants, and its own logs.

**Collections.** One API root, ``/taxii2/hashfed/``. Each served log the caller may read
is a collection: id UUIDv5(:data:`COLLECTION_NAMESPACE`, log id), title the log id,
``can_read`` true, ``can_write`` false. Its objects are the log's hashes as STIX 2.1
Indicators (``store/indicators.py`` says which versions, ids and times, and why).

**Refusals**, each a TAXII error object (``application/taxii+json;version=2.1``):

- 429 (``Retry-After``) past the per-address backstop shared with ``/v1/``, or after too
  many failed tokens from one address (:data:`FAILED_TOKENS_PER_S`, :data:`FAILED_TOKEN_BURST`;
  counted per address as ``/v1/`` limits are, an IPv6 client by its /64). While limited,
  a token is not even checked, so guessing gains nothing from it;
- 401 (with ``WWW-Authenticate`` for Basic and Bearer) for no credentials, a malformed
  header, or a token that is unknown, revoked, or not the Basic user's;
- 406 for an ``Accept`` that does not admit ``application/taxii+json;version=2.1``;
- 404 for a collection that does not exist *or that the caller may not read*. TAXII 2.1
  (§5.2) allows 404 for "the client does not have access", and here it is the only answer
  that does not leak: collection ids are UUIDv5 of log ids, which anyone can compute, so
  a 403 would confirm that this node holds a log the caller is not meant to know of;
- 403 for a write (adding or deleting objects) to a collection the caller can read:
  ``can_write`` is false;
- 400 for a malformed ``limit``, ``next``, ``added_after`` or ``match[...]``.

Authentication comes before everything else, so an unauthenticated client learns nothing,
not even which paths exist. ``/v1/``'s RFC 9421 middleware passes these routes by (the
sub-application that matched, :data:`auth.OWN_AUTH`), never by looking at the path text.

**Paging.** ``next`` is the ``date_added`` (µs) of a page's last object, and a page is one
seek on ``(log, date_added)``: the same cost at any depth. ``more`` is known by reading one
object past the page.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from hashfed.federation.clock import timestamp
from hashfed.federation.http.auth import OWN_AUTH
from hashfed.federation.http.guard import RateLimiter, address_key
from hashfed.federation.http.node import NODE, Node
from hashfed.federation.http.taxii_query import (
    NO_QUERY,
    STIX_MEDIA_TYPE,
    TAXII_MEDIA_TYPE,
    ObjectWriter,
    Query,
    TaxiiError,
    accepts_taxii,
    format_us,
    manifest_entry,
    parse_query,
    taxii_response,
)
from hashfed.federation.store import LogState, run_write
from hashfed.federation.store.tokens import LAST_USED_RESOLUTION_S, ReaderToken
from hashfed.keys.errors import StoreError
from hashfed.keys.names import inert
from hashfed.protocol.batch import parse_created

logger = logging.getLogger(__name__)

PREFIX: Final = "/taxii2"
API_ROOT: Final = "hashfed"
COLLECTION_NAMESPACE: Final = uuid.UUID("7a1d9e40-2c6b-5f83-b1e4-5d0c8a3f6e21")
"""The UUIDv5 namespace of collection ids (fixed forever)."""

FAILED_TOKENS_PER_S: Final = 0.2
FAILED_TOKEN_BURST: Final = 10

READER = web.RequestKey("taxii_reader", ReaderToken)
FAILURES = web.AppKey("taxii_failures", RateLimiter)

_CHALLENGES = ('Basic realm="hashfed", charset="UTF-8"', 'Bearer realm="hashfed"')


def collection_id(log_id: str) -> uuid.UUID:
    return uuid.uuid5(COLLECTION_NAMESPACE, log_id)


def _unauthorized(description: str) -> TaxiiError:
    # Its two WWW-Authenticate headers are added by the middleware (a dict holds one).
    return TaxiiError(401, "Unauthorized", description)


def _too_many(wait_s: float, what: str) -> TaxiiError:
    retry = max(1, math.ceil(wait_s))
    return TaxiiError(
        429, "Too many requests", f"too many {what} from this address; retry in {retry} s",
        headers={"Retry-After": str(retry)},
    )


def _credentials(header: str | None) -> tuple[str | None, str]:
    """(Basic user or None for Bearer, token) from an ``Authorization`` header."""
    if not header:
        raise _unauthorized("this server needs a reader token: HTTP Basic (user = org) or Bearer")
    scheme, _, rest = header.partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest and " " not in rest:
        return None, rest
    if scheme.lower() == "basic" and rest:
        try:
            user, sep, password = base64.b64decode(rest, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if sep:
            return user, password
        raise _unauthorized("malformed Basic credentials: expected base64 of org:token")
    raise _unauthorized("unsupported Authorization scheme: use Basic or Bearer")


async def authenticate(request: web.Request) -> ReaderToken:
    node = request.app[NODE]
    now = node.clock()
    address = address_key(request.remote or "?")
    wait = node.address_limiter.take(address, now)
    if wait:
        raise _too_many(wait, "requests")
    failures = request.app[FAILURES]
    wait = failures.wait(address, now)
    if wait:
        raise _too_many(wait, "failed tokens")
    user, token = _credentials(request.headers.get("Authorization"))
    reader = node.store.tokens.check(token)
    if reader is None or (user is not None and user != reader.org):
        failures.take(address, now)
        raise _unauthorized("unknown or revoked reader token")
    return reader


async def _note_use(request: web.Request, reader: ReaderToken) -> None:
    """Record a successful read as the token's last use, at most once a minute."""
    node = request.app[NODE]
    now = node.clock()
    if reader.last_used is None or parse_created(reader.last_used).timestamp() <= now - LAST_USED_RESOLUTION_S:
        async with node.write_lock:  # node.writer is used only under it, in a worker thread
            await run_write(node.writer.tokens.touch, reader.id, now=timestamp(now))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def taxii_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        request[READER] = reader = await authenticate(request)
        if not accepts_taxii(request.headers.get("Accept")):
            raise TaxiiError(406, "Not acceptable", f"this server answers only {TAXII_MEDIA_TYPE}")
        response = await handler(request)
        await _note_use(request, reader)
        return response
    except TaxiiError as error:
        response = error.response()
        if error.status == 401:
            for challenge in _CHALLENGES:
                response.headers.add("WWW-Authenticate", challenge)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k == "Allow"}
        return TaxiiError(exc.status, exc.reason, exc.text or exc.reason, headers=headers).response()
    except ConnectionResetError:
        raise  # the client went away: the peer app's problem middleware logs it quietly
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, inert(request.path))
        return TaxiiError(500, "Internal server error", "internal error; see the node's log").response()


# -- resources -------------------------------------------------------------------------------


def _base_url(request: web.Request) -> str:
    # The Host header as sent (aiohttp's request.host may fall back to a blocking lookup).
    host = request.headers.get("Host")
    if not host:
        raise TaxiiError(400, "Bad request", "request has no Host header")
    return f"{'https' if request.secure else 'http'}://{host}{PREFIX}"


async def discovery(request: web.Request) -> web.Response:
    node = request.app[NODE]
    root = f"{_base_url(request)}/{API_ROOT}/"
    return taxii_response(
        {
            "title": f"hashfed {node.org}",
            "description": "Hash lists this node holds, as STIX 2.1 indicators, one collection a log.",
            "default": root,
            "api_roots": [root],
        }
    )


async def api_root(request: web.Request) -> web.Response:
    return taxii_response(
        {
            "title": "hashfed",
            "description": "Read-only: one collection per log the reader may read.",
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": 0,  # nothing can be posted here
        }
    )


def _readable(request: web.Request) -> list[LogState]:
    node: Node = request.app[NODE]
    trust = node.trust()
    org = request[READER].org
    return [log for log in node.store.logs.served() if trust.may_read(org, log.log_id)]


def _collection(log: LogState) -> dict[str, object]:
    return {
        "id": str(collection_id(log.log_id)),
        "title": log.log_id,
        "description": f"hashes of the log {log.log_id}, as STIX 2.1 indicators",
        "can_read": True,
        "can_write": False,
        "media_types": [STIX_MEDIA_TYPE],
    }


def _the_log(request: web.Request) -> LogState:
    """The collection the path names, if the caller may read it; 404 otherwise, alike."""
    wanted = request.match_info["collection"]
    for log in _readable(request):
        if str(collection_id(log.log_id)) == wanted:
            return log
    raise TaxiiError(404, "Not found", f"no collection {wanted[:64]!r} is readable with this token")


async def collections(request: web.Request) -> web.Response:
    found = [_collection(log) for log in _readable(request)]
    return taxii_response({"collections": found} if found else {})


async def collection(request: web.Request) -> web.Response:
    return taxii_response(_collection(_the_log(request)))


async def _current(request: web.Request, log: LogState) -> None:
    """Bring the log's objects up to the size the caller saw served, before a read:
    nothing to do unless a pull, push or publish served batches since the last read; else
    slices folded in by the writer, each under ``write_lock`` on its own, so a pull or push
    waiting for the lock gets in between them (``store/indicators.py``)."""
    node: Node = request.app[NODE]
    folded = node.store.indicators.folded(log.id)
    if folded >= log.size:
        return
    started, behind = time.monotonic(), log.size - folded
    while folded < log.size:
        async with node.write_lock:  # node.writer is used only under it, in a worker thread
            now_folded = await run_write(node.writer.indicators.fold_slice, log.id)
        if now_folded <= folded:  # a served log only grows: this would loop for ever
            raise StoreError(f"{log.log_id}: served size {log.size}, yet only {now_folded} batches to fold")
        folded = now_folded
    logger.info("taxii: folded %d served batches of %s in %.2f s", behind, log.log_id, time.monotonic() - started)


def _page(request: web.Request, log: LogState, query: Query) -> tuple[list, bool]:
    if query.nothing:
        return [], False
    rows = request.app[NODE].store.indicators.page(
        log.id,
        after_us=query.after_us,
        limit=query.limit + 1,
        uuids=query.uuids,
        modified_ms=query.modified_ms,
    )
    return rows[: query.limit], len(rows) > query.limit


def _envelope(rows: list, more: bool, key: str, items: list) -> web.Response:
    body: dict[str, object] = {"more": more}
    if more:
        body["next"] = str(rows[-1].added_us)
    if items:
        body[key] = items
    headers = {}
    if rows:
        headers["X-TAXII-Date-Added-First"] = format_us(rows[0].added_us)
        headers["X-TAXII-Date-Added-Last"] = format_us(rows[-1].added_us)
    return taxii_response(body, headers=headers)


def _object_id(request: web.Request) -> uuid.UUID:
    text = request.match_info["object"]
    kind, _, rest = text.partition("--")
    try:
        value = uuid.UUID(rest)
    except ValueError:
        value = None
    if kind != "indicator" or value is None or str(value) != rest:
        raise TaxiiError(404, "Not found", f"no object {text[:80]!r} in this collection")
    return value


async def objects(request: web.Request) -> web.Response:
    log = _the_log(request)
    query = parse_query(request.rel_url.query)
    await _current(request, log)
    rows, more = _page(request, log, query)
    return _envelope(rows, more, "objects", list(map(ObjectWriter(log.org, log.collection), rows)))


def _held(request: web.Request, log: LogState, object_id: uuid.UUID) -> None:
    """404 unless the collection holds the object the path names."""
    if not _page(request, log, parse_query(NO_QUERY, object_id=object_id))[0]:
        raise TaxiiError(404, "Not found", f"no object indicator--{object_id} in this collection")


async def _object_page(request: web.Request) -> tuple[LogState, list, bool]:
    log = _the_log(request)
    object_id = _object_id(request)
    query = parse_query(request.rel_url.query, object_id=object_id)
    await _current(request, log)
    _held(request, log, object_id)
    rows, more = _page(request, log, query)
    return log, rows, more


async def one_object(request: web.Request) -> web.Response:
    log, rows, more = await _object_page(request)
    return _envelope(rows, more, "objects", list(map(ObjectWriter(log.org, log.collection), rows)))


async def versions(request: web.Request) -> web.Response:
    _, rows, more = await _object_page(request)
    return _envelope(rows, more, "versions", [manifest_entry(row)["version"] for row in rows])


async def manifest(request: web.Request) -> web.Response:
    log = _the_log(request)
    query = parse_query(request.rel_url.query)
    await _current(request, log)
    rows, more = _page(request, log, query)
    return _envelope(rows, more, "objects", [manifest_entry(row) for row in rows])


async def read_only(request: web.Request) -> web.Response:
    _the_log(request)  # 404 first for what the caller cannot see
    raise TaxiiError(403, "Forbidden", "this collection is read-only (can_write is false)")


async def no_status(request: web.Request) -> web.Response:
    raise TaxiiError(404, "Not found", "this server accepts no objects, so it has no status resources")


async def not_found(request: web.Request) -> web.Response:
    raise TaxiiError(404, "Not found", "no such TAXII resource")


async def refuse_expect(request: web.Request) -> web.StreamResponse:
    """The ``expect_handler`` of every TAXII route (as ``body.refuse_expect`` is of
    ``/v1/``'s): nothing here takes a body, so ``Expect: 100-continue`` is 417 at once,
    before authentication and before a byte of body is invited. Every path under
    :data:`PREFIX` answers it alike, so it tells nothing about what exists."""
    return TaxiiError(417, "Expectation failed", "this TAXII server takes no request body").response()


def create_taxii_app(node: Node) -> web.Application:
    """The TAXII sub-application, to be mounted at :data:`PREFIX` on the peer app."""
    app = web.Application(middlewares=[taxii_middleware])
    app[NODE] = node
    app[OWN_AUTH] = True
    app[FAILURES] = RateLimiter(FAILED_TOKENS_PER_S, FAILED_TOKEN_BURST)
    root = f"/{API_ROOT}"
    coll = root + "/collections/{collection}"
    no_body = {"expect_handler": refuse_expect}
    app.router.add_get("/", discovery, **no_body)
    app.router.add_get(root + "/", api_root, **no_body)
    app.router.add_get(root + "/collections/", collections, **no_body)
    app.router.add_get(coll + "/", collection, **no_body)
    app.router.add_get(coll + "/objects/", objects, **no_body)
    app.router.add_post(coll + "/objects/", read_only, **no_body)
    app.router.add_get(coll + "/objects/{object}/", one_object, **no_body)
    app.router.add_delete(coll + "/objects/{object}/", read_only, **no_body)
    app.router.add_get(coll + "/objects/{object}/versions/", versions, **no_body)
    app.router.add_get(coll + "/manifest/", manifest, **no_body)
    app.router.add_get(root + "/status/{status}/", no_status, **no_body)
    app.router.add_route("*", "/{tail:.*}", not_found, **no_body)
    return app


__all__ = ["PREFIX", "COLLECTION_NAMESPACE", "collection_id", "create_taxii_app"]
