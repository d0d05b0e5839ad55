"""The node's status report: what ``hashfed status`` prints (``--json`` as it is), and what
a console or a metrics endpoint reads. One read of the store, no IO of its own.

**Lag** (``peer_lags``): how far this node is behind each peer, two ways.

- *In batches*: for each log the peer named at its last listing (``peer_listings``,
  written by every pull round), what it listed minus what this node serves of that log,
  never below zero, summed over the peer's logs (our own logs left out). A log's size is
  counted in batches (its Merkle leaves) because that is all a listing says: a batch holds
  up to 10,000 entries, and how many entries the missing batches hold is known only once
  they are fetched. So "3 behind" is three batches, and 0 means every batch the peer last
  listed is served here.
- *In time*: seconds since the last round that completed without a failure (then every
  log the peer listed was pulled up to its checkpoint), or None when no round ever did.
  This is how stale our copy of the peer may be; between rounds it grows by the pull
  interval, so an alert should allow a few intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hashfed.federation.store import PeerStatus, Store
from hashfed.keys import Signer
from hashfed.protocol.checkpoint import parse_checkpoint_body
from hashfed.protocol.note import parse_note


def note_size(note: bytes | None) -> int | None:
    """The size a stored checkpoint note claims (it was verified when it was stored)."""
    if note is None:
        return None
    return parse_checkpoint_body(parse_note(note).text).size


def status_report(store: Store, org: str, signers: tuple[Signer, ...]) -> dict:
    """Logs (sizes, what is held past them, readers), staged entries, the merged list's
    size, peers with their last pull, and evidence of equivocation, as JSON-ready data."""
    peers = store.peers.all()
    peer_status = store.peers.status()
    active, total = store.merged.count()
    return {
        "org": org,
        "keys": [s.vkey() for s in signers],
        "logs": [
            {
                "org": log.org,
                "collection": log.collection,
                "own": log.own,
                "size": log.size,
                "held": log.held,
                # the checkpoint the held-but-not-yet-served batches were proven against
                "pending_size": note_size(log.pending),
                "readers": [p.org for p in peers if log.log_id in p.readable],
            }
            for log in store.logs.all()
        ],
        "staged": dict(store.staging.collections()),
        "records": {"active": active, "total": total},
        "peers": [
            {
                "org": p.org,
                "url": p.url,
                "keys": list(p.vkeys),
                "accept_push": p.accept_push,
                "reads": list(p.readable),
                "last_success": peer_status[p.org].last_success if p.org in peer_status else None,
                "last_error": peer_status[p.org].last_error if p.org in peer_status else None,
            }
            for p in peers
        ],
        "evidence": [
            {
                "log_id": e.log_id,
                "kind": e.kind,
                "source": e.source,
                "detail": e.detail,
                "detected_at": e.detected_at,
            }
            for e in store.evidence.all()
        ],
    }


@dataclass(frozen=True, slots=True)
class PeerLag:
    """One peer as an operator watches it (see the module docstring for the lag)."""

    org: str
    url: str | None
    last_attempt: str | None
    last_success: str | None
    last_error: str | None
    failures: int
    listed: dict[str, int]  # log id -> size it listed
    behind: dict[str, int]  # log id -> batches we lack of what it listed
    lag_s: float | None

    @property
    def lag_batches(self) -> int:
        return sum(self.behind.values())


def parse_timestamp(text: str) -> float:
    """Unix seconds of a recorded ``timestamp`` (RFC 3339 UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def peer_lags(store: Store, own_org: str, now: float) -> list[PeerLag]:
    """Every peer with its pull status and lag, by org."""
    served = {log.log_id: log.size for log in store.logs.all()}
    listings = store.peers.listings()
    status = store.peers.status()
    lags = []
    for peer in store.peers.all():
        st = status.get(peer.org) or PeerStatus(peer.org, None, None, None, 0)
        listed = {
            log_id: size
            for log_id, size in listings.get(peer.org, {}).items()
            if not log_id.startswith(own_org + "/")
        }
        behind = {
            log_id: size - served.get(log_id, 0)
            for log_id, size in listed.items()
            if size > served.get(log_id, 0)
        }
        lag_s = None if st.last_success is None else max(0.0, now - parse_timestamp(st.last_success))
        lags.append(
            PeerLag(
                org=peer.org,
                url=peer.url,
                last_attempt=st.last_attempt,
                last_success=st.last_success,
                last_error=st.last_error,
                failures=st.failures,
                listed=listed,
                behind=behind,
                lag_s=lag_s,
            )
        )
    return lags
