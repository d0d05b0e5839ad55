"""Request authentication for the peer API (PROTOCOL §6): one middleware.

In order: the per-address backstop rate limit (before any crypto, so a flood is cheap to
refuse), the RFC 9421 signature from the request head alone (``protocol.httpsig``, pure;
for a request with a body it covers the ``Content-Digest`` header), the authority
allow-list, the per-key rate limit, then the nonce (at most ``NONCE_MAX_CHARS`` long,
recorded only once the signature verifies and the key is within its rate). Any failure is
401 except the limits (429 with ``Retry-After``); a ``created`` outside the window is 401
``clock-skew`` with the node's time (``now``), since the usual cause is a clock that is
off, not a forgery. ``GET /v1/node`` (and its ``HEAD``) alone is open; a sub-application
marked ``OWN_AUTH`` (TAXII, ``taxii.py``) checks its own.

No body is read here: an unauthenticated client cannot make the node buffer anything.
A handler that takes a body reads it with ``read_signed_body`` once it has decided the
caller may send one (push checks 403 first): capped, with a deadline, and checked against
the signed digest before it is used.
"""

from __future__ import annotations

import math

from aiohttp import web

from hashfed.federation.http.body import read_body
from hashfed.federation.http.guard import NonceCapacityError, ReplayError, address_key
from hashfed.federation.http.node import NODE
from hashfed.federation.http.problems import Problem
from hashfed.keys.errors import ClockSkewError, HashfedError
from hashfed.protocol.httpsig import (
    RequestTarget,
    check_content_digest,
    normalise_authority,
    verify_request_head,
)

PEER = web.RequestKey("peer", str)
KEY_ID = web.RequestKey("key_id", str)
OWN_AUTH = web.AppKey("own_auth", bool)
"""Set on a sub-application that authenticates its own requests (TAXII: reader tokens)."""


def _too_many(wait_s: float, who: str) -> Problem:
    retry = max(1, math.ceil(wait_s))
    return Problem(
        429,
        "rate-limited",
        f"too many requests from this {who}; retry in {retry} s",
        headers={"Retry-After": str(retry)},
    )


def _clock_skew(exc: ClockSkewError) -> Problem:
    """401 ``clock-skew``: the request's ``created`` is outside the window. It carries the
    node's time (``now``, Unix seconds) so the signer can tell its own clock is off."""
    offset = exc.created - exc.now
    side = "ahead of" if offset > 0 else "behind"
    return Problem(
        401,
        "clock-skew",
        f"the request was signed at {exc.created}, {abs(offset)} s {side} this node's clock"
        f" ({exc.now}); the window is {exc.max_skew_s} s: check the signer's clock (NTP)",
        now=exc.now,
    )


@web.middleware
async def auth_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.method in ("GET", "HEAD") and request.path == "/v1/node":
        return await handler(request)
    # Decided by the application the router matched, never by the path's text.
    if request.match_info.apps[-1].get(OWN_AUTH, False):
        return await handler(request)
    if request.get(PEER) is None:  # not already done by an Expect handler
        authenticate(request)
    return await handler(request)


def authenticate(request: web.Request) -> None:
    """Check a request's head (limits, signature, authority, nonce) and record who sent
    it (``request[PEER]``, ``request[KEY_ID]``); raise ``Problem`` (401 or 429) if not."""
    node = request.app[NODE]
    now = node.clock()
    # An IPv6 client is limited by its /64, which it could otherwise rotate through.
    wait = node.address_limiter.take(address_key(request.remote or "?"), now)
    if wait:
        raise _too_many(wait, "address")

    has_body = request.method not in ("GET", "HEAD")
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
        verified = verify_request_head(
            target,
            request.headers,
            with_body=has_body,
            lookup_key=trust.by_key_id,
            now=now_s,
            max_skew_s=node.config.limits.signature_window_s,
        )
    except ClockSkewError as exc:
        raise _clock_skew(exc) from exc
    except HashfedError as exc:
        raise Problem(401, "bad-signature", str(exc)) from exc
    if authority not in node.authorities:
        raise Problem(
            401, "wrong-authority", f"this node does not answer to {authority!r}"
        )
    # The key's rate limit before its nonce is recorded: a refused request costs no memory.
    wait = node.key_limiter.take(verified.key_id, now)
    if wait:
        raise _too_many(wait, "key")
    params = verified.params
    try:
        node.nonces.check_and_record(verified.key_id, params.nonce, params.created, now_s)
    except ReplayError as exc:
        raise Problem(401, "replayed", str(exc)) from exc
    except NonceCapacityError as exc:
        raise _too_many(exc.retry_after_s, "key") from exc
    request[PEER] = verified.org
    request[KEY_ID] = verified.key_id


async def read_signed_body(request: web.Request) -> bytes:
    """The body of an authenticated request: at most ``max_body_bytes`` (413), within
    ``body_timeout_s`` (408), and matching the signed ``Content-Digest`` (401)."""
    limits = request.app[NODE].config.limits
    body = await read_body(
        request, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s
    )
    digest = request.headers.getall("Content-Digest", [])
    try:
        check_content_digest(", ".join(digest) if digest else None, body)
    except HashfedError as exc:
        raise Problem(401, "bad-signature", f"body does not match its signed digest: {exc}") from exc
    return body
