"""Reader tokens: how a client that cannot sign requests (a TAXII client: MISP, OpenCTI)
authenticates (PROTOCOL §6). A token stands for one reader org and reads exactly what that
org may read on ``/v1/``; it is checked against the same trust store on every request.

A token is 32 random bytes, unpadded base64url (43 characters), made by the caller (the
CLI) and shown once. The store keeps:

- its **selector**, the first 12 characters, to find the row by an index. A lookup's
  timing can tell an attacker at most whether a selector exists (72 random bits, which
  authenticate nothing on their own);
- the **SHA-256 of the whole token**, compared with ``hmac.compare_digest`` (constant time).

Why SHA-256 and not a password hash (argon2, scrypt): a password hash slows the guessing
of *low-entropy* secrets. A token has 256 random bits, so no guessing succeeds, slow or
fast; a deliberately slow hash would only hand anyone with a bad token a way to burn the
node's CPU on every request. SHA-256 is preimage-resistant, so a copy of the database
gives nobody a usable token.

A revoked token is kept (with when), so ``token list`` shows what existed; it never
authenticates again. ``last_used`` is recorded at most once a minute per token
(:data:`LAST_USED_RESOLUTION_S`): a write per request would put a busy reader's every page
behind the write lock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hashfed.keys.errors import StoreError

if TYPE_CHECKING:
    from hashfed.federation.store.connection import Store

TOKEN_BYTES: Final = 32
SELECTOR_CHARS: Final = 12
LAST_USED_RESOLUTION_S: Final = 60
TOKEN_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{43}")
"""32 bytes, unpadded base64url."""

SCHEMA: Final = (
    """
    CREATE TABLE reader_tokens (
        id          INTEGER PRIMARY KEY,
        org         TEXT NOT NULL,
        selector    TEXT NOT NULL UNIQUE,
        digest      BLOB NOT NULL,
        created_at  TEXT NOT NULL,
        last_used   TEXT,
        revoked_at  TEXT
    )
    """,
)


@dataclass(frozen=True, slots=True)
class ReaderToken:
    id: int
    org: str
    created_at: str
    last_used: str | None
    revoked_at: str | None


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


_COLUMNS = "id, org, created_at, last_used, revoked_at"


class Tokens:
    """The reader-token repository of a ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._conn = store.conn

    def add(self, org: str, token: str, *, now: str) -> ReaderToken:
        """Store a new token (made by the caller) for ``org``; returns its row."""
        if not TOKEN_PATTERN.fullmatch(token):
            raise StoreError("a reader token is 32 random bytes in unpadded base64url")
        with self._store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO reader_tokens (org, selector, digest, created_at) VALUES (?, ?, ?, ?)",
                (org, token[:SELECTOR_CHARS], token_digest(token), now),
            )
            token_id = cursor.lastrowid
        found = self.get(token_id)
        assert found is not None
        return found

    def get(self, token_id: int) -> ReaderToken | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM reader_tokens WHERE id = ?", (token_id,)
        ).fetchone()
        return None if row is None else ReaderToken(*row)

    def all(self) -> list[ReaderToken]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM reader_tokens ORDER BY id")
        return [ReaderToken(*row) for row in rows.fetchall()]

    def revoke(self, token_id: int, *, now: str) -> ReaderToken:
        """Revoke a token for good; StoreError if there is none with that id or it is
        revoked already."""
        with self._store.transaction() as conn:
            cursor = conn.execute(
                "UPDATE reader_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, token_id),
            )
            if cursor.rowcount != 1:
                known = self.get(token_id)
                raise StoreError(
                    f"no reader token {token_id}"
                    if known is None
                    else f"reader token {token_id} was revoked at {known.revoked_at}"
                )
        found = self.get(token_id)
        assert found is not None
        return found

    def check(self, token: str) -> ReaderToken | None:
        """The live token ``token`` is, or None (unknown, malformed or revoked)."""
        if not TOKEN_PATTERN.fullmatch(token):
            return None
        row = self._conn.execute(
            f"SELECT digest, {_COLUMNS} FROM reader_tokens WHERE selector = ?",
            (token[:SELECTOR_CHARS],),
        ).fetchone()
        if row is None:
            return None
        if not hmac.compare_digest(row[0], token_digest(token)):
            return None
        found = ReaderToken(*row[1:])
        return None if found.revoked_at is not None else found

    def touch(self, token_id: int, *, now: str) -> None:
        """Record a use (one short transaction)."""
        with self._store.transaction() as conn:
            conn.execute("UPDATE reader_tokens SET last_used = ? WHERE id = ?", (now, token_id))
