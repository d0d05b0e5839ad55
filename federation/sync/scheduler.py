"""Keeping in sync without cron: while ``serve`` runs, every peer with a URL is pulled on a
schedule. Each peer has its own task and its own store connection, so one peer that is
down, slow or hostile never stalls the others.

A round that succeeds waits ``interval_s`` ± ``jitter_s`` (so a coalition's nodes do not
pull in lockstep); a round that fails (the peer is unreachable, does not answer within
``timeout_s``, or any of its logs fails) waits ``backoff_initial_s``, doubling per
consecutive failure up to ``backoff_max_s``, with the same jitter. Every outcome is recorded
for ``hashfed status``. Peers added or removed with the CLI are picked up within
``reconcile_s``.

Rounds share one lock per log: a log served by two peers (its origin and a relay) is pulled
from one at a time, so the second finds it up to date instead of failing on pages the first
has just stored. A log's lock exists only while a round holds or waits for it
(``LogLocks``): a peer that lists a million log ids leaves no lock behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import aiohttp

from hashfed.federation.clock import Clock, timestamp
from hashfed.federation.config import NodeConfig, PullConfig
from hashfed.federation.events import emit
from hashfed.federation.home import Home
from hashfed.federation.store import Store, run_write
from hashfed.federation.sync.puller import LogResult
from hashfed.federation.sync.rounds import pull_peer
from hashfed.keys import Signer, TrustStore
from hashfed.keys.errors import HashfedError

log = logging.getLogger(__name__)


# Past this many doublings every backoff is at its cap; bounding the exponent keeps a peer
# that has been down for weeks from overflowing the float (2 ** 1024 does).
_MAX_DOUBLINGS = 64


def next_delay(config: PullConfig, failures: int, rng: random.Random) -> float:
    """Seconds until the next round after ``failures`` consecutive failures (0: success)."""
    if failures == 0:
        base = config.interval_s
    else:
        doublings = min(failures - 1, _MAX_DOUBLINGS)
        base = min(config.backoff_max_s, config.backoff_initial_s * 2.0**doublings)
    jitter = rng.uniform(-config.jitter_s, config.jitter_s) if config.jitter_s else 0.0
    return max(0.0, base + jitter)


def failures_after(failures: int, results: list[LogResult] | None) -> int:
    """Consecutive failures after a round: a round that raised (``results`` is None) or
    had a log fail is one more; a clean round starts over."""
    if results is None or any(r.status == "failed" for r in results):
        return failures + 1
    return 0


def _round_event(
    node: str,
    peer: str,
    results: list[LogResult] | None,
    error: Exception | None,
    failures: int,
    duration_s: float,
) -> None:
    """One ``pull`` event per round (``events``): outcome ok or failed, the entries
    merged, the logs updated and failed, and the error (the round's, or its logs')."""
    done = results or []
    failed = [r for r in done if r.status == "failed"]
    if error is None and failed:
        error_text: str | None = "; ".join(f"{r.log_id}: {r.detail}" for r in failed)
    else:
        error_text = None if error is None else str(error) or type(error).__name__
    emit(
        "pull",
        logging.INFO if failures == 0 else logging.WARNING,
        node=node,
        peer=peer,
        outcome="ok" if failures == 0 else "failed",
        duration_s=round(duration_s, 3),
        entries=sum(r.entries for r in done),
        logs_updated=sum(r.status == "updated" for r in done),
        logs_failed=len(failed),
        failures=failures,
        error=error_text,
    )


class Node(Protocol):
    """What the scheduler needs of a running node (``hashfed.federation.http.node.Node``
    is one): where its store is, its settings and keys, the clock, and the writer
    connection with the lock every write of the process takes."""

    home: Home
    config: NodeConfig
    org: str
    signers: tuple[Signer, ...]
    clock: Clock
    writer: Store
    write_lock: asyncio.Lock

    def trust(self) -> TrustStore: ...


class LogLocks:
    """One ``asyncio.Lock`` per log id, kept only while some round holds or waits for it:
    ``async with locks(log_id): ...``. ``len()`` is how many are kept."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # the lock, its users

    @contextlib.asynccontextmanager
    async def __call__(self, log_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(log_id, (asyncio.Lock(), 0))
        self._locks[log_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[log_id]
            if users == 1:
                del self._locks[log_id]
            else:
                self._locks[log_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class SyncScheduler:
    """Runs one pull loop per peer that has a URL, until ``stop()``."""

    def __init__(
        self,
        node: Node,
        session: aiohttp.ClientSession,
        *,
        reconcile_s: float = 5.0,
        rng: random.Random | None = None,
        on_round: Callable[[str, list[LogResult] | None, Exception | None], None] | None = None,
    ) -> None:
        self.node = node
        self.session = session
        self.reconcile_s = reconcile_s
        self.rng = rng or random.Random()
        self.on_round = on_round
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        # One lock per log id for every round of this node, while a round needs it.
        self.log_locks = LogLocks()

    def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="hashfed-sync")

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        if self._supervisor is not None:
            tasks.append(self._supervisor)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _supervise(self) -> None:
        while True:
            try:
                self._reconcile()
            except Exception:  # a busy or broken store must not end the scheduler silently
                log.exception("sync: cannot read the peers")
            await asyncio.sleep(self.reconcile_s)

    def _reconcile(self) -> None:
        wanted = {p.org for p in self.node.writer.peers.all() if p.url and p.org != self.node.org}
        for org in wanted - self._tasks.keys():
            self._tasks[org] = asyncio.create_task(self._loop(org), name=f"pull {org}")
        for org in self._tasks.keys() - wanted:
            self._tasks.pop(org).cancel()

    async def _round(self, org: str) -> list[LogResult]:
        node = self.node
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the round finishes, and stop() would wait forever.
            async with asyncio.timeout(node.config.pull.timeout_s):
                return await pull_peer(
                    str(node.home.db_path),
                    node.config,
                    node.signers,
                    self.session,
                    org,
                    clock=node.clock,
                    log_lock=self.log_locks,
                )
        except TimeoutError:
            # pull_peer records every other outcome; a round cut off here never got to.
            error = f"no answer within {node.config.pull.timeout_s:g} s"
            async with node.write_lock:
                # Finished even if stop() cancels us meanwhile: node.writer is not to be
                # shared with the next holder of write_lock, or closed, mid-transaction.
                await run_write(node.writer.peers.note_pull, org, now=timestamp(node.clock()), error=error)
            raise

    async def _loop(self, org: str) -> None:
        failures = 0
        # Start each peer at a random point of the first interval, not all at once.
        await asyncio.sleep(self.rng.uniform(0, min(self.node.config.pull.jitter_s, 5.0)))
        while True:
            results: list[LogResult] | None = None
            started = asyncio.get_running_loop().time()
            error: Exception | None = None
            try:
                results = await self._round(org)
            except (HashfedError, TimeoutError) as exc:
                error = exc  # logged once, with the round (``_round_event``)
                if self.on_round:
                    self.on_round(org, None, exc)
            except Exception as exc:  # a bug must not end this peer's loop silently
                error = exc
                log.exception("pull from %s crashed", org)
                if self.on_round:
                    self.on_round(org, None, exc)
            else:
                if self.on_round:
                    self.on_round(org, results, None)
            failures = failures_after(failures, results)
            _round_event(self.node.org, org, results, error, failures,
                         asyncio.get_running_loop().time() - started)
            await asyncio.sleep(next_delay(self.node.config.pull, failures, self.rng))
