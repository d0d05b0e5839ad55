"""The web console on the local listener: what an operator looks at.

Server-rendered HTML (aiohttp handlers, Jinja2 templates with autoescape on), no
JavaScript and no build step; one small stylesheet. Pages:

    /             overview: evidence first (in red), own logs, every peer with its lag
    /search       one hash of any type (PDQ within a distance): record, contributors,
                  labels, opinions, and the log entries it came from
    /browse       the merged list, filtered, in keyset pages; /browse.csv downloads
                  every record the filter shows
    /peers        who may read which log, who may push (read-only: the CLI changes them)
    /login        the local token, once, for a session (``session``)

Everything shown is escaped, and made printable first: peers' error texts, URLs and
answers reach these pages, and a peer may be hostile. The machine API of the listener
(``/v1/...``, ``/metrics``) keeps its bearer token; console routes are named
``console-...`` and the token middleware lets them through to the session check here.
"""

from __future__ import annotations

from aiohttp import web

from hashfed.federation.http.body import refuse_expect
from hashfed.federation.http.console.session import Sessions
from hashfed.federation.http.console.views import (
    SESSIONS,
    browse_csv,
    browse_page,
    login,
    login_form,
    logout,
    overview,
    peers_page,
    search,
    stylesheet,
)
from hashfed.federation.http.node import NODE

ROUTE_PREFIX = "console-"


def add_console(app: web.Application, *, token: str | None) -> None:
    """Add the console's routes to the local listener's app (before it starts)."""
    app[SESSIONS] = Sessions(token, app[NODE].clock)
    for method, path, handler in (
        ("GET", "/", overview),
        ("GET", "/search", search),
        ("GET", "/browse", browse_page),
        ("GET", "/browse.csv", browse_csv),
        ("GET", "/peers", peers_page),
        ("GET", "/login", login_form),
        ("POST", "/login", login),
        ("POST", "/logout", logout),
        ("GET", "/static/console.css", stylesheet),
    ):
        page = path.strip("/").replace("/", "-").replace(".", "-") or "overview"
        name = f"{ROUTE_PREFIX}{page}-{method.lower()}"
        # A page takes no body: Expect is refused (417). The two forms (login, logout) are
        # small, bounded by the listener's body cap, and are how a session begins or ends.
        extra = {"expect_handler": refuse_expect} if method == "GET" else {}
        app.router.add_route(method, path, handler, name=name, **extra)


def is_console_route(request: web.Request) -> bool:
    route = request.match_info.route
    return (route.name or "").startswith(ROUTE_PREFIX)


__all__ = ["add_console", "is_console_route"]
