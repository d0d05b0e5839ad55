"""The console over plain HTTP (no browser): sign-in, CSRF, headers, CSV, bad input."""

from __future__ import annotations

import csv
import io

import aiohttp
import pytest

from tests.console_world import B_HASH, OWN_COUNT, TOKEN, A, build_world


@pytest.fixture
async def console(make_home, start_node):  # type: ignore[no-untyped-def]
    world, evil = await build_world(make_home, start_node)
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        yield session, world.console
    await evil.cleanup()


async def login(session: aiohttp.ClientSession, url: str, token: str = TOKEN, **headers: str) -> int:
    async with session.post(url + "/login", data={"token": token}, headers=headers,
                            allow_redirects=False) as r:
        return r.status


@pytest.mark.parametrize("path", ["/", "/search", "/browse", "/browse.csv", "/peers"])
async def test_pages_need_a_session(console, path: str) -> None:  # type: ignore[no-untyped-def]
    session, url = console
    async with session.get(url + path, allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (303, "/login")


@pytest.mark.parametrize(
    ("token", "headers", "status"),
    [
        ("wrong", {}, 401),
        (TOKEN, {"Origin": "http://evil.example"}, 403),
        (TOKEN + "x", {}, 401),
    ],
    ids=["wrong token", "another site's form", "token with a suffix"],
)
async def test_login_refused(console, token, headers, status) -> None:  # type: ignore[no-untyped-def]
    session, url = console
    assert await login(session, url, token, **headers) == status
    assert not [c for c in session.cookie_jar if c.key == "hashfed_console"]


async def test_wrong_tokens_are_rate_limited(console) -> None:  # type: ignore[no-untyped-def]
    session, url = console
    statuses = [await login(session, url, "wrong") for _ in range(11)]
    assert statuses == [401] * 10 + [429]


async def test_session_cookie_headers_and_csrf(console) -> None:  # type: ignore[no-untyped-def]
    session, url = console
    async with session.post(url + "/login", data={"token": TOKEN}, allow_redirects=False) as r:
        assert r.status == 303
        cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    async with session.get(url + "/") as r:
        assert r.status == 200
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    # logout without the CSRF token, or with a wrong one, changes nothing
    for data in ({}, {"csrf": "x" * 43}):
        async with session.post(url + "/logout", data=data, allow_redirects=False) as r:
            assert r.status == 403
    async with session.get(url + "/", allow_redirects=False) as r:
        assert r.status == 200


async def test_machine_api_still_takes_the_bearer_token(console) -> None:  # type: ignore[no-untyped-def]
    session, url = console
    assert await login(session, url) == 303
    # a console session is not a token for the API
    async with session.get(url + f"/v1/hashes/md5/{B_HASH}") as r:
        assert r.status == 401
    async with session.get(url + f"/v1/hashes/md5/{B_HASH}",
                           headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 200


async def test_csv_is_what_the_filter_shows(console) -> None:  # type: ignore[no-untyped-def]
    session, url = console
    assert await login(session, url) == 303
    async with session.get(url + f"/browse.csv?contributor={A}&state=active") as r:
        assert r.status == 200 and r.content_type == "text/csv"
        rows = list(csv.reader(io.StringIO(await r.text())))
    assert rows[0] == ["type", "value", "labels", "contributors"]
    assert len(rows) == 1 + OWN_COUNT - 1
    assert {row[3] for row in rows[1:]} == {f"{A}/default"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("type=crc32", "unknown hash type"),
        ("state=maybe", "state must be one of"),
        ("after=md5", "&#39;after&#39; must be TYPE:VALUE"),
        ("contributor=NOT%20AN%20ORG", "org"),
    ],
    ids=["type", "state", "after", "contributor"],
)
async def test_bad_browse_filters(console, query: str, message: str) -> None:  # type: ignore[no-untyped-def]
    session, url = console
    assert await login(session, url) == 303
    async with session.get(url + "/browse?" + query) as r:
        assert r.status == 400
        assert message in await r.text()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("type=auto&value=abc", "a hash of 3 characters is of no known type"),
        ("type=md5&value=zz", "md5"),
        ("type=pdq&value=" + "0" * 64 + "&distance=300", "distance must be a whole number"),
    ],
    ids=["length", "not hex", "distance"],
)
async def test_bad_searches(console, query: str, message: str) -> None:  # type: ignore[no-untyped-def]
    session, url = console
    assert await login(session, url) == 303
    async with session.get(url + "/search?" + query) as r:
        assert r.status == 400
        assert message in await r.text()
