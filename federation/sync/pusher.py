"""``hashfed push --to ORG``: upload this org's logs to a host that accepts them (PROTOCOL §6).

For each own log: ask the host what it serves (``GET /v1/logs``), then send the missing
batches in pages, each with the newest signed checkpoint and the consistency proof from the
page's end to it, exactly what a reader would check. A 409 tells where the host really is
(its problem carries ``size``: a push cut short may have left it past what it serves), and
the push resumes from there.
"""

from __future__ import annotations

import time

import aiohttp

from hashfed.federation.home import Home
from hashfed.federation.sync.transport import HttpPeer
from hashfed.keys.errors import ConfigError, ProtocolError, TransportError
from hashfed.protocol.merkle import consistency_proof

# Keep each page well under a host's default 64 MiB body cap.
MAX_PUSH_PAGE_BYTES = 32 * 1024 * 1024
MAX_RESYNCS = 3


async def push_logs(home: Home, session: aiohttp.ClientSession, host_org: str) -> list[str]:
    report = []
    with home.open_store() as store:
        host = store.peers.get(host_org)
        if host is None or host.url is None:
            raise ConfigError(f"no peer {host_org} with a URL; add it with 'hashfed peer add --url'")
        peer = HttpPeer(
            session,
            host.url,
            home.signers[0],
            clock=time.time,
            ca_file=host.ca_file,
            page_batches=home.config.pull.page_batches,
        )
        listing = await peer.list_logs()
        served = {
            (item.get("org"), item.get("collection")): item.get("size") for item in listing
        }
        own = [log for log in store.logs.all() if log.own and log.checkpoint is not None]
        if not own:
            return ["nothing to push: publish first"]
        for log in own:
            assert log.checkpoint is not None
            start = served.get((log.org, log.collection)) or 0
            if type(start) is not int or start > log.size:
                raise ProtocolError(f"{host_org} claims {log.log_id} has size {start!r}")
            first: int | None = None  # the first batch the host took from us
            resyncs = 0
            leaves = store.logs.leaf_hashes(log, log.size)
            while start < log.size:
                lines: list[bytes] = []
                total = 0
                for data in store.logs.iter_batches(log, start, log.size):
                    if lines and (
                        len(lines) == home.config.pull.page_batches
                        or total + len(data) + 1 > MAX_PUSH_PAGE_BYTES
                    ):
                        break
                    lines.append(data)
                    total += len(data) + 1
                end = start + len(lines)
                proof = consistency_proof(end, log.size, leaves) if end < log.size else []
                try:
                    pushed_from = start
                    start = await peer.push(log.log_id, lines, log.checkpoint, proof)
                    first = pushed_from if first is None else first
                except TransportError as exc:
                    size = (exc.problem or {}).get("size")
                    if exc.status != 409 or type(size) is not int or resyncs >= MAX_RESYNCS:
                        raise
                    if size > log.size:
                        raise ProtocolError(
                            f"{host_org} holds {size} batches of {log.log_id}, more than our {log.size}"
                        ) from exc
                    resyncs += 1
                    start = size
            if first is None:
                report.append(f"{log.log_id}: {host_org} is up to date at size {log.size}")
            else:
                report.append(f"{log.log_id}: pushed batches {first}..{log.size - 1} to {host_org}")
    return report
