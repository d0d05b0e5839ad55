"""Running a node: the peer listener (optionally TLS), the local listener (lookup API,
console, ``/metrics``), and the sync scheduler, started and stopped together.

Every listener goes through ``_listen``: the same connection guards (``connguard``: head
deadline, connections per address) and the same idle keep-alive timeout, so a listener
meant for the node's own pipeline cannot be the way to exhaust the process's descriptors.

    async with NodeService(home) as service:
        ...                # service.url is where peers reach it
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web

from hashfed.federation.home import Home
from hashfed.federation.http.app import create_app
from hashfed.federation.http.auth import authenticate
from hashfed.federation.http.body import add_fallback, refuse_expect
from hashfed.federation.http.connguard import GuardedSite
from hashfed.federation.http.console import add_console
from hashfed.federation.http.lookup import check_token, create_lookup_app
from hashfed.federation.http.metrics import METRICS, NodeMetrics, metrics_handler
from hashfed.federation.http.node import Node
from hashfed.federation.http.openapi import add_openapi, local_document, peer_document
from hashfed.federation.store import finish
from hashfed.federation.sync.scheduler import SyncScheduler
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys.errors import ConfigError

log = logging.getLogger(__name__)


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from exc
    return context


class NodeService:
    """A node's listeners and background pulls. Use as an async context manager."""

    def __init__(
        self,
        home: Home,
        *,
        host: str | None = None,
        port: int | None = None,
        public_urls: tuple[str, ...] = (),
        tls_cert: str | None = None,
        tls_key: str | None = None,
        local_port: int | None = None,
        sync: bool = True,
        node: Node | None = None,
    ) -> None:
        server = home.config.server
        self.home = home
        self.host = host if host is not None else server.host
        self.port = port if port is not None else server.port
        # Paths given here are the caller's; paths in config.toml are relative to the home.
        self.tls_cert = tls_cert or _in_home(home, server.tls_cert)
        self.tls_key = tls_key or _in_home(home, server.tls_key)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("TLS needs both a certificate and a key")
        self.local_port = local_port if local_port is not None else server.local_port
        self.sync = sync
        self.node = node or Node(home)
        self.node.add_public_urls(public_urls)
        self._runner: web.AppRunner | None = None
        self._local_runner: web.AppRunner | None = None
        self.local_site: GuardedSite | None = None
        self.session: aiohttp.ClientSession | None = None
        self.scheduler: SyncScheduler | None = None
        self._index_load: asyncio.Task[None] | None = None
        self.bound_port = 0
        self.local_bound_port = 0
        self.metrics = NodeMetrics(self.node)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"{scheme}://{host}:{self.bound_port}"

    async def start(self) -> None:
        context = server_ssl_context(self.tls_cert, self.tls_key) if self.tls_cert else None
        app = create_app(self.node)
        app[METRICS] = self.metrics
        add_openapi(app, peer_document())
        add_fallback(app, check=authenticate)
        self.metrics.attach()
        self._runner, site = await self._listen(app, self.host, self.port, ssl_context=context)
        self.bound_port = site.bound_port
        self.node.listening_on(self.host, self.bound_port, tls=context is not None)
        if self.local_port is not None:
            server = self.home.config.server
            local_app = create_lookup_app(self.node, token=server.local_token)
            add_console(local_app, token=server.local_token)
            local_app[METRICS] = self.metrics
            local_app.router.add_get("/metrics", metrics_handler, expect_handler=refuse_expect)
            add_openapi(local_app, local_document())
            add_fallback(local_app, check=check_token)
            self._local_runner, self.local_site = await self._listen(
                local_app, server.local_host, self.local_port
            )
            self.local_bound_port = self.local_site.bound_port
            # The matching indexes are loaded from the store now, in the background; the
            # first search waits for them.
            self._index_load = asyncio.create_task(
                self.node.matching.load(), name="hashfed-index-load"
            )
        timeout = aiohttp.ClientTimeout(total=self.home.config.pull.timeout_s, sock_connect=10)
        self.session = aiohttp.ClientSession(timeout=timeout)
        if self.sync:
            self.scheduler = SyncScheduler(self.node, self.session)
            self.scheduler.start()

    async def _listen(
        self, app: web.Application, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> tuple[web.AppRunner, GuardedSite]:
        """Serve ``app`` on ``host:port`` behind the connection guards; every listener."""
        limits = self.home.config.limits
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=limits.idle_timeout_s, handle_signals=False
        )
        await runner.setup()
        site = GuardedSite(
            runner,
            host,
            port,
            ssl_context=ssl_context,
            header_timeout_s=limits.header_timeout_s,
            max_connections_per_address=limits.max_connections_per_address,
            max_connections=limits.max_connections,
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner, site

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.session is not None:
            await self.session.close()
        if self._local_runner is not None:
            await self._local_runner.cleanup()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._index_load is not None:
            # A worker thread cannot be stopped: let the load end before its store closes.
            with contextlib.suppress(Exception):
                await finish(self._index_load)
        self.metrics.detach()
        self.node.close()

    async def __aenter__(self) -> NodeService:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def peer(self, url: str, *, ca_file: str | None = None) -> HttpPeer:
        """A signed client to another node, sharing this service's session."""
        assert self.session is not None
        return HttpPeer(
            self.session,
            url,
            self.node.signers[0],
            clock=self.node.clock,
            ca_file=ca_file,
            page_batches=self.home.config.pull.page_batches,
        )


def resolve(path: Path) -> str:
    return str(path.expanduser().resolve())


def _in_home(home: Home, path: str | None) -> str | None:
    return None if path is None else resolve(home.path / Path(path).expanduser())
