"""Peers: the orgs this node knows, with their keys, what each may read here, whether it
may push, how to reach it, and how the last pull from it went.

Two views of one table set. ``trust_store()`` is what every check uses: an immutable
``hashfed.keys.TrustStore`` (keys and rights only), cached until the database changes, so
every request and every log of a pull may ask for it and a change (``hashfed peer add``,
``grant``, ``revoke`` from another process) still applies at once. ``get``/``all`` give a
peer's whole configuration, including its transport settings (URL, CA file), which are the
puller's and pusher's business, not the trust store's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hashfed.keys import Signer, TrustedOrg, TrustStore, Verifier
from hashfed.keys.errors import ConfigError, ProtocolError
from hashfed.keys.names import check_org, parse_log_id

if TYPE_CHECKING:
    from hashfed.federation.store.connection import Store


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer as configured: how to reach it (``url``, ``ca_file``) and its rights."""

    org: str
    url: str | None
    ca_file: str | None
    accept_push: bool
    vkeys: tuple[str, ...]
    readable: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PeerStatus:
    org: str
    last_attempt: str | None
    last_success: str | None
    last_error: str | None
    failures: int


class Peers:
    """The peers repository of a ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._conn = store.conn
        # (data_version, own key ids) -> the trust store built then; see trust_store()
        self._trust_cache: tuple[tuple[int, tuple[str, ...]], TrustStore] | None = None

    # -- configuration -----------------------------------------------------------------

    def add(
        self,
        org: str,
        *,
        url: str | None,
        vkeys: Sequence[str],
        accept_push: bool,
        ca_file: str | None,
        now: str,
    ) -> None:
        """Add or update a peer; its keys are replaced by ``vkeys``."""
        check_org(org)
        verifiers = [_parse_peer_vkey(org, text) for text in vkeys]
        if not verifiers:
            raise ConfigError(f"peer {org}: at least one --key is needed")
        self._trust_cache = None  # this connection's own edits do not move data_version
        with self._store.transaction():
            self._store.db["peers"].upsert(
                {
                    "org": org,
                    "url": url,
                    "ca_file": ca_file,
                    "accept_push": int(accept_push),
                    "added_at": now,
                },
                pk="org",
            )
            self._conn.execute("DELETE FROM peer_keys WHERE org = ?", (org,))
            self._conn.executemany(
                "INSERT INTO peer_keys (org, vkey) VALUES (?, ?)",
                [(org, v.vkey()) for v in verifiers],
            )

    def remove(self, org: str) -> None:
        self._trust_cache = None
        with self._store.transaction():
            found = self._conn.execute("DELETE FROM peers WHERE org = ?", (org,)).rowcount
            if not found:
                raise ConfigError(f"no peer {org}")
            self._conn.execute("DELETE FROM peer_keys WHERE org = ?", (org,))
            self._conn.execute("DELETE FROM grants WHERE reader = ?", (org,))
            self._conn.execute("DELETE FROM peer_status WHERE org = ?", (org,))
            self._conn.execute("DELETE FROM peer_listings WHERE org = ?", (org,))

    def grant(self, reader: str, log_id: str) -> None:
        check_org(reader)
        parse_log_id(log_id)
        self._trust_cache = None
        with self._store.transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO grants (reader, log_id) VALUES (?, ?)", (reader, log_id)
            )

    def revoke(self, reader: str, log_id: str) -> None:
        self._trust_cache = None
        with self._store.transaction():
            found = self._conn.execute(
                "DELETE FROM grants WHERE reader = ? AND log_id = ?", (reader, log_id)
            ).rowcount
            if not found:
                raise ConfigError(f"{reader} has no grant for {log_id}")

    def get(self, org: str) -> Peer | None:
        return next((peer for peer in self.all() if peer.org == org), None)

    def all(self) -> list[Peer]:
        """Every peer, by org."""
        keys: dict[str, list[str]] = {}
        for org, vkey in self._conn.execute("SELECT org, vkey FROM peer_keys ORDER BY org, vkey"):
            keys.setdefault(org, []).append(vkey)
        grants: dict[str, list[str]] = {}
        for reader, log_id in self._conn.execute(
            "SELECT reader, log_id FROM grants ORDER BY reader, log_id"
        ):
            grants.setdefault(reader, []).append(log_id)
        rows = self._conn.execute(
            "SELECT org, url, ca_file, accept_push FROM peers ORDER BY org"
        ).fetchall()
        return [
            Peer(
                org=org,
                url=url,
                ca_file=ca_file,
                accept_push=bool(accept_push),
                vkeys=tuple(keys.get(org, ())),
                readable=tuple(grants.get(org, ())),
            )
            for org, url, ca_file, accept_push in rows
        ]

    # -- the trust store ---------------------------------------------------------------

    def trust_store(self, own: Sequence[Signer] = ()) -> TrustStore:
        """The trust store as configured now, with this node's own keys for its org.

        Built once and kept until the database changes: another connection committed
        (seen through ``PRAGMA data_version``) or this connection edited peers or grants.
        """
        key = (self._store.data_version(), tuple(signer.key_id for signer in own))
        if self._trust_cache is not None and self._trust_cache[0] == key:
            return self._trust_cache[1]
        orgs = [
            TrustedOrg(
                org=peer.org,
                verifiers=tuple(Verifier.from_vkey(vkey) for vkey in peer.vkeys),
                readable=frozenset(peer.readable),
                accept_push=peer.accept_push,
            )
            for peer in self.all()
        ]
        if own:
            orgs.append(TrustedOrg(org=own[0].name, verifiers=tuple(s.verifier() for s in own)))
        trust = TrustStore(orgs)
        self._trust_cache = (key, trust)
        return trust

    # -- pull status -------------------------------------------------------------------

    def note_pull(self, org: str, *, now: str, error: str | None) -> None:
        """Record the outcome of a pull round against ``org`` (``error`` None: success)."""
        with self._store.transaction():
            row = self._conn.execute(
                "SELECT failures FROM peer_status WHERE org = ?", (org,)
            ).fetchone()
            failures = 0 if error is None else (row[0] if row else 0) + 1
            self._conn.execute(
                "INSERT INTO peer_status (org, last_attempt, last_success, last_error, failures)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (org) DO UPDATE SET"
                " last_attempt = excluded.last_attempt,"
                " last_success = coalesce(excluded.last_success, last_success),"
                " last_error = excluded.last_error, failures = excluded.failures",
                (org, now, now if error is None else None, error, failures),
            )

    def note_listing(self, org: str, sizes: dict[str, int], *, now: str) -> None:
        """Record what ``org`` listed (log id -> size in batches), replacing the last."""
        with self._store.transaction():
            self._conn.execute("DELETE FROM peer_listings WHERE org = ?", (org,))
            self._conn.executemany(
                "INSERT INTO peer_listings (org, log_id, size, listed_at) VALUES (?, ?, ?, ?)",
                [(org, log_id, size, now) for log_id, size in sorted(sizes.items())],
            )

    def listings(self) -> dict[str, dict[str, int]]:
        """What each peer last listed: org -> log id -> size in batches."""
        found: dict[str, dict[str, int]] = {}
        for org, log_id, size in self._conn.execute(
            "SELECT org, log_id, size FROM peer_listings ORDER BY org, log_id"
        ):
            found.setdefault(org, {})[log_id] = size
        return found

    def status(self) -> dict[str, PeerStatus]:
        rows = self._conn.execute(
            "SELECT org, last_attempt, last_success, last_error, failures FROM peer_status"
        ).fetchall()
        return {row[0]: PeerStatus(*row) for row in rows}


def _parse_peer_vkey(org: str, text: str) -> Verifier:
    try:
        verifier = Verifier.from_vkey(text.strip())
    except ProtocolError as exc:
        raise ConfigError(f"peer {org}: bad key: {exc}") from exc
    if verifier.name != org:
        raise ConfigError(f"peer {org}: the key is for {verifier.name!r}, not {org!r}")
    return verifier
