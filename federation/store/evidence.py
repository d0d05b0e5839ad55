"""Evidence of equivocation: two validly signed checkpoints of one log that cannot both be
true, kept with where they came from. The one writer of it is ``record_equivocation``, for
the puller (a pulled or gossiped checkpoint) and the push handler (a pushed one) alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hashfed.keys.errors import EquivocationError
from hashfed.protocol.checkpoint import parse_checkpoint_body
from hashfed.protocol.note import parse_note

if TYPE_CHECKING:
    from hashfed.federation.store.connection import Store


@dataclass(frozen=True, slots=True)
class Evidence:
    id: int
    log_id: str
    kind: str
    size: int | None
    ours: bytes | None
    theirs: bytes | None
    source: str | None
    detail: str
    detected_at: str


class EvidenceLog:
    """The evidence repository of a ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record_equivocation(self, exc: EquivocationError, *, source: str, now: str) -> bool:
        """Keep the two notes of an equivocation, in a transaction of its own; the same
        pair is kept once. Returns True when it is new."""
        return self.record(
            log_id=exc.log_id,
            kind="equivocation",
            size=parse_checkpoint_body(parse_note(exc.theirs).text).size,
            ours=exc.ours,
            theirs=exc.theirs,
            source=source,
            detail=str(exc),
            now=now,
        )

    def record(
        self,
        *,
        log_id: str,
        kind: str,
        size: int | None,
        ours: bytes | None,
        theirs: bytes | None,
        source: str | None,
        detail: str,
        now: str,
    ) -> bool:
        """Keep evidence of a misbehaving log or peer; the same pair is kept once.
        Returns True when it is new."""
        with self._store.transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM evidence WHERE log_id = ? AND kind = ? AND size IS ? AND"
                " ours IS ? AND theirs IS ?",
                (log_id, kind, size, ours, theirs),
            ).fetchone()
            if exists:
                return False
            conn.execute(
                "INSERT INTO evidence (log_id, kind, size, ours, theirs, source, detail,"
                " detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (log_id, kind, size, ours, theirs, source, detail, now),
            )
            return True

    def all(self) -> list[Evidence]:
        rows = self._store.conn.execute(
            "SELECT id, log_id, kind, size, ours, theirs, source, detail, detected_at"
            " FROM evidence ORDER BY id"
        ).fetchall()
        return [Evidence(*row) for row in rows]
