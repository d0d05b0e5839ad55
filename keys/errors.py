"""The one error tree of hashfed, split by who is to blame.

It lives in the lowest layer (``keys``) so that every layer above can raise from it;
``protocol`` and ``federation`` re-export it::

    HashfedError
    ├── ProtocolError          the bytes are malformed: parse errors, non-canonical JSON,
    │                          names or hash values outside their patterns, size caps
    ├── VerificationError      well-formed, but not trustworthy: bad signature, unknown
    │   │                      key, batch for another log or index, root or proof mismatch
    │   ├── ClockSkewError     a signed request dated outside the window: the two clocks
    │   │                      disagree (carries both times, so the answer can say so)
    │   └── EquivocationError  two validly signed checkpoints that cannot both be true;
    │                          carries both notes as evidence
    ├── TransportError         talking to a peer failed: network, timeout, a non-2xx
    │                          answer (wrapped with ``raise … from exc``)
    ├── StoreError             the local store refused: conflicts with stored state
    └── ConfigError            bad configuration, arguments, or key files
        └── KeyFileError       a private key file is missing, malformed or not 0600

The HTTP layer maps these to problem+json statuses in one place
(``federation.problems``); the CLI prints ``str(error)`` on one line and exits non-zero.
"""

from __future__ import annotations


class HashfedError(Exception):
    """Base of every error hashfed raises on purpose."""


class ProtocolError(HashfedError):
    """The bytes are malformed: they do not parse as the protocol says."""


class VerificationError(HashfedError):
    """Well-formed input that fails verification (signature, key, proof, identity)."""


class ClockSkewError(VerificationError):
    """A signed request whose ``created`` is more than ``max_skew_s`` from ``now``: the
    signer's clock and the verifier's disagree (or the request is stale)."""

    def __init__(self, message: str, *, created: int, now: int, max_skew_s: int) -> None:
        super().__init__(message)
        self.created = created
        self.now = now
        self.max_skew_s = max_skew_s


class EquivocationError(VerificationError):
    """Two validly signed checkpoints of one log that cannot both be true.

    ``ours`` and ``theirs`` are the two signed notes, verbatim, kept as evidence.
    """

    def __init__(self, message: str, *, log_id: str, ours: bytes, theirs: bytes) -> None:
        super().__init__(message)
        self.log_id = log_id
        self.ours = ours
        self.theirs = theirs


class TransportError(HashfedError):
    """A peer could not be reached, or answered with an error.

    ``status`` is the HTTP status where there was one, ``problem`` the parsed
    problem+json body where the peer sent one.
    """

    def __init__(self, message: str, *, status: int | None = None, problem: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


class StoreError(HashfedError):
    """The local store refused the operation."""


class ConfigError(HashfedError):
    """Bad configuration, command-line arguments, or trust settings."""


class KeyFileError(ConfigError):
    """A private key file is missing, malformed, or readable by others."""


__all__ = [
    "HashfedError",
    "ProtocolError",
    "VerificationError",
    "ClockSkewError",
    "EquivocationError",
    "TransportError",
    "StoreError",
    "ConfigError",
    "KeyFileError",
]
