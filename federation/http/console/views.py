"""The console's pages: thin handlers that read the store and render a template.

Every page is a GET that changes nothing; reads that can take long (a PDQ scan, the log
entries of a hash, a CSV download) run in a worker thread on a store connection of their
own, so the event loop keeps serving peers meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from hashfed.federation.events import printable
from hashfed.federation.http.console.session import (
    COOKIE,
    Session,
    Sessions,
    clear_cookie,
    csrf_ok,
    same_origin,
    set_cookie,
)
from hashfed.federation.http.node import NODE, Node
from hashfed.federation.merged.browse import SINCE, STATES, Filter, browse, browse_arrived
from hashfed.federation.report import peer_lags, status_report
from hashfed.federation.store import Store
from hashfed.federation.store.changes import parse_cursor
from hashfed.federation.store.provenance import find_entries
from hashfed.formats.csv import write_csv
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import check_org
from hashfed.protocol.batch import decode_batch
from hashfed.protocol.hashtypes import HASH_TYPES, normalise
from hashfed.protocol.records import Record

HERE = Path(__file__).parent
SESSIONS = web.AppKey("console_sessions", Sessions)
SESSION = web.RequestKey("console_session", Session)
PAGE_SIZE = 50
CSV_CHUNK = 5000
_AUTO_TYPES = {32: ("md5",), 40: ("sha1",), 64: ("sha256", "pdq"), 288: ("photodna",)}

# Any report of a peer may come from a hostile peer: escape it all, and make every string
# printable first (no terminal escapes, no forged line breaks) before it is escaped.


def _finalize(value: object) -> object:
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return printable(value)


ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    finalize=_finalize,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _duration(seconds: float | None) -> str:
    """A lag for people: ``42 s``, ``7 min``, ``3 h 5 min``, ``2 d 4 h``; None is never."""
    if seconds is None:
        return "never"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


ENV.filters["duration"] = _duration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _headers() -> dict[str, str]:
    return {
        # No script at all, styles only from our own file, nothing framed or sent elsewhere.
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
            " frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on
        # our own form posts, which same_origin() must then refuse
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def render(request: web.Request, template: str, status: int = 200, **context: object) -> web.Response:
    node = request.app[NODE]
    session = request.get(SESSION)
    text = ENV.get_template(template).render(
        org=node.org,
        signed_in=session is not None,
        csrf=session.csrf if session is not None else "",
        path=request.path,
        **context,
    )
    return web.Response(text=text, content_type="text/html", status=status, headers=_headers())


def signed_in(handler: Handler) -> Handler:
    """The page needs a session when the node has a local token (else it is open)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        sessions = request.app[SESSIONS]
        if sessions.required:
            session = sessions.get(request.cookies.get(COOKIE))
            if session is None:
                raise web.HTTPSeeOther("/login")
            request[SESSION] = session
        return await handler(request)

    return guarded


def _in_thread(node: Node, work: Callable[[Store], object]) -> Awaitable[object]:
    def run() -> object:
        with Store(node.home.db_path) as store:
            return work(store)

    return asyncio.to_thread(run)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **_headers()})


# -- sign-in -------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    if not request.app[SESSIONS].required:
        raise web.HTTPSeeOther("/")
    return render(request, "login.html", error=None)


async def login(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    if not sessions.required:
        raise web.HTTPSeeOther("/")
    if not same_origin(request):
        return render(request, "login.html", 403, error="This form was sent from another site.")
    wait = sessions.login_limiter.take(request.remote or "?", sessions.clock())
    if wait:
        return render(request, "login.html", 429, error=f"Too many tries; wait {int(wait) + 1} s.")
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not sessions.check_token(token):
        return render(request, "login.html", 401, error="That is not the node's local token.")
    session = sessions.open()
    response = _see_other("/")
    set_cookie(response, request, session)
    return response


@signed_in
async def logout(request: web.Request) -> web.StreamResponse:
    session = request.get(SESSION)
    form = await request.post()
    if session is not None:
        csrf = form.get("csrf")
        if not same_origin(request) or not csrf_ok(session, csrf if isinstance(csrf, str) else None):
            return render(request, "error.html", 403, message="The form's CSRF token is wrong.")
        request.app[SESSIONS].close(session.id)
    response = _see_other("/login" if request.app[SESSIONS].required else "/")
    clear_cookie(response)
    return response


# -- pages ---------------------------------------------------------------------------


@signed_in
async def overview(request: web.Request) -> web.Response:
    node = request.app[NODE]
    now = node.clock()

    def read(store: Store) -> dict:
        report = status_report(store, node.org, node.signers)
        lags = peer_lags(store, node.org, now)
        last_publish = {}
        for log in store.logs.all():
            if log.own and log.held:
                data = store.logs.batch_data(log, log.held - 1)
                batch = decode_batch(data, org=log.org, collection=log.collection, index=log.held - 1)
                last_publish[f"{log.org}/{log.collection}"] = batch.created
        return {"report": report, "lags": lags, "last_publish": last_publish}

    data = await _in_thread(node, read)
    assert isinstance(data, dict)
    return render(request, "overview.html", **data)


def _candidates(type_: str, value: str) -> list[tuple[str, str]]:
    """(type, normalised value) pairs to look up; ``auto`` goes by the length."""
    text = value.strip()
    types = _AUTO_TYPES.get(len(text), ()) if type_ == "auto" else (type_,)
    if not types:
        raise ProtocolError(
            f"a hash of {len(text)} characters is of no known type; choose the type"
        )
    return [(t, normalise(t, text)) for t in types]


@signed_in
async def search(request: web.Request) -> web.Response:
    node = request.app[NODE]
    query = request.rel_url.query
    type_ = query.get("type", "auto")
    value = query.get("value", "")
    distance_text = query.get("distance", "").strip()
    form = {"type": type_, "value": value, "distance": distance_text}
    types = ("auto", *HASH_TYPES)
    if not value.strip():
        return render(request, "search.html", form=form, types=types, results=None, error=None)
    try:
        if type_ not in types:
            raise ProtocolError(f"unknown hash type {type_!r}")
        wanted = _candidates(type_, value)
        distance = None
        if distance_text:
            if not distance_text.isdigit() or int(distance_text) > 256:
                raise ProtocolError("distance must be a whole number from 0 to 256")
            distance = int(distance_text)
    except ProtocolError as exc:
        return render(request, "search.html", 400, form=form, types=types, results=None, error=str(exc))

    def read(store: Store) -> list[dict]:
        found: list[tuple[int | None, Record | None, str, str]] = []
        for t, v in wanted:
            if t == "pdq" and distance is not None:
                near = store.merged.near_pdq(v, distance)
                found += [(d, r, r.type, r.value) for d, r in near]
                if not near:
                    found.append((None, None, t, v))
            else:
                found.append((None, store.merged.lookup(t, v), t, v))
        # one record each, however it was found; asked-for hashes that nothing said first
        results, seen = [], set()
        for d, record, t, v in found:
            if (t, v) in seen:
                continue
            seen.add((t, v))
            scan = find_entries(store, t, v)
            if record is None and not scan.entries and len(wanted) > 1:
                continue  # auto guessed this type; nothing of it here
            results.append({"distance": d, "record": record, "type": t, "value": v, "scan": scan})
        return results

    results = await _in_thread(node, read)
    return render(request, "search.html", form=form, types=types, results=results, error=None)


def _filter_of(request: web.Request) -> tuple[Filter, dict[str, str], tuple[str, str] | None]:
    query = request.rel_url.query
    form = {
        name: query.get(name, "").strip()
        for name in ("type", "state", "label", "contributor", "since")
    }
    if form["since"] and not SINCE.fullmatch(form["since"]):
        raise ProtocolError("'arrived since' must be a date (2026-11-30) or a UTC time (2026-11-30T05:00Z)")
    form["state"] = form["state"] or "active"
    if form["type"] and form["type"] not in HASH_TYPES:
        raise ProtocolError(f"unknown hash type {form['type']!r}")
    if form["state"] not in STATES:
        raise ProtocolError(f"state must be one of {', '.join(STATES)}")
    if form["contributor"]:
        check_org(form["contributor"])
    after = None
    if query.get("after") and form["since"]:
        parse_cursor(query["after"])  # ProtocolError for anything but a feed cursor
        after = ("feed", query["after"])
    elif query.get("after"):
        t, sep, v = query["after"].partition(":")
        if not sep or t not in HASH_TYPES:
            raise ProtocolError("'after' must be TYPE:VALUE")
        after = (t, normalise(t, v))
    filt = Filter(
        type=form["type"] or None,
        state=form["state"],
        label=form["label"] or None,
        contributor=form["contributor"] or None,
    )
    return filt, form, after


def _link(path: str, form: dict[str, str], **extra: str) -> str:
    params = {k: v for k, v in {**form, **extra}.items() if v}
    return path + ("?" + urlencode(params) if params else "")


@signed_in
async def browse_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    try:
        filt, form, after = _filter_of(request)
    except ProtocolError as exc:
        empty = {"type": "", "state": "active", "label": "", "contributor": "", "since": ""}
        return render(request, "browse.html", 400, form=empty, page=None, error=str(exc),
                      types=tuple(HASH_TYPES), states=STATES, next_link=None, csv_link=None)
    next_link = None
    if form["since"]:  # what arrived since: the change feed, in arrival order
        since = _since(form["since"])
        page = await _in_thread(
            node,
            lambda store: browse_arrived(
                _feed(store), filt, after[1] if after else store.changes.cursor_at(since),
                limit=PAGE_SIZE,
            ),
        )
        if page.next_cursor is not None:  # type: ignore[attr-defined]
            next_link = _link("/browse", form, after=page.next_cursor)  # type: ignore[attr-defined]
    else:
        page = await _in_thread(
            node, lambda store: browse(store.conn, store.logs.name, filt, after=after, limit=PAGE_SIZE)
        )
        if page.next_after is not None:  # type: ignore[attr-defined]
            t, v = page.next_after  # type: ignore[attr-defined]
            next_link = _link("/browse", form, after=f"{t}:{v}")
    return render(
        request,
        "browse.html",
        form=form,
        page=page,
        error=None,
        types=tuple(HASH_TYPES),
        states=STATES,
        next_link=next_link,
        first_link=_link("/browse", form) if after else None,
        csv_link=_link("/browse.csv", form),
    )


@signed_in
async def browse_csv(request: web.Request) -> web.StreamResponse:
    """Every record the filter shows (not just a page), streamed in keyset chunks."""
    node = request.app[NODE]
    try:
        filt, _form, _after = _filter_of(request)
    except ProtocolError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    response = web.StreamResponse(
        headers={
            **_headers(),
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{node.org}-merged.csv"',
        }
    )
    await response.prepare(request)
    if _form["since"]:  # what arrived since: the change feed's order and cursor
        since = _since(_form["since"])

        def read(store: Store, at: object) -> tuple[tuple[Record, ...], object]:
            page = browse_arrived(
                _feed(store), filt, at or store.changes.cursor_at(since), limit=CSV_CHUNK,
                max_records=10**12,
            )
            return page.records, page.next_cursor
    else:  # (type, value) order, by keyset

        def read(store: Store, at: object) -> tuple[tuple[Record, ...], object]:
            page = browse(
                store.conn, store.logs.name, filt, after=at, limit=CSV_CHUNK,  # type: ignore[arg-type]
                max_records=10**12,
            )
            return page.records, page.next_after

    at: object = None
    header = True
    while True:
        records, at = await _in_thread(node, lambda store, at=at: read(store, at))  # type: ignore[misc]
        for text in write_csv(records, header=header):
            await response.write(text.encode())
        header = False
        if at is None:
            break
    await response.write_eof()
    return response


def _since(text: str) -> str:
    """A form's date or time as the store records arrivals (``YYYY-MM-DDTHH:MM:SSZ``)."""
    text = text.removesuffix("Z")
    if "T" not in text:
        return f"{text}T00:00:00Z"
    return text + ("Z" if text.count(":") == 2 else ":00Z")


def _feed(store: Store) -> Callable[[str, int], tuple[list[dict], str]]:
    def page(cursor: str, limit: int) -> tuple[list[dict], str]:
        found = store.changes.page(cursor, limit)
        return found.records, found.next

    return page


@signed_in
async def peers_page(request: web.Request) -> web.Response:
    node = request.app[NODE]

    def read(store: Store) -> dict:
        own_logs = [log.log_id for log in store.logs.all() if log.own]
        peers = store.peers.all()
        readers = {log_id: [p.org for p in peers if log_id in p.readable] for log_id in own_logs}
        return {"peers": peers, "readers": readers}

    data = await _in_thread(node, read)
    assert isinstance(data, dict)
    return render(request, "peers.html", **data)


async def stylesheet(request: web.Request) -> web.FileResponse:
    return web.FileResponse(HERE / "static" / "console.css", headers={"Cache-Control": "max-age=3600"})
