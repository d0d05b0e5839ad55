"""Talking to a peer: the ``Fetcher`` interface the puller depends on, and its aiohttp
implementation with RFC 9421 signed requests.

The puller only sees ``Fetcher``; a test plugs in a peer that forks, truncates or stalls.
Every failure here is a ``TransportError`` (with the HTTP status and problem body when the
peer answered), raised ``from`` the underlying exception.

A peer's request never follows a redirect: a redirect would carry our signed headers to
an address the peer chose (perhaps from https down to http), and the answer found there
would be taken for the peer's. A 3xx is an error naming the status and the Location.
Text from the peer (a problem's ``detail``, a Location, a reason) reaches our messages
only through ``keys.names.inert``: it may end up on a terminal or in a log.

A 401 ``clock-skew`` problem (the peer found our ``created`` outside its window) is
worded as what it is, with the offset: the operator has a clock to fix, not a key.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp
from yarl import URL

from hashfed.keys import Signer
from hashfed.keys.errors import ProtocolError, TransportError
from hashfed.keys.names import inert
from hashfed.protocol.batch import MAX_BATCH_BYTES
from hashfed.protocol.httpsig import RequestTarget, authority_of, new_nonce, sign_request
from hashfed.protocol.merkle import decode_proof
from hashfed.protocol.note import MAX_NOTE_BYTES

# A listing or a proof is small; a checkpoint note is a few hundred bytes.
MAX_SMALL_RESPONSE = 1024 * 1024


class Fetcher(Protocol):
    """What the puller needs from a source of logs (a peer or a relay)."""

    source: str

    async def list_logs(self) -> list[dict]: ...

    async def checkpoint(self, log_id: str) -> bytes: ...

    async def batches(self, log_id: str, start: int, end: int) -> list[bytes]: ...

    async def consistency(self, log_id: str, old: int, new: int) -> list[bytes]: ...


def make_ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    """Verify peers against the system store, or against ``ca_file`` when one is set."""
    if ca_file is None:
        return None  # aiohttp's default: system store, hostname checked
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"cannot load CA file {ca_file}: {exc}") from exc


class HttpPeer:
    """A peer's HTTP API, every request signed with this node's key."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        signer: Signer,
        *,
        clock: Callable[[], float],
        ca_file: str | None = None,
        page_batches: int = 4,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"peer URL {base_url!r} is not an http(s) URL")
        self.session = session
        self.base = base_url.rstrip("/")
        self.base_path = parts.path.rstrip("/")
        self.authority = authority_of(base_url)
        self.signer = signer
        self.clock = clock
        self.ssl = make_ssl_context(ca_file)
        self.source = base_url
        self.max_page_bytes = page_batches * (MAX_BATCH_BYTES + 1)

    def _signed(self, method: str, path: str, query: dict[str, int], body: bytes | None):  # type: ignore[no-untyped-def]
        raw_query = urlencode(query)
        full_path = self.base_path + path
        target = RequestTarget(method, self.authority, full_path, raw_query)
        headers = sign_request(
            self.signer,
            target,
            body,
            created=int(self.clock()),
            nonce=new_nonce(os.urandom(16)),
        )
        url = URL(self.base + path + (f"?{raw_query}" if raw_query else ""), encoded=True)
        return url, headers

    async def _request(
        self,
        method: str,
        path: str,
        query: dict[str, int] | None = None,
        *,
        body: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
        limit: int = MAX_SMALL_RESPONSE,
        expect: int = 200,
        signed: bool = True,
    ) -> bytes:
        if signed:
            url, headers = self._signed(method, path, query or {}, body)
        else:  # GET /v1/node, the one open route
            url, headers = URL(self.base + path, encoded=True), {}
        if extra_headers:
            headers.update(extra_headers)
        try:
            async with self.session.request(
                method,
                url,
                # A file object, not bytes: aiohttp writes it in chunks (a push page may be
                # 32 MiB) and warns that raw bytes past 1 MiB would hold the event loop.
                data=None if body is None else io.BytesIO(body),
                headers=headers,
                ssl=self.ssl if self.ssl else True,
                allow_redirects=False,
            ) as response:
                if 300 <= response.status < 400:
                    raise _redirect_error(response.status, response.headers, f"{method} {path}")
                data = await _read_capped(response, limit)
                if response.status != expect:
                    raise _error_from(
                        response.status, data, f"{method} {path}",
                        our_time=self.clock(), date=response.headers.get("Date"),
                    )
                return data
        except TransportError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = inert(str(exc) or type(exc).__name__)
            raise TransportError(f"{self.source}: {method} {path}: {reason}") from exc

    async def node_info(self) -> dict:
        return _json_object(await self._request("GET", "/v1/node", signed=False), "node info")

    async def list_logs(self) -> list[dict]:
        data = await self._request("GET", "/v1/logs")
        try:
            listing = json.loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting
            raise ProtocolError(f"{self.source}: /v1/logs is not JSON") from exc
        if not isinstance(listing, list) or not all(isinstance(x, dict) for x in listing):
            raise ProtocolError(f"{self.source}: /v1/logs is not a list of objects")
        return listing

    async def checkpoint(self, log_id: str) -> bytes:
        return await self._request("GET", f"/v1/logs/{log_id}/checkpoint", limit=MAX_NOTE_BYTES)

    async def batches(self, log_id: str, start: int, end: int) -> list[bytes]:
        data = await self._request(
            "GET",
            f"/v1/logs/{log_id}/batches",
            {"start": start, "end": end},
            limit=self.max_page_bytes,
        )
        if not data:
            return []
        if not data.endswith(b"\n"):
            raise ProtocolError(f"{self.source}: batch page does not end with a newline")
        return data[:-1].split(b"\n")

    async def consistency(self, log_id: str, old: int, new: int) -> list[bytes]:
        data = await self._request(
            "GET", f"/v1/logs/{log_id}/proof/consistency", {"old": old, "new": new}
        )
        return decode_proof(data)

    async def push(
        self, log_id: str, lines: Sequence[bytes], note: bytes, proof: Sequence[bytes]
    ) -> int:
        """Push one page (PROTOCOL §6); returns the host's new size."""
        headers = {"Hashfed-Checkpoint": base64.b64encode(note).decode()}
        if proof:
            headers["Hashfed-Proof"] = ",".join(base64.b64encode(h).decode() for h in proof)
        body = b"".join(line + b"\n" for line in lines)
        data = await self._request(
            "POST",
            f"/v1/logs/{log_id}/batches",
            body=body,
            extra_headers={**headers, "Content-Type": "application/x-ndjson"},
            expect=201,
        )
        size = _json_object(data, "push answer").get("size")
        if type(size) is not int:
            raise ProtocolError(f"{self.source}: push answer has no integer size")
        return size


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks = []
    total = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        total += len(chunk)
        if total > limit:
            raise TransportError(f"answer larger than {limit} bytes", status=response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(data: bytes, what: str) -> dict:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise ProtocolError(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return value


def _redirect_error(status: int, headers: Mapping[str, str], what: str) -> TransportError:
    location = headers.get("Location")
    where = f" to {inert(location, 200)}" if location is not None else ""
    return TransportError(
        f"{what}: HTTP {status}: the peer redirects{where}; a peer's requests never follow"
        " a redirect (update its URL with 'hashfed peer add' if it has moved)",
        status=status,
    )


CLOCK_SKEW = "urn:hashfed:problem:clock-skew"


def _error_from(
    status: int, data: bytes, what: str, *, our_time: float, date: str | None
) -> TransportError:
    problem: dict | None = None
    detail = ""
    try:
        parsed = json.loads(data)
        if isinstance(parsed, dict):
            problem = parsed
            detail = inert(str(parsed.get("detail", "")))
    except (ValueError, RecursionError):
        detail = inert(data[:200].decode("utf-8", "replace"), 200)
    if status == 401 and problem is not None and problem.get("type") == CLOCK_SKEW:
        detail = _skew_detail(problem, our_time, date) or detail
    return TransportError(f"{what}: HTTP {status}: {detail}".rstrip(": "), status=status, problem=problem)


def _skew_detail(problem: dict, our_time: float, date: str | None) -> str | None:
    """'the peer says our clock is off by N s', from the node's time in the problem
    (``now``, whole seconds) or else its ``Date`` header."""
    their_time: float | None = None
    now = problem.get("now")
    if type(now) is int:
        their_time = now
    elif date is not None:
        try:
            their_time = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            their_time = None
    if their_time is None:
        return None
    offset = round(our_time - their_time)
    side = "ahead of" if offset > 0 else "behind"
    return (
        f"clock skew: the peer says our clock is off by {offset} s ({abs(offset)} s {side}"
        " the peer's); set this machine's clock (NTP) and retry"
    )
