"""One pull round against one peer: what ``hashfed pull``, the ``serve`` scheduler and the
demo all do. It opens its own store connection, so rounds against different peers can run
at once; the outcome is recorded for ``hashfed status``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from keys import Signer
from keys.errors import ConfigError, HashfedError

from .config import NodeConfig
from .puller import LogResult, Progress, Puller
from .store import Store
from .transport import HttpPeer


def timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def pull_peer(
    db_path: str,
    config: NodeConfig,
    signers: tuple[Signer, ...],
    session: aiohttp.ClientSession,
    org: str,
    *,
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
) -> list[LogResult]:
    """Pull every log ``org`` lets us read. Raises for a failure of the whole round
    (unreachable peer, bad listing); a log that fails is a 'failed' result."""
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
        )
        fetcher = HttpPeer(
            session,
            peer.url,
            signers[0],
            clock=clock,
            ca_file=peer.ca_file,
            page_batches=config.pull.page_batches,
        )
        try:
            results = await puller.pull_source(fetcher)
        except HashfedError as exc:
            store.note_pull(org, now=timestamp(clock()), error=str(exc))
            raise
        failed = [r for r in results if r.status == "failed"]
        error = "; ".join(f"{r.log_id}: {r.detail}" for r in failed) or None
        store.note_pull(org, now=timestamp(clock()), error=error)
        return results
