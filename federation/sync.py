"""Keeping in sync without cron: while ``serve`` runs, every peer with a URL is pulled on a
schedule. Each peer has its own task and its own store connection, so one peer that is
down, slow or hostile never stalls the others.

A round that succeeds waits ``interval_s`` ± ``jitter_s`` (so a coalition's nodes do not
pull in lockstep); a round that fails waits ``backoff_initial_s``, doubling per consecutive
failure up to ``backoff_max_s``, with the same jitter. Peers added or removed with the CLI
are picked up within ``reconcile_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import aiohttp

from keys.errors import HashfedError

from .config import PullConfig
from .puller import LogResult, Puller, _now_text
from .store import Store
from .transport import HttpPeer

log = logging.getLogger(__name__)


def next_delay(config: PullConfig, failures: int, rng: random.Random) -> float:
    """Seconds until the next round after ``failures`` consecutive failures (0: success)."""
    if failures == 0:
        base = config.interval_s
    else:
        base = min(config.backoff_max_s, config.backoff_initial_s * 2 ** (failures - 1))
    jitter = rng.uniform(-config.jitter_s, config.jitter_s) if config.jitter_s else 0.0
    return max(0.0, base + jitter)


async def pull_peer_once(
    node_home_db: str,
    session: aiohttp.ClientSession,
    org: str,
    *,
    node,  # federation.node.Node  # type: ignore[no-untyped-def]
) -> list[LogResult]:
    """One round against one peer, with a fresh store connection."""
    trust = node.trust()
    peer = trust.get(org)
    if peer is None or peer.url is None:
        return []
    store = Store(node_home_db)
    try:
        puller = Puller(
            store,
            lambda: store.trust_store(node.signers),
            own_org=node.org,
            clock=node.clock,
            page_batches=node.config.pull.page_batches,
        )
        fetcher = HttpPeer(
            session,
            peer.url,
            node.signers[0],
            clock=node.clock,
            ca_file=peer.ca_file,
            page_batches=node.config.pull.page_batches,
        )
        try:
            results = await puller.pull_source(fetcher)
        except HashfedError as exc:
            store.note_pull(org, now=_now_text(node.clock()), error=str(exc))
            raise
        failed = [r for r in results if r.status == "failed"]
        error = "; ".join(f"{r.log_id}: {r.detail}" for r in failed) or None
        store.note_pull(org, now=_now_text(node.clock()), error=error)
        return results
    finally:
        store.close()


class SyncScheduler:
    """Runs one pull loop per peer that has a URL, until ``stop()``."""

    def __init__(
        self,
        node,  # federation.node.Node  # type: ignore[no-untyped-def]
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
            wanted = {o.org for o in self.node.trust() if o.url and o.org != self.node.org}
            for org in wanted - self._tasks.keys():
                self._tasks[org] = asyncio.create_task(self._loop(org), name=f"pull {org}")
            for org in self._tasks.keys() - wanted:
                self._tasks.pop(org).cancel()
            await asyncio.sleep(self.reconcile_s)

    async def _loop(self, org: str) -> None:
        failures = 0
        # Start each peer at a random point of the first interval, not all at once.
        await asyncio.sleep(self.rng.uniform(0, min(self.node.config.pull.jitter_s, 5.0)))
        while True:
            try:
                results = await asyncio.wait_for(
                    pull_peer_once(
                        str(self.node.home.db_path), self.session, org, node=self.node
                    ),
                    timeout=self.node.config.pull.timeout_s,
                )
            except (HashfedError, TimeoutError) as exc:
                failures += 1
                log.warning("pull from %s failed (%d in a row): %s", org, failures, exc)
                if self.on_round:
                    self.on_round(org, None, exc)
            except Exception as exc:  # a bug must not end this peer's loop silently
                failures += 1
                log.exception("pull from %s crashed", org)
                if self.on_round:
                    self.on_round(org, None, exc)
            else:
                failures = 1 if any(r.status == "failed" for r in results) else 0
                for result in results:
                    if result.status == "updated":
                        log.info("%s: %s %d -> %d", org, result.log_id, result.old_size, result.new_size)
                if self.on_round:
                    self.on_round(org, results, None)
            await asyncio.sleep(next_delay(self.node.config.pull, failures, self.rng))
