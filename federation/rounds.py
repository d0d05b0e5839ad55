"""One pull round against one peer: what ``hashfed pull``, the ``serve`` scheduler and the
demo all do. It opens its own store connection, so rounds against different peers can run
at once; the outcome is recorded for ``hashfed status``.

Reads of the store run on the event loop (WAL readers never wait); every write runs in a
worker thread (``run_write``), since it may wait for another process's write lock (a long
``hashfed import``) for up to the busy timeout, and ``serve`` must keep answering meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp

from hashfed.keys import Signer
from hashfed.keys.errors import ConfigError, HashfedError
from hashfed.protocol.batch import format_created

from .config import NodeConfig
from .store import Store, run_write
from .transport import HttpPeer

if TYPE_CHECKING:  # the puller records its evidence with ``timestamp``: no import cycle
    from .puller import LogResult, Progress


def timestamp(now: float) -> str:
    """``now`` (Unix seconds) as RFC 3339 UTC, whole seconds, ``Z``: the one form of every
    time hashfed records (pull status, evidence)."""
    return format_created(datetime.fromtimestamp(now, UTC))


async def pull_peer(
    db_path: str,
    config: NodeConfig,
    signers: tuple[Signer, ...],
    session: aiohttp.ClientSession,
    org: str,
    *,
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
    log_lock: Callable[[str], asyncio.Lock] | None = None,
) -> list[LogResult]:
    """Pull every log ``org`` lets us read. Raises for a failure of the whole round
    (unreachable peer, bad listing); a log that fails is a 'failed' result.

    ``log_lock(log_id)`` is passed to the puller: rounds of one node against different
    peers that share it pull a log they both serve one at a time."""
    from .puller import Puller

    with Store(db_path) as store:
        trust = store.trust_store(signers)
        peer = trust.get(org)
        if peer is None or peer.url is None:
            raise ConfigError(f"no peer {org} with a URL; see 'hashfed peer list'")
        puller = Puller(
            store,
            lambda: store.trust_store(signers),
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
            await run_write(store.note_pull, org, now=timestamp(clock()), error=str(exc))
            raise
        failed = [r for r in results if r.status == "failed"]
        error = "; ".join(f"{r.log_id}: {r.detail}" for r in failed) or None
        await run_write(store.note_pull, org, now=timestamp(clock()), error=error)
        return results
