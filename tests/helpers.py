"""Shared helpers for tests: publish, connect two nodes, pull, read a merged list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from hashfed.federation.cli import main
from hashfed.federation.home import Home
from hashfed.federation.publish import publish
from hashfed.federation.store import Store
from hashfed.federation.sync.puller import LogResult, Puller
from hashfed.federation.sync.transport import HttpPeer
from hashfed.protocol.entries import Entry

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
            store.staging.stage(collection, list(entries))
        publish(store, home.signers, now=FIXED_NOW)


def trust(reader: Home, org: Home, *, url: str | None = None) -> None:
    """``reader`` trusts ``org``'s keys (and pulls from ``url`` when given)."""
    with reader.open_store() as store:
        store.peers.add(
            org.org,
            url=url,
            vkeys=[s.vkey() for s in org.signers],
            accept_push=False,
            ca_file=None,
            now="2026-11-26T00:00:00Z",
        )


def connect(reader: Home, publisher: Home, *, url: str | None = None, grant: Iterable[str] = ("default",)) -> None:
    """Make ``reader`` trust ``publisher`` (and pull from ``url``), and ``publisher`` grant
    ``reader`` its collections (adding ``reader`` as a peer of ``publisher``)."""
    trust(reader, publisher, url=url)
    with publisher.open_store() as store:
        known = store.peers.trust_store().get(reader.org) is not None
    if not known:
        trust(publisher, reader)
    with publisher.open_store() as store:
        for collection in grant:
            store.peers.grant(reader.org, f"{publisher.org}/{collection}")


async def pull_from(reader: Home, url: str, *, page_batches: int = 8) -> list[LogResult]:
    """One pull round of ``reader`` from the node at ``url``, as ``hashfed pull`` does it."""
    async with aiohttp.ClientSession() as session:
        with Store(reader.db_path) as store:
            puller = Puller(
                store,
                lambda: store.peers.trust_store(reader.signers),
                own_org=reader.org,
                clock=time.time,
                page_batches=page_batches,
            )
            fetcher = HttpPeer(session, url, reader.signers[0], clock=time.time, page_batches=page_batches)
            return await puller.pull_source(fetcher)


def merged_list(home: Home) -> list[dict]:
    """Every record of a node's merged list (active or not), as JSON objects."""
    with home.open_store() as store:
        return [r.to_json_obj() for r in store.merged.records(active_only=False)]


# -- access control, push and limits (PROTOCOL §6) ----------------------------------------


def configure(home: Home, **sections: dict[str, object]) -> Home:
    """Rewrite ``home``'s config.toml with these ``[section]`` settings (the rest at their
    defaults) and return the home reopened: ``configure(h, limits={"max_body_bytes": 4096})``."""
    import json

    from hashfed.federation.home import CONFIG_FILE, open_home

    lines = [f"org = {json.dumps(home.org)}"]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    (home.path / CONFIG_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return open_home(home.path)


class FakeClock:
    """A clock a test moves by hand: ``Node(home, clock=FakeClock())``."""

    def __init__(self, now: float | None = None) -> None:
        self.now = float(int(time.time())) if now is None else now

    def __call__(self) -> float:
        return self.now


def sign_for(
    url: str,
    signer,  # keys.Signer
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes | None = None,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The RFC 9421 headers (and Content-Digest) of one request to the node at ``url``."""
    import os

    from hashfed.protocol.httpsig import RequestTarget, authority_of, new_nonce, sign_request

    target = RequestTarget(method, authority_of(url), path, query)
    return sign_request(
        signer,
        target,
        body,
        created=int(time.time()) if created is None else created,
        nonce=nonce or new_nonce(os.urandom(16)),
    )


class Reply:
    """A node's answer, read whole."""

    def __init__(self, status: int, headers, body: bytes) -> None:  # type: ignore[no-untyped-def]
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def json(self):  # type: ignore[no-untyped-def]
        import json

        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


async def send(
    session: aiohttp.ClientSession,
    url: str,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    ssl: object = True,
) -> Reply:
    """Send one request exactly as given (raw path and query, no signing of its own)."""
    from yarl import URL

    target = URL(url.rstrip("/") + path + (f"?{query}" if query else ""), encoded=True)
    async with session.request(method, target, data=body, headers=headers or {}, ssl=ssl) as response:
        return Reply(response.status, response.headers.copy(), await response.read())


async def signed(
    session: aiohttp.ClientSession,
    url: str,
    signer,  # keys.Signer
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    created: int | None = None,
) -> Reply:
    """Sign a request for the node at ``url`` with ``signer`` and send it."""
    signature = sign_for(url, signer, method, path, query=query, body=body, created=created)
    return await send(
        session, url, method, path, query=query, body=body, headers={**(headers or {}), **signature}
    )


PROBLEM_TABLES = ("logs", "batches", "checkpoints", "contributions", "staged", "evidence")


def snapshot(home: Home, tables: Iterable[str] = PROBLEM_TABLES) -> dict[str, list[tuple]]:
    """Every row of the store's content tables, sorted: compare before and after."""
    import sqlite3

    conn = sqlite3.connect(home.db_path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    finally:
        conn.close()


def assert_problem(reply: Reply, status: int, slug: str) -> dict:
    """``reply`` is RFC 9457 problem+json with this status and type; returns the body."""
    assert reply.status == status, reply
    assert reply.content_type == "application/problem+json", reply.headers
    problem = reply.json()
    assert problem["type"] == f"urn:hashfed:problem:{slug}", problem
    assert problem["status"] == status
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


async def wait_until(predicate, timeout_s: float = 5.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate()`` (sync or async) until true; fail after ``timeout_s``."""
    import asyncio
    import inspect

    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


# -- store, publisher and CLI tests ------------------------------------------------------


def db_snapshot(path) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    """Every row of every table of the SQLite file at ``path``, and its schema version,
    read over a connection of its own: compare before and after an operation that must
    change nothing. Rows are sorted by ``repr`` (columns mix NULL, text and blobs)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        snap = {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
        snap["(user_version)"] = conn.execute("PRAGMA user_version").fetchall()
        return snap
    finally:
        conn.close()


class Cli:
    """``cli("add", "md5", V)`` runs ``hashfed --home HOME add md5 V`` in-process."""

    def __init__(self, capsys: pytest.CaptureFixture[str], home: Path) -> None:
        self.capsys = capsys
        self.home = home

    def __call__(self, *argv: str, home: Path | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--home", str(home or self.home), *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str, home: Path | None = None) -> str:
        code, out, err = self(*argv, home=home)
        assert (code, err) == (0, ""), (argv, code, err)
        return out

    async def in_thread(self, *argv: str, home: Path | None = None) -> tuple[int, str, str]:
        """For commands that run their own event loop (pull) from an async test."""
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, ["--home", str(home or self.home), *argv])
        out, err = self.capsys.readouterr()
        return code, out, err
