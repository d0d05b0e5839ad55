"""Reading a request body, the one way every listener does it: at most ``max_bytes``
(413, from the declared length before a byte is read, else when the cap is passed) and
within ``timeout_s`` of starting (408), so a client cannot hold a handler, and its memory,
by sending a body slowly. The head has its own deadline (``connguard``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hashfed.federation.http.problems import Problem


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
