"""The local lookup API (``NodeService(..., local_port=0)``): the node's own matching
pipeline asks it about hashes. Real node, real listener on 127.0.0.1, real SQLite.

    GET  /v1/hashes/{type}/{value}   the record (as ``lookup --json``) or a 404 problem
    POST /v1/lookup                  up to 10,000 hashes → results in the same order
"""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp
import pytest

from hashfed.federation.home import Home
from hashfed.federation.http.lookup import MAX_LOOKUP_HASHES
from hashfed.protocol.entries import Entry
from tests.helpers import (
    Reply,
    assert_problem,
    configure,
    db_snapshot,
    md5,
    pdq,
    send,
    sha256,
    stage_and_publish,
    wait_until,
)

ORG = "a.example"
TOKEN = "correct horse battery staple"


def record(
    value: str, *, active: bool = True, labels=(), contributors=(), opinions=(), retracted_by=(),
    type_: str = "md5",
) -> dict:  # type: ignore[no-untyped-def]
    return {
        "type": type_,
        "value": value,
        "active": active,
        "labels": list(labels),
        "contributors": [{"org": ORG, "collection": "default", "labels": list(ls)} for ls in contributors],
        "opinions": [{"org": ORG, "collection": "default", "opinion": o} for o in opinions],
        "retracted_by": [{"org": ORG, "collection": c} for c in retracted_by],
    }


VOUCHED = record(md5(0xABC), labels=["x:1"], contributors=[["x:1"]])
DOUBTED = record(md5(2), active=False, opinions=["false_positive"])


@pytest.fixture
def home(make_home) -> Home:  # type: ignore[no-untyped-def]
    home = make_home(ORG)
    stage_and_publish(
        home,
        [Entry.add("md5", md5(0xABC), ["x:1"]), Entry.opine("md5", md5(2), "false_positive")],
    )
    return home


@pytest.fixture
async def api(home: Home, start_node):  # type: ignore[no-untyped-def]
    service = await start_node(home, local_port=0)
    assert service.local_bound_port not in (0, service.bound_port)
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{service.local_bound_port}", service


async def post(
    session: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str] | None = None
) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    return await send(session, url, "POST", "/v1/lookup", body=data, headers=headers)


# -- GET /v1/hashes/{type}/{value} -------------------------------------------------------


async def test_get_a_record(api) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = api
    reply = await send(session, url, "GET", f"/v1/hashes/md5/{md5(0xABC).upper()}")
    assert (reply.status, reply.content_type) == (200, "application/json")
    assert reply.json() == VOUCHED
    reply = await send(session, url, "GET", f"/v1/hashes/md5/{md5(2)}")
    assert (reply.status, reply.json()) == (200, DOUBTED)  # known, though not active


BAD_GETS = [
    ("never seen", f"/v1/hashes/md5/{md5(3)}", 404, "unknown-hash"),
    ("same hex, other type", f"/v1/hashes/sha256/{sha256(0xABC)}", 404, "unknown-hash"),
    ("bad value", "/v1/hashes/md5/xyz", 400, "malformed"),
    ("unknown type", f"/v1/hashes/tlsh/{md5(1)}", 400, "malformed"),
    ("no such route", "/v1/node", 404, "not-found"),
    ("unknown parameter", f"/v1/hashes/md5/{md5(0xABC)}?near=1", 400, "malformed"),
    ("distance on md5", f"/v1/hashes/md5/{md5(0xABC)}?distance=3", 400, "malformed"),
    ("distance not a number", f"/v1/hashes/pdq/{pdq(1)}?distance=x", 400, "malformed"),
    ("distance too big", f"/v1/hashes/pdq/{pdq(1)}?distance=257", 400, "malformed"),
    ("distance twice", f"/v1/hashes/pdq/{pdq(1)}?distance=1&distance=2", 400, "malformed"),
    ("nothing near", f"/v1/hashes/pdq/{pdq(1)}?distance=31", 404, "unknown-hash"),
]


@pytest.mark.parametrize(("path", "status", "slug"), [c[1:] for c in BAD_GETS], ids=[c[0] for c in BAD_GETS])
async def test_get_errors(api, home: Home, path: str, status: int, slug: str) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = api
    before = db_snapshot(home.db_path)
    assert_problem(await send(session, url, "GET", path), status, slug)
    assert db_snapshot(home.db_path) == before


# ?distance= is ASCII digits only, bounded, 0..256 (keys.encoding.decimal): anything else is
# a 400 that names the value, never a 500 and never a digit of another script read as one.
BAD_DISTANCES = [
    ("superscript two", "%C2%B2", "'²'"),
    ("arabic-indic three", "%D9%A3", "'٣'"),
    ("fullwidth one", "%EF%BC%91", "'１'"),
    ("5000 digits", "9" * 5000, repr("9" * 80)[:77] + "..."),
    ("5000 zeros", "0" * 5000, repr("0" * 80)[:77] + "..."),
    ("257", "257", "'257'"),
    ("negative", "-1", "'-1'"),
    ("plus sign", "%2B3", "'+3'"),
    ("leading zero", "03", "'03'"),
    ("underscore", "1_0", "'1_0'"),
    ("space", "%203", "' 3'"),
    ("empty", "", "''"),
]


@pytest.mark.parametrize(("raw", "shown"), [c[1:] for c in BAD_DISTANCES], ids=[c[0] for c in BAD_DISTANCES])
async def test_distance_is_ascii_digits_from_0_to_256(api, home: Home, raw: str, shown: str) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = api
    before = db_snapshot(home.db_path)
    reply = await send(session, url, "GET", f"/v1/hashes/pdq/{pdq(1)}", query=f"distance={raw}")
    problem = assert_problem(reply, 400, "malformed")
    assert problem["detail"] == f"distance must be a whole number from 0 to 256, not {shown}"
    assert db_snapshot(home.db_path) == before


async def test_pdq_matches_by_distance(home: Home, start_node) -> None:  # type: ignore[no-untyped-def]
    base = int("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22", 16)
    near, far = f"{base ^ 0b11:064x}", f"{base ^ (2**33 - 1):064x}"  # 2 and 33 bits away
    stage_and_publish(home, [Entry.add("pdq", near, ["csam"]), Entry.add("pdq", far)])
    service = await start_node(home, local_port=0)
    url = f"http://127.0.0.1:{service.local_bound_port}"
    async with aiohttp.ClientSession() as session:
        reply = await send(session, url, "GET", f"/v1/hashes/pdq/{base:064X}", query="distance=31")
        assert reply.status == 200
        assert [(m["distance"], m["value"], m["labels"]) for m in reply.json()["matches"]] == [
            (2, near, ["csam"])
        ]
        reply = await send(session, url, "GET", f"/v1/hashes/pdq/{base:064x}", query="distance=40")
        assert [(m["distance"], m["value"]) for m in reply.json()["matches"]] == [(2, near), (33, far)]


async def test_peers_cannot_ask_for_answers(api) -> None:  # type: ignore[no-untyped-def]
    """Lookups are only on the local listener; the peer listener serves logs, not answers."""
    session, _, service = api
    reply = await send(session, service.url, "GET", f"/v1/hashes/md5/{md5(0xABC)}")
    assert reply.status in (401, 404)
    assert reply.content_type == "application/problem+json"


async def test_a_new_publish_is_seen_without_restart(api, home: Home) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = api
    assert (await send(session, url, "GET", f"/v1/hashes/md5/{md5(3)}")).status == 404
    stage_and_publish(home, [Entry.add("md5", md5(3))])
    reply = await send(session, url, "GET", f"/v1/hashes/md5/{md5(3)}")
    assert (reply.status, reply.json()) == (200, record(md5(3), contributors=[[]]))


# -- POST /v1/lookup -----------------------------------------------------------------------


async def test_post_lookup_answers_in_order(api) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = api
    hashes = [
        {"type": "md5", "value": md5(3)},
        {"type": "md5", "value": f" {md5(0xABC).upper()}\n"},
        {"type": "md5", "value": md5(2)},
        {"type": "md5", "value": md5(0xABC)},
    ]
    reply = await post(session, url, {"hashes": hashes})
    assert (reply.status, reply.json()) == (200, {"results": [None, VOUCHED, DOUBTED, VOUCHED]})
    assert (await post(session, url, {"hashes": []})).json() == {"results": []}


async def test_post_lookup_of_10000(api) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = api
    hashes = [{"type": "md5", "value": md5(i)} for i in range(MAX_LOOKUP_HASHES)]
    reply = await post(session, url, {"hashes": hashes})
    assert reply.status == 200
    results = reply.json()["results"]
    assert len(results) == MAX_LOOKUP_HASHES
    assert results[2] == DOUBTED and results[0xABC] == VOUCHED
    assert sum(r is not None for r in results) == 2


def _too_many() -> dict:
    return {"hashes": [{"type": "md5", "value": md5(i)} for i in range(MAX_LOOKUP_HASHES + 1)]}


BAD_POSTS: list[tuple[str, object, int, str]] = [
    ("10,001 hashes", _too_many(), 413, "too-many-hashes"),
    ("not JSON", b"{hashes:", 400, "malformed"),
    ("not UTF-8", b'{"hashes": ["\xff"]}', 400, "malformed"),
    ("empty body", b"", 400, "malformed"),
    ("a list, not an object", [{"type": "md5", "value": md5(1)}], 400, "malformed"),
    ("an extra member", {"hashes": [], "limit": 5}, 400, "malformed"),
    ("hashes not a list", {"hashes": {"type": "md5", "value": md5(1)}}, 400, "malformed"),
    ("an item not an object", {"hashes": [md5(1)]}, 400, "malformed"),
    ("an item without value", {"hashes": [{"type": "md5"}]}, 400, "malformed"),
    ("an item with an extra key", {"hashes": [{"type": "md5", "value": md5(1), "x": 1}]}, 400, "malformed"),
    (
        "a bad value",
        {"hashes": [{"type": "md5", "value": md5(1)}, {"type": "md5", "value": "zz"}]},
        400,
        "malformed",
    ),
    ("an unknown type", {"hashes": [{"type": "tlsh", "value": md5(1)}]}, 400, "malformed"),
    ("a type that is not a string", {"hashes": [{"type": ["md5"], "value": md5(1)}]}, 400, "malformed"),
    # 32 decimal digits are 32 hex digits once str()-ed: a number must not pass for a hash
    (
        "a value that is a number",
        {"hashes": [{"type": "md5", "value": 12345678901234567890123456789012}]},
        400,
        "malformed",
    ),
    ("a value that is null", {"hashes": [{"type": "md5", "value": None}]}, 400, "malformed"),
]


@pytest.mark.parametrize(
    ("body", "status", "slug"), [c[1:] for c in BAD_POSTS], ids=[c[0] for c in BAD_POSTS]
)
async def test_post_lookup_errors(api, home: Home, body: object, status: int, slug: str) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = api
    before = db_snapshot(home.db_path)
    assert_problem(await post(session, url, body), status, slug)
    assert db_snapshot(home.db_path) == before


async def test_post_body_over_the_cap(api) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = api
    body = io.BytesIO(b'{"hashes": [' + b" " * (9 * 1024 * 1024) + b"]}")
    async with session.post(url + "/v1/lookup", data=body) as response:
        reply = Reply(response.status, response.headers.copy(), await response.read())
    assert_problem(reply, 413, "content-too-large")


# -- the bearer token ------------------------------------------------------------------------


@pytest.fixture
async def guarded(home: Home, start_node):  # type: ignore[no-untyped-def]
    home = configure(home, server={"local_token": TOKEN})
    service = await start_node(home, local_port=0)
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{service.local_bound_port}", service


BAD_TOKENS = [
    ("no header", {}),
    ("wrong token", {"Authorization": "Bearer wrong"}),
    ("token as basic", {"Authorization": f"Basic {TOKEN}"}),
    ("token without scheme", {"Authorization": TOKEN}),
    ("token with a suffix", {"Authorization": f"Bearer {TOKEN}x"}),
]


@pytest.mark.parametrize("headers", [c[1] for c in BAD_TOKENS], ids=[c[0] for c in BAD_TOKENS])
@pytest.mark.parametrize(
    "path", [f"/v1/hashes/md5/{md5(0xABC)}", "/v1/unknown"], ids=["known route", "unknown route"]
)
async def test_token_required(guarded, headers: dict[str, str], path: str) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = guarded
    reply = await send(session, url, "GET", path, headers=headers)
    assert_problem(reply, 401, "bad-token")
    assert reply.headers["WWW-Authenticate"] == "Bearer"


async def test_token_accepted(guarded) -> None:  # type: ignore[no-untyped-def]
    session, url, _ = guarded
    auth = {"Authorization": f"Bearer {TOKEN}"}
    reply = await send(session, url, "GET", f"/v1/hashes/md5/{md5(0xABC)}", headers=auth)
    assert (reply.status, reply.json()) == (200, VOUCHED)
    reply = await post(
        session,
        url,
        {"hashes": [{"type": "md5", "value": md5(2)}]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert (reply.status, reply.json()) == (200, {"results": [DOUBTED]})


async def test_token_header_that_is_not_utf8(guarded) -> None:  # type: ignore[no-untyped-def]
    """Raw bytes a client library would not send: a wrong token (401), never a 500."""
    _, url, _ = guarded
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /v1/hashes/md5/{md5(0xABC)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
            + b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 401 Unauthorized", response[:200]


# -- the connection guards: the same as the peer listener's ---------------------------------------


@pytest.fixture
async def tight(home: Home, start_node):  # type: ignore[no-untyped-def]
    """A node whose limits are small, with its lookup listener."""
    home = configure(
        home,
        limits={"header_timeout_s": 1.0, "body_timeout_s": 1.0, "max_connections_per_address": 3},
    )
    return await start_node(home, local_port=0)


async def _open_lookup(service) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # type: ignore[no-untyped-def]
    return await asyncio.open_connection("127.0.0.1", service.local_bound_port)


async def _eof(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""


async def test_lookup_listener_caps_connections_per_address(tight) -> None:  # type: ignore[no-untyped-def]
    held = [await _open_lookup(tight) for _ in range(3)]
    try:
        extra = [await _open_lookup(tight) for _ in range(5)]
        for reader, writer in extra:  # closed at once, before any byte
            assert await _eof(reader) == b""
            writer.close()
        assert tight.local_site.guard.refused == 5
        assert dict(tight.local_site.guard.open_by_address) == {"127.0.0.1": 3}
        async with aiohttp.ClientSession() as session:  # the peer listener still answers
            assert (await send(session, tight.url, "GET", "/v1/node")).status == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_lookup_listener_cuts_off_a_slow_or_silent_head(tight) -> None:  # type: ignore[no-untyped-def]
    silent = await _open_lookup(tight)
    slow = await _open_lookup(tight)
    slow[1].write(b"GET /v1/hashes/md5/" + md5(1).encode() + b" HTTP/1.1\r\nX-Slow: 1\r\n")
    for reader, writer in (silent, slow):
        assert await _eof(reader) == b""  # no answer at all: the connection is closed
        writer.close()
    assert tight.local_site.guard.timeouts == 2
    await wait_until(lambda: not tight.local_site.guard.open_by_address, what="both closed")


async def test_lookup_listener_gives_a_stalled_body_408(tight) -> None:  # type: ignore[no-untyped-def]
    reader, writer = await _open_lookup(tight)
    try:
        writer.write(
            b"POST /v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{\"hashes\": ["
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 408 "), head
        length = int(next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        ))
        problem = json.loads(await asyncio.wait_for(reader.readexactly(length), 5))
        assert problem["type"] == "urn:hashfed:problem:body-timeout"
        assert problem["detail"] == "the body did not arrive within 1 s"
    finally:
        writer.close()
