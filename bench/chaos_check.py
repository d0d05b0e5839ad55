"""The invariants of a node's store, checked from outside: what ``bench.chaos`` asserts
after every crash and restart.

It reads the SQLite file read-only, in one read transaction (a consistent snapshot), and
verifies what it reads with ``hashfed.protocol`` and ``hashfed.keys`` only, never with the
federation code under test:

- every log holds batches ``0..held-1``, each once, each a valid canonical batch of that log
  at that index, with ``leaves.leaf == leaf_hash(batch)``;
- the served checkpoint (``logs.checkpoint``) verifies against the org's key, is for that
  log, and its size and root equal ``logs.size`` and the Merkle root of leaves ``0..size-1``;
  likewise every row of ``checkpoints`` and the pending note, where its leaves are held;
- every signed (log, size) -> root seen anywhere, at any time, agrees with every other one
  (the :class:`History` is kept by the caller across checks: one root per size, forever);
- the merged list (``contributions``) equals a recomputation from the held batches by the
  rules of PROTOCOL §8, written here independently of ``federation.merge``.

Decision: read only the tables and columns named here (logs, batches, leaves, checkpoints,
contributions), so that new tables do not break the checker.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hashfed.keys import Verifier
from hashfed.protocol.batch import decode_batch
from hashfed.protocol.checkpoint import verify_checkpoint
from hashfed.protocol.merkle import leaf_hash, root_hash


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
        """Check one store; return its logs' batch bytes by log id (for prefix checks)."""
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
        try:
            conn.execute("BEGIN")
            return self._check(conn, name)
        finally:
            conn.close()

    def _check(self, conn: sqlite3.Connection, name: str) -> dict[str, list[bytes]]:
        logs = conn.execute(
            "SELECT id, org, collection, size, root, checkpoint, held, pending FROM logs"
        ).fetchall()
        log_ids: dict[int, str] = {}
        held_batches: dict[str, list[bytes]] = {}
        expected: dict[tuple[str, str, int], tuple[int, str, str | None]] = {}
        for log, org, collection, size, root, checkpoint, held, pending in logs:
            log_id = f"{org}/{collection}"
            where = f"{name} {log_id}"
            log_ids[log] = log_id
            rows = conn.execute("SELECT idx, data FROM batches WHERE log = ? ORDER BY idx", (log,)).fetchall()
            self._ok(
                [idx for idx, _ in rows] == list(range(held)),
                f"{where}: batch indices {[idx for idx, _ in rows][:5]}... are not exactly 0..{held - 1}",
            )
            leaves = conn.execute("SELECT idx, leaf FROM leaves WHERE log = ? ORDER BY idx", (log,)).fetchall()
            self._ok([idx for idx, _ in leaves] == list(range(held)), f"{where}: leaves are not exactly 0..{held - 1}")
            data = [bytes(d) for _, d in rows]
            hashes = [bytes(h) for _, h in leaves]
            for idx, (batch, leaf) in enumerate(zip(data, hashes, strict=True)):
                self._ok(leaf == leaf_hash(batch), f"{where}: leaf {idx} is not the hash of batch {idx}")
                for entry in decode_batch(batch, org=org, collection=collection, index=idx).entries:
                    _apply(expected, entry, log_id)
            self._ok(size <= held, f"{where}: serves size {size} but holds {held}")
            self._ok(bytes(root) == root_hash(hashes[:size]), f"{where}: root is not the root of leaves 0..{size - 1}")
            if size:
                self._ok(checkpoint is not None, f"{where}: size {size} without a checkpoint")
            if checkpoint is not None:
                cp_size, cp_root = self.verify_note(bytes(checkpoint), log_id, f"{where} served")
                self._ok((cp_size, cp_root) == (size, bytes(root)), f"{where}: served note is not (size, root)")
            if pending is not None:
                p_size, p_root = self.verify_note(bytes(pending), log_id, f"{where} pending")
                if p_size <= held:
                    self._ok(p_root == root_hash(hashes[:p_size]), f"{where}: pending root disagrees with leaves")
            for cp_size, cp_root, note in conn.execute(
                "SELECT size, root, note FROM checkpoints WHERE log = ?", (log,)
            ):
                size_root = self.verify_note(bytes(note), log_id, f"{where} checkpoint {cp_size}")
                self._ok(size_root == (cp_size, bytes(cp_root)), f"{where}: checkpoint row {cp_size} is not its note")
                if cp_size <= held:
                    self._ok(
                        bytes(cp_root) == root_hash(hashes[:cp_size]),
                        f"{where}: checkpoint {cp_size} disagrees with the leaves held",
                    )
            held_batches[log_id] = data
        merged = {
            (type_, value, log_ids.get(log, f"(no log {log})")): (active, labels, opinion, retracted)
            for type_, value, log, active, labels, opinion, retracted in conn.execute(
                "SELECT type, value, log, active, labels, opinion, retracted FROM contributions"
            )
        }
        if merged != expected:
            diff = sorted(set(merged.items()) ^ set(expected.items()), key=repr)[:3]
            raise InvariantError(
                f"{name}: merged list ({len(merged)} rows) is not §8 over the held batches "
                f"({len(expected)} rows); e.g. {diff}"
            )
        self.passed += 1
        return held_batches

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


def _apply(state: dict[tuple[str, str, str], tuple[int, str, str | None, int]], entry, log_id: str) -> None:  # type: ignore[no-untyped-def]
    """PROTOCOL §8 for one entry: a row per (hash, log) once the log added it or gave an
    opinion; a retracted add is kept, inactive, marked retracted."""
    key = (entry.type, entry.value, log_id)
    active, labels, opinion, retracted = state.get(key, (0, "", None, 0))
    if entry.op == "add":
        state[key] = (1, ";".join(entry.labels), opinion, 0)
    elif entry.op == "remove":
        if active:
            state[key] = (0, "", opinion, 1)
    else:
        state[key] = (active, labels, entry.opinion, retracted)

