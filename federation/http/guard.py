"""Stateful request checks that the pure verifier leaves to the server: nonce replay,
per-key and per-address rate limits. Time is passed in (``now``), so tests need no sleeps.

Nonces: one is recorded only after its request's signature verifies; it is never forgotten
while its ``created`` is inside the window (so an exact replay is always caught), and a key
that sends more than its cap within the window gets 429 rather than an eviction
(PROTOCOL §6). Memory is bounded by keys × cap, and keys are the trust store's.

Nonces live in memory, so a restarted node has forgotten those its previous run saw. The
cache therefore refuses, as a possible replay, every request dated before the node started
(``not_before``): such a request may have been served before the restart. That refusal
lasts one window at most; after it the verifier refuses the same request as too old.

Rate limits by address key an IPv6 client by its /64 (``address_key``): one host usually
holds a whole /64, and could otherwise rotate through it to escape any per-address limit.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass, field


def address_key(addr: str) -> str:
    """The name a client address is limited under: an IPv4 address as it is, an IPv6
    address by its /64 prefix (``2001:db8:1:2::/64``), an IPv4-mapped IPv6 address as
    its IPv4 address (a dual-stack listener sees IPv4 clients that way), and anything
    unparseable as the text it is."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv4Address):
        return addr
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    # A zone (fe80::1%eth0) names the link, not the host: the prefix alone is the key.
    prefix = ipaddress.IPv6Network((int(ip) >> 64 << 64, 64))
    return str(prefix)


class ReplayError(Exception):
    """The nonce was already used by this key inside the window."""


class NonceCapacityError(Exception):
    """The key has used its whole nonce budget for the window: answer 429."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many requests from this key; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class NonceCache:
    """Per key, the nonces seen within the window, with a heap by ``created`` for expiry.

    ``now`` may be fractional; like the verifier (``verify_request`` gets ``int(now)``), the
    cache works in whole seconds: a nonce is dropped only once ``int(now) - created``
    exceeds the window, when a replay of it is refused as stale anyway. Expiry follows
    ``created``, not arrival, so a request dated late in the window cannot pin the nonces
    that arrived after it, and one dated early cannot be dropped before its time.

    ``not_before`` (whole seconds; the node's start) refuses as a replay any request
    dated before it: its nonce may have been recorded by a previous run of the node.
    """

    def __init__(self, *, window_s: int, max_per_key: int, not_before: int | None = None) -> None:
        self.window_s = window_s
        self.max_per_key = max_per_key
        self.not_before = not_before
        self._seen: dict[str, set[str]] = {}
        self._expiry: dict[str, list[tuple[int, str]]] = {}

    def check_and_record(self, key_id: str, nonce: str, created: int, now: float) -> None:
        """Record ``nonce``; ReplayError if this key used it inside the window,
        NonceCapacityError (never an eviction) if the key has no room left."""
        if self.not_before is not None and created < self.not_before:
            # Refused for at most a window after the start: by then the verifier
            # refuses the same ``created`` as too old.
            raise ReplayError(
                f"signed at {created}, before this node started at {self.not_before}: "
                "its nonce may have been used; sign a new request"
            )
        seen = self._seen.setdefault(key_id, set())
        heap = self._expiry.setdefault(key_id, [])
        self._expire(seen, heap, now)
        if nonce in seen:
            raise ReplayError(f"nonce already used by {key_id}")
        if len(seen) >= self.max_per_key:
            # The earliest-dated nonce goes once int(now) > created + window.
            free_at = heap[0][0] + self.window_s + 1
            raise NonceCapacityError(max(1, math.ceil(free_at - now)))
        seen.add(nonce)
        heapq.heappush(heap, (created, nonce))

    def _expire(self, seen: set[str], heap: list[tuple[int, str]], now: float) -> None:
        # A request is accepted while |int(now) - created| <= window, so a nonce can be
        # dropped once created < int(now) - window: a replay of it is refused as too old.
        horizon = math.floor(now) - self.window_s
        while heap and heap[0][0] < horizon:
            _, nonce = heapq.heappop(heap)
            seen.discard(nonce)

    def __len__(self) -> int:
        return sum(len(seen) for seen in self._seen.values())


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """Token buckets by name (a key id or a client address)."""

    rate_per_s: float
    burst: int
    max_names: int = 100_000
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)

    def take(self, name: str, now: float) -> float:
        """Spend one token; returns 0 when allowed, else the seconds until one is free."""
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), stamp=now)
            self._buckets[name] = bucket
            if len(self._buckets) > self.max_names:
                self._buckets.popitem(last=False)  # the least recently used
        else:
            self._buckets.move_to_end(name)
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate_per_s)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_s

    def wait(self, name: str, now: float) -> float:
        """The seconds until ``name`` could spend a token (0: now), spending none: for
        limits that count failures, checked before the attempt and spent after it."""
        bucket = self._buckets.get(name)
        if bucket is None:
            return 0.0
        tokens = min(float(self.burst), bucket.tokens + max(0.0, now - bucket.stamp) * self.rate_per_s)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s
