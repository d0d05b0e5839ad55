"""The invariants of a node's store, checked from outside: what ``bench.chaos`` asserts
after every crash and restart.

The per-store checks are ``hashfed check``'s (``hashfed.federation.store.check``): the file
read-only, in one read transaction (a consistent snapshot), every derived thing recomputed
from the signed bytes with ``hashfed.protocol`` and ``hashfed.keys``, and PROTOCOL §8
written there again, independently of the merged list's writer under test. Here, on top:
the orgs' keys come from the harness (never from the store checked), and what spans stores
and time (the history of roots, prefixes between nodes, what was served):

- every log holds batches ``0..held-1``, each once, each a valid canonical batch of that log
  at that index, with ``leaves.leaf == leaf_hash(batch)``;
- the served checkpoint (``logs.checkpoint``) verifies against the org's key, is for that
  log, and its size and root equal ``logs.size`` and the Merkle root of leaves ``0..size-1``;
  likewise every row of ``checkpoints`` and the pending note, where its leaves are held;
- every signed (log, size) -> root seen anywhere, at any time, agrees with every other one
  (the :class:`History` is kept by the caller across checks: one root per size, forever);
- the merged list (``contributions``) equals a recomputation from the held batches by the
  rules of PROTOCOL §8; ``pdq_values``, the PDQ index and ``arrivals`` agree with it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hashfed.federation.store.check import check_store
from hashfed.keys import Verifier
from hashfed.protocol.checkpoint import verify_checkpoint


class InvariantError(AssertionError):
    """A store broke an invariant: an entry lost or doubled, a bad signature, a fork."""


@dataclass
class History:
    """Every (log id, size) -> root ever observed signed, on any node, from any source."""

    roots: dict[tuple[str, int], bytes] = field(default_factory=dict)
    observed: int = 0

    def observe(self, log_id: str, size: int, root: bytes, where: str) -> None:
        self.observed += 1
        known = self.roots.setdefault((log_id, size), root)
        if known != root:
            raise InvariantError(f"{where}: two roots signed for {log_id} at size {size}")


@dataclass
class Checker:
    """Checks stores against the orgs' keys; counts the checks that passed."""

    verifiers: Mapping[str, Verifier]
    history: History = field(default_factory=History)
    passed: int = 0

    def _ok(self, condition: bool, message: str) -> None:
        if not condition:
            raise InvariantError(message)
        self.passed += 1

    def verify_note(self, note: bytes, log_id: str, where: str) -> tuple[int, bytes]:
        """Verify a signed checkpoint of ``log_id``; record it; return (size, root)."""
        org = log_id.partition("/")[0]
        try:
            signed = verify_checkpoint(note, log_id=log_id, verifiers=[self.verifiers[org]])
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            raise InvariantError(f"{where}: checkpoint of {log_id} does not verify: {exc}") from exc
        self.passed += 1
        cp = signed.checkpoint
        self.history.observe(log_id, cp.size, cp.root, where)
        return cp.size, cp.root

    def check_store(self, db_path: Path, name: str) -> dict[str, list[bytes]]:
        """Check one store (``hashfed.federation.store.check``, with the orgs' keys given
        here, not the store's); return its logs' batch bytes by log id (for prefix checks)."""
        report = check_store(
            db_path,
            own_keys={org: [verifier] for org, verifier in self.verifiers.items()},
            peer_keys_from_store=False,
        )
        for result in report.results.values():
            self.passed += result.checked
            for message in result.problems + result.warnings:
                raise InvariantError(f"{name}: {message}")
        for signed in report.signed:
            self.history.observe(signed.log_id, signed.size, signed.root, f"{name} {signed.where}")
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
        try:
            conn.execute("BEGIN")
            held: dict[str, list[bytes]] = {}
            for org, collection, data in conn.execute(
                "SELECT org, collection, data FROM logs JOIN batches ON batches.log = logs.id"
                " ORDER BY logs.id, idx"
            ):
                held.setdefault(f"{org}/{collection}", []).append(bytes(data))
            return held
        finally:
            conn.close()

    def check_prefixes(self, copies: Iterable[tuple[str, dict[str, list[bytes]]]]) -> None:
        """Every node's copy of a log is a prefix of every longer copy, byte for byte."""
        by_log: dict[str, list[tuple[str, list[bytes]]]] = {}
        for name, logs in copies:
            for log_id, data in logs.items():
                by_log.setdefault(log_id, []).append((name, data))
        for log_id, holders in by_log.items():
            holders.sort(key=lambda h: len(h[1]))
            for (short_name, short), (long_name, long) in zip(holders, holders[1:]):
                self._ok(
                    long[: len(short)] == short,
                    f"{log_id}: {short_name}'s {len(short)} batches are not a prefix of {long_name}'s",
                )

    def observe_served(self, logs_json: list[dict[str, object]], where: str) -> None:
        """Record and verify the checkpoints of a ``GET /v1/logs`` answer."""
        for item in logs_json:
            log_id = f"{item['org']}/{item['collection']}"
            note = str(item["checkpoint"]).encode("utf-8")
            size, _ = self.verify_note(note, log_id, where)
            self._ok(size == item["size"], f"{where}: {log_id} lists size {item['size']} with a note of {size}")
