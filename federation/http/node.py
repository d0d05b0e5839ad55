"""A running node's shared state: its home (config, keys), its store connections, the trust
store, and the request guards.

The trust store is re-read whenever the database changed under us (``PRAGMA data_version``),
so a ``hashfed peer add``/``grant``/``revoke`` run from another process takes effect on the
next request, with no restart and no polling thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable

import numpy as np
from aiohttp import web

from hashfed.federation.home import Home
from hashfed.federation.http.guard import NonceCache, RateLimiter
from hashfed.federation.merged.exact import ExactIndex
from hashfed.keys import TrustStore
from hashfed.protocol.httpsig import authority_of
from hashfed.protocol.records import Record

Clock = Callable[[], float]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# A wildcard is where a socket listens, not a name a client can send in its Host header.
_WILDCARD = {"0.0.0.0", "::", ""}


class Node:
    def __init__(self, home: Home, *, clock: Clock = time.time) -> None:
        self.home = home
        self.config = home.config
        self.org = home.org
        self.signers = home.signers
        self.clock = clock
        self.store = home.open_store()  # the event loop's connection: reads
        self.matching = Matching(home)
        self.writer = home.open_store()  # commits, run in a worker thread under write_lock
        self.write_lock = asyncio.Lock()
        # Logs with a push in progress: one push at a time per log (push.py), so a pusher
        # cannot make the node hold several large bodies of one log at once.
        self.pushing: dict[str, str] = {}  # org -> the log it is pushing (push.py)
        limits = self.config.limits
        # Nonces are in memory: what a previous run of this node saw is gone, so requests
        # dated before this run started are refused as possible replays (guard.py).
        self.started_s = math.floor(clock())
        self.nonces = NonceCache(
            window_s=limits.signature_window_s,
            max_per_key=limits.max_nonces_per_key,
            not_before=self.started_s,
        )
        self.key_limiter = RateLimiter(limits.requests_per_second_per_key, limits.burst_per_key)
        self.address_limiter = RateLimiter(
            limits.requests_per_second_per_address, limits.burst_per_address
        )
        self._public: frozenset[str] = frozenset()
        self._listeners: frozenset[str] = frozenset()
        self.add_public_urls(self.config.server.public_urls)

    def trust(self) -> TrustStore:
        """The trust store now (cached by the store until the database changes)."""
        return self.store.peers.trust_store(self.signers)

    @property
    def authorities(self) -> frozenset[str]:
        """The @authority values a signed request may name (PROTOCOL §6): those of the
        public URLs when any are configured, else those of the listeners."""
        return self._public or self._listeners

    def add_public_urls(self, urls: Iterable[str]) -> None:
        """URLs peers reach this node at (config ``server.public_urls``, ``serve
        --public-url``); once there is one, listener addresses are no longer accepted."""
        self._public = self._public | frozenset(authority_of(url) for url in urls)

    def listening_on(self, host: str, port: int, *, tls: bool) -> None:
        """Record a bound listener (PROTOCOL §6). Its authorities count only while no
        public URL is configured: its host:port (never a wildcard's, which no client can
        name), and 127.0.0.1:port and localhost:port when it listens on loopback or a
        wildcard."""
        scheme = "https" if tls else "http"
        hosts = set() if host in _WILDCARD else {host}
        if host in _LOOPBACK or host in _WILDCARD:
            hosts |= {"127.0.0.1", "localhost"}
        bound = {authority_of(f"{scheme}://{_bracket(h)}:{port}") for h in hosts}
        self._listeners = self._listeners | frozenset(bound)

    def close(self) -> None:
        self.store.close()
        self.writer.close()
        self.matching.close()


class Matching:
    """The node's in-memory indexes of the merged list for its matching pipeline: PDQ near
    matches (``merged.pdq``) and bulk exact membership (``merged.exact``), each on a store
    connection of its own and used in a worker thread one call at a time, so that neither
    the first load (seconds at ten million values) nor a search holds up the event loop.
    Each answers as soon as it is loaded, and each call first folds in what was committed
    since the last one."""

    def __init__(self, home: Home) -> None:
        self._store = home.open_store()  # the PDQ index, and the records it answers with
        try:
            self._exact_store = home.open_store()
        except BaseException:
            self._store.close()
            raise
        self._exact = ExactIndex()
        self._lock = asyncio.Lock()
        self._exact_lock = asyncio.Lock()

    async def load(self) -> None:
        """Load both indexes from the store (``serve`` starts this in the background): the
        PDQ index first, with the cores to itself (loaded side by side with the exact index,
        ten million PDQ values took 12.4 s instead of about 7.5), then the exact index.
        Each answers as soon as it is loaded; a check asked before then waits for it."""
        async with self._exact_lock:
            async with self._lock:
                await asyncio.to_thread(self._store.merged.pdq.catch_up, self._store.conn)
            await asyncio.to_thread(self._exact.catch_up, self._exact_store.conn)

    async def near(self, values: list[str], max_distance: int) -> list[list[tuple[int, Record]]]:
        async with self._lock:
            return await asyncio.to_thread(self._store.merged.near_pdq_many, values, max_distance)

    async def states(self, wanted: list[tuple[str, list[str]]]) -> list[np.ndarray]:
        """For each (type, values): ACTIVE, INACTIVE or UNKNOWN per value (``merged.exact``)."""

        def run() -> list[np.ndarray]:
            self._exact.catch_up(self._exact_store.conn)
            return [self._exact.states(type_, values) for type_, values in wanted]

        async with self._exact_lock:
            return await asyncio.to_thread(run)

    def close(self) -> None:
        self._store.close()
        self._exact_store.close()


NODE = web.AppKey("node", Node)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
