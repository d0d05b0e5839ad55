"""The server's stateful request checks (federation.guard), with time passed in.

The nonce cache must never forget a nonce while a replay of it would still pass the
signature's time check (``|int(now) - created| <= window``, as ``verify_request`` does it),
whatever order requests arrive in and however the clock's fractions fall; past its cap
it refuses (429) rather than evicts.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hashfed.federation.config import LimitsConfig
from hashfed.federation.http.guard import (
    NonceCache,
    NonceCapacityError,
    RateLimiter,
    ReplayError,
    address_key,
)

WINDOW = 300
T0 = 1_800_000_000
KEY = "b.example+0a1b2c3d"
OTHER = "c.example+0a1b2c3d"


def _nonce(n: int) -> str:
    return f"nonce{n:016d}"


def _inside(created: int, now: float) -> bool:
    """Whether the verifier would accept ``created`` at ``now`` (PROTOCOL §6)."""
    return abs(int(now) - created) <= WINDOW


# -- nonces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset",
    [-WINDOW, -WINDOW + 0.999, -1, -0.5, 0, 0.5, 1, WINDOW - 1, WINDOW, WINDOW + 0.25, WINDOW + 0.999],
)
@pytest.mark.parametrize("created_offset", [-WINDOW, -17, 0, 17, WINDOW], ids=lambda o: f"created{o:+}")
def test_replay_is_caught_at_every_moment_of_the_window(created_offset: int, offset: float) -> None:
    cache = NonceCache(window_s=WINDOW, max_per_key=10)
    created = T0 + created_offset
    cache.check_and_record(KEY, _nonce(1), created, T0)
    now = created + offset
    if _inside(created, now):
        with pytest.raises(ReplayError):
            cache.check_and_record(KEY, _nonce(1), created, now)


def test_nonce_is_forgotten_only_after_the_window() -> None:
    cache = NonceCache(window_s=WINDOW, max_per_key=10)
    cache.check_and_record(KEY, _nonce(1), T0, T0)
    cache.check_and_record(KEY, _nonce(2), T0, T0 + WINDOW + 0.999)  # int(now) - T0 == WINDOW
    assert len(cache) == 2
    cache.check_and_record(KEY, _nonce(3), T0 + WINDOW + 1, T0 + WINDOW + 1)  # now past it
    assert len(cache) == 1


def test_late_dated_nonce_does_not_pin_or_shorten_others() -> None:
    """Expiry follows ``created``, not arrival order."""
    cache = NonceCache(window_s=WINDOW, max_per_key=10)
    cache.check_and_record(KEY, _nonce(1), T0 + WINDOW, T0)  # dated at the end of the window
    cache.check_and_record(KEY, _nonce(2), T0 - WINDOW, T0)  # dated at its start
    # One second later the early one is gone, the late one is kept.
    cache.check_and_record(KEY, _nonce(3), T0 + 1, T0 + 1)
    assert len(cache) == 2
    with pytest.raises(ReplayError):
        cache.check_and_record(KEY, _nonce(1), T0 + WINDOW, T0 + 2 * WINDOW)


def test_nonces_are_per_key() -> None:
    cache = NonceCache(window_s=WINDOW, max_per_key=10)
    cache.check_and_record(KEY, _nonce(1), T0, T0)
    cache.check_and_record(OTHER, _nonce(1), T0, T0)
    with pytest.raises(ReplayError):
        cache.check_and_record(OTHER, _nonce(1), T0, T0)
    with pytest.raises(ReplayError):
        cache.check_and_record(KEY, _nonce(1), T0, T0)


def test_past_the_cap_is_429_never_an_eviction() -> None:
    cache = NonceCache(window_s=WINDOW, max_per_key=3)
    for n, created in enumerate((T0 - 10, T0 - 100, T0)):
        cache.check_and_record(KEY, _nonce(n), created, T0)
    with pytest.raises(NonceCapacityError) as refused:
        cache.check_and_record(KEY, _nonce(9), T0, T0 + 0.5)
    # The earliest-dated nonce (T0 - 100) goes once int(now) > T0 - 100 + WINDOW.
    assert refused.value.retry_after_s == math.ceil(T0 - 100 + WINDOW + 1 - (T0 + 0.5)) == 201
    # Nothing was evicted: every nonce is still refused as a replay...
    for n, created in enumerate((T0 - 10, T0 - 100, T0)):
        with pytest.raises(ReplayError):
            cache.check_and_record(KEY, _nonce(n), created, T0 + 1)
    # ... another key is unaffected, and after Retry-After there is room again.
    cache.check_and_record(OTHER, _nonce(9), T0, T0)
    with pytest.raises(NonceCapacityError):
        cache.check_and_record(KEY, _nonce(9), T0 + 200, T0 + 200)
    cache.check_and_record(KEY, _nonce(9), T0 + 201, T0 + 201)
    assert len(cache) == 4


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=400, allow_nan=False),  # time passes
            st.integers(min_value=-WINDOW, max_value=WINDOW),  # created, relative to now
        ),
        min_size=1,
        max_size=40,
    ),
    st.floats(min_value=0, max_value=0.999),
)
def test_never_forgets_a_nonce_a_verifier_would_still_accept(steps, fraction) -> None:  # type: ignore[no-untyped-def]
    cache = NonceCache(window_s=WINDOW, max_per_key=10_000)
    now = T0 + fraction
    seen: list[tuple[str, int]] = []
    for n, (elapsed, offset) in enumerate(steps):
        now += elapsed
        created = int(now) + offset
        cache.check_and_record(KEY, _nonce(n), created, now)
        seen.append((_nonce(n), created))
        for nonce, was_created in seen:
            if _inside(was_created, now):
                with pytest.raises(ReplayError):
                    cache.check_and_record(KEY, nonce, was_created, now)
    assert len(cache) <= len(seen)


# -- nonces across a restart ---------------------------------------------------------------

START = T0 + 1000  # the node's start, whole seconds: ``not_before``

# A restarted node has forgotten its previous run's nonces: anything dated before its start
# may have been served already. (case: created, now)
BEFORE_START = {
    "dated-one-second-before-start": (START - 1, START),
    "dated-window-before-start": (START - WINDOW, START),
    "dated-before-start-late-in-window": (START - 1, START + WINDOW - 1 + 0.999),
}


@pytest.mark.parametrize(("created", "now"), list(BEFORE_START.values()), ids=list(BEFORE_START))
def test_request_dated_before_the_start_is_refused_as_a_replay(created: int, now: float) -> None:
    cache = NonceCache(window_s=WINDOW, max_per_key=10, not_before=START)
    cache.check_and_record(KEY, _nonce(1), START, START)
    with pytest.raises(ReplayError, match="before this node started"):
        cache.check_and_record(KEY, _nonce(2), created, now)
    assert len(cache) == 1  # nothing recorded
    # The refusal is not a nonce: the same nonce, signed anew, is served.
    cache.check_and_record(KEY, _nonce(2), START, now)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=-2 * WINDOW, max_value=2 * WINDOW),
    st.floats(min_value=0, max_value=2 * WINDOW + 1, allow_nan=False),
)
def test_not_before_refuses_exactly_the_dates_before_the_start(created_offset: int, elapsed: float) -> None:
    """At any moment after the start, of the requests the verifier lets through (inside
    the window), those dated before the start are refused and all others are served."""
    created, now = START + created_offset, START + elapsed
    assume(_inside(created, now))
    cache = NonceCache(window_s=WINDOW, max_per_key=10, not_before=START)
    if created < START:
        with pytest.raises(ReplayError):
            cache.check_and_record(KEY, _nonce(1), created, now)
        assert len(cache) == 0
    else:
        cache.check_and_record(KEY, _nonce(1), created, now)
        with pytest.raises(ReplayError):
            cache.check_and_record(KEY, _nonce(1), created, now)


def test_without_not_before_old_dates_are_served() -> None:
    cache = NonceCache(window_s=WINDOW, max_per_key=10)
    cache.check_and_record(KEY, _nonce(1), START - WINDOW, START)
    assert cache.not_before is None and len(cache) == 1


# -- address keys ----------------------------------------------------------------------------

ADDRESS_KEYS = {
    "ipv4-as-is": ("192.0.2.7", "192.0.2.7"),
    "ipv4-loopback": ("127.0.0.1", "127.0.0.1"),
    "ipv6-by-its-64": ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    "ipv6-same-64-same-key": ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    "ipv6-next-64-another-key": ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    "ipv6-upper-case": ("2001:DB8:1:2::ABCD", "2001:db8:1:2::/64"),
    "ipv6-uncompressed": ("2001:0db8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2::/64"),
    "ipv6-loopback": ("::1", "::/64"),
    "ipv6-zone-dropped": ("fe80::1%eth0", "fe80::/64"),
    # A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; keyed by the /64 they
    # would all share ::/64 (one bucket for the whole IPv4 internet).
    "ipv4-mapped-is-ipv4": ("::ffff:192.0.2.7", "192.0.2.7"),
    "ipv4-mapped-differ": ("::ffff:192.0.2.8", "192.0.2.8"),
    "unparseable-as-is": ("not an address", "not an address"),
    "unknown-as-is": ("?", "?"),
    "empty-as-is": ("", ""),
    "ipv4-leading-zero-as-is": ("192.0.2.07", "192.0.2.07"),
    "ipv6-with-port-as-is": ("[2001:db8::1]:80", "[2001:db8::1]:80"),
}


@pytest.mark.parametrize(("address", "key"), list(ADDRESS_KEYS.values()), ids=list(ADDRESS_KEYS))
def test_address_key(address: str, key: str) -> None:
    assert address_key(address) == key


@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=0, max_value=2**64 - 1))
def test_every_address_of_a_64_has_one_key(prefix: int, host: int) -> None:
    import ipaddress

    address = ipaddress.IPv6Address(prefix << 64 | host)
    if address.ipv4_mapped is None:
        assert address_key(str(address)) == str(ipaddress.IPv6Network((prefix << 64, 64)))


def test_rotating_through_a_64_does_not_escape_the_address_limit() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=2)
    waits = [limiter.take(address_key(f"2001:db8:1:2::{n:x}"), T0) for n in range(1, 5)]
    assert waits[:2] == [0.0, 0.0] and all(w > 0 for w in waits[2:])
    assert limiter.take(address_key("2001:db8:1:3::1"), T0) == 0.0  # another /64


# -- rate limits -----------------------------------------------------------------------------


def test_bucket_allows_the_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=3)
    assert [limiter.take("k", T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k", T0) == pytest.approx(0.5)
    assert limiter.take("k", T0 + 0.25) == pytest.approx(0.25)
    assert limiter.take("k", T0 + 0.5) == 0.0
    assert limiter.take("k", T0 + 0.5) == pytest.approx(0.5)
    # A long pause refills to the burst, never beyond.
    assert [limiter.take("k", T0 + 100) for _ in range(4)][-1] == pytest.approx(0.5)


def test_buckets_are_independent_and_bounded() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, max_names=2)
    assert limiter.take("a", T0) == 0.0
    assert limiter.take("a", T0) > 0
    assert limiter.take("b", T0) == 0.0
    assert limiter.take("b", T0) > 0
    assert limiter.take("a", T0) > 0  # "a" is now the most recently used
    assert limiter.take("c", T0) == 0.0  # evicts "b", the least recently used
    assert limiter.take("a", T0) > 0


def test_a_clock_going_backwards_does_not_mint_tokens() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1)
    assert limiter.take("k", T0) == 0.0
    assert limiter.take("k", T0 - 50) > 0


def test_default_address_backstop_is_ten_times_a_key() -> None:
    limits = LimitsConfig()
    assert limits.requests_per_second_per_address >= 10 * limits.requests_per_second_per_key
    assert limits.burst_per_address >= 10 * limits.burst_per_key
