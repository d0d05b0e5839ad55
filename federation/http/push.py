"""Push (PROTOCOL §6): an org with no server of its own uploads its log to a host.

A page is batches S..M-1 with the org's signed checkpoint for some N ≥ M and, where M < N,
the consistency proof from M to N: verified exactly as a pull verifies a page
(``protocol.logview``: the log's view decides equivocation, its page verifier checks the
page), then committed all or nothing by the store's one commit path. Checks, in order:
403 (caller is not the log's org, or the host does not accept its pushes), 400 (empty body,
first line without an integer index, missing or malformed header: a ``Hashfed-Checkpoint``
that is not the base64 of a checkpoint note, or a ``Hashfed-Proof`` that is not base64
hashes, or is absent where M < N, or present where M = N), 409 (S is not the number of
batches held; the problem carries ``size``), 422 (checkpoint for another log, not signed by
a trusted key of the org, N < M, or the root or proof fails). Only the 422 step costs a
signature check or hashing.

One push at a time per org: while a push by an org is in progress (from its head to its
commit), another push by it, of that log or another of its collections, gets 429
``push-in-progress`` with ``Retry-After`` at once, from its head alone (before the Expect
invitation or any byte of its body). So the bodies held at once are at most one per org
the host accepts pushes from, each within ``max_body_bytes``; a second push of one log
would fail on a stale start anyway. The start index is the body's first line, so a stale
start is found once the body is read: the protocol's order (401 for a body that does not
match its signed digest, 400 for a malformed header, before 409) needs the whole body.

A page that does not complete its checkpoint is held, not served, and the checkpoint it was
proven against is kept as the log's ``pending`` note: a later push of a checkpoint of that
size with another root is the org signing two roots for one size. The pair is kept as
evidence and the push refused (422 ``equivocation``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from aiohttp import web

from hashfed.federation.clock import timestamp
from hashfed.federation.http.auth import PEER, authenticate, read_signed_body
from hashfed.federation.http.body import invite_body
from hashfed.federation.http.node import NODE, Node
from hashfed.federation.http.problems import Problem, disk_full, problem_response
from hashfed.federation.store import DiskFull, WrongStart, run_write
from hashfed.keys import TrustedOrg
from hashfed.keys.encoding import b64decode
from hashfed.keys.errors import EquivocationError, HashfedError, ProtocolError, StoreError
from hashfed.keys.names import make_log_id, parse_log_id
from hashfed.protocol.batch import peek_index
from hashfed.protocol.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    parse_checkpoint_body,
    verify_checkpoint,
)
from hashfed.protocol.logview import LogView, VerifiedPage
from hashfed.protocol.merkle import HASH_SIZE, MAX_PROOF_HASHES
from hashfed.protocol.note import parse_note

CHECKPOINT_HEADER = "Hashfed-Checkpoint"
PROOF_HEADER = "Hashfed-Proof"


def _b64(text: str, what: str) -> bytes:
    try:
        return b64decode(text, what=what)
    except ProtocolError as exc:
        raise Problem(400, "malformed", str(exc)) from exc


def _split_lines(body: bytes) -> list[bytes]:
    if not body:
        raise Problem(400, "malformed", "empty body: send at least one batch")
    if not body.endswith(b"\n"):
        raise Problem(400, "malformed", "each batch must be followed by a newline")
    lines = body[:-1].split(b"\n")
    if any(not line for line in lines):
        raise Problem(400, "malformed", "empty line in the body")
    return lines


def _checkpoint_header(request: web.Request) -> tuple[bytes, Checkpoint]:
    """The checkpoint note of the header and its (not yet verified) body; 400 if either
    is missing or does not parse."""
    header = request.headers.get(CHECKPOINT_HEADER)
    if header is None:
        raise Problem(400, "malformed", f"missing {CHECKPOINT_HEADER} header")
    note = _b64(header, CHECKPOINT_HEADER)
    try:
        return note, parse_checkpoint_body(parse_note(note).text)
    except ProtocolError as exc:
        raise Problem(400, "malformed", f"{CHECKPOINT_HEADER} is not a checkpoint: {exc}") from exc


def _proof_header(request: web.Request, end: int, size: int) -> list[bytes]:
    """The consistency proof from the page's end to the checkpoint's size: present exactly
    when the page ends before it, as comma-separated base64 hashes (400 otherwise)."""
    header = request.headers.get(PROOF_HEADER)
    if size <= end:  # N = M (N < M is refused as unverifiable later, whatever the header)
        if header is not None and size == end:
            raise Problem(400, "malformed", f"no {PROOF_HEADER} where the page ends at the checkpoint")
        return []
    if header is None:
        raise Problem(400, "malformed", f"missing {PROOF_HEADER} header (page ends before {size})")
    parts = header.split(",")
    if len(parts) > MAX_PROOF_HASHES:
        raise Problem(400, "malformed", f"{PROOF_HEADER} has more than {MAX_PROOF_HASHES} hashes")
    proof = [_b64(part, PROOF_HEADER) for part in parts]
    if any(len(h) != HASH_SIZE for h in proof):
        raise Problem(400, "malformed", f"every {PROOF_HEADER} hash must be {HASH_SIZE} bytes")
    return proof


def _pusher_allowed(request: web.Request) -> tuple[str, TrustedOrg]:
    """The log pushed to and its org's trust entry, if the caller may push it (403)."""
    node = request.app[NODE]
    peer = request[PEER]
    try:
        log_id = make_log_id(request.match_info["org"], request.match_info["collection"])
        org, _collection = parse_log_id(log_id)
    except ProtocolError as exc:
        raise Problem(400, "malformed", str(exc)) from exc
    trusted = node.trust().get(org)
    if peer != org:
        raise Problem(403, "not-the-log-org", f"only {org} may push to {log_id}")
    if org == node.org or trusted is None or not trusted.accept_push:
        raise Problem(403, "push-not-accepted", f"this node does not accept pushes from {org}")
    return log_id, trusted


async def push_expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` on a push: invite the body only from a sender it will be
    taken from. Anyone else gets the final 401/403 (or 429) at once and sends nothing."""
    try:
        authenticate(request)
        log_id, _trusted = _pusher_allowed(request)
        _not_pushing(request.app[NODE], log_id)
    except Problem as problem:
        return problem_response(problem)
    return await invite_body(request)


PUSH_RETRY_AFTER_S = 5


def _not_pushing(node: Node, log_id: str) -> None:
    """429 if a push by the org of ``log_id`` is in progress."""
    org, _collection = parse_log_id(log_id)
    pushing = node.pushing.get(org)
    if pushing is not None:
        raise Problem(
            429,
            "push-in-progress",
            f"a push of {pushing} is in progress; {org} may push again once it has ended",
            headers={"Retry-After": str(PUSH_RETRY_AFTER_S)},
        )


@contextlib.contextmanager
def _one_push(node: Node, log_id: str) -> Iterator[None]:
    """Hold the push slot of ``log_id``'s org for the block (429 if it is taken)."""
    _not_pushing(node, log_id)
    org, _collection = parse_log_id(log_id)
    node.pushing[org] = log_id
    try:
        yield
    finally:
        del node.pushing[org]


async def handle_push(request: web.Request) -> web.Response:
    node = request.app[NODE]
    # 403
    log_id, trusted = _pusher_allowed(request)
    # 429, before a byte of the body is read
    with _one_push(node, log_id):
        return await _push(request, node, log_id, trusted)


async def _push(request: web.Request, node: Node, log_id: str, trusted: TrustedOrg) -> web.Response:
    org, _collection = parse_log_id(log_id)

    # 400 (the body is read only now, from an org allowed to send it)
    lines = _split_lines(await read_signed_body(request))
    try:
        start = peek_index(lines[0])
    except ProtocolError as exc:
        raise Problem(400, "malformed", f"first batch: {exc}") from exc
    end = start + len(lines)
    note, claimed = _checkpoint_header(request)
    proof = _proof_header(request, end, claimed.size)

    # 409
    view = node.store.logs.view(log_id)
    if start != view.held.size:
        raise Problem(
            409,
            "wrong-start",
            f"this node holds {view.held.size} batches of {log_id}; push from index {view.held.size}",
            size=view.held.size,
        )

    # 422
    try:
        signed = verify_checkpoint(note, log_id=log_id, verifiers=trusted.verifiers)
    except HashfedError as exc:
        raise Problem(422, "bad-checkpoint", str(exc)) from exc
    size = signed.checkpoint.size
    if size < end:
        raise Problem(
            422, "checkpoint-too-small", f"checkpoint size {size} is below the page's end {end}"
        )
    try:
        view.check(signed.checkpoint, signed.note)
    except EquivocationError as exc:
        async with node.write_lock:
            await run_write(
                node.writer.evidence.record_equivocation,
                exc,
                source=f"push by {org}",
                now=timestamp(node.clock()),
            )
        raise Problem(422, "equivocation", str(exc)) from exc
    page = await asyncio.to_thread(_verify, view, signed.checkpoint, lines, proof)
    async with node.write_lock:
        # Finished even if the handler is cancelled (shutdown): node.writer must not be
        # closed, or used by the next holder of write_lock, mid-transaction.
        new_size = await run_write(_commit, node, log_id, page, signed)
    return web.json_response({"size": new_size}, status=201)


def _verify(view: LogView, checkpoint: Checkpoint, lines: list[bytes], proof: list[bytes]) -> VerifiedPage:
    try:
        return view.pages_towards(checkpoint).verify_page(lines, proof)
    except HashfedError as exc:
        raise Problem(422, "verification-failed", str(exc)) from exc


def _commit(node: Node, log_id: str, page: VerifiedPage, signed: SignedCheckpoint) -> int:
    serve = (signed.checkpoint, signed.note) if page.edge.size == signed.checkpoint.size else None
    try:
        with node.writer.transaction():
            node.writer.logs.commit_page(
                log_id, page, now=timestamp(node.clock()), proven_by=signed.note, serve=serve
            )
    except WrongStart as exc:  # another push got there first
        raise Problem(
            409, "wrong-start", f"this node now holds {exc.held} batches", size=exc.held
        ) from exc
    except DiskFull as exc:
        raise disk_full() from exc
    except StoreError as exc:
        raise Problem(409, "conflict", str(exc)) from exc
    return page.edge.size
