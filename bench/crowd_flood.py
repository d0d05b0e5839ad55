"""The crowd's flooder: ``python -m bench.crowd_flood URL CA LOG_ID VICTIM_KEY_ID
[--address A] [--concurrency C]``.

From one loopback address, as fast as it can, over keep-alive TLS connections (fewer
than the server's connections-per-address cap), it sends requests the server must refuse,
in turn:

    unsigned     GET a batch page with no signature
    unknown-key  GET a batch page signed by a key the server has never seen
    forged       GET a batch page whose ``keyid`` names an honest peer's key, signed by
                 another key (a forger spending its victim's rate budget would starve it)
    push         POST a page of batches to the server's own log, forged the same way

It prints ``ready``, starts on ``go`` and stops on ``stop`` (standard input), then prints
one JSON object: how many requests of each kind got each status (or failed, by exception
name), and the request rate.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import time

import aiohttp
from yarl import URL

from hashfed.federation.sync.transport import make_ssl_context
from hashfed.keys import Signer
from hashfed.protocol.httpsig import RequestTarget, authority_of, new_nonce, sign_request

KINDS = ("unsigned", "unknown-key", "forged", "push")


class Flood:
    def __init__(self, url: str, log_id: str, victim_key_id: str) -> None:
        self.url = url.rstrip("/")
        self.authority = authority_of(url)
        self.log_id = log_id
        self.victim_key_id = victim_key_id
        self.signer = Signer.generate("flood.example")
        self.counts: collections.Counter[str] = collections.Counter()
        self.push_body = b'{"flood":true}\n' * 64

    def request(self, n: int) -> tuple[str, str, URL, dict[str, str], bytes | None]:
        kind = KINDS[n % len(KINDS)]
        if kind == "push":
            method, query, body = "POST", "", self.push_body
        else:
            method, query, body = "GET", "start=0&end=4", None
        path = f"/v1/logs/{self.log_id}/batches"
        url = URL(f"{self.url}{path}?{query}" if query else f"{self.url}{path}", encoded=True)
        if kind == "unsigned":
            return kind, method, url, {}, body
        headers = sign_request(
            self.signer,
            RequestTarget(method, self.authority, path, query),
            body,
            created=int(time.time()),
            nonce=new_nonce(os.urandom(16)),
        )
        if kind in ("forged", "push"):
            ours = f'keyid="{self.signer.key_id}"'
            headers["Signature-Input"] = headers["Signature-Input"].replace(
                ours, f'keyid="{self.victim_key_id}"'
            )
        return kind, method, url, headers, body

    async def worker(
        self, session: aiohttp.ClientSession, stop: asyncio.Event, first: int, step: int
    ) -> None:
        n = first
        while not stop.is_set():
            kind, method, url, headers, body = self.request(n)
            n += step
            try:
                async with session.request(
                    method, url, headers=headers, data=body, allow_redirects=False
                ) as response:
                    await response.read()
                    self.counts[f"{kind} {response.status}"] += 1
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.counts[f"{kind} {type(exc).__name__}"] += 1


async def run(args: argparse.Namespace) -> dict:
    flood = Flood(args.url, args.log_id, args.victim_key_id)
    connector = aiohttp.TCPConnector(
        local_addr=(args.address, 0), limit=args.concurrency, ssl=make_ssl_context(args.ca)
    )
    stop = asyncio.Event()
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        print("ready", flush=True)
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            raise SystemExit("flood: expected 'go'")
        started = time.perf_counter()
        workers = [
            asyncio.create_task(flood.worker(session, stop, i, args.concurrency))
            for i in range(args.concurrency)
        ]
        await asyncio.to_thread(sys.stdin.readline)  # 'stop', or end of input
        stop.set()
        await asyncio.gather(*workers)
        seconds = time.perf_counter() - started
    total = sum(flood.counts.values())
    return {
        "address": args.address,
        "requests": total,
        "seconds": seconds,
        "requests_per_s": total / seconds,
        "counts": dict(sorted(flood.counts.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crowd_flood")
    parser.add_argument("url")
    parser.add_argument("ca")
    parser.add_argument("log_id")
    parser.add_argument("victim_key_id")
    parser.add_argument("--address", default="127.0.0.99")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
