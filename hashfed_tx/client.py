"""A thin, blocking HTTP client of a hashfed node's local listener: the change feed and
the opinions API, and nothing else.

    GET  /v1/changes?after=CURSOR&limit=N  -> {"changes": [record, ...], "next": CURSOR}
    POST /v1/opinions                      -> 201 {"staged": n, "published": [...]}
    POST /v1/lookup  {"hashes": []}        -> {"results": []}   (the cheapest authenticated
                                              request: how ``probe`` checks the token)

It knows the listener's JSON, not hashfed's Python: it imports nothing from ``hashfed`` (and
nothing from ``threatexchange``), so the exchange can be installed where the server is not,
and the wire is the only contract between them.

Errors are split by blame, each a ``HashfedClientError``:

    TokenRejected   401: no token, or not the node's (the caller decides how to say so)
    NodeUnreachable the connection failed or timed out (``raise ... from`` the cause)
    NodeRefused     any other non-success status; carries the problem+json detail
    BadAnswer       a success status whose body is not what the listener promises

``requests`` (a dependency of ``threatexchange`` already) keeps one connection open across
pages. Timeouts are explicit: a node that stops answering fails the fetch, it never hangs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import requests

MAX_CHANGES: Final = 10_000
"""The feed's largest page (``limit``); one page of records is a few MB of JSON."""
CONNECT_TIMEOUT_S: Final = 10.0
READ_TIMEOUT_S: Final = 120.0


class HashfedClientError(Exception):
    """Anything that went wrong talking to the node."""


class TokenRejected(HashfedClientError):
    pass


class NodeUnreachable(HashfedClientError):
    pass


class NodeRefused(HashfedClientError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BadAnswer(HashfedClientError):
    pass


@dataclass(frozen=True)
class ChangePage:
    changes: list[dict]
    next: str


def check_base_url(url: str) -> str:
    """The listener's base URL without a trailing slash; ValueError unless http(s)://host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base URL must be http(s)://HOST[:PORT], got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base URL must have no query or fragment, got {url!r}")
    return url.rstrip("/")


class LocalListenerClient:
    """Requests to one node's local listener, with its bearer token when it has one."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = check_base_url(base_url)
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        if token is not None:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def probe(self) -> None:
        """Raise unless the node answers and accepts our token (an empty bulk lookup)."""
        body = self._request("POST", "/v1/lookup", json_body={"hashes": []})
        if body != {"results": []}:
            raise BadAnswer(f"{self.base_url} is not a hashfed local listener (POST /v1/lookup)")

    def changes(self, after: str | None, limit: int) -> ChangePage:
        """One page of the change feed after the cursor ``after`` (None: from the start)."""
        if not 1 <= limit <= MAX_CHANGES:
            raise ValueError(f"limit must be from 1 to {MAX_CHANGES}")
        params = {"limit": str(limit)}
        if after is not None:
            params["after"] = after
        body = self._request("GET", "/v1/changes", params=params)
        if (
            not isinstance(body, dict)
            or set(body) != {"changes", "next"}
            or not isinstance(body["changes"], list)
            or not isinstance(body["next"], str)
        ):
            raise BadAnswer('GET /v1/changes did not answer {"changes": [...], "next": CURSOR}')
        return ChangePage(body["changes"], body["next"])

    def post_opinions(self, opinions: list[dict[str, str]], collection: str | None) -> dict:
        """Stage and publish these opinions in the node's own log (one signed checkpoint)."""
        body: dict[str, object] = {"opinions": opinions}
        if collection is not None:
            body["collection"] = collection
        answer = self._request("POST", "/v1/opinions", json_body=body)
        if not isinstance(answer, dict) or answer.get("staged") != len(opinions):
            raise BadAnswer("POST /v1/opinions did not confirm every opinion staged")
        return answer

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: object = None,
    ) -> object:
        url = self.base_url + path
        try:
            reply = self._session.request(
                method,
                url,
                params=params,
                json=json_body,
                timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise NodeUnreachable(f"cannot reach the hashfed node at {self.base_url}: {exc}") from exc
        if reply.status_code == 401:
            raise TokenRejected(_detail(reply) or "a valid bearer token is required")
        if not 200 <= reply.status_code < 300:
            detail = _detail(reply) or reply.reason
            raise NodeRefused(f"{method} {path}: {reply.status_code} {detail}", reply.status_code)
        try:
            return json.loads(reply.content)
        except ValueError as exc:
            raise BadAnswer(f"{method} {path}: the answer is not JSON") from exc


def _detail(reply: requests.Response) -> str:
    """The problem+json ``detail`` of an error answer, if it has one."""
    try:
        body = json.loads(reply.content)
    except ValueError:
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else ""
