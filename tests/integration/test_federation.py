"""Three real nodes on 127.0.0.1 pulling from each other (PROTOCOL §6, §7, §8): two members
and an NGO-like third that mostly gives opinions. Pulls in a ring, relays, a relay that
tries to forge, and a property: any order of pulls converges to one merged list.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hashfed.federation.home import Home, init_home, open_home
from hashfed.federation.http.service import NodeService
from hashfed.federation.store import Store
from hashfed.federation.sync.puller import LogResult, Puller
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys import Signer, TransportError, VerificationError
from hashfed.protocol.checkpoint import Checkpoint
from hashfed.protocol.entries import Entry
from hashfed.protocol.merkle import leaf_hash
from hashfed.protocol.note import sign_note
from tests.helpers import (
    md5,
    merged_list,
    pdq,
    pull_from,
    sha256,
    snapshot,
    stage_and_publish,
    trust,
)

MakeHome = Callable[[str], Home]
StartNode = Callable[..., Awaitable[NodeService]]

A, B, NGO = "alpha.example", "beta.example", "ngo.example"
TABLES = ("logs", "batches", "checkpoints", "contributions", "evidence")


def grant(holder: Home, reader: Home, *origins: str) -> None:
    """``holder`` lets ``reader`` read the default log of each origin, own or relayed."""
    with holder.open_store() as store:
        for origin in origins:
            store.peers.grant(reader.org, f"{origin}/default")


def federate(homes: Sequence[Home], urls: dict[str, str] | None = None) -> None:
    """Everyone trusts everyone's keys and may read every log everyone holds; ``urls``
    says which node each one pulls from (none: keys only)."""
    for holder in homes:
        for reader in homes:
            if reader is not holder:
                trust(holder, reader, url=(urls or {}).get(reader.org))
                grant(holder, reader, *(h.org for h in homes if h is not reader))


def held_logs(home: Home) -> dict[str, tuple[int, int, bytes | None]]:
    with home.open_store() as store:
        return {log.log_id: (log.size, log.held, log.checkpoint) for log in store.logs.all()}


def log_bytes(home: Home, log_id: str) -> list[bytes]:
    with home.open_store() as store:
        log = store.logs.get(log_id)
        assert log is not None
        return list(store.logs.iter_batches(log, 0, log.held))


def statuses(results: Iterable[LogResult]) -> list[tuple[str, str, int]]:
    return sorted((r.log_id, r.status, r.new_size) for r in results)


# -- a ring of three -------------------------------------------------------------------------


def contributor(org: str, *labels: str) -> dict:
    return {"org": org, "collection": "default", "labels": list(labels)}


def opinion(org: str, what: str) -> dict:
    return {"org": org, "collection": "default", "opinion": what}


def record(
    type_: str,
    value: str,
    *,
    labels: Sequence[str] = (),
    contributors: Sequence[dict] = (),
    opinions: Sequence[dict] = (),
    retracted_by: Sequence[str] = (),
) -> dict:
    return {
        "type": type_,
        "value": value,
        "active": bool(contributors),
        "labels": list(labels),
        "contributors": list(contributors),
        "opinions": list(opinions),
        "retracted_by": [{"org": org, "collection": "default"} for org in retracted_by],
    }


# The list every node must hold once the ring has gone round twice, sorted by (type, value).
RING_LIST = [
    record(
        "md5",
        md5(1),
        labels=["b:1", "ncmec:a1"],
        contributors=[contributor(A, "ncmec:a1"), contributor(B, "b:1")],
    ),
    record(
        "md5",
        md5(2),
        labels=["x:1", "y:2"],
        contributors=[contributor(A, "x:1"), contributor(B, "y:2")],
        opinions=[opinion(NGO, "true_positive")],
    ),
    # md5(4): added by beta, then retracted: kept, not active, with who retracted it (§8).
    record("md5", md5(4), retracted_by=[B]),
    record("md5", md5(6), opinions=[opinion(NGO, "false_positive")]),  # an opinion only
    # md5(7): added by alpha and retracted, with the NGO's opinion: kept, not active.
    record(
        "md5",
        md5(7),
        opinions=[opinion(B, "true_positive"), opinion(NGO, "false_positive")],
        retracted_by=[A],
    ),
    record(
        "pdq",
        pdq(3),
        labels=["ncmec:a1"],
        contributors=[contributor(A, "ncmec:a1")],
        opinions=[opinion(NGO, "false_positive")],
    ),
    record("sha256", sha256(5), labels=["ngo:r17"], contributors=[contributor(NGO, "ngo:r17")]),
]


def publish_ring_logs(a: Home, b: Home, ngo: Home) -> None:
    stage_and_publish(
        a,
        [
            Entry.add("md5", md5(1), ["ncmec:a1"]),
            Entry.add("md5", md5(2), ["x:1"]),
            Entry.add("pdq", pdq(3), ["ncmec:a1"]),
            Entry.add("md5", md5(7), ["typo"]),
        ],
    )
    stage_and_publish(a, [Entry.remove("md5", md5(7))])  # a retraction
    stage_and_publish(
        b,
        [
            Entry.add("md5", md5(2).upper(), ["y:2"]),  # user input, normalised on entry
            Entry.add("md5", md5(4)),
            Entry.opine("md5", md5(7), "true_positive"),
        ],
    )
    stage_and_publish(b, [Entry.remove("md5", md5(4)), Entry.add("md5", md5(1), ["b:1"])])
    stage_and_publish(
        ngo,
        [
            Entry.opine("pdq", pdq(3), "false_positive"),
            Entry.opine("md5", md5(6), "false_positive"),
            Entry.opine("md5", md5(7), "false_positive"),
            Entry.opine("md5", md5(2), "true_positive"),
            Entry.add("sha256", sha256(5), ["ngo:r17"]),
        ],
    )


async def test_ring_of_three_converges_through_relays(
    make_home: MakeHome, start_node: StartNode
) -> None:
    a, b, ngo = make_home(A), make_home(B), make_home(NGO)
    publish_ring_logs(a, b, ngo)
    services = {h.org: await start_node(h) for h in (a, b, ngo)}
    # The ring: alpha pulls from beta, beta from the NGO, the NGO from alpha. Everyone
    # trusts everyone's keys, but each has the URL of one node only.
    ring = {A: B, B: NGO, NGO: A}
    homes = {A: a, B: b, NGO: ngo}
    federate([a, b, ngo], {})
    for reader, source in ring.items():
        trust(homes[reader], homes[source], url=services[source].url)

    first = {r: await pull_from(homes[r], services[s].url, page_batches=1) for r, s in ring.items()}
    assert statuses(first[A]) == [(f"{B}/default", "updated", 2)]
    assert statuses(first[B]) == [(f"{NGO}/default", "updated", 1)]
    assert statuses(first[NGO]) == [(f"{A}/default", "updated", 2), (f"{B}/default", "updated", 2)]

    second = {
        r: await pull_from(homes[r], services[s].url, page_batches=1) for r, s in ring.items()
    }
    # Each now gets the third log through its neighbour, verified against its origin's key.
    assert (f"{NGO}/default", "updated", 1) in statuses(second[A])
    assert (f"{A}/default", "updated", 2) in statuses(second[B])
    assert all(status != "failed" for r in second.values() for _, status, _ in statuses(r))

    third = {r: await pull_from(homes[r], services[s].url) for r, s in ring.items()}
    assert {status for r in third.values() for _, status, _ in statuses(r)} <= {"up to date"}

    for home in (a, b, ngo):
        assert merged_list(home) == RING_LIST, home.org
    # Every node holds every log, complete, with its origin's checkpoint and bytes verbatim.
    origins = {A: a, B: b, NGO: ngo}
    for home in (a, b, ngo):
        assert held_logs(home) == {
            f"{o}/default": held_logs(h)[f"{o}/default"] for o, h in origins.items()
        }
        for origin, origin_home in origins.items():
            assert log_bytes(home, f"{origin}/default") == log_bytes(
                origin_home, f"{origin}/default"
            )
        with home.open_store() as store:
            assert store.evidence.all() == []
            assert store.merged.count() == (4, 7)


# -- relays ----------------------------------------------------------------------------------


async def relay_world(
    make_home: MakeHome, start_node: StartNode, *, c_trusts_alpha: Signer | None = None
) -> tuple[Home, Home, Home, NodeService, NodeService]:
    """alpha publishes; beta pulls alpha's log and may relay it to the NGO; the NGO trusts
    alpha's key (or ``c_trusts_alpha``'s) but has no URL for alpha, only beta's."""
    a, b, ngo = make_home(A), make_home(B), make_home(NGO)
    stage_and_publish(a, [Entry.add("md5", md5(1), ["ncmec:a1"]), Entry.add("pdq", pdq(2))])
    stage_and_publish(
        a, [Entry.opine("md5", md5(3), "false_positive"), Entry.remove("pdq", pdq(2))]
    )
    stage_and_publish(a, [Entry.add("sha256", sha256(4))])
    service_a = await start_node(a)
    service_b = await start_node(b)
    trust(b, a, url=service_a.url)
    trust(a, b)
    grant(a, b, A)
    assert statuses(await pull_from(b, service_a.url)) == [(f"{A}/default", "updated", 3)]

    if c_trusts_alpha is None:
        trust(ngo, a)  # alpha's keys, no URL
    else:
        with ngo.open_store() as store:
            store.peers.add(
                A,
                url=None,
                vkeys=[c_trusts_alpha.vkey()],
                accept_push=False,
                ca_file=None,
                now="2026-11-26T00:00:00Z",
            )
    trust(ngo, b, url=service_b.url)
    trust(b, ngo)
    grant(b, ngo, A)
    return a, b, ngo, service_a, service_b


async def test_relay_serves_alphas_log_verified_against_alphas_key(
    make_home: MakeHome, start_node: StartNode
) -> None:
    a, b, ngo, _, service_b = await relay_world(make_home, start_node)
    with ngo.open_store() as store:
        assert store.peers.get(A).url is None  # the NGO cannot reach alpha itself

    results = await pull_from(ngo, service_b.url, page_batches=2)

    assert statuses(results) == [(f"{A}/default", "updated", 3)]
    assert held_logs(ngo)[f"{A}/default"] == held_logs(a)[f"{A}/default"]  # alpha's own note
    assert log_bytes(ngo, f"{A}/default") == log_bytes(a, f"{A}/default")
    assert merged_list(ngo) == merged_list(a) == merged_list(b)
    assert (await pull_from(ngo, service_b.url))[0].status == "up to date"


async def test_relayed_log_is_checked_against_the_origins_key_not_the_relays(
    make_home, start_node
) -> None:
    # The NGO holds a wrong key for alpha: beta's relaying vouches for nothing.
    _, _, ngo, _, service_b = await relay_world(
        make_home, start_node, c_trusts_alpha=Signer.generate(A)
    )
    before = snapshot(ngo, TABLES)
    (result,) = await pull_from(ngo, service_b.url)
    assert (result.log_id, result.status) == (f"{A}/default", "failed")
    assert type(result.error) is VerificationError
    assert "note has no valid signature from a trusted key" in result.detail
    assert snapshot(ngo, TABLES) == before


def _rewrite(home: Home, sql: str, *params: object) -> None:
    """The relay changes what it serves behind its own server's back."""
    conn = sqlite3.connect(home.db_path)
    try:
        with conn:
            assert conn.execute(sql, params).rowcount == 1
    finally:
        conn.close()


def alter_batch(b: Home, *, leaf_too: bool) -> None:
    """beta alters batch 0 of alpha's log into another valid, canonical batch, so only the
    tree can tell; with ``leaf_too`` it also rewrites the leaf hash its proofs are built from."""
    data = log_bytes(b, f"{A}/default")[0]
    forged = data.replace(md5(1).encode(), md5(9).encode())
    assert forged != data
    where = " WHERE idx = 0 AND log = (SELECT id FROM logs WHERE org = ?)"
    _rewrite(b, "UPDATE batches SET data = ?" + where, forged, A)
    if leaf_too:
        _rewrite(b, "UPDATE leaves SET leaf = ?" + where, leaf_hash(forged), A)


def resign(b: Home, signer: Signer) -> None:
    """beta replaces alpha's checkpoint with one of its own making, over a root of its choice."""
    note = sign_note(Checkpoint(f"{A}/default", 3, bytes(32)).body(), [signer])
    _rewrite(b, "UPDATE logs SET checkpoint = ? WHERE org = ?", note, A)


# (id, what beta does, pages the NGO asks for, error type, message fragment)
FORGERIES: list[tuple[str, Callable[[Home], None], int, type[Exception], str]] = [
    (
        "a batch altered, one page",
        lambda b: alter_batch(b, leaf_too=False),
        8,
        VerificationError,
        "batches 0..2 do not give the signed root",
    ),
    (
        "a batch altered, proven page by page",
        lambda b: alter_batch(b, leaf_too=False),
        1,
        VerificationError,
        "consistency: proof does not lead to the expected roots",
    ),
    (
        "a batch and its leaf hash altered, so proofs follow it",
        lambda b: alter_batch(b, leaf_too=True),
        1,
        VerificationError,
        "consistency: proof does not lead to the expected roots",
    ),
    (
        "alpha's checkpoint replaced by one beta signed",
        lambda b: resign(b, b.signers[0]),
        8,
        VerificationError,
        "note has no valid signature from a trusted key",
    ),
    (
        "alpha's checkpoint signed with a key named alpha that alpha never had",
        lambda b: resign(b, Signer.generate(A)),
        8,
        VerificationError,
        "note has no valid signature from a trusted key",
    ),
]


@pytest.mark.parametrize(
    ("forge", "pages", "error", "message"),
    [c[1:] for c in FORGERIES],
    ids=[c[0] for c in FORGERIES],
)
async def test_a_relay_cannot_forge_the_origins_log(
    make_home,
    start_node,
    forge: Callable[[Home], None],
    pages: int,
    error: type[Exception],
    message: str,
) -> None:
    _, b, ngo, _, service_b = await relay_world(make_home, start_node)
    forge(b)
    before, list_before = snapshot(ngo, TABLES), merged_list(ngo)

    (result,) = await pull_from(ngo, service_b.url, page_batches=pages)

    assert (result.log_id, result.status, result.new_size) == (f"{A}/default", "failed", 0)
    assert type(result.error) is error
    assert message in result.detail
    # Nothing of the forged log is kept, and nothing frames alpha: no evidence.
    assert snapshot(ngo, TABLES) == before
    assert merged_list(ngo) == list_before == []


async def test_relay_part_way_then_origin_completes(make_home, start_node) -> None:
    """The NGO gets alpha's first batches through beta, which is behind; alpha's own node
    serves the rest, proven against the bigger checkpoint."""
    a, _, ngo, service_a, service_b = await relay_world(make_home, start_node)
    stage_and_publish(a, [Entry.add("md5", md5(10))])
    trust(ngo, a, url=service_a.url)
    trust(a, ngo)
    grant(a, ngo, A)

    assert statuses(await pull_from(ngo, service_b.url)) == [(f"{A}/default", "updated", 3)]
    results = await pull_from(ngo, service_a.url, page_batches=1)
    assert statuses(results) == [(f"{A}/default", "updated", 4)]
    # beta, now behind the NGO, raises no alarm.
    assert statuses(await pull_from(ngo, service_b.url)) == [(f"{A}/default", "source behind", 4)]
    assert merged_list(ngo) == merged_list(a)
    with ngo.open_store() as store:
        assert store.evidence.all() == []


# -- any order of pulls converges -----------------------------------------------------------------

ORGS = ("a.example", "b.example", "c.example")
VALUES = [md5(n) for n in range(4)]
ENTRIES = st.one_of(
    st.builds(
        lambda v, labels: Entry.add("md5", v, labels),
        st.sampled_from(VALUES),
        st.lists(st.sampled_from(["l:1", "l:2", "l:3"]), max_size=2),
    ),
    st.builds(lambda v: Entry.remove("md5", v), st.sampled_from(VALUES)),
    st.builds(
        lambda v, o: Entry.opine("md5", v, o),
        st.sampled_from(VALUES),
        st.sampled_from(["true_positive", "false_positive"]),
    ),
)
PUBLISH = st.tuples(
    st.just("publish"), st.integers(0, 2), st.lists(ENTRIES, min_size=1, max_size=3)
)
# A pull of reader from source; ``drop`` > 0 cuts the connection after that many pages.
PULL = st.tuples(st.just("pull"), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2))
STEPS = st.lists(st.one_of(PUBLISH, PULL, PULL), min_size=6, max_size=16)


class DroppingPeer:
    """A real peer whose connection drops after ``pages`` batch pages."""

    def __init__(self, inner: HttpPeer, pages: int) -> None:
        self.inner = inner
        self.pages = pages
        self.source = inner.source

    async def list_logs(self) -> list[dict]:
        return await self.inner.list_logs()

    async def checkpoint(self, log_id: str) -> bytes:
        return await self.inner.checkpoint(log_id)

    async def batches(self, log_id: str, start: int, end: int) -> list[bytes]:
        if self.pages == 0:
            raise TransportError(f"{self.source}: connection dropped")
        self.pages -= 1
        return await self.inner.batches(log_id, start, end)

    async def consistency(self, log_id: str, old: int, new: int) -> list[bytes]:
        return await self.inner.consistency(log_id, old, new)


def reference_list(published: dict[str, list[Entry]]) -> list[dict]:
    """PROTOCOL §8 written out plainly: each log's entries in order, then the records."""
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for org, entries in published.items():
        for e in entries:
            row = rows.setdefault((e.type, e.value), {})
            fresh = {"active": False, "labels": (), "opinion": None, "retracted": False}
            if e.op == "add":
                row.setdefault(org, fresh)
                row[org].update(active=True, labels=e.labels, retracted=False)
            elif e.op == "remove" and org in row and row[org]["active"]:
                row[org].update(active=False, labels=(), retracted=True)  # kept, inactive
            elif e.op == "opinion":
                row.setdefault(org, fresh)
                row[org]["opinion"] = e.opinion
    records = []
    for (type_, value), row in sorted(rows.items()):
        if not row:
            continue
        active = {o: c for o, c in sorted(row.items()) if c["active"]}
        records.append(
            record(
                type_,
                value,
                labels=sorted({label for c in active.values() for label in c["labels"]}),
                contributors=[contributor(o, *c["labels"]) for o, c in active.items()],
                opinions=[opinion(o, c["opinion"]) for o, c in sorted(row.items()) if c["opinion"]],
                retracted_by=[o for o, c in sorted(row.items()) if c["retracted"]],
            )
        )
    return records


async def pull_once(
    reader: Home, url: str, *, drop: int, session: aiohttp.ClientSession
) -> list[LogResult]:
    with Store(reader.db_path) as store:
        puller = Puller(
            store,
            lambda: store.peers.trust_store(reader.signers),
            own_org=reader.org,
            clock=time.time,
            page_batches=1,
        )
        peer = HttpPeer(session, url, reader.signers[0], clock=time.time, page_batches=1)
        fetcher = DroppingPeer(peer, drop) if drop else peer
        return await puller.pull_source(fetcher)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(steps=STEPS)
async def test_any_order_of_pulls_converges(steps: list[tuple]) -> None:
    with tempfile.TemporaryDirectory(prefix="hashfed-") as folder:
        homes = []
        for org in ORGS:
            init_home(Path(folder) / org, org)
            homes.append(open_home(Path(folder) / org))
        published: dict[str, list[Entry]] = {org: [] for org in ORGS}
        async with AsyncExitStack() as stack:
            services = [
                await stack.enter_async_context(
                    NodeService(h, host="127.0.0.1", port=0, sync=False)
                )
                for h in homes
            ]
            session = await stack.enter_async_context(aiohttp.ClientSession())
            federate(homes, {h.org: s.url for h, s in zip(homes, services)})

            for step in steps:
                if step[0] == "publish":
                    _, who, entries = step
                    stage_and_publish(homes[who], entries)
                    published[ORGS[who]] += entries
                else:
                    _, reader, source, drop = step
                    if reader != source:
                        results = await pull_once(
                            homes[reader], services[source].url, drop=drop, session=session
                        )
                        for r in results:  # partial pulls fail politely; nothing else fails
                            assert r.status != "failed" or isinstance(r.error, TransportError), r
                            relayed = not r.log_id.startswith(ORGS[source] + "/")
                            event(f"{r.status}{' (relayed)' if relayed else ''}")

            # Now everyone pulls from everyone; a second round then finds nothing new.
            for final_round in (1, 2):
                for reader in homes:
                    for source, service in zip(homes, services):
                        if reader is not source:
                            results = await pull_once(reader, service.url, drop=0, session=session)
                            if final_round == 2:
                                assert {r.status for r in results} <= {"up to date"}, results

        expected = reference_list(published)
        for home in homes:
            assert merged_list(home) == expected, home.org
            with home.open_store() as store:
                assert store.evidence.all() == []
                sizes = {log.log_id: (log.size, log.held) for log in store.logs.all()}
            assert sizes == {
                f"{org}/default": (published_count, published_count)
                for org, published_count in publish_counts(steps).items()
                if published_count
            }


def publish_counts(steps: list[tuple]) -> dict[str, int]:
    counts = dict.fromkeys(ORGS, 0)
    for step in steps:
        if step[0] == "publish":
            counts[ORGS[step[1]]] += 1
    return counts
