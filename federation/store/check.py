"""The store checked against itself and the orgs' keys: ``hashfed check``.

Everything the store holds is either verbatim bytes that an org signed (batches, checkpoint
notes) or a function of them (leaf hashes, roots, right edges, the merged list, the PDQ
values, arrivals). This module recomputes every derived thing from the bytes and compares
it with what is stored, and verifies every stored note against the org's keys:

    schema      the store's schema version is the one this hashfed knows
    batches     every log holds batches 0..held-1, each once, each a valid batch of that log
                at that index, and the leaf rows 0..held-1 are exactly their leaf hashes
    roots       the served root is the root of leaves 0..size-1 (size <= held), the stored
                right edge is that of leaves 0..held-1, every checkpoint row's root is the
                root of its leaves
    signatures  the served note, the pending note and every checkpoint row's note verify
                against the org's keys and say that row's (size, root)
    merged      the merged list equals PROTOCOL §8 recomputed from the held batches, row by row
    pdq_values  holds exactly the PDQ values of the merged list
    pdq_index   the PDQ index built from ``pdq_values`` answers a sample like a full scan
    arrivals    one row per stored batch, none for a batch not stored

Decisions:

- Read-only and live-safe: the file is opened ``mode=ro`` and read in one read transaction,
  a consistent snapshot; in WAL mode a reader never blocks the node's writer. The recomputed
  merged list goes to a TEMP table (a temporary file, not the store).
- Independent of the code it checks: §8 is written here again (``_S8_*``), not called from
  ``merged.writer``, so a bug in the writer is a finding, not a tautology. The PDQ index is
  the one ``serve`` builds (it is what is checked), its answers compared with a plain scan.
- Bounded memory: batches are streamed one at a time; per log only its right edge and the
  roots at the sizes of its checkpoints are held; the recomputed merged list is a TEMP
  table (on disk, where SQLite keeps temporary files) and both lists are walked in key
  order; problems listed are capped (``MAX_LISTED``). The PDQ index itself holds every PDQ
  value, as it does in ``serve``. A million entries: some 20 s and 120 MB.
- A log whose org has no key here (a removed peer) cannot have its notes verified: that is
  said (a warning), not counted a problem, since removing a peer keeps what it sent.
- Keys: the caller passes the node's own keys (they live in the home, not the store); the
  peers' come from the store's ``peer_keys``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from pathlib import Path

import numpy as np

from hashfed.federation.merged.pdq import PdqMatcher
from hashfed.federation.store.migrations import MIGRATIONS
from hashfed.keys import Verifier
from hashfed.keys.errors import HashfedError, StoreError
from hashfed.protocol.batch import decode_batch
from hashfed.protocol.checkpoint import verify_checkpoint
from hashfed.protocol.hashtypes import PDQ_MATCH_DISTANCE
from hashfed.protocol.merkle import CompactRange, leaf_hash

CHECKS = (
    "schema",
    "batches",
    "roots",
    "signatures",
    "merged",
    "pdq_values",
    "pdq_index",
    "arrivals",
)

# Problems listed per check; past it, a count. A store damaged everywhere must still give
# a report a person can read.
MAX_LISTED = 20
# PDQ values probed against the index (each also with bits flipped).
PDQ_SAMPLE = 16
_SCAN_ROWS = 1 << 18


@dataclass
class CheckResult:
    """One check: how many things it looked at, what was wrong, what it could not do."""

    name: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    unlisted: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_LISTED:
            self.problems.append(message)
        else:
            self.unlisted += 1

    def expect(self, condition: bool, message: str) -> bool:
        self.checked += 1
        if not condition:
            self.problem(message)
        return condition

    def to_json_obj(self) -> dict[str, object]:
        return {
            "check": self.name,
            "ok": self.ok,
            "checked": self.checked,
            "problems": self.problems,
            "more_problems": self.unlisted,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class SignedRoot:
    """A note verified during the check: the log, its size and root, and where it was."""

    log_id: str
    size: int
    root: bytes
    where: str


@dataclass
class CheckReport:
    path: Path
    results: dict[str, CheckResult]
    signed: list[SignedRoot]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results.values())

    def problems(self) -> Iterator[str]:
        for result in self.results.values():
            yield from result.problems

    def to_json_obj(self) -> dict[str, object]:
        return {
            "store": str(self.path),
            "ok": self.ok,
            "checks": [result.to_json_obj() for result in self.results.values()],
        }


def check_store(
    path: Path, *, own_keys: Mapping[str, Sequence[Verifier]], peer_keys_from_store: bool = True
) -> CheckReport:
    """Check the store at ``path``; never writes to it. ``own_keys`` are keys by org that
    the store does not hold (the node's own); the peers' keys are read from the store
    unless ``peer_keys_from_store`` is False (a caller that knows every org's keys).
    StoreError when the file cannot be read at all."""
    if not path.is_file():
        raise StoreError(f"no store at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path} to read: {exc}") from exc
    try:
        conn.execute("BEGIN")  # one snapshot for every check
        return _Checker(conn, path, own_keys).run(peer_keys_from_store)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the store {path}: {exc}") from exc
    finally:
        conn.close()


class _Checker:
    def __init__(
        self, conn: sqlite3.Connection, path: Path, own_keys: Mapping[str, Sequence[Verifier]]
    ) -> None:
        self.conn = conn
        self.path = path
        self.results = {name: CheckResult(name) for name in CHECKS}
        self.signed: list[SignedRoot] = []
        self.keys: dict[str, list[Verifier]] = {org: list(v) for org, v in own_keys.items()}
        self.names: dict[int, str] = {}

    def run(self, peer_keys_from_store: bool) -> CheckReport:
        if self._schema():
            if peer_keys_from_store:
                self._load_peer_keys()
            self._expected_table()
            for row in self.conn.execute(
                "SELECT id, org, collection, size, root, checkpoint, held, held_edge, pending"
                " FROM logs ORDER BY org, collection"
            ).fetchall():
                self._log(*row)
            self._merged()
            self._pdq_values()
            self._pdq_index()
            self._arrivals()
        return CheckReport(self.path, self.results, self.signed)

    # -- schema and keys ------------------------------------------------------------------

    def _schema(self) -> bool:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        return self.results["schema"].expect(
            version == len(MIGRATIONS),
            f"schema version {version}, this hashfed knows {len(MIGRATIONS)}"
            + (" (open it with 'hashfed status' to migrate)" if version < len(MIGRATIONS) else ""),
        )

    def _load_peer_keys(self) -> None:
        for org, vkey in self.conn.execute("SELECT org, vkey FROM peer_keys ORDER BY org, vkey"):
            try:
                verifier = Verifier.from_vkey(vkey)
            except HashfedError as exc:
                self.results["signatures"].problem(f"peer {org}: stored key {vkey!r} is not a vkey: {exc}")
                continue
            self.keys.setdefault(org, []).append(verifier)

    # -- one log: batches, leaves, roots, notes --------------------------------------------

    def _log(
        self,
        log: int,
        org: str,
        collection: str,
        size: int,
        root: bytes,
        note: bytes | None,
        held: int,
        held_edge: bytes,
        pending: bytes | None,
    ) -> None:
        log_id = self.names[log] = f"{org}/{collection}"
        batches, roots = self.results["batches"], self.results["roots"]
        checkpoint_rows = self.conn.execute(
            "SELECT size, root, note FROM checkpoints WHERE log = ? ORDER BY size", (log,)
        ).fetchall()
        wanted = {size} | {row[0] for row in checkpoint_rows}
        tree = CompactRange()
        roots_at: dict[int, bytes] = {0: tree.root()} if 0 in wanted else {}
        leaves = self.conn.execute(
            "SELECT idx, leaf FROM leaves WHERE log = ? ORDER BY idx", (log,)
        )
        data = self.conn.execute("SELECT idx, data FROM batches WHERE log = ? ORDER BY idx", (log,))
        expected_index = 0
        for (b_idx, batch), leaf_row in _zip_longest(data, leaves):
            where = f"{log_id} batch {expected_index}"
            if b_idx != expected_index:
                batches.problem(
                    f"{log_id}: batch indices are not exactly 0..{held - 1}: batch "
                    f"{b_idx} where batch {expected_index} should be"
                )
                break
            if leaf_row is None or leaf_row[0] != expected_index:
                got = "no leaf" if leaf_row is None else f"leaf {leaf_row[0]}"
                batches.problem(
                    f"{log_id}: leaves are not exactly 0..{held - 1}: {got} where leaf "
                    f"{expected_index} should be"
                )
                break
            batch = bytes(batch)
            batches.expect(
                bytes(leaf_row[1]) == leaf_hash(batch),
                f"{where}: leaf {expected_index} is not the hash of batch {expected_index}",
            )
            try:
                decoded = decode_batch(batch, org=org, collection=collection, index=b_idx)
            except HashfedError as exc:
                batches.problem(f"{where}: not a valid batch of this log: {exc}")
            else:
                self._apply(log, decoded.entries)
            tree.append(bytes(leaf_row[1]))
            expected_index += 1
            if tree.size in wanted:
                roots_at[tree.size] = tree.root()
        leaf_count = self.conn.execute("SELECT count(*) FROM leaves WHERE log = ?", (log,)).fetchone()[0]
        batch_count = self.conn.execute("SELECT count(*) FROM batches WHERE log = ?", (log,)).fetchone()[0]
        batches.expect(
            batch_count == held and expected_index == held,
            f"{log_id}: batch indices are not exactly 0..{held - 1} ({batch_count} batches stored)",
        )
        batches.expect(
            leaf_count == held,
            f"{log_id}: leaves are not exactly 0..{held - 1} ({leaf_count} leaf rows stored)",
        )
        intact = expected_index == held == batch_count == leaf_count
        if intact:
            roots.expect(
                CompactRange.from_bytes(held, bytes(held_edge)) == tree,
                f"{log_id}: the stored right edge is not that of leaves 0..{held - 1}",
            )
        roots.expect(size <= held, f"{log_id}: serves size {size} but holds {held}")
        if size in roots_at:
            roots.expect(
                bytes(root) == roots_at[size],
                f"{log_id}: root is not the root of leaves 0..{size - 1}",
            )
        roots.expect(
            size == 0 or note is not None, f"{log_id}: serves size {size} without a checkpoint"
        )
        for cp_size, cp_root, _note in checkpoint_rows:
            if cp_size in roots_at:
                roots.expect(
                    bytes(cp_root) == roots_at[cp_size],
                    f"{log_id}: checkpoint {cp_size} disagrees with the leaves held",
                )
        self._notes(log_id, size, bytes(root), note, pending, checkpoint_rows, roots_at)

    def _notes(
        self,
        log_id: str,
        size: int,
        root: bytes,
        note: bytes | None,
        pending: bytes | None,
        checkpoint_rows: list[tuple[int, bytes, bytes]],
        roots_at: dict[int, bytes],
    ) -> None:
        signatures = self.results["signatures"]
        org = log_id.partition("/")[0]
        verifiers = self.keys.get(org)
        notes = [("served", note), ("pending", pending)] + [
            (f"checkpoint {cp_size}", cp_note) for cp_size, _root, cp_note in checkpoint_rows
        ]
        notes = [(what, bytes(data)) for what, data in notes if data is not None]
        if not verifiers:
            if notes:
                signatures.warnings.append(
                    f"{log_id}: no key of {org} is held (a removed peer?): its {len(notes)} "
                    "notes cannot be verified"
                )
            return
        rows = {cp_size: bytes(cp_root) for cp_size, cp_root, _ in checkpoint_rows}
        for what, data in notes:
            where = f"{log_id} {what}"
            signatures.checked += 1
            try:
                signed = verify_checkpoint(data, log_id=log_id, verifiers=verifiers)
            except HashfedError as exc:
                signatures.problem(f"{where}: checkpoint does not verify: {exc}")
                continue
            cp = signed.checkpoint
            self.signed.append(SignedRoot(log_id, cp.size, cp.root, where))
            if what == "served":
                if cp.size != size:
                    signatures.problem(
                        f"{where}: served note is for size {cp.size}, the log serves size {size}"
                    )
                elif cp.root != root:
                    signatures.problem(f"{where}: served note's root is not the served root")
            elif what == "pending":
                if cp.size in roots_at and cp.root != roots_at[cp.size]:
                    signatures.problem(f"{where}: pending root disagrees with the leaves held")
            else:
                row_size = int(what.rpartition(" ")[2])
                if (cp.size, cp.root) != (row_size, rows[row_size]):
                    signatures.problem(
                        f"{where}: the checkpoint row is not its note (note says size {cp.size})"
                    )

    # -- the merged list, recomputed (PROTOCOL §8) ------------------------------------------

    def _expected_table(self) -> None:
        self.conn.execute(
            "CREATE TEMP TABLE expected ("
            " type TEXT NOT NULL, value TEXT NOT NULL, log INTEGER NOT NULL,"
            " active INTEGER NOT NULL, labels TEXT NOT NULL, opinion TEXT,"
            " retracted INTEGER NOT NULL, PRIMARY KEY (type, value, log)) WITHOUT ROWID"
        )

    def _apply(self, log: int, entries: Sequence) -> None:  # type: ignore[type-arg]
        """§8 for one batch's entries, in log order: a row per (hash, log) once the log
        added it or gave an opinion; a retracted add is kept, inactive, marked retracted."""
        # Runs of one op in one statement each: the order of the entries is kept.
        for op, run in groupby(entries, key=_op):
            if op == "add":
                rows = [(e.type, e.value, log, ";".join(e.labels)) for e in run]
                self.conn.executemany(_S8_ADD, rows)
            elif op == "remove":
                self.conn.executemany(_S8_REMOVE, [(e.type, e.value, log) for e in run])
            else:
                self.conn.executemany(_S8_OPINION, [(e.type, e.value, log, e.opinion) for e in run])

    def _merged(self) -> None:
        merged = self.results["merged"]
        columns = "type, value, log, active, labels, opinion, retracted"
        stored = self.conn.execute(f"SELECT {columns} FROM main.contributions ORDER BY type, value, log")
        expected = self.conn.cursor().execute(f"SELECT {columns} FROM temp.expected ORDER BY type, value, log")
        for have, want in _merge_join(stored, expected):
            key = have[:3] if have is not None else want[:3]  # type: ignore[index]
            type_, value, log = key
            where = f"merged list: {type_} {value} of {self.names.get(log, f'(no log {log})')}"
            if have is None:
                merged.expect(False, f"{where}: missing (§8 over the held batches gives {_row_text(want)})")
            elif want is None:
                merged.expect(False, f"{where}: stored {_row_text(have)}, but no held batch says so")
            else:
                merged.expect(
                    have == want, f"{where}: stored {_row_text(have)}, §8 gives {_row_text(want)}"
                )

    # -- PDQ -------------------------------------------------------------------------------

    def _pdq_values(self) -> None:
        """Each PDQ value of the merged list is in ``pdq_values`` exactly once, and nothing
        else is: two sorted streams walked side by side (bounded memory; the table has no
        index by value, so SQLite sorts it once)."""
        result = self.results["pdq_values"]
        merged = (
            value
            for (value,) in self.conn.execute(
                "SELECT DISTINCT value FROM contributions WHERE type = 'pdq' ORDER BY value"
            )
        )
        # lower(hex()) keeps the order of the bytes: two digits a byte, '0' < '9' < 'a' < 'f'.
        stored = self.conn.execute(
            "SELECT lower(hex(value)), id FROM pdq_values ORDER BY value, id"
        )
        want = next(merged, None)
        previous: tuple[str, int] | None = None
        for value, row_id in stored:
            if previous is not None and previous[0] == value:
                result.expect(
                    False, f"pdq_values: {value} is stored twice (rows {previous[1]} and {row_id})"
                )
                continue
            previous = (value, row_id)
            while want is not None and want < value:
                result.expect(False, f"pdq_values: {want} of the merged list is missing")
                want = next(merged, None)
            result.expect(
                want == value, f"pdq_values: row {row_id} ({value}) is no PDQ value of the merged list"
            )
            if want == value:
                result.checked += 1  # the merged list's value, found
                want = next(merged, None)
        while want is not None:
            result.expect(False, f"pdq_values: {want} of the merged list is missing")
            want = next(merged, None)

    def _pdq_index(self) -> None:
        result = self.results["pdq_index"]
        count = self.conn.execute("SELECT count(*) FROM pdq_values").fetchone()[0]
        if not count:
            return
        matcher = PdqMatcher()
        loaded = matcher.catch_up(self.conn)
        result.expect(loaded == count, f"pdq index: loaded {loaded} of {count} values")
        step = max(1, count // PDQ_SAMPLE)
        sample = [
            bytes(raw)
            for (raw,) in self.conn.execute(
                "SELECT value FROM pdq_values WHERE (id - 1) % ? = 0 ORDER BY id LIMIT ?",
                (step, PDQ_SAMPLE),
            )
        ]
        queries = sample + [_flip(raw, bits) for raw in sample for bits in (7, 29)]
        answers = matcher.search(self.conn, [q.hex() for q in queries], PDQ_MATCH_DISTANCE)
        scanned = self._pdq_scan(queries, PDQ_MATCH_DISTANCE)
        for query, got, want in zip(queries, answers, scanned, strict=True):
            result.expect(
                sorted(got) == sorted(want),
                f"pdq index: near {query.hex()} within {PDQ_MATCH_DISTANCE} bits it answers "
                f"{len(got)} values, a scan of pdq_values finds {len(want)}",
            )

    def _pdq_scan(self, queries: list[bytes], max_distance: int) -> list[list[tuple[int, str]]]:
        """Every value within ``max_distance`` bits of each query, by a plain scan of
        ``pdq_values`` in steps (bounded memory)."""
        found: list[list[tuple[int, str]]] = [[] for _ in queries]
        q = np.frombuffer(b"".join(queries), dtype=np.uint8).reshape(len(queries), 32)
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT id, value FROM pdq_values WHERE id > ? ORDER BY id LIMIT ?",
                (last, _SCAN_ROWS),
            ).fetchall()
            if not rows:
                return found
            last = rows[-1][0]
            values = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=np.uint8).reshape(len(rows), 32)
            for i in range(len(queries)):
                distances = _POPCOUNT[values ^ q[i]].sum(axis=1, dtype=np.int32)
                for j in np.flatnonzero(distances <= max_distance).tolist():
                    found[i].append((int(distances[j]), bytes(rows[j][1]).hex()))

    # -- arrivals --------------------------------------------------------------------------

    def _arrivals(self) -> None:
        result = self.results["arrivals"]
        for log, idx in self.conn.execute(
            "SELECT log, idx FROM batches b WHERE NOT EXISTS"
            " (SELECT 1 FROM arrivals a WHERE a.log = b.log AND a.idx = b.idx) ORDER BY log, idx"
        ):
            result.problem(f"arrivals: batch {idx} of {self.names.get(log, log)} has no arrival")
        for seq, log, idx in self.conn.execute(
            "SELECT seq, log, idx FROM arrivals a WHERE NOT EXISTS"
            " (SELECT 1 FROM batches b WHERE a.log = b.log AND a.idx = b.idx) ORDER BY seq"
        ):
            result.problem(f"arrivals: row {seq} is for batch {idx} of {self.names.get(log, log)}, not stored")
        result.checked = self.conn.execute("SELECT count(*) FROM arrivals").fetchone()[0]


_S8_ADD = (
    "INSERT INTO temp.expected VALUES (?, ?, ?, 1, ?, NULL, 0) ON CONFLICT DO UPDATE"
    " SET active = 1, labels = excluded.labels, retracted = 0"
)
_S8_REMOVE = (
    "UPDATE temp.expected SET active = 0, labels = '', retracted = 1"
    " WHERE type = ? AND value = ? AND log = ? AND active = 1"
)
_S8_OPINION = (
    "INSERT INTO temp.expected VALUES (?, ?, ?, 0, '', ?, 0) ON CONFLICT DO UPDATE"
    " SET opinion = excluded.opinion"
)

_op = attrgetter("op")

_POPCOUNT = np.array([n.bit_count() for n in range(256)], dtype=np.uint8)


def _flip(raw: bytes, bits: int) -> bytes:
    """``raw`` with its first ``bits`` bits (spread over the bytes) inverted."""
    out = bytearray(raw)
    for n in range(bits):
        out[(n * 7) % 32] ^= 1 << (n % 8)
    return bytes(out)


def _row_text(row: tuple | None) -> str:  # type: ignore[type-arg]
    if row is None:
        return "nothing"
    _t, _v, _l, active, labels, opinion, retracted = row
    state = "active" if active else ("retracted" if retracted else "inactive")
    return f"({state}, labels {labels!r}, opinion {opinion})"


def _zip_longest(a: Iterator[tuple], b: Iterator[tuple]) -> Iterator[tuple]:  # type: ignore[type-arg]
    """Pairs from ``a`` with the next of ``b`` (None once ``b`` is exhausted)."""
    for item in a:
        yield item, next(b, None)


def _merge_join(a: Iterator[tuple], b: Iterator[tuple]) -> Iterator[tuple]:  # type: ignore[type-arg]
    """Two streams sorted by their first three columns, paired by them (None where one
    has no row for a key)."""
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[:3] < y[:3]):
            yield x, None
            x = next(a, None)
        elif x is None or y[:3] < x[:3]:
            yield None, y
            y = next(b, None)
        else:
            yield x, y
            x, y = next(a, None), next(b, None)
