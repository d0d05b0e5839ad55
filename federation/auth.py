"""Request authentication for the peer API (PROTOCOL §6): one middleware.

In order: the per-address backstop rate limit (before any crypto, so a flood is cheap to
refuse), the body (read whole, up to the body cap: the digest covers all of it), the
RFC 9421 signature (``protocol.httpsig``, pure), the authority allow-list, the nonce
(recorded only after the signature verifies), then the per-key rate limit. Any failure is
401 except the limits (429 with ``Retry-After``). ``GET /v1/node`` alone is open.
"""

from __future__ import annotations

import math

from aiohttp import web

from keys.errors import HashfedError
from protocol.httpsig import RequestTarget, normalise_authority, verify_request

from .guard import NonceCapacityError, ReplayError
from .node import NODE
from .problems import Problem

PEER = web.RequestKey("peer", str)
KEY_ID = web.RequestKey("key_id", str)
BODY = web.RequestKey("body", bytes)


def _too_many(wait_s: float, who: str) -> Problem:
    retry = max(1, math.ceil(wait_s))
    return Problem(
        429,
        "rate-limited",
        f"too many requests from this {who}; retry in {retry} s",
        headers={"Retry-After": str(retry)},
    )


@web.middleware
async def auth_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.method == "GET" and request.path == "/v1/node":
        return await handler(request)
    node = request.app[NODE]
    now = node.clock()
    address = request.remote or "?"
    wait = node.address_limiter.take(address, now)
    if wait:
        raise _too_many(wait, "address")

    has_body = request.method not in ("GET", "HEAD")
    body = await request.read() if has_body else None
    scheme = "https" if request.secure else "http"
    # The Host header itself: aiohttp's ``request.host`` falls back to a blocking
    # ``socket.getfqdn()`` when it is missing, and nothing unsigned should cost a lookup.
    host = request.headers.get("Host")
    if not host:
        raise Problem(401, "bad-signature", "request has no Host header to match @authority")
    now_s = int(now)  # the verifier and the nonce cache work in the same whole seconds
    try:
        authority = normalise_authority(host, scheme)
        # The request target exactly as sent (RFC 9421 @path and @query are the raw
        # values, never a re-encoding of what the router made of them).
        target = RequestTarget.from_raw_target(request.method, authority, request.raw_path)
        trust = node.trust()
        verified = verify_request(
            target,
            request.headers,
            body,
            lookup_key=trust.by_key_id,
            now=now_s,
            max_skew_s=node.config.limits.signature_window_s,
        )
    except HashfedError as exc:
        raise Problem(401, "bad-signature", str(exc)) from exc
    if authority not in node.authorities:
        raise Problem(
            401, "wrong-authority", f"this node does not answer to {authority!r}"
        )
    params = verified.params
    try:
        node.nonces.check_and_record(verified.key_id, params.nonce, params.created, now_s)
    except ReplayError as exc:
        raise Problem(401, "replayed", str(exc)) from exc
    except NonceCapacityError as exc:
        raise _too_many(exc.retry_after_s, "key") from exc
    wait = node.key_limiter.take(verified.key_id, now)
    if wait:
        raise _too_many(wait, "key")
    request[PEER] = verified.org
    request[KEY_ID] = verified.key_id
    if body is not None:
        request[BODY] = body
    return await handler(request)
