"""RFC 9457 problem details: the one place where errors become HTTP statuses.

Handlers raise ``Problem`` (or let a ``HashfedError`` escape); the middleware turns either
into ``application/problem+json`` with ``type``, ``title``, ``status`` and ``detail``.
``type`` is a stable URN a client can match on; ``detail`` is for people.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from hashfed.federation.store import DiskFull
from hashfed.keys.errors import (
    HashfedError,
    ProtocolError,
    StoreError,
    VerificationError,
)
from hashfed.keys.names import inert

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:hashfed:problem:"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    417: "Expectation Failed",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


class Problem(Exception):
    """An HTTP error with a problem+json body. ``slug`` names the problem type."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(problem: Problem) -> web.Response:
    body = {
        "type": TYPE_PREFIX + problem.slug,
        "title": _TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        **problem.extra,
    }
    return web.Response(
        status=problem.status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def disk_full() -> Problem:
    """The node's disk is full: 507 Insufficient Storage (RFC 4918 §11.5), "the server is
    unable to store the representation needed to complete the request". A 5xx, so the
    sender knows the fault is here, not in what it sent, and retries later; not 503 (the
    node is up and serving reads) nor 409 (nothing conflicts: the same request will
    succeed once there is room). The detail names no path of this machine."""
    return Problem(507, "insufficient-storage", "this node's disk is full; nothing was stored, try again later")


def from_error(exc: HashfedError) -> Problem:
    """Map the error tree onto statuses (PROTOCOL §6) for errors handlers let escape."""
    if isinstance(exc, VerificationError):
        return Problem(422, "verification-failed", str(exc))
    if isinstance(exc, ProtocolError):
        return Problem(400, "malformed", str(exc))
    if isinstance(exc, DiskFull):
        return disk_full()
    if isinstance(exc, StoreError):
        return Problem(409, "conflict", str(exc))
    return Problem(400, "bad-request", str(exc))


@web.middleware
async def problem_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except HashfedError as exc:
        return problem_response(from_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(http_problem(exc))
    except ConnectionResetError:
        # The client went away (mid-body or mid-response): nobody is left to answer and
        # nothing is wrong with the node. This answer is never delivered (aiohttp's write
        # of it fails quietly); 499 is the usual log code for "client closed request".
        log.debug("client went away during %s %s", request.method, inert(request.path))
        return web.Response(status=499)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, inert(request.path))
        return problem_response(Problem(500, "internal", "internal error; see the node's log"))


def http_problem(exc: web.HTTPException) -> Problem:
    """aiohttp's error answer as our problem: the type comes from our own table, not from
    aiohttp's reason phrase (which may change between versions: 413 was "Request Entity
    Too Large"); ``Allow`` and ``Retry-After`` are kept."""
    title = _TITLES.get(exc.status, "HTTP error")
    slug = title.lower().replace(" ", "-")
    return Problem(
        exc.status,
        slug,
        exc.text or exc.reason,
        headers={k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")},
    )
