"""Shared helpers for tests: publish, connect two nodes, pull, read a merged list."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

import aiohttp

from federation.home import Home
from federation.publisher import publish
from federation.puller import LogResult, Puller
from federation.store import Store
from federation.transport import HttpPeer
from protocol.entries import Entry

FIXED_NOW = datetime(2026, 11, 26, 2, 19, 41, tzinfo=UTC)


def md5(n: int) -> str:
    """A distinct, valid md5 value per integer."""
    return f"{n:032x}"


def sha256(n: int) -> str:
    return f"{n:064x}"


def pdq(n: int) -> str:
    return f"{n:064x}"


def stage_and_publish(home: Home, entries: Iterable[Entry], *, collection: str = "default") -> None:
    with home.open_store() as store:
        with store.transaction():
            store.stage(collection, list(entries))
        publish(store, home.signers, now=FIXED_NOW)


def connect(reader: Home, publisher: Home, *, url: str | None = None, grant: Iterable[str] = ("default",)) -> None:
    """Make ``reader`` trust ``publisher`` (and pull from ``url``), and ``publisher`` grant
    ``reader`` its collections (adding ``reader`` as a peer of ``publisher``)."""
    with reader.open_store() as store:
        store.add_peer(
            publisher.org,
            url=url,
            vkeys=[s.vkey() for s in publisher.signers],
            accept_push=False,
            ca_file=None,
            now="2026-11-26T00:00:00Z",
        )
    with publisher.open_store() as store:
        existing = store.trust_store().get(reader.org)
        if existing is None:
            store.add_peer(
                reader.org,
                url=None,
                vkeys=[s.vkey() for s in reader.signers],
                accept_push=False,
                ca_file=None,
                now="2026-11-26T00:00:00Z",
            )
        for collection in grant:
            store.grant(reader.org, f"{publisher.org}/{collection}")


async def pull_from(reader: Home, url: str, *, page_batches: int = 8) -> list[LogResult]:
    """One pull round of ``reader`` from the node at ``url``, as ``hashfed pull`` does it."""
    async with aiohttp.ClientSession() as session:
        with Store(reader.db_path) as store:
            puller = Puller(
                store,
                lambda: store.trust_store(reader.signers),
                own_org=reader.org,
                clock=time.time,
                page_batches=page_batches,
            )
            fetcher = HttpPeer(session, url, reader.signers[0], clock=time.time, page_batches=page_batches)
            return await puller.pull_source(fetcher)


def merged_list(home: Home) -> list[dict]:
    """Every record of a node's merged list (active or not), as JSON objects."""
    with home.open_store() as store:
        return [r.to_json_obj() for r in store.records(active_only=False)]
