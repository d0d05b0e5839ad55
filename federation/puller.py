"""Pulling (PROTOCOL §7): fetch a source's logs, verify every byte, commit page by page.

For each log the source lets us read and whose org we trust:

1. fetch its checkpoint; verify it against the org's trusted keys (never the source's);
2. compare with our view (``protocol.logview.assess``): up to date, source behind, ahead,
   or equivocation, whose two signed notes are kept as evidence;
3. when ahead, prove the new checkpoint consistent with our signed view, then fetch batches
   from what we hold in pages; each page is verified (batches, right edge, consistency proof
   from the page's end to the checkpoint) and committed in one transaction with its merged
   entries. A dropped connection loses at most the page in flight; the next pull resumes
   from the stored count. The served checkpoint moves only when every leaf is held.

Evidence is kept only when it proves itself: two validly signed roots for one size, or a
signed checkpoint that contradicts leaves we hold. A consistency proof that fails is the
source's failure (a relay could otherwise frame the org whose log it relays); it is
rejected like any other bad answer, and a real fork is caught by whoever holds the longer
side, when the shorter checkpoint reaches them.

Every listing is also gossip: each checkpoint in it is checked against our view, and a
contradiction is stored as evidence, even for logs we do not pull (our own, say).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from keys import TrustStore
from keys.errors import (
    EquivocationError,
    HashfedError,
    ProtocolError,
    VerificationError,
)
from protocol.checkpoint import SignedCheckpoint, verify_checkpoint
from protocol.logview import Assessment, PageVerifier, VerifiedPage, assess
from protocol.merkle import CompactRange, verify_consistency
from protocol.names import make_log_id, parse_log_id

from .store import LogState, Store
from .transport import Fetcher

log = logging.getLogger(__name__)

# progress(entries, batches, batches_left): a page was committed; batches_left of this
# log remain to its checkpoint (for an estimate of the total, and so an ETA).
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class LogResult:
    log_id: str
    status: str  # "updated", "up to date", "source behind", "skipped", "failed"
    old_size: int
    new_size: int
    entries: int = 0
    detail: str = ""
    # What made a "failed" result fail, for callers that act on the kind of failure.
    error: HashfedError | None = field(default=None, compare=False, repr=False)


def _now_text(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Puller:
    """Pulls logs from sources into a store.

    ``store`` is this puller's own connection (it is used from a worker thread for the
    heavy part of each page); run concurrent pulls with a puller each. Commits of several
    connections are serialised by SQLite (``BEGIN IMMEDIATE``), and each re-checks inside
    its transaction that the page starts at what is held, so two pulls of one log through
    different sources cannot interleave their pages.
    """

    def __init__(
        self,
        store: Store,
        trust: Callable[[], TrustStore],
        *,
        own_org: str,
        clock: Callable[[], float],
        page_batches: int = 4,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.trust = trust
        self.own_org = own_org
        self.clock = clock
        self.page_batches = page_batches
        self.progress = progress

    async def pull_source(self, fetcher: Fetcher, *, only: str | None = None) -> list[LogResult]:
        """Pull every log the source lists that we can verify (or just ``only``)."""
        listing = await fetcher.list_logs()
        results = []
        for item in listing:
            try:
                log_id = make_log_id(str(item.get("org")), str(item.get("collection")))
                parse_log_id(log_id)
            except ProtocolError as exc:
                results.append(
                    LogResult("?", "failed", 0, 0, detail=f"bad listing: {exc}", error=exc)
                )
                continue
            if only is not None and log_id != only:
                continue
            org, _ = parse_log_id(log_id)
            note = item.get("checkpoint")
            if isinstance(note, str):
                await self._gossip(fetcher, log_id, note.encode())
            if org == self.own_org:
                continue  # our own log: we are its source of truth, only gossip applies
            if not self.trust().verifiers_for(org):
                results.append(
                    LogResult(log_id, "skipped", 0, 0, detail=f"no trusted key for {org}")
                )
                continue
            results.append(await self.pull_log(fetcher, log_id))
        return results

    async def pull_log(self, fetcher: Fetcher, log_id: str) -> LogResult:
        """Pull one log; failures are returned as a 'failed' result, never half-stored."""
        current = self.store.log(log_id)
        old_size = current.size if current else 0
        try:
            return await self._pull_log(fetcher, log_id)
        except EquivocationError as exc:
            await asyncio.to_thread(self._keep_evidence, exc, fetcher.source)
            return LogResult(
                log_id, "failed", old_size, old_size, detail=f"EQUIVOCATION: {exc}", error=exc
            )
        except HashfedError as exc:
            latest = self.store.log(log_id)
            size = latest.size if latest else 0
            return LogResult(log_id, "failed", old_size, size, detail=str(exc), error=exc)

    async def _pull_log(self, fetcher: Fetcher, log_id: str) -> LogResult:
        org, _ = parse_log_id(log_id)
        verifiers = self.trust().verifiers_for(org)
        note = await fetcher.checkpoint(log_id)
        signed = verify_checkpoint(note, log_id=log_id, verifiers=verifiers)
        target = signed.checkpoint
        log_state = self.store.log(log_id)
        size = log_state.size if log_state else 0
        if log_state is not None and log_state.checkpoint is not None:
            verdict = self._assess(log_state, signed)
            if verdict is Assessment.UP_TO_DATE:
                return LogResult(log_id, "up to date", size, size)
            if verdict is Assessment.SOURCE_BEHIND:
                return LogResult(log_id, "source behind", size, size)
            proof = await fetcher.consistency(log_id, log_state.size, target.size)
            try:
                verify_consistency(log_state.size, target.size, log_state.root, target.root, proof)
            except VerificationError as exc:
                # Not evidence against the org: anyone can serve a bad proof, and a relay
                # must not be able to frame the org it relays. A real fork shows up as a
                # contradiction that needs no proof from the source (``assess``) on the side
                # that holds the longer log.
                raise VerificationError(
                    f"{fetcher.source} did not prove that checkpoint {target.size} of {log_id} "
                    f"extends ours ({log_state.size}): {exc}"
                ) from exc
        elif target.size == 0:
            return LogResult(log_id, "up to date", 0, 0)

        held = log_state.held_edge if log_state else None
        if log_state is not None and held is not None and held.size >= target.size:
            # We already hold these leaves (a pull towards a bigger checkpoint was cut
            # short): nothing to fetch; the checkpoint must still agree with them.
            if self.store.root_at(log_state, target.size) != target.root:
                raise EquivocationError(
                    f"{log_id}: checkpoint {target.size} contradicts the leaves held",
                    log_id=log_id,
                    ours=log_state.checkpoint or b"",
                    theirs=note,
                )
            if held.size == target.size and target.size > size:
                # Every leaf of this newer checkpoint is held: serve it from now on.
                await asyncio.to_thread(self._accept, log_id, signed)
                return LogResult(log_id, "updated", size, target.size)
            return LogResult(log_id, "source behind", size, size)

        verifier = PageVerifier(log_id, held if held is not None else CompactRange(), target)
        entries = 0
        # Pipelined: page k commits in a worker thread while page k+1 is fetched and
        # verified (SQLite releases the GIL while it writes, so the two use both cores).
        # Pages still commit strictly in order, each in its own transaction.
        committing: asyncio.Future[int] | None = None
        try:
            while not verifier.done:
                lines, proof = await self._fetch_page(fetcher, log_id, verifier.edge.size, target.size)
                page = await asyncio.to_thread(verifier.verify_page, lines, proof)
                final = signed if verifier.done else None
                if committing is not None:
                    entries += await committing
                committing = asyncio.ensure_future(
                    asyncio.to_thread(self._commit, log_id, page, final, target.size)
                )
            if committing is not None:
                entries += await committing
                committing = None
        finally:
            if committing is not None and not committing.done():
                # A verified page is being written: let its transaction finish before the
                # caller may close the store (a worker thread cannot be cancelled).
                await asyncio.wait({committing})
        return LogResult(log_id, "updated", size, target.size, entries=entries)

    async def _fetch_page(
        self, fetcher: Fetcher, log_id: str, start: int, size: int
    ) -> tuple[list[bytes], list[bytes]]:
        """Batches from ``start`` (the source may send fewer than asked, never none) and
        the consistency proof from the page's end to ``size``."""
        end = min(start + self.page_batches, size)
        lines = await fetcher.batches(log_id, start, end)
        if not lines:
            raise ProtocolError(f"{fetcher.source}: no batches from {start} for {log_id}")
        if len(lines) > end - start:
            raise ProtocolError(
                f"{fetcher.source}: asked for {end - start} batches, got {len(lines)}"
            )
        page_end = start + len(lines)
        proof = [] if page_end == size else await fetcher.consistency(log_id, page_end, size)
        return lines, proof

    def _assess(self, state: LogState, signed: SignedCheckpoint) -> Assessment:
        return assess(
            log_id=state.log_id,
            size=state.size,
            root=state.root,
            note=state.checkpoint,
            theirs=signed.checkpoint,
            their_note=signed.note,
            root_at=lambda n: self.store.root_at(state, n),
        )

    def _commit(
        self, log_id: str, page: VerifiedPage, final: SignedCheckpoint | None, size: int
    ) -> int:
        """Store one verified page in one transaction; returns its entry count."""
        org, collection = parse_log_id(log_id)
        with self.store.transaction():
            state = self.store.ensure_log(org, collection)
            state = self.store.append_batches(state, page.batches, page.leaves, page.edge)
            if final is not None:
                self.store.accept_checkpoint(state, final.checkpoint, final.note)
        count = sum(len(batch.entries) for batch in page.batches)
        if self.progress is not None:
            self.progress(count, len(page.batches), size - page.edge.size)
        return count

    def _accept(self, log_id: str, signed: SignedCheckpoint) -> None:
        with self.store.transaction():
            state = self.store.log(log_id)
            assert state is not None
            self.store.accept_checkpoint(state, signed.checkpoint, signed.note)

    async def _gossip(self, fetcher: Fetcher, log_id: str, note: bytes) -> None:
        """Check a listed checkpoint against our view; keep contradictions as evidence."""
        state = self.store.log(log_id)
        if state is None or state.checkpoint is None:
            return
        org, _ = parse_log_id(log_id)
        try:
            verifiers = self.trust().verifiers_for(org)
            signed = verify_checkpoint(note, log_id=log_id, verifiers=verifiers)
            self._assess(state, signed)
        except EquivocationError as exc:
            await asyncio.to_thread(self._keep_evidence, exc, fetcher.source)
        except HashfedError as exc:
            log.info("gossip from %s: %s: %s", fetcher.source, log_id, exc)

    def _keep_evidence(self, exc: EquivocationError, source: str) -> None:
        """Store the evidence (a write: run it in a worker thread, like a page commit)."""
        new = self.store.record_evidence(
            log_id=exc.log_id,
            kind="equivocation",
            size=None,
            ours=exc.ours,
            theirs=exc.theirs,
            source=source,
            detail=str(exc),
            now=_now_text(self.clock()),
        )
        if new:
            log.warning("EQUIVOCATION on %s (from %s): %s", exc.log_id, source, exc)
