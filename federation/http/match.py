"""``POST /v1/match`` on the local listener: a file's bytes in, ``hashfed match --json``'s
object for that file out.

    POST /v1/match[?distance=N][&dihedral=1]
         Content-Type: image/jpeg | image/png | image/webp | image/gif | image/tiff |
                       image/bmp | video/mp4 | video/webm | video/quicktime |
                       video/x-matroska | video/x-msvideo
         body: the file
    → 200 {"path": "upload", "md5", "sha256", "pdq", "quality", ["frames"], "matched",
           "matches": [...], "warnings": [...]}    (``hashfed.federation.merged.matching``)

Decisions:

- **The content type is checked first** (415), before the body is read, and before
  ``Expect: 100-continue`` invites it. It gates what is accepted, not how it is decoded:
  the bytes are sniffed by their magic numbers (``hashfed.media.sniff``), so a PNG sent as
  ``image/jpeg`` is hashed as the PNG it is.
- **The body** is read the listener's one way (``body.read_body``): at most
  :data:`MAX_MATCH_BODY` (413) within the listener's body deadline (408). A larger video
  must be hashed where it lies (``hashfed match``, or ``hashfed hash`` and
  ``POST /v1/lookup``).
- **Hashing runs in worker processes**, never on the event loop and never in the server's
  own process: a decoder that crashes or runs out of memory on hostile bytes takes down a
  worker, not the node (the pool is rebuilt and the upload refused, 422). The pool is
  started on the first upload (a node that never matches files never spawns it) and has
  one worker per core; uploads beyond twice that wait their turn.
- **Bad media is 422** ``bad-media`` with the same one-line message ``hashfed hash``
  prints (empty, corrupt, truncated, a decompression bomb, a video without frames, an
  unsupported type); a bad query is 400 ``malformed``. Nothing is ever stored.
- **Without the media extra** the route answers 503 ``media-unavailable``: the node runs,
  and says what to install.
- Lookups: exact ones on the event loop's connection (primary-key reads, as
  ``GET /v1/hashes`` does); every PDQ search of the file (frames, variants) in one batch
  through ``node.matching`` in its worker thread.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from aiohttp import web

from hashfed.federation.http.body import read_body
from hashfed.federation.http.node import NODE
from hashfed.federation.http.problems import Problem, problem_response
from hashfed.federation.merged.matching import assemble, plan
from hashfed.federation.merged.pdq import MAX_DISTANCE
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ProtocolError
from hashfed.protocol.hashtypes import PDQ_MATCH_DISTANCE

if TYPE_CHECKING:
    from hashfed.media import HashResult

MEDIA_TYPES = frozenset({
    "image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp",
    "video/mp4", "video/webm", "video/quicktime", "video/x-matroska", "video/x-msvideo",
})
MAX_MATCH_BODY = 8 * 1024 * 1024
"""The lookup listener's body cap (its ``client_max_size``): an upload may be no larger."""
UPLOAD_NAME = "upload"
_FLAGS = {"1": True, "true": True, "0": False, "false": False}

ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


class Hashers:
    """The worker processes that hash uploads: started on first use, rebuilt when one
    dies, shut down with the app."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._workers = 1
        self._slots: asyncio.Semaphore | None = None

    async def hash(self, data: bytes, dihedral: bool) -> HashResult:
        from hashfed.media import HashOptions, default_workers, hash_bytes

        if self._pool is None:
            self._workers = default_workers()
            self._slots = asyncio.Semaphore(2 * self._workers)
            self._pool = _new_pool(self._workers)
        assert self._slots is not None
        async with self._slots:
            pool = self._pool
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(
                    pool, hash_bytes, data, UPLOAD_NAME, HashOptions(dihedral=dihedral)
                )
            except BrokenProcessPool as exc:
                if self._pool is pool:  # the first to notice rebuilds it
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = _new_pool(self._workers)
                raise Problem(
                    422, "bad-media", "the worker process died while hashing this file"
                    " (decoder crash or out of memory)",
                ) from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _new_pool(workers: int) -> ProcessPoolExecutor:
    # spawn: a forked child would copy the event loop, its sockets and the store's locks.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


HASHERS = web.AppKey("match_hashers", Hashers)


def _check_content_type(request: web.Request) -> None:
    if request.content_type.lower() not in MEDIA_TYPES:
        raise Problem(
            415, "unsupported-media-type",
            f"send the file with its media type, one of: {', '.join(sorted(MEDIA_TYPES))}",
        )


def _options(request: web.Request) -> tuple[int, bool]:
    query = request.rel_url.query
    unknown = set(query) - {"distance", "dihedral"}
    if unknown:
        raise Problem(400, "malformed", f"unknown query parameter {sorted(unknown)[0]!r}")
    if any(len(query.getall(name)) > 1 for name in query):
        raise Problem(400, "malformed", "each query parameter may be given once")
    distance = PDQ_MATCH_DISTANCE
    if "distance" in query:
        try:
            distance = decimal(query["distance"], what="distance", max_value=MAX_DISTANCE)
        except ProtocolError as exc:
            raise Problem(400, "malformed", str(exc)) from exc
    dihedral = _FLAGS.get(query.get("dihedral", "0").lower())
    if dihedral is None:
        raise Problem(400, "malformed", "dihedral must be 1 or 0")
    return distance, dihedral


def _media_available() -> None:
    try:
        import hashfed.media  # noqa: F401
    except ImportError as exc:
        raise Problem(
            503, "media-unavailable",
            "this node cannot hash files: install the media extra (pip install 'hashfed[media]')",
        ) from exc


async def post_match(request: web.Request) -> web.Response:
    _check_content_type(request)
    distance, dihedral = _options(request)
    _media_available()
    node = request.app[NODE]
    data = await read_body(request, max_bytes=MAX_MATCH_BODY, timeout_s=node.config.limits.body_timeout_s)
    result = await request.app[HASHERS].hash(data, dihedral)
    if not result.ok:
        raise Problem(422, "bad-media", result.message)
    queries = plan([result], dihedral=dihedral)
    exact = {(t, v): node.store.merged.lookup(t, v) for t, v in queries.exact}
    answers = await node.matching.near(list(queries.pdq), distance) if queries.pdq else []
    near = dict(zip(queries.pdq, answers, strict=True))
    (found,) = assemble([result], dihedral=dihedral, exact=exact, near=near)
    return web.json_response(found.to_json_obj())


def add_routes(app: web.Application, *, expect_handler: ExpectHandler) -> None:
    """The route (its body invited only after the listener's own checks and a media
    type), and the worker pool's life with the app's."""

    async def match_expect(request: web.Request) -> web.StreamResponse | None:
        try:
            _check_content_type(request)
        except Problem as problem:
            return problem_response(problem)
        return await expect_handler(request)

    async def close_hashers(app: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(app[HASHERS].close)

    app[HASHERS] = Hashers()
    app.cleanup_ctx.append(close_hashers)
    app.router.add_post("/v1/match", post_match, expect_handler=match_expect)
