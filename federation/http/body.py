"""Reading a request body, the one way every listener does it: at most ``max_bytes``
(413, from the declared length before a byte is read, else when the cap is passed) and
within ``timeout_s`` of starting (408), so a client cannot hold a handler, and its memory,
by sending a body slowly. The head has its own deadline (``connguard``).

``Expect: 100-continue`` is answered by the route, before any middleware runs: a route
that takes a body invites it (``invite_body``) only once its own checks pass; every other
route refuses the expectation (``refuse_expect``, 417), since it reads no body at all. What
no route serves goes to the listener's last route (``add_fallback``): 404, or 405 with
``Allow``, after the listener's own credential check, at once (aiohttp's built-in answer
would first invite the body).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from aiohttp import HttpVersion11, web

from hashfed.federation.http.node import NODE
from hashfed.federation.http.problems import Problem, http_problem, problem_response

FALLBACK = "no-route"
"""The name of each listener's last route (``add_fallback``)."""


async def read_body(request: web.Request, *, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body of ``request``, or ``Problem`` 413 (too large) or 408 (too slow).
    The app's ``client_max_size`` must be no larger than ``max_bytes``."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise Problem(413, "content-too-large", f"body of {declared} bytes; at most {max_bytes}")
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()  # aiohttp stops at client_max_size (413)
    except TimeoutError as exc:
        raise Problem(
            408, "body-timeout", f"the body did not arrive within {timeout_s:g} s"
        ) from exc


async def read_json(request: web.Request, *, max_bytes: int) -> object:
    """``read_body`` within the node's body deadline, parsed as JSON (400 otherwise)."""
    timeout_s = request.app[NODE].config.limits.body_timeout_s
    data = await read_body(request, max_bytes=max_bytes, timeout_s=timeout_s)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "malformed", "the body is not JSON") from exc


async def invite_body(request: web.Request) -> web.StreamResponse | None:
    """Answer ``Expect: 100-continue`` with ``100 Continue`` (an expectation other than
    that one, or on HTTP/1.0, is 417). Call it only once the sender may send the body."""
    if request.version != HttpVersion11 or request.headers["Expect"].lower() != "100-continue":
        return problem_response(Problem(417, "expectation-failed", "only 100-continue is known"))
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim answer is not the response's size
    return None


async def refuse_expect(request: web.Request) -> web.StreamResponse:
    """The ``expect_handler`` of a route that takes no body: 417, and no body invited."""
    return problem_response(
        Problem(417, "expectation-failed", f"{request.method} {request.path} takes no body")
    )


def add_fallback(app: web.Application, *, check: Callable[[web.Request], None]) -> None:
    """Add the last route of a listener's app (call it after every other route): a path no
    route serves is 404, a method its path does not take is 405 with ``Allow``. With
    ``Expect: 100-continue`` the same answer comes at once, after ``check`` (the listener's
    credential check, as its middleware would run it), and no body is invited."""

    async def no_route(request: web.Request) -> web.StreamResponse:
        raise await _no_route(request)

    async def expect(request: web.Request) -> web.StreamResponse:
        try:
            check(request)
            raise await _no_route(request)
        except Problem as problem:
            return problem_response(problem)
        except web.HTTPException as exc:
            return problem_response(http_problem(exc))

    app.router.add_route("*", "/{path:.*}", no_route, name=FALLBACK, expect_handler=expect)


async def _no_route(request: web.Request) -> web.HTTPException:
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name != FALLBACK:
            _match, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        return web.HTTPMethodNotAllowed(request.method, allowed)
    return web.HTTPNotFound()
