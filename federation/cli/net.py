"""``hashfed pull``, ``push`` and ``serve``: the commands that talk to other nodes. Their
network modules (aiohttp) load only when one of them runs."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING

from hashfed.federation.cli._common import EXIT_ERROR, _load
from hashfed.federation.cli.progress import Bar, progress_bar
from hashfed.federation.events import configure_logging
from hashfed.federation.home import Home, require_private
from hashfed.keys.errors import ConfigError, HashfedError
from hashfed.keys.names import check_org, inert

if TYPE_CHECKING:
    import aiohttp

    from hashfed.federation.sync.puller import LogResult

def _session(home: Home) -> aiohttp.ClientSession:
    import aiohttp  # network modules load only for the commands that use them

    pull = home.config.pull
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=pull.timeout_s, sock_connect=10))


def _result_line(org: str, r: LogResult) -> str:
    line = f"{org}: {r.log_id}: {r.status}"
    if r.status == "updated":
        line += f" {r.old_size} -> {r.new_size} ({r.entries} entries)"
    elif r.status in ("up to date", "source behind"):
        line += f" at size {r.new_size}"
    if r.detail:
        line += f": {inert(r.detail, 1000)}"  # may quote the peer
    return line


class _PullEstimate:
    """Feeds a pull's pages to a bar, with the total estimated from the entries per batch
    so far and the batches still to come (batches are up to 10,000 entries each)."""

    def __init__(self, bar: Bar) -> None:
        self.bar = bar
        self.entries = 0
        self.batches = 0

    def __call__(self, entries: int, batches: int, batches_left: int) -> None:
        self.entries += entries
        self.batches += batches
        self.bar.expect(self.entries + round(self.entries / self.batches * batches_left))
        self.bar.advance(entries)


async def _pull(home: Home, org: str | None) -> int:
    from hashfed.federation.sync.rounds import pull_peer

    with home.open_store() as store:
        peers = [p.org for p in store.peers.all() if p.url and p.org != home.org]
    if org is not None:
        if org not in peers:
            raise ConfigError(f"no peer {org} with a URL; see 'hashfed peer list'")
        peers = [org]
    if not peers:
        print("no peers with a URL to pull from")
    failed = 0
    async with _session(home) as session:
        for peer in peers:
            with progress_bar(f"pull {peer}", unit="entries") as bar:
                try:
                    results = await pull_peer(
                        str(home.db_path),
                        home.config,
                        home.signers,
                        session,
                        peer,
                        progress=_PullEstimate(bar),
                    )
                except HashfedError as exc:
                    print(f"{peer}: pull failed: {inert(str(exc), 1000)}", file=sys.stderr)
                    failed += 1
                    continue
            for r in results:
                print(_result_line(peer, r), file=sys.stderr if r.status == "failed" else sys.stdout)
            failed += sum(r.status == "failed" for r in results)
    return EXIT_ERROR if failed else 0


def cmd_pull(args: argparse.Namespace) -> int:
    return asyncio.run(_pull(_load(args), args.org))


def cmd_push(args: argparse.Namespace) -> int:
    from hashfed.federation.sync.pusher import push_logs

    home = _load(args)

    async def run() -> int:
        async with _session(home) as session:
            lines = await push_logs(home, session, check_org(args.to))
        for line in lines:
            print(line)
        return 0

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> int:
    from hashfed.federation.http.service import NodeService

    home = _load(args)
    require_private(home.path)
    configure_logging(fmt=args.log_format, level=args.log_level)

    async def run() -> None:
        service = NodeService(
            home,
            host=args.host,
            port=args.port,
            public_urls=tuple(args.public_url or ()),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            local_port=args.local_port,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with service:
            print(f"serving {home.org} at {service.url}", flush=True)
            if service.local_bound_port:
                print(
                    f"console and lookup API at http://{home.config.server.local_host}:"
                    f"{service.local_bound_port}",
                    flush=True,
                )
            await stop.wait()
        print("stopped", flush=True)

    asyncio.run(run())
    return 0
