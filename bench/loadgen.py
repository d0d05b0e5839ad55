"""Load generator for the lookup API, run as its own process so its CPU is not the
server's: ``python -m bench.loadgen URL HASHES.json (--concurrency C --requests R | --bulk N)``.

Prints one JSON object: requests/s with p50/p99 latency, or hashes/s for a bulk lookup.
The request count is bounded, so a run always ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import aiohttp
import orjson


async def exact(url: str, hashes: list[list[str]], concurrency: int, requests: int) -> dict:
    latencies: list[float] = []
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for i in counter:
                type_, value = hashes[i % len(hashes)]
                started = time.perf_counter()
                async with session.get(f"{url}/v1/hashes/{type_}/{value}") as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"lookup answered {response.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


async def bulk_active(url: str, hashes: list[list[str]], total: int) -> dict:
    """The bulk check's fast form: {"type": T, "values": [...], "fields": ["active"]}."""
    by_type: dict[str, list[str]] = {}
    for i in range(total):
        type_, value = hashes[i % len(hashes)]
        by_type.setdefault(type_, []).append(value)
    bodies = [
        orjson.dumps({"type": t, "values": values[at : at + 10_000], "fields": ["active"]})
        for t, values in by_type.items()
        for at in range(0, len(values), 10_000)
    ]
    async with aiohttp.ClientSession() as session:
        # The first answer waits for the server to load its index: not part of the figure.
        async with session.post(f"{url}/v1/lookup", data=bodies[0]) as response:
            await response.read()
        started = time.perf_counter()
        found = 0
        for body in bodies:
            async with session.post(
                f"{url}/v1/lookup", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                answer = orjson.loads(await response.read())
                found += sum(1 for r in answer["results"] if r)
        elapsed = time.perf_counter() - started
    if found != total:
        raise RuntimeError(f"bulk check found {found} of {total} active")
    return {"hashes": total, "hashes_per_s": total / elapsed, "seconds": elapsed}


async def bulk(url: str, hashes: list[list[str]], total: int) -> dict:
    wanted = [{"type": t, "value": v} for t, v in (hashes[i % len(hashes)] for i in range(total))]
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        found = 0
        for at in range(0, total, 10_000):
            body = orjson.dumps({"hashes": wanted[at : at + 10_000]})
            async with session.post(
                f"{url}/v1/lookup", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                answer = orjson.loads(await response.read())
                found += sum(1 for r in answer["results"] if r is not None)
        elapsed = time.perf_counter() - started
    if found != total:
        raise RuntimeError(f"bulk lookup found {found} of {total}")
    return {"hashes": total, "hashes_per_s": total / elapsed, "seconds": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("hashes")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--bulk", type=int)
    parser.add_argument("--active", action="store_true", help='with --bulk: "fields": ["active"]')
    args = parser.parse_args()
    with open(args.hashes, encoding="utf-8") as f:
        hashes = json.load(f)
    if args.bulk and args.active:
        result = asyncio.run(bulk_active(args.url, hashes, args.bulk))
    elif args.bulk:
        result = asyncio.run(bulk(args.url, hashes, args.bulk))
    else:
        result = asyncio.run(exact(args.url, hashes, args.concurrency, args.requests))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
