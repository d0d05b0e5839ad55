"""A node whose state is known, for the console and metrics tests: real nodes, real
listeners on 127.0.0.1, real pull rounds.

    a.example  the node under test: 120 own hashes (3 console pages), a local token
    b.example  a peer: published one batch that a.example pulled (md5 B_HASH, labelled),
               then a second batch a.example could not pull (its key for b.example was
               replaced by a wrong one): 1 batch behind, one failed round
    evil.example  a "peer" whose every answer is a 500 problem with <script> and a
               terminal escape in its detail
    evidence   one piece, kept through the store's evidence writer
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from hashfed.federation.home import Home
from hashfed.federation.http.service import NodeService
from hashfed.federation.sync.rounds import pull_peer
from hashfed.keys import Signer
from hashfed.keys.errors import HashfedError
from hashfed.protocol.entries import Entry
from tests.helpers import configure, connect, md5, stage_and_publish, trust

TOKEN = "console test token, long and random enough"
A, B, EVIL = "a.example", "b.example", "evil.example"
B_HASH = md5(0xB0B)
B_LATER = md5(0xB0C)
OWN_COUNT = 120
EVIL_DETAIL = "<script>window.pwned=1</script>\x1b[31mred"
EVIDENCE_DETAIL = "two roots for size 3 of b.example/default"


@dataclass
class World:
    a: Home
    b: Home
    service: NodeService  # a.example's
    peer_service: NodeService  # b.example's

    @property
    def console(self) -> str:
        return f"http://127.0.0.1:{self.service.local_bound_port}"


async def _evil_peer() -> tuple[web.AppRunner, str]:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(
            {"type": "urn:x", "title": "x", "status": 500, "detail": EVIL_DETAIL},
            status=500,
            content_type="application/problem+json",
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def build_world(make_home, start_node, *, sync: bool = False) -> tuple[World, web.AppRunner]:  # type: ignore[no-untyped-def]
    a = configure(make_home(A), server={"local_token": TOKEN}, pull={"jitter_s": 0.0})
    b = make_home(B)
    stage_and_publish(b, [Entry.add("md5", B_HASH, ["ncmec:a1", "b:first"])])
    stage_and_publish(a, [Entry.add("md5", md5(i), ["own:x"]) for i in range(1, OWN_COUNT + 1)])
    # retracted, and kept in the merged list by an opinion on it
    stage_and_publish(
        a,
        [Entry.remove("md5", md5(OWN_COUNT)), Entry.opine("md5", md5(OWN_COUNT), "false_positive")],
    )
    peer_service = await start_node(b)
    connect(a, b, url=peer_service.url)
    evil_runner, evil_url = await _evil_peer()
    trust(a, make_home(EVIL), url=evil_url)

    async with aiohttp.ClientSession() as session:
        await pull_peer(str(a.db_path), a.config, a.signers, session, B)  # batch 1: ok
        stage_and_publish(b, [Entry.add("md5", B_LATER)])
        with a.open_store() as store:  # now a.example cannot verify b.example's log
            store.peers.add(B, url=peer_service.url, vkeys=[Signer.generate(B).vkey()],
                            accept_push=False, ca_file=None, now="2026-11-26T00:00:00Z")
        await pull_peer(str(a.db_path), a.config, a.signers, session, B)  # a failed log
        try:
            await pull_peer(str(a.db_path), a.config, a.signers, session, EVIL)
        except HashfedError:
            pass
    with a.open_store() as store:
        store.evidence.record(
            log_id=f"{B}/default", kind="equivocation", size=3, ours=b"x", theirs=b"y",
            source=peer_service.url, detail=EVIDENCE_DETAIL, now="2026-11-26T01:00:00Z",
        )
    service = await start_node(a, local_port=0, sync=sync)
    return World(a, b, service, peer_service), evil_runner
