"""``python -m bench.taxii [--n N] [--page P] [--runs R]``: a TAXII client paging through
one collection of N objects.

A node with one log of N md5 hashes (published through the library, as ``hashfed publish``
does) serves in a child process (``hashfed serve``, 127.0.0.1); ``taxii2-client`` pages
through the collection with ``next``, P objects a page, timing each page.

Reported first, once: the catch-up, the first request's time (``limit=1``). Publishing
makes no TAXII objects (``store/indicators.py``): the first read of the log folds its N
entries in, in slices, and pays for it. Then, as the median of R runs: objects per second
end to end (client parsing included), and the time of the first and the last page, which
keyset paging must keep equal (a page is one index seek, wherever it starts).
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
from taxii2client.v21 import Collection

from hashfed.federation.home import init_home, open_home
from hashfed.federation.http.taxii import collection_id
from hashfed.federation.publish import publish
from hashfed.keys import Signer
from hashfed.protocol.entries import Entry

ORG, READER = "publisher.example", "reader.example"
NOW = datetime(2026, 11, 26, 2, 19, 41, tzinfo=UTC)


def make_node(folder: Path, n: int) -> str:
    """The publisher's home with an n-hash log, a reader peer granted it, and its token."""
    init_home(folder, ORG)
    home = open_home(folder)
    reader_key = Signer.from_seed(READER, bytes(32)).vkey()
    with home.open_store() as store:
        with store.transaction():
            store.staging.stage("default", [Entry.add("md5", f"{i:032x}", ("bench:x",)) for i in range(n)])
        publish(store, home.signers, now=NOW)
        store.peers.add(READER, url=None, vkeys=[reader_key], accept_push=False, ca_file=None, now="2026-11-26T00:00:00Z")
        store.peers.grant(READER, f"{ORG}/default")
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        store.tokens.add(READER, token, now="2026-11-26T00:00:00Z")
    return token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/v1/node", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"the node at {url} did not come up")


def the_collection(url: str, token: str) -> Collection:
    return Collection(
        f"{url}/taxii2/hashfed/collections/{collection_id(f'{ORG}/default')}/", user=READER, password=token
    )


def catch_up(url: str, token: str) -> float:
    """The first read's time: it folds the whole log in before answering."""
    started = time.perf_counter()
    envelope = the_collection(url, token).get_objects(limit=1)
    assert len(envelope["objects"]) == 1
    return time.perf_counter() - started


def one_run(url: str, token: str, page: int) -> tuple[int, float, list[float]]:
    collection = the_collection(url, token)
    times, count, cursor = [], 0, None
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        envelope = collection.get_objects(limit=page, **({"next": cursor} if cursor else {}))
        times.append(time.perf_counter() - t0)
        count += len(envelope.get("objects", []))
        if not envelope.get("more"):
            break
        cursor = envelope["next"]
    return count, time.perf_counter() - start, times


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.taxii")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "node"
        t0 = time.perf_counter()
        token = make_node(folder, args.n)
        print(f"setup: {args.n:,} hashes published in {time.perf_counter() - t0:.1f} s", flush=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "hashfed.federation.cli", "--home", str(folder), "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "HASHFED_HOME": str(folder)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(url)
            first = catch_up(url, token)
            print(
                f"catch-up: first request {first:.2f} s ({args.n:,} entries folded in,"
                f" {first / args.n * 1e6:.1f} µs an entry)",
                flush=True,
            )
            rates, firsts, lasts = [], [], []
            for run in range(args.runs):
                count, total, times = one_run(url, token, args.page)
                assert count == args.n, f"read {count} objects, expected {args.n}"
                rates.append(count / total)
                firsts.append(times[0])
                lasts.append(times[-2] if len(times) > 1 and args.n % args.page == 0 else times[-1])
                print(
                    f"run {run + 1}: {count:,} objects in {total:.2f} s = {count / total:,.0f} objects/s;"
                    f" first page {times[0] * 1000:.1f} ms, last full page {lasts[-1] * 1000:.1f} ms,"
                    f" median page {statistics.median(times) * 1000:.1f} ms ({len(times)} requests)",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"catch-up (first request, once): {first:.2f} s; median of {args.runs}:"
        f" {statistics.median(rates):,.0f} objects/s; first page {statistics.median(firsts) * 1000:.1f} ms, last page {statistics.median(lasts) * 1000:.1f} ms"
        f" ({args.page} objects a page)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
