"""Pulling (PROTOCOL §7): fetch a source's logs, verify every byte, commit page by page.

For each log the source lets us read and whose org we trust:

1. fetch its checkpoint; verify it against the org's trusted keys (never the source's);
2. compare with our view (``protocol.logview.LogView``, the one place that decides it): up
   to date, source behind, ahead, or equivocation, whose two signed notes are kept as
   evidence;
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
contradiction is stored as evidence, even for logs we do not pull (our own, say). A listing
names each log once (later repeats are dropped) and at most ``MAX_LISTING`` of them.

A pull cut short keeps the note its held leaves were proven against (``LogState.pending``):
a checkpoint of that size with another root, or one that contradicts the held leaves, is
evidence with that note as ours, though none of those leaves is served yet.

One log pulled from two sources at once (its origin and a relay): the caller's
``log_lock`` makes the second wait for the first, which leaves it nothing to do; another
process that got further first (``hashfed pull`` beside ``serve``) ends this pull
without failure, leaving the log to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from hashfed.federation.clock import timestamp
from hashfed.federation.events import emit
from hashfed.federation.store import Store, WrongStart, finish, run_write
from hashfed.federation.sync.transport import Fetcher
from hashfed.keys import TrustStore
from hashfed.keys.errors import (
    EquivocationError,
    HashfedError,
    ProtocolError,
    VerificationError,
)
from hashfed.keys.names import inert, make_log_id, parse_log_id
from hashfed.protocol.checkpoint import SignedCheckpoint, verify_checkpoint
from hashfed.protocol.logview import Assessment, LogView, VerifiedPage
from hashfed.protocol.merkle import verify_consistency

log = logging.getLogger(__name__)

# progress(entries, batches, batches_left): a page was committed; batches_left of this
# log remain to its checkpoint (for an estimate of the total, and so an ETA).
Progress = Callable[[int, int, int], None]

# The most logs a listing may name. A coalition has tens of members with a few collections
# each; a listing past this is hostile, and every item of it costs a signature check.
MAX_LISTING = 10_000


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


class _Overtaken(Exception):
    """Another writer of the store (another process) stored this log past our page."""

    def __init__(self, held: int) -> None:
        super().__init__(held)
        self.held = held
        self.entries = 0  # merged by this pull's own pages before it was overtaken


def _listed_sizes(listing: list[dict]) -> dict[str, int]:
    sizes = {}
    for item in listing:
        org, collection, size = item.get("org"), item.get("collection"), item.get("size")
        if isinstance(org, str) and isinstance(collection, str) and type(size) is int:
            try:
                sizes.setdefault(make_log_id(org, collection), size)
            except ProtocolError:
                continue
    return sizes


class Puller:
    """Pulls logs from sources into a store.

    ``store`` is this puller's own connection (it is used from a worker thread for the
    heavy part of each page); run concurrent pulls with a puller each. Commits of several
    connections are serialised by SQLite (``BEGIN IMMEDIATE``), and each re-checks inside
    its transaction that the page starts at what is held, so two pulls of one log through
    different sources cannot interleave their pages. ``log_lock(log_id)``, when given, is
    held around each log's pull: pullers of one node that share it pull a log one at a time.
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
        log_lock: Callable[[str], contextlib.AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.store = store
        self.trust = trust
        self.own_org = own_org
        self.clock = clock
        self.page_batches = page_batches
        self.progress = progress
        self.log_lock = log_lock
        # What the last listing named: log id -> size in batches (for the lag a console
        # or the metrics show); items without a string org, collection and integer size
        # are left out.
        self.listed: dict[str, int] = {}

    async def pull_source(self, fetcher: Fetcher, *, only: str | None = None) -> list[LogResult]:
        """Pull every log the source lists that we can verify (or just ``only``)."""
        listing = await fetcher.list_logs()
        if len(listing) > MAX_LISTING:
            raise ProtocolError(
                f"{fetcher.source}: the listing names {len(listing)} logs, more than {MAX_LISTING}"
            )
        results = []
        seen: set[str] = set()
        self.listed = _listed_sizes(listing)
        for item in listing:
            org, collection = item.get("org"), item.get("collection")
            try:
                if not isinstance(org, str) or not isinstance(collection, str):
                    raise ProtocolError("an item without a string org and collection")
                log_id = make_log_id(org, collection)
            except ProtocolError as exc:
                results.append(
                    LogResult("?", "failed", 0, 0, detail=f"bad listing: {exc}", error=exc)
                )
                continue
            if log_id in seen:
                continue  # a log is listed once; a repeat would be checked and pulled twice
            seen.add(log_id)
            if only is not None and log_id != only:
                continue
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
        lock = self.log_lock(log_id) if self.log_lock is not None else contextlib.nullcontext()
        async with lock:
            current = self.store.logs.get(log_id)
            old_size = current.size if current else 0
            try:
                return await self._pull_log(fetcher, log_id)
            except EquivocationError as exc:
                await run_write(self._keep_evidence, exc, fetcher.source)
                return LogResult(
                    log_id, "failed", old_size, old_size, detail=f"EQUIVOCATION: {exc}", error=exc
                )
            except HashfedError as exc:
                latest = self.store.logs.get(log_id)
                size = latest.size if latest else 0
                return LogResult(log_id, "failed", old_size, size, detail=str(exc), error=exc)

    async def _pull_log(self, fetcher: Fetcher, log_id: str) -> LogResult:
        org, _ = parse_log_id(log_id)
        verifiers = self.trust().verifiers_for(org)
        note = await fetcher.checkpoint(log_id)
        signed = verify_checkpoint(note, log_id=log_id, verifiers=verifiers)
        target = signed.checkpoint
        view = self.store.logs.view(log_id)
        size = view.size
        verdict = view.check(target, note)
        if verdict is Assessment.UP_TO_DATE:
            return LogResult(log_id, "up to date", size, size)
        if verdict is Assessment.SOURCE_BEHIND:
            return LogResult(log_id, "source behind", size, size)
        if view.note is not None:
            proof = await fetcher.consistency(log_id, view.size, target.size)
            try:
                verify_consistency(view.size, target.size, view.root, target.root, proof)
            except VerificationError as exc:
                # Not evidence against the org: anyone can serve a bad proof, and a relay
                # must not be able to frame the org it relays. A real fork shows up as a
                # contradiction that needs no proof from the source (``LogView``) on the side
                # that holds the longer log.
                raise VerificationError(
                    f"{fetcher.source} did not prove that checkpoint {target.size} of {log_id} "
                    f"extends ours ({view.size}): {exc}"
                ) from exc
        elif target.size == 0:
            return LogResult(log_id, "up to date", 0, 0)

        if view.held.size >= target.size:
            # We already hold these leaves (a pull towards a bigger checkpoint was cut
            # short): nothing to fetch; the checkpoint must still agree with them.
            view.check_held(target, note)
            if view.held.size == target.size and target.size > size:
                # Every leaf of this newer checkpoint is held: serve it from now on.
                try:
                    await run_write(self._accept, log_id, signed)
                except _Overtaken as exc:
                    return self._overtaken(log_id, size, 0, exc)
                return LogResult(log_id, "updated", size, target.size)
            return LogResult(log_id, "source behind", size, size)

        try:
            entries = await self._pull_pages(fetcher, view, signed)
        except _Overtaken as exc:
            return self._overtaken(log_id, size, exc.entries, exc)
        return LogResult(log_id, "updated", size, target.size, entries=entries)

    async def _pull_pages(self, fetcher: Fetcher, view: LogView, signed: SignedCheckpoint) -> int:
        """Fetch, verify and commit pages from the held leaves up to the checkpoint;
        returns the number of entries merged."""
        log_id = view.log_id
        target = signed.checkpoint
        verifier = view.pages_towards(target)
        entries = 0
        # Pipelined: page k commits in a worker thread while page k+1 is fetched and
        # verified (SQLite releases the GIL while it writes, so the two use both cores).
        # Pages still commit strictly in order, each in its own transaction.
        committing: asyncio.Future[int] | None = None
        try:
            while not verifier.done:
                lines, proof = await self._fetch_page(fetcher, log_id, verifier.edge.size, target.size)
                page = await asyncio.to_thread(verifier.verify_page, lines, proof)
                if committing is not None:
                    entries += await finish(committing)
                committing = asyncio.ensure_future(
                    asyncio.to_thread(self._commit, log_id, page, signed, verifier.done)
                )
            if committing is not None:
                entries += await finish(committing)
                committing = None
        except _Overtaken as exc:
            exc.entries = entries
            raise
        finally:
            if committing is not None:
                # A verified page is being written while this pull ends with an error or is
                # cancelled: let its transaction finish before the caller may close the
                # store (a worker thread cannot be stopped). The error that ended the pull
                # is the one raised; a cancellation is raised once the page is written.
                with contextlib.suppress(Exception):
                    await finish(committing)
        return entries

    def _overtaken(self, log_id: str, size: int, entries: int, exc: _Overtaken) -> LogResult:
        """Another process stored this log further than our page: not a failure, and
        nothing more to do here (it, or the next round, completes the log)."""
        latest = self.store.logs.get(log_id)
        return LogResult(
            log_id,
            "updated" if entries else "up to date",
            size,
            latest.size if latest is not None else size,
            entries=entries,
            detail=f"another pull of {log_id} got further (it holds {exc.held} batches)",
        )

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

    def _commit(self, log_id: str, page: VerifiedPage, signed: SignedCheckpoint, last: bool) -> int:
        """Store one verified page in one transaction (and, after the ``last``, serve the
        checkpoint it was proven against); returns its entry count."""
        serve = (signed.checkpoint, signed.note) if last else None
        try:
            with self.store.transaction():
                self.store.logs.commit_page(
                    log_id, page, now=timestamp(self.clock()), proven_by=signed.note, serve=serve
                )
        except WrongStart as exc:
            if exc.held > exc.start:
                raise _Overtaken(exc.held) from exc
            raise
        count = sum(len(batch.entries) for batch in page.batches)
        if self.progress is not None:
            self.progress(count, len(page.batches), signed.checkpoint.size - page.edge.size)
        return count

    def _accept(self, log_id: str, signed: SignedCheckpoint) -> None:
        with self.store.transaction():
            state = self.store.logs.get(log_id)
            assert state is not None
            if state.held != signed.checkpoint.size:
                raise _Overtaken(state.held)
            self.store.logs.accept_checkpoint(state, signed.checkpoint, signed.note)

    async def _gossip(self, fetcher: Fetcher, log_id: str, note: bytes) -> None:
        """Check a listed checkpoint against our view; keep contradictions as evidence."""
        view = self.store.logs.view(log_id)
        if not view.known:
            return
        org, _ = parse_log_id(log_id)
        try:
            verifiers = self.trust().verifiers_for(org)
            signed = verify_checkpoint(note, log_id=log_id, verifiers=verifiers)
            view.check(signed.checkpoint, signed.note)
        except EquivocationError as exc:
            await run_write(self._keep_evidence, exc, fetcher.source)
        except HashfedError as exc:
            log.info("gossip from %s: %s: %s", fetcher.source, log_id, inert(str(exc)))

    def _keep_evidence(self, exc: EquivocationError, source: str) -> None:
        """Store the evidence (a write: run it in a worker thread, like a page commit)."""
        now = timestamp(self.clock())
        if self.store.evidence.record_equivocation(exc, source=source, now=now):
            emit(
                "evidence",
                logging.WARNING,
                node=self.own_org,
                log=exc.log_id,
                kind="equivocation",
                source=source,
                detail=str(exc),
            )
