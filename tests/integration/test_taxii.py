"""The TAXII 2.1 read API (federation/http/taxii.py) against real nodes on 127.0.0.1,
driven by the real ``taxii2-client`` (a sync client: run in a worker thread), every object
checked by ``stix2.parse(..., allow_custom=False)``.

Three orgs: ``a`` publishes two collections (``default`` and ``secret``), ``b`` is granted
``a/default`` only, ``c`` publishes its own log and ``a`` pulls it, so ``c``'s token reads
``c/default`` held at ``a`` (an org reads its own logs wherever they are held).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid

import aiohttp
import pytest
import stix2
from taxii2client.v21 import Collection, Server, as_pages

from hashfed.federation.home import Home
from hashfed.federation.http.taxii import collection_id
from hashfed.federation.store.indicators import indicator_uuid
from hashfed.protocol.entries import Entry
from tests.helpers import connect, db_snapshot, md5, pdq, pull_from, sha256, stage_and_publish

A, B, C = "a.example", "b.example", "c.example"
TAXII = "application/taxii+json;version=2.1"


@pytest.fixture
def homes(make_home) -> dict[str, Home]:  # type: ignore[no-untyped-def]
    a, b, c = make_home(A), make_home(B), make_home(C)
    connect(b, a)  # b trusts a; a grants b a/default
    stage_and_publish(a, [Entry.add("md5", md5(i), ["ncmec:a1"]) for i in range(25)])
    stage_and_publish(a, [Entry.add("sha256", sha256(1), ["x:1", "y:2"]), Entry.add("pdq", pdq(2))])
    stage_and_publish(a, [Entry.add("md5", md5(999))], collection="secret")
    return {"a": a, "b": b, "c": c}


def add_token(home: Home, org: str) -> str:
    token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    with home.open_store() as store:
        store.tokens.add(org, token, now="2026-11-26T00:00:00Z")
    return token


@pytest.fixture
async def node(homes, start_node):  # type: ignore[no-untyped-def]
    a, c = homes["a"], homes["c"]
    # c publishes and a pulls it: c's own log, held at a.
    c_service = await start_node(c)
    connect(a, c, url=c_service.url)
    stage_and_publish(c, [Entry.add("md5", md5(i)) for i in range(3)])
    await pull_from(a, c_service.url)
    service = await start_node(a)
    return service


def fold_all(home: Home) -> None:
    """Bring every log's TAXII objects up to date, as the first read of each would."""
    with home.open_store() as store:
        for log in store.logs.served():
            while store.indicators.folded(log.id) < log.size:
                store.indicators.fold_slice(log.id)


def indicator_rows(home: Home) -> tuple[int, int]:
    """(indicator rows, logs with any progress) in a home's store."""
    with home.open_store() as store:
        return (
            store.conn.execute("SELECT count(*) FROM indicators").fetchone()[0],
            store.conn.execute("SELECT count(*) FROM taxii_progress").fetchone()[0],
        )


def taxii_url(service) -> str:  # type: ignore[no-untyped-def]
    return f"http://127.0.0.1:{service.bound_port}/taxii2/"


def every_object(collection: Collection, per_request: int, **filters: object) -> list[dict]:
    found = []
    for envelope in as_pages(collection.get_objects, per_request=per_request, **filters):
        found += envelope.get("objects", [])
    return found


async def test_a_pull_commits_no_indicator_rows(homes, start_node) -> None:  # type: ignore[no-untyped-def]
    """Neither the pull nor the publishes before it make TAXII objects: the table is
    untouched until TAXII is read (store/indicators.py)."""
    a, c = homes["a"], homes["c"]
    c_service = await start_node(c)
    connect(a, c, url=c_service.url)
    stage_and_publish(c, [Entry.add("md5", md5(i)) for i in range(3)])
    assert indicator_rows(a) == (0, 0)
    before = db_snapshot(a.db_path)
    (result,) = await pull_from(a, c_service.url)
    assert (result.status, result.new_size) == ("updated", 1)
    after = db_snapshot(a.db_path)
    assert after["batches"] != before["batches"]  # the pull did store c's log
    assert (after["indicators"], after["taxii_progress"]) == ([], [])


async def test_a_taxii_read_after_a_pull_shows_the_pulled_objects(node, homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, c = homes["a"], homes["c"]
    token = add_token(a, C)
    url = f"{taxii_url(node)}hashfed/collections/{collection_id(f'{C}/default')}/"
    collection = Collection(url, user=C, password=token)
    assert indicator_rows(a) == (0, 0)  # the fixture's publishes and pull made none

    def patterns() -> list[str]:
        return [o["pattern"] for o in every_object(collection, 2)]

    assert await asyncio.to_thread(patterns) == [f"[file:hashes.MD5 = '{md5(i)}']" for i in range(3)]
    # Only the log read was folded in, and a's own logs are still untouched.
    assert indicator_rows(a) == (3, 1)
    # A second pull (c retracts one and adds two) shows at the next read, after the cursor.
    c_service = await start_node(c)
    stage_and_publish(c, [Entry.remove("md5", md5(1)), Entry.add("md5", md5(7)), Entry.add("md5", md5(8))])
    await pull_from(a, c_service.url)
    assert indicator_rows(a) == (3, 1)
    objects = await asyncio.to_thread(lambda: every_object(collection, 2))
    assert [(o["pattern"], o.get("revoked", False)) for o in objects] == [
        (f"[file:hashes.MD5 = '{md5(0)}']", False),
        (f"[file:hashes.MD5 = '{md5(2)}']", False),
        (f"[file:hashes.MD5 = '{md5(1)}']", True),
        (f"[file:hashes.MD5 = '{md5(7)}']", False),
        (f"[file:hashes.MD5 = '{md5(8)}']", False),
    ]
    with a.open_store() as store:
        log = store.logs.get(f"{C}/default")
        assert log is not None and store.indicators.folded(log.id) == log.size == 2


async def test_discovery_api_root_and_collections_per_token(node, homes) -> None:  # type: ignore[no-untyped-def]
    a = homes["a"]
    tokens = {org: add_token(a, org) for org in (B, C)}

    def look(org: str) -> tuple[Server, list[Collection]]:
        server = Server(taxii_url(node), user=org, password=tokens[org])
        root = server.default
        assert root is not None and root.versions == [TAXII]
        return server, root.collections

    server, b_collections = await asyncio.to_thread(look, B)
    assert server.title == f"hashfed {A}"
    assert [c.title for c in b_collections] == [f"{A}/default"]
    (only,) = b_collections
    assert only.id == str(collection_id(f"{A}/default"))
    assert (only.can_read, only.can_write) == (True, False)
    assert only.media_types == ["application/stix+json;version=2.1"]
    # c was granted nothing here, but reads its own log held at a.
    _, c_collections = await asyncio.to_thread(look, C)
    assert [c.title for c in c_collections] == [f"{C}/default"]


async def test_paging_with_next_returns_every_object_once_strictly_valid(node, homes) -> None:  # type: ignore[no-untyped-def]
    token = add_token(homes["a"], B)
    url = f"{taxii_url(node)}hashfed/collections/{collection_id(f'{A}/default')}/"

    def read() -> tuple[list[dict], list[dict]]:
        collection = Collection(url, user=B, password=token)
        paged = every_object(collection, 4)
        whole = collection.get_objects(limit=1000)["objects"]
        return paged, whole

    paged, whole = await asyncio.to_thread(read)
    assert len(paged) == 27 and paged == whole
    assert len({o["id"] for o in paged}) == 27
    for obj in paged:
        parsed = stix2.parse(obj, allow_custom=False)
        assert parsed.type == "indicator"
    by_pattern = {o["pattern"]: o for o in paged}
    first = by_pattern[f"[file:hashes.MD5 = '{md5(0)}']"]
    assert first["labels"] == ["ncmec:a1"]
    assert first["id"] == f"indicator--{indicator_uuid(f'{A}/default', 'md5', md5(0), 0)}"
    assert first["external_references"] == [{"source_name": "hashfed", "external_id": f"{A}/default"}]
    assert by_pattern[f"[file:hashes.'SHA-256' = '{sha256(1)}']"]["labels"] == ["x:1", "y:2"]
    assert "labels" not in by_pattern[f"[file:hashes.PDQ = '{pdq(2)}']"]


async def test_retraction_is_a_revoked_version_after_the_cursor_and_added_after(node, homes) -> None:  # type: ignore[no-untyped-def]
    a = homes["a"]
    token = add_token(a, B)
    url = f"{taxii_url(node)}hashfed/collections/{collection_id(f'{A}/default')}/"
    collection = Collection(url, user=B, password=token)
    first = await asyncio.to_thread(collection.get_manifest)
    last_added = first["objects"][-1]["date_added"]
    stage_and_publish(a, [Entry.remove("md5", md5(3)), Entry.add("md5", md5(4), ["ncmec:a1"])])

    def since() -> dict:
        return collection.get_objects(added_after=last_added)

    newer = await asyncio.to_thread(since)
    # md5(4) was re-added with the same labels: no new version; md5(3) is revoked.
    (revoked,) = newer["objects"]
    assert revoked["pattern"] == f"[file:hashes.MD5 = '{md5(3)}']" and revoked["revoked"] is True
    assert revoked["modified"] > revoked["created"]
    stix2.parse(revoked, allow_custom=False)
    # Re-added after its revocation: a new object (revoked is final in STIX).
    stage_and_publish(a, [Entry.add("md5", md5(3), ["ncmec:a1"])])
    again = await asyncio.to_thread(lambda: collection.get_objects(added_after=last_added))
    (readded,) = again["objects"]
    assert readded["id"] != revoked["id"] and "revoked" not in readded


async def test_filters_and_manifest(node, homes) -> None:  # type: ignore[no-untyped-def]
    token = add_token(homes["a"], B)
    url = f"{taxii_url(node)}hashfed/collections/{collection_id(f'{A}/default')}/"
    collection = Collection(url, user=B, password=token)
    wanted = f"indicator--{indicator_uuid(f'{A}/default', 'md5', md5(7), 0)}"

    def read() -> dict[str, dict]:
        return {
            "by_id": collection.get_objects(id=wanted),
            "by_type": collection.get_objects(type="indicator", limit=1000),
            "other_type": collection.get_objects(type="malware"),
            "manifest": collection.get_manifest(limit=1000),
            "one": collection.get_object(wanted),
            "versions": collection.object_versions(wanted),
            "spec": collection.get_objects(spec_version="2.0"),
            "version_all": collection.get_objects(version="all", limit=1000),
        }

    got = await asyncio.to_thread(read)
    assert [o["id"] for o in got["by_id"]["objects"]] == [wanted]
    assert len(got["by_type"]["objects"]) == 27
    assert got["other_type"] == {"more": False}
    assert got["spec"] == {"more": False}
    assert len(got["version_all"]["objects"]) == 27
    manifest = got["manifest"]["objects"]
    assert [m["id"] for m in manifest] == [o["id"] for o in got["by_type"]["objects"]]
    assert [m["version"] for m in manifest] == [o["modified"] for o in got["by_type"]["objects"]]
    dates = [m["date_added"] for m in manifest]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    assert got["one"]["objects"][0]["id"] == wanted
    assert got["versions"]["versions"] == [got["one"]["objects"][0]["modified"]]


async def test_date_added_headers_and_bearer(node, homes) -> None:  # type: ignore[no-untyped-def]
    token = add_token(homes["a"], B)
    url = f"{taxii_url(node)}hashfed/collections/{collection_id(f'{A}/default')}/objects/?limit=5"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Accept": TAXII, "Authorization": f"Bearer {token}"}) as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"] == TAXII
            body = await reply.json(content_type=None)
            first, last = reply.headers["X-TAXII-Date-Added-First"], reply.headers["X-TAXII-Date-Added-Last"]
    assert body["more"] is True and len(body["objects"]) == 5
    assert first < last


# -- refusals ----------------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


REFUSALS = {
    # name: (path under /taxii2/, headers builder(tokens), status)
    "no credentials": ("", lambda t: {}, 401),
    "wrong token": ("", lambda t: {"Authorization": _basic(B, "A" * 43)}, 401),
    "revoked token": ("", lambda t: {"Authorization": _basic(B, t["revoked"])}, 401),
    "token of another org": ("", lambda t: {"Authorization": _basic(C, t[B])}, 401),
    "malformed basic": ("", lambda t: {"Authorization": "Basic !!!notbase64"}, 401),
    "basic without colon": ("", lambda t: {"Authorization": "Basic " + base64.b64encode(b"x").decode()}, 401),
    "unknown scheme": ("", lambda t: {"Authorization": "Digest x"}, 401),
    "bad accept": ("", lambda t: {"Authorization": _basic(B, t[B]), "Accept": "application/json"}, 406),
    "taxii 2.0 accept": ("", lambda t: {"Authorization": _basic(B, t[B]), "Accept": "application/taxii+json;version=2.0"}, 406),
    "not granted log": ("hashfed/collections/{secret}/objects/", lambda t: {"Authorization": _basic(B, t[B])}, 404),
    "unknown collection": ("hashfed/collections/{unknown}/", lambda t: {"Authorization": _basic(B, t[B])}, 404),
    "bad limit": ("hashfed/collections/{default}/objects/?limit=0", lambda t: {"Authorization": _basic(B, t[B])}, 400),
    "negative limit": ("hashfed/collections/{default}/objects/?limit=-1", lambda t: {"Authorization": _basic(B, t[B])}, 400),
    "bad next": ("hashfed/collections/{default}/objects/?next=abc", lambda t: {"Authorization": _basic(B, t[B])}, 400),
    "bad added_after": ("hashfed/collections/{default}/manifest/?added_after=yesterday", lambda t: {"Authorization": _basic(B, t[B])}, 400),
    "two limits": ("hashfed/collections/{default}/objects/?limit=1&limit=2", lambda t: {"Authorization": _basic(B, t[B])}, 400),
    "bad match id": ("hashfed/collections/{default}/objects/?match[id]=nope", lambda t: {"Authorization": _basic(B, t[B])}, 400),
    "unknown object": ("hashfed/collections/{default}/objects/indicator--{unknown}/", lambda t: {"Authorization": _basic(B, t[B])}, 404),
    "unknown resource": ("nowhere/", lambda t: {"Authorization": _basic(B, t[B])}, 404),
}


@pytest.mark.parametrize("name", list(REFUSALS), ids=list(REFUSALS))
async def test_refusals_are_taxii_errors_and_change_nothing(node, homes, name: str) -> None:  # type: ignore[no-untyped-def]
    a = homes["a"]
    tokens = {B: add_token(a, B), "revoked": add_token(a, B)}
    with a.open_store() as store:
        revoked = [t for t in store.tokens.all() if t.id == 2][0]
        store.tokens.revoke(revoked.id, now="2026-11-26T00:00:01Z")
    path, headers_of, status = REFUSALS[name]
    path = path.format(
        secret=collection_id(f"{A}/secret"),
        default=collection_id(f"{A}/default"),
        unknown=uuid.UUID(int=7),
    )
    headers = {"Accept": TAXII, **headers_of(tokens)}
    fold_all(a)  # the objects are current: a refusal must change nothing at all
    before = db_snapshot(a.db_path)
    async with aiohttp.ClientSession() as session:
        async with session.get(taxii_url(node) + path, headers=headers) as reply:
            body = json.loads(await reply.read())
            assert reply.status == status, body
            assert reply.headers["Content-Type"] == TAXII
            challenges = reply.headers.getall("WWW-Authenticate", [])
    assert body["http_status"] == str(status) and body["title"] and body["description"]
    if status == 401:
        assert challenges == ['Basic realm="hashfed", charset="UTF-8"', 'Bearer realm="hashfed"']
    assert db_snapshot(a.db_path) == before


async def test_writes_are_forbidden_and_unknown_collections_are_not_found(node, homes) -> None:  # type: ignore[no-untyped-def]
    a = homes["a"]
    token = add_token(a, B)
    headers = {"Accept": TAXII, "Authorization": _basic(B, token), "Content-Type": TAXII}
    base = f"{taxii_url(node)}hashfed/collections/"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}{collection_id(f'{A}/default')}/objects/", headers=headers, data=b"{}") as reply:
            assert reply.status == 403
        async with session.post(f"{base}{collection_id(f'{A}/secret')}/objects/", headers=headers, data=b"{}") as reply:
            assert reply.status == 404  # not readable: it does not exist for this caller


async def test_failed_tokens_are_rate_limited_per_address(node, homes) -> None:  # type: ignore[no-untyped-def]
    good = add_token(homes["a"], B)
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(12):
            async with session.get(taxii_url(node), headers={"Accept": TAXII, "Authorization": f"Bearer {'B' * 43}"}) as reply:
                statuses.append(reply.status)
        async with session.get(taxii_url(node), headers={"Accept": TAXII, "Authorization": f"Bearer {good}"}) as reply:
            # While limited, even a good token is not checked: guessing learns nothing.
            assert reply.status == 429 and int(reply.headers["Retry-After"]) >= 1
    assert statuses == [401] * 10 + [429] * 2


async def test_v1_stays_signed_only(node, homes) -> None:  # type: ignore[no-untyped-def]
    token = add_token(homes["a"], B)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"http://127.0.0.1:{node.bound_port}/v1/logs", headers={"Authorization": f"Bearer {token}"}
        ) as reply:
            assert reply.status == 401
            assert reply.headers["Content-Type"] == "application/problem+json"


# path, with a token or not: every TAXII route refuses Expect: 100-continue before anything
# else (nothing here takes a body), so no body is invited, even from a client with no token.
EXPECT = {
    "discovery, no token": ("GET", "", False),
    "objects": ("GET", "hashfed/collections/{default}/objects/", True),
    "post objects": ("POST", "hashfed/collections/{default}/objects/", True),
    "post objects, no token": ("POST", "hashfed/collections/{default}/objects/", False),
    "unknown resource, no token": ("PUT", "nowhere/", False),
}


@pytest.mark.parametrize("name", list(EXPECT), ids=list(EXPECT))
async def test_expect_100_continue_is_refused_without_inviting_a_body(node, homes, name: str) -> None:  # type: ignore[no-untyped-def]
    a = homes["a"]
    method, path, with_token = EXPECT[name]
    token = add_token(a, B)
    path = path.format(default=collection_id(f"{A}/default"))
    auth = f"Authorization: {_basic(B, token)}\r\n" if with_token else ""
    before = db_snapshot(a.db_path)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.bound_port)
    try:
        writer.write(
            (
                f"{method} /taxii2/{path} HTTP/1.1\r\nHost: 127.0.0.1:{node.bound_port}\r\n"
                f"Accept: {TAXII}\r\n{auth}Content-Length: 10\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        # The final answer at once, no "100 Continue".
        assert head.startswith(b"HTTP/1.1 417 "), head
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = json.loads(await asyncio.wait_for(reader.readexactly(length), 5))
    finally:
        writer.close()
    assert body["http_status"] == "417" and b"taxii+json" in head
    assert db_snapshot(a.db_path) == before
