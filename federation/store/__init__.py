"""The node's SQLite store: one file, WAL mode, numbered migrations, one transaction per
unit of work, and a repository per concern (see ``connection``).

Imports: ``hashfed.federation.merged`` (the commit path merges in its own transaction),
``hashfed.protocol``, ``hashfed.keys``. Nothing here speaks HTTP or reads the clock.
"""

from hashfed.federation.store.connection import (
    BUSY_TIMEOUT_MS,
    DiskFull,
    Store,
    finish,
    run_write,
)
from hashfed.federation.store.evidence import Evidence
from hashfed.federation.store.logs import LogState, WrongStart
from hashfed.federation.store.peers import Peer, PeerStatus

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DiskFull",
    "Evidence",
    "LogState",
    "Peer",
    "PeerStatus",
    "Store",
    "WrongStart",
    "finish",
    "run_write",
]
