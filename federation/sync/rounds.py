"""One pull round against one peer: what ``hashfed pull``, the ``serve`` scheduler and the
demo all do. It opens its own store connection, so rounds against different peers can run
at once; the outcome is recorded for ``hashfed status``.

Reads of the store run on the event loop (WAL readers never wait); every write runs in a
worker thread (``run_write``), since it may wait for another process's write lock (a long
``hashfed import``) for up to the busy timeout, and ``serve`` must keep answering meanwhile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import aiohttp

from hashfed.federation.clock import timestamp
from hashfed.federation.config import NodeConfig
from hashfed.federation.store import Store, run_write
from hashfed.federation.sync.puller import LogResult, Progress, Puller
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys import Signer
from hashfed.keys.errors import ConfigError, HashfedError


async def pull_peer(
    db_path: str,
    config: NodeConfig,
    signers: tuple[Signer, ...],
    session: aiohttp.ClientSession,
    org: str,
    *,
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
    log_lock: Callable[[str], contextlib.AbstractAsyncContextManager[None]] | None = None,
) -> list[LogResult]:
    """Pull every log ``org`` lets us read. Raises for a failure of the whole round
    (unreachable peer, bad listing); a log that fails is a 'failed' result.

    ``log_lock(log_id)`` is passed to the puller: rounds of one node against different
    peers that share it pull a log they both serve one at a time."""
    with Store(db_path) as store:
        peer = store.peers.get(org)
        if peer is None or peer.url is None:
            raise ConfigError(f"no peer {org} with a URL; see 'hashfed peer list'")
        puller = Puller(
            store,
            lambda: store.peers.trust_store(signers),
            own_org=config.org,
            clock=clock,
            page_batches=config.pull.page_batches,
            progress=progress,
            log_lock=log_lock,
        )
        try:
            fetcher = HttpPeer(  # inside: a CA file gone since 'peer add' is this round's error
                session,
                peer.url,
                signers[0],
                clock=clock,
                ca_file=peer.ca_file,
                page_batches=config.pull.page_batches,
            )
            results = await puller.pull_source(fetcher)
        except HashfedError as exc:
            await run_write(store.peers.note_pull, org, now=timestamp(clock()), error=str(exc))
            raise
        if puller.listed:
            await run_write(store.peers.note_listing, org, puller.listed, now=timestamp(clock()))
        failed = [r for r in results if r.status == "failed"]
        error = "; ".join(f"{r.log_id}: {r.detail}" for r in failed) or None
        await run_write(store.peers.note_pull, org, now=timestamp(clock()), error=error)
        return results
