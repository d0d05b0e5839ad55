"""The change feed and the opinions API on the local listener (what HMA/ThreatExchange,
TAXII and the console read), against a real node and a real store.

A consumer that pages with ``next`` from the start sees every record, each with its state
when read; a record changed later comes again; a cursor keeps working however far the
feed grows, and every page seeks by primary key. ``POST /v1/opinions`` publishes a signed
opinion in the node's own log, which then comes through the feed.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from hashfed.federation.home import Home
from hashfed.protocol.entries import Entry
from tests.helpers import md5, pdq, send, stage_and_publish

ORG = "a.example"


@pytest.fixture
def home(make_home) -> Home:  # type: ignore[no-untyped-def]
    home = make_home(ORG)
    stage_and_publish(home, [Entry.add("md5", md5(i), ["x:1"]) for i in range(5)])
    return home


async def feed(session: aiohttp.ClientSession, url: str, after: str | None, limit: int) -> dict:
    query = f"?limit={limit}" + (f"&after={after}" if after else "")
    reply = await send(session, url, "GET", "/v1/changes" + query)
    assert reply.status == 200, reply
    return reply.json()


async def test_paging_from_the_start_sees_every_record_once(api, home: Home) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    seen, cursor = [], None
    for _ in range(10):
        page = await feed(session, url, cursor, 2)
        seen += [r["value"] for r in page["changes"]]
        if not page["changes"]:
            break
        cursor = page["next"]
    assert seen == [md5(i) for i in range(5)]
    # Nothing new: the same cursor comes back, and an empty page.
    again = await feed(session, url, cursor, 2)
    assert again == {"changes": [], "next": cursor}

    # A retraction and a new hash arrive: exactly those come next, retracted shown inactive.
    stage_and_publish(home, [Entry.remove("md5", md5(1)), Entry.add("pdq", pdq(7))])
    page = await feed(session, url, cursor, 100)
    assert [(r["value"], r["active"]) for r in page["changes"]] == [(md5(1), False), (pdq(7), True)]
    assert page["changes"][0]["retracted_by"] == [{"org": ORG, "collection": "default"}]


@pytest.mark.timeout(20)  # the server runs in the test's loop: a spin would hang it, not time out
@pytest.mark.parametrize("offset", [5, 6, 999_999])
async def test_a_cursor_past_the_end_of_its_batch_reads_on_from_the_next(api, home: Home, offset: int) -> None:  # type: ignore[no-untyped-def]
    """Batch 1 holds 5 entries; a cursor at or past its end (never one a page gives, but a
    client may write one) reads from the next batch. Such a cursor used to spin the feed's
    loop forever on the event loop: every request after it waited (found by the stateful
    schemathesis run)."""
    session, url = api
    stage_and_publish(home, [Entry.add("md5", md5(9))])
    page = await asyncio.wait_for(feed(session, url, f"1.{offset}", 100), 5)
    assert [r["value"] for r in page["changes"]] == [md5(9)]
    assert page["next"] == "3.0"


async def test_a_page_is_one_record_per_hash_with_its_current_state(api, home: Home) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    stage_and_publish(home, [Entry.add("md5", md5(9), ["a:1"]), Entry.add("md5", md5(9), ["b:2"])])
    page = await feed(session, url, None, 1000)
    assert [r["value"] for r in page["changes"]].count(md5(9)) == 1
    assert next(r for r in page["changes"] if r["value"] == md5(9))["labels"] == ["b:2"]


async def test_opinions_are_published_and_come_through_the_feed(api, home: Home) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    end = (await feed(session, url, None, 1000))["next"]
    body = {"opinions": [{"type": "MD5", "value": md5(3).upper(), "opinion": "false_positive"}]}
    reply = await send(
        session, url, "POST", "/v1/opinions", body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 201, reply
    assert reply.json() == {"staged": 1, "published": [{"log_id": f"{ORG}/default", "size": 2}]}
    page = await feed(session, url, end, 10)
    assert [(r["value"], r["opinions"]) for r in page["changes"]] == [
        (md5(3), [{"org": ORG, "collection": "default", "opinion": "false_positive"}])
    ]


BAD = [
    ("cursor not SEQ.OFFSET", "GET", "/v1/changes?after=abc", None, 400),
    ("cursor with a sign", "GET", "/v1/changes?after=-1.0", None, 400),
    ("cursor of superscript digits", "GET", "/v1/changes?after=%C2%B2.0", None, 400),
    ("limit zero", "GET", "/v1/changes?limit=0", None, 400),
    ("limit too big", "GET", "/v1/changes?limit=10001", None, 400),
    ("limit of 5000 digits", "GET", "/v1/changes?limit=" + "9" * 5000, None, 400),
    ("unknown parameter", "GET", "/v1/changes?since=1", None, 400),
    ("opinions not JSON", "POST", "/v1/opinions", b"{", 400),
    ("opinions empty", "POST", "/v1/opinions", b'{"opinions": []}', 400),
    ("unknown key", "POST", "/v1/opinions", b'{"opinions": [], "x": 1}', 400),
    (
        "an unknown opinion",
        "POST",
        "/v1/opinions",
        json.dumps({"opinions": [{"type": "md5", "value": md5(1), "opinion": "maybe"}]}).encode(),
        400,
    ),
    (
        "a bad collection",
        "POST",
        "/v1/opinions",
        json.dumps({"opinions": [{"type": "md5", "value": md5(1), "opinion": "false_positive"}],
                    "collection": "Bad/One"}).encode(),
        400,
    ),
    (
        "one bad item of two",
        "POST",
        "/v1/opinions",
        json.dumps({"opinions": [{"type": "md5", "value": md5(1), "opinion": "false_positive"},
                                 {"type": "md5", "value": "nothex", "opinion": "false_positive"}]}).encode(),
        400,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
async def test_bad_requests_change_nothing(api, home: Home, method: str, path: str, body: bytes | None, status: int) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    with home.open_store() as store:
        before = store.logs.get(f"{ORG}/default")
    reply = await send(session, url, method, path, body=body, headers={"Content-Type": "application/json"})
    assert reply.status == status
    assert reply.content_type == "application/problem+json"
    with home.open_store() as store:
        assert store.logs.get(f"{ORG}/default") == before
        assert store.staging.collections() == []
