"""Connection-level limits aiohttp does not have: a deadline for the request head, and caps
on concurrent connections, per client address and per listener.

aiohttp waits for a request head for as long as the client keeps sending bytes, so a client
that sends one header line per second holds a connection forever (slowloris). Here every
connection goes through ``_GuardedProtocol``, a thin wrapper around aiohttp's own protocol:

- a connection must deliver a complete request head (up to the blank line) within
  ``header_timeout_s`` of its first byte, and of being opened; otherwise it is closed.
  Blank lines before a request line are not a head (aiohttp skips them, RFC 9112 §2.2):
  a ``\r\n\r\n`` sent first does not end the head, it is simply no part of it;
- after the head, the clock stops (bodies may be large and slow); once the server starts
  writing the final response, the next bytes on a keep-alive connection are a new head,
  with a new deadline from its first byte (an idle keep-alive connection, with no byte at
  all, is aiohttp's ``keepalive_timeout``). An interim ``100 Continue`` (the answer to
  ``Expect: 100-continue``, which curl sends for bodies over 1 MiB) is not a final
  response: the body comes after it;
- a client address with ``max_connections_per_address`` open connections has further ones
  closed at once (an IPv6 client's address is its /64: ``guard.address_key``), and so has a
  listener with ``max_connections`` open, whatever their addresses: many addresses (a
  botnet, or one host's many loopback or IPv6 addresses) cannot take every file
  descriptor of the process, which the other listener and the store need too;
- over TLS, the handshake must also finish within ``header_timeout_s`` (asyncio's default
  is 60 s); a connection counts towards its address's cap once the handshake is done.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

from hashfed.federation.http.guard import address_key

_HEAD_END = b"\r\n\r\n"
_STATUS_LINE_START = 10  # len(b"HTTP/1.1 1"): enough to tell an interim response


def _start_of(chunks: Any) -> bytes:
    """The first bytes of a write (of one or several chunks)."""
    start = b""
    for chunk in chunks:
        start += bytes(memoryview(chunk)[: _STATUS_LINE_START - len(start)])
        if len(start) >= _STATUS_LINE_START:
            break
    return start


def _is_interim(start: bytes) -> bool:
    """Whether a write starts an interim (1xx) response, such as the ``100 Continue`` that
    answers ``Expect: 100-continue``: the request's body is still to come."""
    return start in (b"HTTP/1.1 1", b"HTTP/1.0 1")


class _WatchedTransport(asyncio.Transport):
    """The real transport, with writes reported to the guard (with their first bytes,
    so it can tell a final response from an interim one)."""

    def __init__(self, inner: asyncio.Transport, on_write: Any) -> None:
        super().__init__()
        self._inner = inner
        self._on_write = on_write

    def write(self, data: Any) -> None:
        self._on_write(_start_of((data,)))
        self._inner.write(data)

    def writelines(self, list_of_data: Any) -> None:
        chunks = list(list_of_data)
        self._on_write(_start_of(chunks))
        self._inner.writelines(chunks)

    def __getattribute__(self, name: str) -> Any:
        if name in ("write", "writelines", "_inner", "_on_write", "__class__"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "_inner"), name)


class _GuardedProtocol(asyncio.Protocol):
    def __init__(self, inner: Any, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._address: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True  # waiting for (the rest of) a request head
        self._head_started = False  # a byte other than CR or LF of this head was seen
        self._tail = b""

    # -- the deadline -------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._guard.header_timeout_s, self._expire
            )

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._guard.timeouts += 1
            self._transport.abort()

    def _response_started(self, start: bytes) -> None:
        # Only a final response ends the request: after an interim one (100 Continue),
        # the bytes that follow are the body, which the head deadline does not cover.
        if not self._in_head and not _is_interim(start):
            self._in_head = True
            self._head_started = False
            self._tail = b""

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        # Counted by ``address_key``: an IPv6 client by its /64, not the one address it
        # happens to use (it may hold the whole /64).
        self._address = address_key(peer[0]) if isinstance(peer, tuple) and peer else "?"
        guard = self._guard
        counts = guard.open_by_address
        if (
            counts[self._address] >= guard.max_connections_per_address
            or guard.open_total >= guard.max_connections
        ):
            guard.refused += 1
            self._address = None
            transport.abort()
            return
        counts[self._address] += 1
        guard.open_total += 1
        self._arm()
        self._inner.connection_made(_WatchedTransport(transport, self._response_started))

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            window = self._tail + data
            if not self._head_started:
                # Blank lines before the request line: skipped by the parser, so they
                # cannot end the head (the deadline keeps running from the first byte).
                window = window.lstrip(b"\r\n")
                self._head_started = bool(window)
            if _HEAD_END in window:
                self._in_head = False
                self._disarm()
            else:
                self._tail = window[-3:]
                self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self._guard.open_total -= 1
            counts = self._guard.open_by_address
            counts[self._address] -= 1
            if counts[self._address] <= 0:
                del counts[self._address]
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionGuard:
    def __init__(
        self, *, header_timeout_s: float, max_connections_per_address: int, max_connections: int
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections_per_address = max_connections_per_address
        self.max_connections = max_connections
        self.open_by_address: Counter[str] = Counter()
        self.open_total = 0
        self.timeouts = 0
        self.refused = 0


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through ``ConnectionGuard``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: Any = None,
        header_timeout_s: float,
        max_connections_per_address: int,
        max_connections: int,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self.bound_port = port
        self.guard = ConnectionGuard(
            header_timeout_s=header_timeout_s,
            max_connections_per_address=max_connections_per_address,
            max_connections=max_connections,
        )

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self.bound_port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        guard = self.guard
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _GuardedProtocol(server(), guard),
            self._host,
            self._port,
            ssl=self._ssl_context,
            # A TLS handshake comes before the request head: it gets the same deadline.
            ssl_handshake_timeout=self.guard.header_timeout_s if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=True,
        )
        if self._server.sockets:
            self.bound_port = self._server.sockets[0].getsockname()[1]
