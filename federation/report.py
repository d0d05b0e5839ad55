"""The node's status report: what ``hashfed status`` prints (``--json`` as it is), and what
a console or a metrics endpoint reads. One read of the store, no IO of its own."""

from __future__ import annotations

from hashfed.federation.store import Store
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
