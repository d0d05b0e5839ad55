"""One process of the crowd's pullers: ``python -m bench.crowd_pull SPEC.json``.

The spec names the server's org and, per puller, a home (its own key, the server added as
a peer with its URL and CA file) and the loopback address to connect from. The process
prints ``ready`` once everything is loaded, waits for ``go`` on standard input, runs every
pull at once (``pull_peer``, the round ``hashfed pull`` runs, each with its own session
bound to its own address, so the server sees one client per address and per key), then
prints one JSON object: per puller its start and finish (wall clock, comparable across
processes), its results or error, the latency of each batch page, and a digest of its
merged list (taken after every pull has finished, so outside the timings).

Page latency is timed as the puller sees it: from sending ``GET .../batches`` to the last
byte of the page read, which ``HttpPeer`` does inside ``session.request``'s context. The
session handed to ``pull_peer`` is a stand-in that times exactly those requests and passes
everything to a real ``aiohttp.ClientSession`` (``HttpPeer`` uses only ``request``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from hashfed.federation.home import open_home
from hashfed.federation.sync.rounds import pull_peer
from hashfed.keys.errors import HashfedError


def merged_digest(db_path: Path) -> tuple[str, int]:
    """SHA-256 over every row of the merged list (each contribution with its log's org and
    collection, never a node-local id), in key order; and how many hashes are active."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        rows = conn.execute(
            "SELECT c.type, c.value, c.active, c.labels, c.opinion, l.org, l.collection"
            " FROM contributions AS c JOIN logs AS l ON l.id = c.log"
            " ORDER BY c.type, c.value, l.org, l.collection"
        )
        for row in rows:
            digest.update("\t".join(map(str, row)).encode() + b"\n")
        (active,) = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM contributions WHERE active GROUP BY type, value)"
        ).fetchone()
    finally:
        conn.close()
    return digest.hexdigest(), active


class _TimedRequest:
    def __init__(self, inner: Any, timed: bool, sink: list[float]) -> None:
        self.inner = inner
        self.timed = timed
        self.sink = sink
        self.started = 0.0

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self.started = time.perf_counter()
        return await self.inner.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.inner.__aexit__(kind, exc, tb)
        if self.timed and kind is None:
            self.sink.append(time.perf_counter() - self.started)


class TimedSession:
    """A ``ClientSession`` stand-in recording the latency of every batch-page GET."""

    def __init__(self, session: aiohttp.ClientSession, sink: list[float]) -> None:
        self.session = session
        self.sink = sink

    def request(self, method: str, url: Any, **kwargs: Any) -> _TimedRequest:
        timed = method == "GET" and str(url.path).endswith("/batches")
        return _TimedRequest(self.session.request(method, url, **kwargs), timed, self.sink)


async def pull_one(home_dir: Path, address: str, server_org: str) -> dict:
    home = open_home(home_dir)
    pages: list[float] = []
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    timeout = aiohttp.ClientTimeout(total=home.config.pull.timeout_s, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.time()
        error = None
        results = []
        try:
            timed: aiohttp.ClientSession = TimedSession(session, pages)  # type: ignore[assignment]
            results = await pull_peer(
                str(home.db_path), home.config, home.signers, timed, server_org
            )
        except HashfedError as exc:
            error = str(exc)
        finished = time.time()
    return {
        "org": home.org,
        "address": address,
        "started": started,
        "finished": finished,
        "error": error,
        "results": [
            {"log": r.log_id, "status": r.status, "entries": r.entries, "detail": r.detail}
            for r in results
        ],
        "page_latencies_s": pages,
    }


async def run(spec: dict) -> list[dict]:
    pulls = await asyncio.gather(
        *(pull_one(Path(p["home"]), p["address"], spec["server_org"]) for p in spec["pullers"])
    )
    for pull, p in zip(pulls, spec["pullers"], strict=True):
        pull["digest"], pull["active"] = merged_digest(open_home(Path(p["home"])).db_path)
    return list(pulls)


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    print(json.dumps(asyncio.run(run(spec))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
