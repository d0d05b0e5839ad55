"""Console sign-in: a login form for the local token, then a server-side session.

When ``server.local_token`` is set, the console asks for it once. A right token makes a
session: a random id (``secrets.token_urlsafe``, 256 bits) that is only a key into this
process's table, never a value to trust; the cookie is ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it), ``Secure`` when the request came over
TLS, and ``Path=/``. A session ends ``SESSION_TTL_S`` after it was made, at logout, or when
the node stops (sessions live in memory: a restart signs everyone out, which is the safe
way round). At most ``MAX_SESSIONS`` live at once; the oldest goes first.

Every session has a CSRF token of its own, and every form that changes something (a POST:
logout) carries it; the handler compares it in constant time and also refuses a POST whose
``Origin`` is another site. Read-only forms (search, browse) are GETs: they change nothing,
and a token in their URLs would leak into history and logs. The login form itself needs
none (it changes nothing but who is signed in, with the very secret it asks for).

Wrong tokens are limited per client address (``RateLimiter``: 10 at once, then one every
6 s), so the form is no faster an oracle than the bearer API. Without a local token the
console is open, like the lookup API on its loopback listener.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from hashfed.federation.http.guard import RateLimiter
from hashfed.federation.http.node import Clock

COOKIE = "hashfed_console"
SESSION_TTL_S = 8 * 3600
MAX_SESSIONS = 1000
LOGIN_BURST = 10
LOGIN_RATE_PER_S = 1 / 6


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str
    expires_at: float


class Sessions:
    """The console's sessions, in memory, for one node."""

    def __init__(self, token: str | None, clock: Clock) -> None:
        self.token = token
        self.clock = clock
        self._live: OrderedDict[str, Session] = OrderedDict()
        self.login_limiter = RateLimiter(LOGIN_RATE_PER_S, LOGIN_BURST)

    @property
    def required(self) -> bool:
        return self.token is not None

    def check_token(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.token.encode())

    def open(self) -> Session:
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), self.clock() + SESSION_TTL_S
        )
        self._live[session.id] = session
        while len(self._live) > MAX_SESSIONS:
            self._live.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._live.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self.clock():
            del self._live[session_id]
            return None
        return session

    def close(self, session_id: str) -> None:
        self._live.pop(session_id, None)


def set_cookie(response: web.StreamResponse, request: web.Request, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def csrf_ok(session: Session | None, given: str | None) -> bool:
    if session is None or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), session.csrf.encode())


def same_origin(request: web.Request) -> bool:
    """A POST from our own pages: no ``Origin`` (older browsers, curl), or our own."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = request.headers.get("Host", "")
    scheme = "https" if request.secure else "http"
    return origin == f"{scheme}://{host}"
