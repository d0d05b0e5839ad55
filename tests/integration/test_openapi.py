"""The OpenAPI documents (``federation.http.openapi``) kept true against a real node: every
route the running apps register is documented and every documented path is a route, the
documents are what ``GET /v1/openapi.json`` serves, and real answers of every operation (a
success and errors) validate against them (``tests.openapi_check``)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import aiohttp
import pytest

from hashfed.federation.home import Home
from hashfed.federation.http.body import FALLBACK
from hashfed.federation.http.openapi import OPENAPI_PATH, local_document, peer_document
from hashfed.federation.http.service import NodeService
from hashfed.federation.sync.transport import HttpPeer
from hashfed.protocol.entries import Entry
from tests.helpers import Reply, configure, md5, pdq, send, signed, stage_and_publish, trust
from tests.openapi_check import check_answer, check_problem

HOST, READER, STRANGER, NGO = "acme.example", "reader.example", "stranger.example", "ngo.example"
TOKEN = "local-secret"
LOG = f"/v1/logs/{HOST}/default"
NGO_LOG = f"/v1/logs/{NGO}/default"


def _documented(doc: dict) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method != "parameters"
    }


def _registered(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(method, path template) of every route; HEAD is implied by GET, console pages
    (HTML for people) are not part of the API, TAXII 2.1 (``/taxii2/``) is specified
    by OASIS, not by these documents, and the last route answers what no route serves."""
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" or (route.name or "").startswith("console-") or route.name == FALLBACK:
            continue
        if route.resource is not None and route.resource.canonical.startswith("/taxii2"):
            continue
        found.add((route.method, route.resource.canonical))
    return found


@dataclass
class World:
    host: Home
    reader: Home
    stranger: Home
    ngo: Home
    service: NodeService
    session: aiohttp.ClientSession

    @property
    def local(self) -> str:
        return f"http://127.0.0.1:{self.service.local_bound_port}"


@pytest.fixture
async def world(make_home, start_node) -> World:  # type: ignore[no-untyped-def]
    host = configure(make_home(HOST), server={"local_token": TOKEN}, limits={"burst_per_key": 40})
    reader, stranger, ngo = make_home(READER), make_home(STRANGER), make_home(NGO)
    stage_and_publish(host, [Entry.add("md5", md5(n), ["acme:x"]) for n in range(3)])
    stage_and_publish(host, [Entry.add("pdq", pdq(1), ["acme:pdq"])])
    stage_and_publish(ngo, [Entry.add("md5", md5(9))])
    trust(host, reader)
    trust(host, stranger)
    with host.open_store() as store:
        store.peers.grant(READER, f"{HOST}/default")
        store.peers.add(
            NGO, url=None, vkeys=[s.vkey() for s in ngo.signers], accept_push=True,
            ca_file=None, now="2026-11-26T00:00:00Z",
        )
    service = await start_node(host, local_port=0)
    async with aiohttp.ClientSession() as session:
        yield World(host, reader, stranger, ngo, service, session)


async def test_every_route_is_documented_and_every_path_is_a_route(world: World) -> None:
    peer_app = world.service._runner.app  # type: ignore[union-attr]
    local_app = world.service._local_runner.app  # type: ignore[union-attr]
    assert _registered(peer_app) == _documented(peer_document())
    assert _registered(local_app) == _documented(local_document())
    # and the console is the only thing left out
    assert all(is_console_route_name(r.name) or r.name == FALLBACK for r in local_app.router.routes()
               if r.method != "HEAD" and (r.method, r.resource.canonical) not in _documented(local_document()))


def is_console_route_name(name: str | None) -> bool:
    return (name or "").startswith("console-")


async def test_the_listeners_serve_their_documents(world: World) -> None:
    reply = await signed(world.session, world.service.url, world.reader.signers[0], "GET", OPENAPI_PATH)
    assert reply.status == 200 and reply.json() == peer_document()
    reply = await send(world.session, world.local, "GET", OPENAPI_PATH,
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200 and reply.json() == local_document()


# (who signs: "reader" | "stranger" | "ngo" | None, method, template, path, query, body, headers, status)
PEER_CASES = {
    "node": (None, "GET", "/v1/node", "/v1/node", "", None, {}, 200),
    "node-post": ("reader", "POST", "/v1/node", "/v1/node", "", b"", {}, 405),
    "openapi": ("reader", "GET", OPENAPI_PATH, OPENAPI_PATH, "", None, {}, 200),
    "openapi-unsigned": (None, "GET", OPENAPI_PATH, OPENAPI_PATH, "", None, {}, 401),
    "logs": ("reader", "GET", "/v1/logs", "/v1/logs", "", None, {}, 200),
    "logs-unknown-param": ("reader", "GET", "/v1/logs", "/v1/logs", "x=1", None, {}, 400),
    "logs-expect": ("reader", "GET", "/v1/logs", "/v1/logs", "", None, {"Expect": "100-continue"}, 417),
    "checkpoint": ("reader", "GET", "/v1/logs/{org}/{collection}/checkpoint", LOG + "/checkpoint", "", None, {}, 200),
    "checkpoint-not-reader": ("stranger", "GET", "/v1/logs/{org}/{collection}/checkpoint", LOG + "/checkpoint", "", None, {}, 403),
    "checkpoint-unknown": ("reader", "GET", "/v1/logs/{org}/{collection}/checkpoint", "/v1/logs/x.example/default/checkpoint", "", None, {}, 404),
    "batches": ("reader", "GET", "/v1/logs/{org}/{collection}/batches", LOG + "/batches", "start=0", None, {}, 200),
    "batches-range": ("reader", "GET", "/v1/logs/{org}/{collection}/batches", LOG + "/batches", "start=9", None, {}, 400),
    "batches-unsigned": (None, "GET", "/v1/logs/{org}/{collection}/batches", LOG + "/batches", "start=0", None, {}, 401),
    "inclusion": ("reader", "GET", "/v1/logs/{org}/{collection}/proof/inclusion", LOG + "/proof/inclusion", "index=0&size=2", None, {}, 200),
    "inclusion-range": ("reader", "GET", "/v1/logs/{org}/{collection}/proof/inclusion", LOG + "/proof/inclusion", "index=2&size=2", None, {}, 400),
    "consistency": ("reader", "GET", "/v1/logs/{org}/{collection}/proof/consistency", LOG + "/proof/consistency", "old=1&new=2", None, {}, 200),
    "consistency-from-0": ("reader", "GET", "/v1/logs/{org}/{collection}/proof/consistency", LOG + "/proof/consistency", "old=0&new=2", None, {}, 400),
    "push-not-org": ("reader", "POST", "/v1/logs/{org}/{collection}/batches", NGO_LOG + "/batches", "", b"x\n", {}, 403),
    "push-empty": ("ngo", "POST", "/v1/logs/{org}/{collection}/batches", NGO_LOG + "/batches", "", b"", {}, 400),
}


@pytest.mark.parametrize("case", list(PEER_CASES.values()), ids=list(PEER_CASES))
async def test_peer_answers_validate(world: World, case: tuple) -> None:
    who, method, template, path, query, body, headers, status = case
    homes = {"reader": world.reader, "stranger": world.stranger, "ngo": world.ngo}
    if who is None:
        reply = await send(world.session, world.service.url, method, path, query=query, body=body, headers=headers)
    else:
        reply = await signed(world.session, world.service.url, homes[who].signers[0], method, path,
                             query=query, body=body, headers=headers)
    _check(peer_document(), method, template, reply, status)


async def test_push_answers_validate(world: World) -> None:
    """201, 409, 422 and 429 of a push, from real pushes."""
    with world.ngo.open_store() as store:
        log = store.logs.get(f"{NGO}/default")
        assert log is not None and log.checkpoint is not None
        lines = list(store.logs.iter_batches(log, 0, log.size))
        note = log.checkpoint
    template = "/v1/logs/{org}/{collection}/batches"
    page = b"".join(line + b"\n" for line in lines)
    good = {"Hashfed-Checkpoint": base64.b64encode(note).decode()}
    signer = world.ngo.signers[0]
    url = world.service.url
    bad_note = note.replace(b"\n\n", b"\n\n\xe2\x80\x94 x ", 1)
    forged = {"Hashfed-Checkpoint": base64.b64encode(bad_note).decode()}
    reply = await signed(world.session, url, signer, "POST", NGO_LOG + "/batches", body=page, headers=forged)
    _check(peer_document(), "POST", template, reply, reply.status)
    assert reply.status in (400, 422), reply
    async with aiohttp.ClientSession() as session:
        peer = HttpPeer(session, url, signer, clock=world.service.node.clock)
        assert await peer.push(f"{NGO}/default", lines, note, []) == len(lines)
    reply = await signed(world.session, url, signer, "POST", NGO_LOG + "/batches", body=page, headers=good)
    _check(peer_document(), "POST", template, reply, 409)
    # 201, by hand, from a second log of the NGO
    stage_and_publish(world.ngo, [Entry.add("md5", md5(10))], collection="more")
    with world.ngo.open_store() as store:
        log = store.logs.get(f"{NGO}/more")
        assert log is not None and log.checkpoint is not None
        more = b"".join(line + b"\n" for line in store.logs.iter_batches(log, 0, log.size))
        headers = {"Hashfed-Checkpoint": base64.b64encode(log.checkpoint).decode()}
    reply = await signed(world.session, url, signer, "POST", f"/v1/logs/{NGO}/more/batches", body=more, headers=headers)
    _check(peer_document(), "POST", template, reply, 201)


async def test_rate_limited_answer_validates(world: World) -> None:
    signer = world.reader.signers[0]
    for _ in range(100):
        reply = await signed(world.session, world.service.url, signer, "GET", "/v1/logs")
        if reply.status == 429:
            break
    _check(peer_document(), "GET", "/v1/logs", reply, 429)


BEARER = {"Authorization": f"Bearer {TOKEN}"}
HASH = "/v1/hashes/{type}/{value}"
LOCAL_CASES = {
    "openapi": ("GET", OPENAPI_PATH, OPENAPI_PATH, "", None, BEARER, 200),
    "openapi-no-token": ("GET", OPENAPI_PATH, OPENAPI_PATH, "", None, {}, 401),
    "hash": ("GET", HASH, f"/v1/hashes/md5/{md5(1)}", "", None, BEARER, 200),
    "hash-unknown": ("GET", HASH, f"/v1/hashes/md5/{md5(99)}", "", None, BEARER, 404),
    "hash-malformed": ("GET", HASH, "/v1/hashes/md5/xyz", "", None, BEARER, 400),
    "hash-near": ("GET", HASH, f"/v1/hashes/pdq/{pdq(1)}", "distance=8", None, BEARER, 200),
    "hash-no-token": ("GET", HASH, f"/v1/hashes/md5/{md5(1)}", "", None, {}, 401),
    "lookup": ("POST", "/v1/lookup", "/v1/lookup", "",
               b'{"hashes": [{"type": "md5", "value": "%s"}, {"type": "md5", "value": "%s"}]}' % (md5(1).encode(), md5(99).encode()),
               BEARER, 200),
    "lookup-active": ("POST", "/v1/lookup", "/v1/lookup", "",
                      b'{"type": "md5", "values": ["%s"], "fields": ["active"]}' % md5(1).encode(), BEARER, 200),
    "lookup-near": ("POST", "/v1/lookup", "/v1/lookup", "",
                    b'{"hashes": [{"type": "pdq", "value": "%s"}], "distance": 4}' % pdq(1).encode(), BEARER, 200),
    "lookup-malformed": ("POST", "/v1/lookup", "/v1/lookup", "", b"[]", BEARER, 400),
    "lookup-too-many": ("POST", "/v1/lookup", "/v1/lookup", "",
                        b'{"type": "md5", "values": [%s]}' % b",".join([b'"a"'] * 10_001), BEARER, 413),
    "changes": ("GET", "/v1/changes", "/v1/changes", "limit=2", None, BEARER, 200),
    "changes-bad-cursor": ("GET", "/v1/changes", "/v1/changes", "after=x", None, BEARER, 400),
    "opinions": ("POST", "/v1/opinions", "/v1/opinions", "",
                 b'{"opinions": [{"type": "md5", "value": "%s", "opinion": "true_positive"}]}' % md5(2).encode(),
                 BEARER, 201),
    "opinions-empty": ("POST", "/v1/opinions", "/v1/opinions", "", b'{"opinions": []}', BEARER, 400),
    "metrics": ("GET", "/metrics", "/metrics", "", None, BEARER, 200),
    "metrics-no-token": ("GET", "/metrics", "/metrics", "", None, {}, 401),
    "metrics-post": ("POST", "/metrics", "/metrics", "", b"", BEARER, 405),
}


@pytest.mark.parametrize("case", list(LOCAL_CASES.values()), ids=list(LOCAL_CASES))
async def test_local_answers_validate(world: World, case: tuple) -> None:
    method, template, path, query, body, headers, status = case
    reply = await send(world.session, world.local, method, path, query=query, body=body, headers=headers)
    _check(local_document(), method, template, reply, status)


def _check(doc: dict, method: str, template: str, reply: Reply, status: int) -> None:
    assert reply.status == status, reply
    if method.lower() not in doc["paths"][template]:
        # A method the path does not have: 405, a problem like any other error.
        assert status == 405 and "Allow" in reply.headers
        check_problem(doc, reply.headers.get("Content-Type", ""), reply.body)
        return
    check_answer(doc, method, template, reply.status, reply.headers.get("Content-Type", ""), reply.body)


@pytest.mark.parametrize("document", [peer_document, local_document], ids=["peer", "local"])
def test_every_link_names_an_operation_and_its_parameters(document) -> None:  # type: ignore[no-untyped-def]
    doc = document()
    operations = {}
    for item in doc["paths"].values():
        shared = [p["name"] for p in item.get("parameters", [])]
        for method, operation in item.items():
            if method != "parameters":
                names = shared + [p["name"] for p in operation.get("parameters", [])]
                operations[operation["operationId"]] = set(names)
    links = [
        link
        for item in doc["paths"].values()
        for method, operation in item.items() if method != "parameters"
        for answer in operation["responses"].values()
        for link in answer.get("links", {}).values()
    ]
    assert links
    for link in links:
        assert set(link["parameters"]) <= operations[link["operationId"]], link
