"""``python -m bench.matching [--pdq N] [--md5 M] [--data uniform|clustered] [--runs R]``:
matching at real sizes, over HTTP on a real node's local listener.

One home is filled through the library's own publish path (N PDQ hashes, M MD5s), then
``hashfed serve --local-port`` runs in a child process and a client in this process asks:

    load        seconds from the server's start to its first PDQ answer (the PDQ index
                built from the store) and to its first exact answer (the exact index,
                built beside it), and the node's RSS once both are loaded
    single      sequential PDQ searches at D = 31, one a request: p50 and p99 latency
    bulk pdq    POST /v1/lookup {"type": "pdq", "values": [...1,000], "distance": 31}
    bulk exact  POST /v1/lookup {"type": "md5", "values": [...10,000], "fields": ["active"]}

Queries: half near a stored hash (up to 40 bits away; near a family centre when
clustered), one in a hundred near a very common value (clustered), the rest random. Every
case runs ``--runs`` times; medians are reported. ``--home DIR`` keeps (and reuses) the
filled home, so a second run skips the fill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import numpy as np

from bench.pdq_index import make_data, make_queries
from hashfed.federation.home import init_home, open_home
from hashfed.federation.merged.pdq_index import words_to_hex
from hashfed.federation.publish import publish
from hashfed.protocol.entries import Entry

ORG = "bench.example"
STAGE_CHUNK = 200_000


def fill(home_dir: Path, pdq: list[str], md5: list[str]) -> float:
    """Stage and publish everything through the library (the path ``hashfed import`` and
    ``publish`` take, minus CSV parsing); returns seconds."""
    started = time.perf_counter()
    init_home(home_dir, ORG)
    home = open_home(home_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    with home.open_store() as store:
        for kind, values in (("pdq", pdq), ("md5", md5)):
            for at in range(0, len(values), STAGE_CHUNK):
                with store.transaction():
                    store.staging.stage(
                        "default", [Entry("add", kind, v, (), None) for v in values[at : at + STAGE_CHUNK]]
                    )
                publish(store, home.signers, now=now)
    return time.perf_counter() - started


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def post(session: aiohttp.ClientSession, url: str, body: dict) -> dict:
    async with session.post(f"{url}/v1/lookup", json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"lookup answered {response.status}: {await response.text()}")
        return await response.json()


async def measure(url: str, pid: int, queries: list[str], md5: list[str], runs: int) -> dict:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        while True:  # the first answer waits for the index to load
            try:
                await post(session, url, {"type": "pdq", "values": queries[:1], "distance": 31})
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.2)
        load_s = time.perf_counter() - started
        # The exact index loads beside the PDQ index; its first answer waits for it.
        await post(session, url, {"type": "md5", "values": md5[:1], "fields": ["active"]})
        load_exact_s = time.perf_counter() - started
        result: dict = {
            "load_s": load_s,
            "load_exact_s": load_exact_s,
            "rss_loaded_bytes": rss_of(pid),
        }
        singles, bulks, exacts = [], [], []
        matches = 0
        for _ in range(runs):
            latencies = []
            for value in queries[:2000]:
                t = time.perf_counter()
                async with session.get(f"{url}/v1/hashes/pdq/{value}?distance=31") as response:
                    await response.read()
                latencies.append(time.perf_counter() - t)
            latencies.sort()
            singles.append((statistics.median(latencies), latencies[int(len(latencies) * 0.99)]))
            t = time.perf_counter()
            for at in range(0, len(queries), 1000):
                answer = await post(
                    session, url, {"type": "pdq", "values": queries[at : at + 1000], "distance": 31}
                )
                matches += sum(len(r) for r in answer["results"])
            bulks.append(len(queries) / (time.perf_counter() - t))
            wanted = (md5 * (100_000 // max(1, len(md5)) + 1))[:100_000]
            t = time.perf_counter()
            for at in range(0, len(wanted), 10_000):
                answer = await post(
                    session, url,
                    {"type": "md5", "values": wanted[at : at + 10_000], "fields": ["active"]},
                )
                if not all(answer["results"]):
                    raise RuntimeError("an md5 that was published is not active")
            exacts.append(len(wanted) / (time.perf_counter() - t))
        result.update(
            single_p50_ms=statistics.median(s[0] for s in singles) * 1000,
            single_p99_ms=statistics.median(s[1] for s in singles) * 1000,
            bulk_pdq_per_s=statistics.median(bulks),
            bulk_exact_per_s=statistics.median(exacts),
            mean_matches=matches / (runs * len(queries)),
            rss_after_bytes=rss_of(pid),
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.matching", description=__doc__.splitlines()[0])
    parser.add_argument("--pdq", type=int, default=1_000_000)
    parser.add_argument("--md5", type=int, default=1_000_000)
    parser.add_argument("--data", choices=["uniform", "clustered"], default="uniform")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--home", type=Path, help="keep the filled home here (reused when present)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2026)
    words, centres = make_data(rng, args.pdq, args.data)
    common = words[:5] if args.data == "uniform" else centres[-5:]
    queries = words_to_hex(make_queries(rng, centres, common, args.queries))
    md5 = [f"{int(x):032x}" for x in rng.integers(0, 2**63, args.md5, dtype=np.int64)]
    with tempfile.TemporaryDirectory(prefix="hashfed-bench-") as tmp:
        home = args.home or Path(tmp) / "home"
        fill_s = None
        if not (home / "hashfed.db").exists():
            fill_s = fill(home, words_to_hex(words), md5)
        del words
        server = subprocess.Popen(
            [sys.executable, "-m", "hashfed.federation.cli", "--home", str(home), "serve",
             "--host", "127.0.0.1", "--port", "0", "--local-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert server.stdout is not None
            server.stdout.readline()
            match = re.search(r"lookup API at (\S+)", server.stdout.readline())
            if match is None:
                raise RuntimeError("the server did not say where its lookup API is")
            result = asyncio.run(measure(match.group(1), server.pid, queries, md5, args.runs))
        finally:
            server.terminate()
            server.wait(timeout=60)
    result.update(pdq=args.pdq, md5=args.md5, data=args.data, fill_s=fill_s, runs=args.runs)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
