"""The server's stateful request checks (federation.guard), with time passed in.

The nonce cache must never forget a nonce while a replay of it would still pass the
signature's time check (``|int(now) - created| <= window``, as ``verify_request`` does it),
whatever order requests arrive in and however the clock's fractions fall; past its cap
it refuses (429) rather than evicts.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.config import LimitsConfig
from federation.guard import NonceCache, NonceCapacityError, RateLimiter, ReplayError

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
    cache.forget_key(KEY)
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
