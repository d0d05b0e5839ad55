"""hashfed as a ThreatExchange exchange: the real ``threatexchange`` CLI, in a subprocess
with its own HOME under tmp_path, against a real node on 127.0.0.1 whose merged list holds
its own log and a peer's (pulled and verified).

The CLI adds the extension, configures a collaboration, fetches from the change feed,
matches MD5 and PDQ hashes (contributors' labels as tags; a disputed hash shows DISPUTED; a
retracted one is gone), labels a hash (a signed opinion in the node's log, which the next
fetch brings back), fetches again incrementally, and fails clearly on a missing or wrong
token. Labels the CLI cannot send (a false positive) go through the library's
``report_opinion`` against the same node.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from threatexchange.exchanges.fetch_state import SignalOpinion, SignalOpinionCategory
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.raw_text import RawTextSignal

from hashfed.federation.home import Home
from hashfed.protocol.entries import Entry
from hashfed_tx import HashfedCollabConfig, HashfedCredentials, HashfedSignalExchangeAPI
from tests.helpers import configure, connect, md5, pull_from, stage_and_publish

TOKEN = "tx-token-0123456789"
# Random PDQs are ~128 bits apart, far beyond the CLI's match threshold (31): each query
# matches only itself. Three of them: the library's faiss PDQ index loses its only entry
# when it holds exactly one (see the README).
_RNG = random.Random(20261126)
PDQ = [f"{_RNG.getrandbits(256):064x}" for _ in range(3)]


@dataclass
class Node:
    home: Home
    url: str


@pytest.fixture
async def node(make_home, start_node) -> Node:  # type: ignore[no-untyped-def]
    """Node a.example (behind TOKEN) holding its own log and b.example's."""
    b = make_home("b.example")
    stage_and_publish(b, [Entry.add("md5", md5(1), ["b:csam"]), Entry.add("pdq", PDQ[0], ["b:pdq"])])
    a = configure(make_home("a.example"), server={"local_token": TOKEN})
    stage_and_publish(
        a,
        [
            Entry.add("md5", md5(1), ["a:ncmec"]),
            Entry.add("md5", md5(2), ["a:two"]),
            Entry.add("md5", md5(3), ["a:three"]),
            Entry.add("sha1", "0" * 40, ["a:sha1"]),  # no ThreatExchange type: not fetched
            *(Entry.add("pdq", p, [f"a:pdq{i}"]) for i, p in enumerate(PDQ)),
            Entry.opine("md5", md5(2), "false_positive"),
        ],
    )
    service_b = await start_node(b)
    connect(a, b, url=service_b.url)
    await pull_from(a, service_b.url)
    service_a = await start_node(a, local_port=0)
    return Node(a, f"http://127.0.0.1:{service_a.local_bound_port}")


class Tx:
    """The ``threatexchange`` CLI with HOME (so its state and credential file) under tmp."""

    def __init__(self, tmp_path: Path, token: str | None) -> None:
        self.home = tmp_path / "tx-home"
        (tmp_path / "tx-tmp").mkdir()
        self.home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TX_")}
        env.update(
            HOME=str(self.home),
            TMPDIR=str(tmp_path / "tx-tmp"),  # the CLI writes `-- TEXT` input to temp files
        )
        if token is not None:
            env["TX_HASHFED_TOKEN"] = token
        self.env = env

    async def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "threatexchange", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == code, (done.stdout, done.stderr)
        return done

    async def setup(self, url: str) -> None:
        added = await self.run("config", "extensions", "add", "hashfed_tx")
        assert "hashfed - HashfedSignalExchangeAPI" in added.stdout
        await self.run("config", "collab", "edit", "hashfed", "fed", "--create", "--base-url", url)

    async def fetch(self) -> list[int]:
        """Fetch; the sizes of the deltas the exchange yielded (from the CLI's log)."""
        done = await self.run("-v", "fetch")
        assert "[hashfed] fed - Up to date" in done.stderr
        return [int(n) for n in re.findall(r"fetch\(\) with (\d+) new records", done.stderr)]

    async def match(self, signal: str, value: str) -> list[str]:
        content = "photo" if signal == "pdq" else "video"
        done = await self.run("match", "-A", "-H", "-S", signal, content, "--", value)
        return done.stdout.splitlines()


async def test_fetch_match_label_and_fetch_again(node: Node, tmp_path: Path) -> None:
    tx = Tx(tmp_path, TOKEN)
    await tx.setup(node.url)
    assert await tx.fetch() == [6]  # md5 1-3, pdq 0-2; not the sha1

    a, b = "a.example/default", "b.example/default"
    assert await tx.match("video_md5", md5(1)) == [
        f"video_md5 - (fed) POSITIVE_CLASS labels=a:ncmec,b:csam by={a},{b}"
    ]
    assert await tx.match("video_md5", md5(2)) == [
        f"video_md5 - (fed) DISPUTED labels=a:two by={a} false_positive={a}"
    ]
    assert await tx.match("pdq", PDQ[0]) == [
        f"pdq 0 (fed) POSITIVE_CLASS labels=a:pdq0,b:pdq by={a},{b}"
    ]
    assert await tx.match("pdq", PDQ[1]) == [f"pdq 0 (fed) POSITIVE_CLASS labels=a:pdq1 by={a}"]
    assert await tx.match("video_md5", md5(9)) == []

    # label: a signed true_positive opinion in a.example's own log, published at once
    await tx.run("label", "--as-hash", "pdq", "fed", "photo", "--", PDQ[2])
    with node.home.open_store() as store:
        record = store.merged.lookup("pdq", PDQ[2])
        assert record is not None
        assert [(o.org, o.opinion) for o in record.opinions] == [("a.example", "true_positive")]
        assert store.logs.get(f"{a}").size == 2  # type: ignore[union-attr]

    # a retraction and a new hash arrive; the next fetch brings exactly the three changes
    stage_and_publish(node.home, [Entry.remove("md5", md5(3)), Entry.add("md5", md5(4), ["a:four"])])
    assert await tx.fetch() == [3]
    assert await tx.match("pdq", PDQ[2]) == [
        f"pdq 0 (fed) POSITIVE_CLASS labels=a:pdq2 by={a} true_positive={a}"
    ]
    assert await tx.match("video_md5", md5(3)) == []  # retracted: gone from the index
    assert await tx.match("video_md5", md5(4)) == [f"video_md5 - (fed) POSITIVE_CLASS labels=a:four by={a}"]
    assert await tx.fetch() == []  # nothing new: no delta at all


TOKENS = [
    (
        "no token",
        None,
        None,
        2,
        "Invalid auth for hashfed: the node at {url} requires a bearer token: "
        "set TX_HASHFED_TOKEN or write it to ~/.tx_hashfed_token\n",
    ),
    (
        "wrong token",
        "wrong",
        None,
        2,
        "Invalid auth for hashfed: the node at {url} refused our bearer token "
        "(a valid bearer token is required)\n",
    ),
    ("token from the credential file", None, TOKEN, 0, None),
    ("empty variable falls back to the file", "", TOKEN, 0, None),
    (
        "token with a space",
        "two words",
        None,
        2,
        "Invalid auth for hashfed: Invalid credentials from environment variable TX_HASHFED_TOKEN\n",
    ),
]


@pytest.mark.parametrize(("env", "file", "code", "stderr"), [t[1:] for t in TOKENS], ids=[t[0] for t in TOKENS])
async def test_token_sources_and_refusals(
    node: Node, tmp_path: Path, env: str | None, file: str | None, code: int, stderr: str | None
) -> None:
    tx = Tx(tmp_path, env)
    if file is not None:
        (tx.home / ".tx_hashfed_token").write_text(file + "\n")
    await tx.setup(node.url)
    done = await tx.run("fetch", code=code)
    if stderr is not None:
        assert done.stderr == stderr.format(url=node.url)
        assert not list((tx.home / ".threatexchange" / "fetched").rglob("*.pickle"))


def _api(node: Node) -> HashfedSignalExchangeAPI:
    collab = HashfedCollabConfig(name="fed", base_url=node.url)
    return HashfedSignalExchangeAPI.for_collab(collab, HashfedCredentials(TOKEN))


async def test_report_opinion_false_positive(node: Node) -> None:
    api = await asyncio.to_thread(_api, node)
    negative = SignalOpinion(True, SignalOpinionCategory.NEGATIVE_CLASS, set())
    await asyncio.to_thread(api.report_opinion, VideoMD5Signal, md5(4).upper(), negative)
    with node.home.open_store() as store:
        record = store.merged.lookup("md5", md5(4))
    assert record is not None and not record.active
    assert [(o.org, o.opinion) for o in record.opinions] == [("a.example", "false_positive")]


REFUSED = [
    (
        "investigation seed",
        PdqSignal,
        SignalOpinion(True, SignalOpinionCategory.INVESTIGATION_SEED, set()),
        "hashfed opinions are true or false positives; INVESTIGATION_SEED has no meaning there",
    ),
    (
        "labels",
        PdqSignal,
        SignalOpinion(True, SignalOpinionCategory.POSITIVE_CLASS, {"x:1"}),
        "hashfed opinions carry no labels (labels belong to the log that adds a hash): leave out ['x:1']",
    ),
    (
        "a type hashfed has not",
        RawTextSignal,
        SignalOpinion(True, SignalOpinionCategory.POSITIVE_CLASS, set()),
        "hashfed has no hash type for the raw_text signal type",
    ),
]


@pytest.mark.parametrize(("s_type", "opinion", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
async def test_opinions_hashfed_cannot_say_are_refused(
    node: Node, s_type: type, opinion: SignalOpinion, message: str
) -> None:
    api = await asyncio.to_thread(_api, node)
    with pytest.raises(ValueError) as caught:
        await asyncio.to_thread(api.report_opinion, s_type, PDQ[0], opinion)
    assert str(caught.value) == message
    with node.home.open_store() as store:
        assert store.logs.get("a.example/default").size == 1  # type: ignore[union-attr]
        assert store.staging.collections() == []
