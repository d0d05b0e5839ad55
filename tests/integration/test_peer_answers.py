"""What a puller makes of a hostile or confused peer's answers (federation.sync.transport):

- a redirect is never followed: our signed headers never reach the address it names, and
  nothing found there is taken for the peer's answer;
- a peer's words (a problem ``detail``, a Location) reach stderr, ``status`` and the log
  only as inert text (``keys.names.inert``);
- a 401 ``clock-skew`` is worded as a clock to fix, with the offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from hashfed.federation.cli import main as cli_main
from hashfed.federation.home import Home
from hashfed.federation.http.node import Node
from hashfed.federation.sync.scheduler import SyncScheduler
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys import TransportError
from hashfed.protocol.entries import Entry
from tests.helpers import (
    FakeClock,
    connect,
    md5,
    pull_from,
    snapshot,
    stage_and_publish,
    wait_until,
)

A, B = "a.example", "b.example"
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31mred\u202egnp.exe\r\nFAKE LOG LINE"
INERT_ESCAPES = "\\x1b[2J\\x1b]0;owned\\x07\\x1b[31mred\\u202egnp.exe\\r\\nFAKE LOG LINE"


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1, an OS-chosen port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_peer(answer: bytes) -> AsyncIterator[str]:
    """A peer that answers every request with ``answer``, bytes as they are (aiohttp's
    server would refuse to send a control character in a header; a hostile peer need not)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def _answering(handler) -> web.Application:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture
def reader(make_home) -> Home:  # type: ignore[no-untyped-def]
    b, a = make_home(B), make_home(A)
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    connect(b, a)
    return b


# -- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_never_followed(reader: Home, status: int) -> None:
    sink_seen: list[dict[str, str]] = []

    async def sink(request: web.Request) -> web.Response:
        sink_seen.append(dict(request.headers))
        return web.json_response([])  # "no logs": an answer that would look fine

    async with serving(_answering(sink)) as sink_url:
        location = sink_url + "/v1/logs\x1b[2J"
        answer = f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        async with raw_peer(answer.encode()) as peer_url:
            before = snapshot(reader)
            with pytest.raises(TransportError) as caught:
                await pull_from(reader, peer_url)
    assert str(caught.value) == (
        f"GET /v1/logs: HTTP {status}: the peer redirects to {sink_url}/v1/logs\\x1b[2J;"
        " a peer's requests never follow a redirect (update its URL with 'hashfed peer add'"
        " if it has moved)"
    )
    assert caught.value.status == status
    assert sink_seen == []  # our Signature headers went nowhere else
    assert snapshot(reader) == before


# -- clocks --------------------------------------------------------------------------------


@pytest.mark.parametrize("skew_s", [-3600, -301, 301, 86_400], ids=["hour-behind", "just-behind", "just-ahead", "day-ahead"])
async def test_a_clock_off_by_more_than_the_window_is_named_on_both_sides(
    make_home, start_node, skew_s: int
) -> None:  # type: ignore[no-untyped-def]
    a, b = make_home(A), make_home(B)
    stage_and_publish(a, [Entry.add("md5", md5(1))])
    connect(b, a)
    clock = FakeClock()
    service = await start_node(a, node=Node(a, clock=clock))
    before = snapshot(b)
    # The reader's clock is skew_s off the node's.
    async with aiohttp.ClientSession() as session:
        peer = HttpPeer(session, service.url, b.signers[0], clock=lambda: clock.now + skew_s)
        with pytest.raises(TransportError) as caught:
            await peer.list_logs()
    problem = caught.value.problem
    assert caught.value.status == 401 and problem is not None
    assert problem["type"] == "urn:hashfed:problem:clock-skew"
    assert problem["now"] == int(clock.now)
    side = "ahead of" if skew_s > 0 else "behind"
    assert problem["detail"] == (
        f"the request was signed at {int(clock.now) + skew_s}, {abs(skew_s)} s {side} this"
        f" node's clock ({int(clock.now)}); the window is 300 s: check the signer's clock (NTP)"
    )
    assert str(caught.value) == (
        f"GET /v1/logs: HTTP 401: clock skew: the peer says our clock is off by {skew_s} s"
        f" ({abs(skew_s)} s {side} the peer's); set this machine's clock (NTP) and retry"
    )
    assert snapshot(b) == before
    assert len(service.node.nonces) == 0


async def test_clock_skew_is_read_from_the_date_header_when_the_problem_has_no_time(reader: Home) -> None:
    body = json.dumps({"type": "urn:hashfed:problem:clock-skew", "status": 401, "detail": "x"})
    date = "Thu, 01 Jan 2026 00:00:00 GMT"  # 1767225600
    answer = (
        f"HTTP/1.1 401 Unauthorized\r\nDate: {date}\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    async with raw_peer(answer) as url, aiohttp.ClientSession() as session:
        peer = HttpPeer(session, url, reader.signers[0], clock=lambda: 1767225600 - 400)
        with pytest.raises(TransportError) as caught:
            await peer.list_logs()
    assert str(caught.value) == (
        "GET /v1/logs: HTTP 401: clock skew: the peer says our clock is off by -400 s"
        " (400 s behind the peer's); set this machine's clock (NTP) and retry"
    )


# -- a peer's words, shown inert -------------------------------------------------------------


def _problem_answer(status: int, detail: str) -> bytes:
    body = json.dumps({"type": "urn:hashfed:problem:x", "status": status, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} No\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def _peer_at(reader: Home, org: str, url: str) -> None:
    """Point ``reader``'s peer ``org`` at ``url`` (its keys unchanged)."""
    with reader.open_store() as store:
        peer = store.peers.get(org)
        assert peer is not None
        store.peers.add(
            org, url=url, vkeys=list(peer.vkeys), accept_push=False, ca_file=None,
            now="2026-11-26T00:00:00Z",
        )


async def test_a_peers_words_reach_pull_status_and_the_log_inert(
    reader: Home, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    async with raw_peer(_problem_answer(403, ESCAPES)) as url:
        _peer_at(reader, A, url)
        before = snapshot(reader)
        code = await asyncio.to_thread(cli_main, ["--home", str(reader.path), "pull", A])
        out, err = capsys.readouterr()
        assert code == 2
        assert err == f"{A}: pull failed: GET /v1/logs: HTTP 403: {INERT_ESCAPES}\n"
        assert "\x1b" not in out + err

        assert cli_main(["--home", str(reader.path), "status"]) == 0
        out, _ = capsys.readouterr()
        assert f"last error: GET /v1/logs: HTTP 403: {INERT_ESCAPES}" in out
        assert "\x1b" not in out and "\u202e" not in out

        # The serve log: the scheduler's round fails the same way.
        node = Node(reader)
        rounds: list[object] = []
        caplog.set_level(logging.WARNING)
        async with aiohttp.ClientSession() as session:
            scheduler = SyncScheduler(node, session, on_round=lambda *r: rounds.append(r))
            scheduler.start()
            try:  # the first round starts within 5 s (its jitter)
                await wait_until(lambda: rounds, timeout_s=10, what="the first round")
            finally:
                await scheduler.stop()
                node.close()
        assert rounds
        logged = [r.getMessage() for r in caplog.records if r.name.endswith("scheduler")]
        assert logged and all("\x1b" not in m and "\r" not in m for m in logged), logged
        assert any(INERT_ESCAPES in m for m in logged), logged
        assert snapshot(reader) == before


def test_status_shows_a_stored_error_inert(reader: Home, capsys: pytest.CaptureFixture[str]) -> None:
    """Text already in the store (recorded by an older version, say) is shown inert too."""
    with reader.open_store() as store:
        store.peers.note_pull(A, now="2026-11-26T00:00:00Z", error=ESCAPES)
    before = snapshot(reader)
    assert cli_main(["--home", str(reader.path), "status"]) == 0
    out, _ = capsys.readouterr()
    assert f"last error: {INERT_ESCAPES}\n" in out
    assert "\x1b" not in out and "\u202e" not in out
    assert snapshot(reader) == before
