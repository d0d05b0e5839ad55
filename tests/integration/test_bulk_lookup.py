"""The bulk forms of ``POST /v1/lookup``: ``"fields": ["active"]`` (answered from the
in-memory exact index) and ``"distance"`` (a batch of PDQ searches), against a real node.

The exact index must say what the merged list says, for every kind of record, and stay
current as pages are committed while the node runs.
"""

from __future__ import annotations

import json
import random

import aiohttp
import pytest

from hashfed.federation.home import Home
from hashfed.protocol.entries import Entry
from tests.helpers import md5, pdq, send, sha256, stage_and_publish

ORG = "a.example"


@pytest.fixture
def home(make_home) -> Home:  # type: ignore[no-untyped-def]
    home = make_home(ORG)
    stage_and_publish(
        home,
        [
            Entry.add("md5", md5(1), ["x:1"]),
            Entry.add("md5", md5(2)),
            Entry.opine("md5", md5(3), "false_positive"),
            Entry.add("sha256", sha256(4)),
            Entry.add("pdq", pdq(5)),
        ],
    )
    stage_and_publish(home, [Entry.remove("md5", md5(2))])
    return home


async def lookup(session: aiohttp.ClientSession, url: str, body: object):  # type: ignore[no-untyped-def]
    return await send(
        session, url, "POST", "/v1/lookup", body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


async def test_active_states_of_every_kind_of_record(api) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    values = [md5(1), md5(2).upper(), md5(3), md5(9)]
    reply = await lookup(session, url, {"type": "md5", "values": values, "fields": ["active"]})
    assert (reply.status, reply.json()) == (200, {"results": [True, False, False, None]})
    mixed = [{"type": "sha256", "value": sha256(4)}, {"type": "MD5", "value": md5(1)},
             {"type": "pdq", "value": pdq(5)}, {"type": "pdq", "value": pdq(6)}]
    reply = await lookup(session, url, {"hashes": mixed, "fields": ["active"]})
    assert reply.json() == {"results": [True, True, True, None]}


async def test_active_states_follow_commits_while_serving(api, home: Home) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    body = {"type": "md5", "values": [md5(1), md5(2), md5(7)], "fields": ["active"]}
    assert (await lookup(session, url, body)).json() == {"results": [True, False, None]}
    stage_and_publish(home, [Entry.remove("md5", md5(1)), Entry.add("md5", md5(2)), Entry.add("md5", md5(7))])
    assert (await lookup(session, url, body)).json() == {"results": [False, True, True]}


async def test_a_batch_of_pdq_searches(api) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    near = f"{int(pdq(5), 16) ^ 0b111:064x}"
    far = "f" * 64  # 254 bits from pdq(5)
    reply = await lookup(session, url, {"type": "pdq", "values": [near, far], "distance": 31})
    results = reply.json()["results"]
    assert [[(m["distance"], m["value"]) for m in r] for r in results] == [[(3, pdq(5))], []]


BAD = [
    ("fields other than active", {"type": "md5", "values": [md5(1)], "fields": ["labels"]}, 400),
    ("distance on md5", {"type": "md5", "values": [md5(1)], "distance": 3}, 400),
    ("distance past the index", {"type": "pdq", "values": [pdq(1)], "distance": 65}, 400),
    ("distance as text", {"type": "pdq", "values": [pdq(1)], "distance": "3"}, 400),
    ("fields and distance", {"type": "pdq", "values": [pdq(1)], "distance": 3, "fields": ["active"]}, 400),
    ("a bad value among good", {"type": "md5", "values": [md5(1), "xyz"], "fields": ["active"]}, 400),
    ("a value of another type's length", {"type": "md5", "values": [sha256(1)], "fields": ["active"]}, 400),
    ("a value that is not text", {"type": "md5", "values": [1], "fields": ["active"]}, 400),
    ("an unknown type", {"type": "md4", "values": [md5(1)], "fields": ["active"]}, 400),
    ("both forms", {"type": "md5", "values": [], "hashes": []}, 400),
    ("too many", {"type": "md5", "values": [md5(1)] * 10_001, "fields": ["active"]}, 413),
]


@pytest.mark.parametrize(("body", "status"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_bulk_requests(api, body: dict, status: int) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    reply = await lookup(session, url, body)
    assert (reply.status, reply.content_type) == (status, "application/problem+json")


async def test_the_exact_index_says_what_the_merged_list_says(api, home: Home) -> None:  # type: ignore[no-untyped-def]
    """Random adds, removes and opinions over a few hashes, published in several pages
    while the node serves: after each, the index's answer for every hash equals the
    record's ``active`` (or null for a hash never seen)."""
    session, url = api
    rng = random.Random(5)
    values = [md5(100 + i) for i in range(40)]
    for _ in range(6):
        entries = []
        for value in rng.sample(values, 15):
            op = rng.choice(["add", "remove", "opinion"])
            entries.append(
                Entry.add("md5", value) if op == "add"
                else Entry.remove("md5", value) if op == "remove"
                else Entry.opine("md5", value, "false_positive")
            )
        stage_and_publish(home, entries)
        fast = (await lookup(session, url, {"type": "md5", "values": values, "fields": ["active"]})).json()
        full = (await lookup(session, url, {"type": "md5", "values": values})).json()
        assert fast["results"] == [None if r is None else r["active"] for r in full["results"]]
