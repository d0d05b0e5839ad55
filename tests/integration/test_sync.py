"""Keeping in sync while serving (federation.sync): each peer on its own schedule, one
that is down or silent never holding up another, backoff that grows to its cap.

The schedule is set the way an operator sets it, in the home's ``config.toml`` ``[pull]``
section, with intervals of tens of milliseconds; every wait is on a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from hashfed.federation.config import PullConfig
from hashfed.federation.home import Home
from hashfed.federation.http.service import NodeService
from hashfed.federation.store import PeerStatus
from hashfed.federation.sync.puller import LogResult
from hashfed.federation.sync.scheduler import SyncScheduler, failures_after, next_delay
from hashfed.keys import Signer
from hashfed.protocol.entries import Entry
from tests.helpers import (
    configure,
    connect,
    md5,
    merged_list,
    pull_from,
    stage_and_publish,
    trust,
    wait_until,
)

MakeHome = Callable[[str], Home]
StartNode = Callable[..., Awaitable[NodeService]]

A, B = "alpha.example", "beta.example"
FAST = {
    "interval_s": 0.05,
    "jitter_s": 0.0,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.2,
    "timeout_s": 2.0,
}


# -- the schedule, as pure functions ---------------------------------------------------------------

CONFIG = PullConfig(interval_s=300, jitter_s=0, backoff_initial_s=10, backoff_max_s=3600)

DELAYS = [
    # (id, consecutive failures, seconds)
    ("success waits the interval", 0, 300.0),
    ("first failure", 1, 10.0),
    ("second failure doubles", 2, 20.0),
    ("third", 3, 40.0),
    ("ninth", 9, 2560.0),
    ("tenth reaches the cap", 10, 3600.0),
    ("down for weeks", 2000, 3600.0),
    ("down for ever", 10**9, 3600.0),
]


@pytest.mark.parametrize(
    ("failures", "expected"), [c[1:] for c in DELAYS], ids=[c[0] for c in DELAYS]
)
def test_next_delay_backs_off_to_its_cap(failures: int, expected: float) -> None:
    assert next_delay(CONFIG, failures, random.Random(0)) == expected


def test_backoff_grows_monotonically_until_the_cap() -> None:
    delays = [next_delay(CONFIG, n, random.Random(0)) for n in range(1, 40)]
    assert delays == sorted(delays)
    assert delays[0] == CONFIG.backoff_initial_s and delays[-1] == CONFIG.backoff_max_s


@pytest.mark.parametrize("failures", [0, 1, 4, 50])
def test_jitter_stays_within_its_bounds_and_never_below_zero(failures: int) -> None:
    config = PullConfig(interval_s=20, jitter_s=30, backoff_initial_s=1, backoff_max_s=100)
    base = next_delay(config.model_copy(update={"jitter_s": 0.0}), failures, random.Random(0))
    rng = random.Random(1)
    delays = [next_delay(config, failures, rng) for _ in range(500)]
    assert all(max(0.0, base - 30) <= d <= base + 30 for d in delays)
    assert min(delays) >= 0.0
    assert len(set(delays)) > 100  # it does vary: nodes do not pull in lockstep


def _result(status: str) -> LogResult:
    return LogResult("a.example/default", status, 0, 0)


FAILURES = [
    # (id, failures before, results of the round (None: it raised), failures after)
    ("clean round resets", 5, [_result("updated"), _result("up to date")], 0),
    ("clean first round", 0, [], 0),
    ("round that raised", 0, None, 1),
    ("raised again", 3, None, 4),
    ("a log failed", 0, [_result("updated"), _result("failed")], 1),
    ("a log keeps failing", 2, [_result("failed")], 3),
    ("skipped and behind are fine", 2, [_result("skipped"), _result("source behind")], 0),
]


@pytest.mark.parametrize(
    ("before", "results", "after"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_failures_after_a_round(before: int, results: list[LogResult] | None, after: int) -> None:
    assert failures_after(before, results) == after


# -- the scheduler, with real nodes ---------------------------------------------------------------


def closed_port_url() -> str:
    """The URL of a port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[tuple[str, list[asyncio.StreamWriter]]]:
    """A listener that accepts connections and never answers; yields (URL, connections)."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        for writer in connections:
            writer.close()
        await server.wait_closed()


def add_unreachable_peer(home: Home, org: str, url: str) -> None:
    with home.open_store() as store:
        store.peers.add(
            org,
            url=url,
            vkeys=[Signer.generate(org).vkey()],
            accept_push=False,
            ca_file=None,
            now="2026-11-26T00:00:00Z",
        )


def peer_status(home: Home) -> dict[str, PeerStatus]:
    with home.open_store() as store:
        return store.peers.status()


async def test_serve_pulls_each_peer_on_its_schedule(
    make_home: MakeHome, start_node: StartNode
) -> None:
    a = make_home(A)
    b = configure(make_home(B), pull=FAST)
    assert b.config.pull.interval_s == 0.05
    stage_and_publish(a, [Entry.add("md5", md5(1), ["x:1"])])
    service_a = await start_node(a)
    connect(b, a, url=service_a.url)
    dead = closed_port_url()
    add_unreachable_peer(b, "dead.example", dead)

    await start_node(b, sync=True)

    await wait_until(
        lambda: merged_list(b) == merged_list(a) != [], what="the first scheduled pull"
    )
    # Later publishes arrive by themselves, round after round.
    for n in (2, 3):
        stage_and_publish(a, [Entry.add("md5", md5(n))])
        await wait_until(lambda: merged_list(b) == merged_list(a), what=f"publish {n} to arrive")
    assert len(merged_list(b)) == 3

    # The dead peer fails again and again, at its backoff, and says so in the status;
    # meanwhile alpha's rounds succeed.
    await wait_until(
        lambda: getattr(peer_status(b).get("dead.example"), "failures", 0) >= 3,
        what="the dead peer to be retried",
    )
    status = peer_status(b)
    assert status["dead.example"].last_success is None
    assert dead in status["dead.example"].last_error
    assert status[A].last_error is None and status[A].failures == 0
    assert status[A].last_success is not None


async def test_a_silent_peer_never_stalls_another(
    make_home: MakeHome, start_node: StartNode
) -> None:
    a = make_home(A)
    # A longer deadline than FAST: alpha's rounds must finish well inside it, even on a
    # loaded machine, for "still hanging" to hold.
    b = configure(make_home(B), pull={**FAST, "timeout_s": 4.0})
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    service_a = await start_node(a)
    connect(b, a, url=service_a.url)
    service_b = await start_node(b)  # the listener only; the scheduler is ours to watch
    rounds: list[tuple[str, list[LogResult] | None, Exception | None]] = []

    async with black_hole() as (silent_url, connections), aiohttp.ClientSession() as session:
        add_unreachable_peer(b, "silent.example", silent_url)
        scheduler = SyncScheduler(
            service_b.node,
            session,
            reconcile_s=0.05,
            rng=random.Random(0),
            on_round=lambda org, results, exc: rounds.append((org, results, exc)),
        )
        scheduler.start()
        try:
            await wait_until(lambda: connections, what="the silent peer to be asked")
            stage_and_publish(a, [Entry.add("md5", md5(2))])

            def alpha_done_twice() -> bool:
                # Both in one condition: the round is recorded after its commit.
                done = sum(1 for org, results, _ in rounds if org == A and results is not None)
                return done >= 2 and merged_list(b) == merged_list(a) and len(merged_list(b)) == 2

            await wait_until(
                alpha_done_twice, what="alpha's publishes to arrive while the silent peer hangs"
            )
            assert [r for r in rounds if r[0] == "silent.example"] == []  # still hanging

            # The silent peer's round is cut off at timeout_s, counted and recorded.
            await wait_until(
                lambda: any(org == "silent.example" for org, _, _ in rounds),
                timeout_s=10.0,
                what="the silent peer's round to time out",
            )
            (_, results, exc), *_ = [r for r in rounds if r[0] == "silent.example"]
            assert results is None and isinstance(exc, TimeoutError)
            status = peer_status(b)["silent.example"]
            assert status.last_error == "no answer within 4 s"
            assert status.failures == 1 and status.last_success is None
        finally:
            await scheduler.stop()
    assert pull_tasks() == set()


def pull_tasks() -> set[str]:
    return {
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith("pull ") and not t.done()
    }


async def test_peers_added_and_removed_are_picked_up(
    make_home: MakeHome, start_node: StartNode
) -> None:
    a = make_home(A)
    b = configure(make_home(B), pull=FAST)
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    service_a = await start_node(a)
    service_b = await start_node(b)
    async with aiohttp.ClientSession() as session:
        scheduler = SyncScheduler(service_b.node, session, reconcile_s=0.02, rng=random.Random(0))
        scheduler.start()
        try:
            assert pull_tasks() == set()
            connect(b, a, url=service_a.url)  # as `hashfed peer add` would, from outside
            await wait_until(lambda: merged_list(b) == merged_list(a) != [], what="new peer pulled")
            assert pull_tasks() == {f"pull {A}"}

            with b.open_store() as store:
                store.peers.remove(A)
            await wait_until(lambda: pull_tasks() == set(), what="removed peer's loop to end")
        finally:
            await scheduler.stop()
    assert pull_tasks() == set()


async def test_a_log_served_by_its_origin_and_a_relay_never_fails_a_round(
    make_home: MakeHome, start_node: StartNode
) -> None:
    """gamma pulls alpha's log from alpha and from beta, which relays it, both on a fast
    schedule: the rounds race for the same new batches. The node's lock per log makes the
    later one find the log up to date; no round fails, so neither peer backs off."""
    a, b = make_home(A), make_home(B)
    c = configure(make_home("gamma.example"), pull=FAST)
    log_a = f"{A}/default"
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    service_a, service_b = await start_node(a), await start_node(b)
    connect(b, a, url=service_a.url)
    connect(c, a, url=service_a.url)
    trust(c, b, url=service_b.url)
    trust(b, c)
    with b.open_store() as store:
        store.peers.grant(c.org, log_a)
    await pull_from(b, service_a.url)
    service_c = await start_node(c)
    rounds: list[tuple[str, list[LogResult] | None, Exception | None]] = []

    def delivered(org: str, size: int) -> bool:
        return any(
            o == org and any(r.log_id == log_a and r.new_size >= size for r in results or ())
            for o, results, _ in rounds
        )

    async with aiohttp.ClientSession() as session:
        scheduler = SyncScheduler(
            service_c.node,
            session,
            reconcile_s=0.05,
            rng=random.Random(0),
            on_round=lambda org, results, exc: rounds.append((org, results, exc)),
        )
        scheduler.start()
        try:
            for n in (2, 3, 4):
                stage_and_publish(a, [Entry.add("md5", md5(n))])
                await pull_from(b, service_a.url)  # the relay has it too: both race for it
                await wait_until(
                    lambda n=n: delivered(A, n) and delivered(B, n) and merged_list(c) == merged_list(a),
                    what=f"batch {n} from both peers",
                )
        finally:
            await scheduler.stop()
    assert {org for org, _, _ in rounds} == {A, B}
    assert [(org, exc) for org, _, exc in rounds if exc is not None] == []
    assert [r for _, results, _ in rounds for r in results or () if r.status == "failed"] == []
    status = peer_status(c)
    assert [(status[o].failures, status[o].last_error) for o in (A, B)] == [(0, None), (0, None)]
