"""The trust store: which orgs this node knows, their keys, and what each may do.

Immutable and IO-free: configuration loading builds it once and passes it down.
Every check here fails closed; an org or key that is not in the store has no rights.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hashfed.keys.ed25519 import Verifier
from hashfed.keys.errors import ConfigError, ProtocolError
from hashfed.keys.names import parse_log_id
from hashfed.keys.vkey import is_org_id

__all__ = ["TrustStore", "TrustedOrg"]


@dataclass(frozen=True)
class TrustedOrg:
    """One peer org: its trusted keys (several during a rotation) and its rights here.

    An org with no keys yet is allowed and powerless: it can neither authenticate nor
    have a checkpoint verified.

    ``readable`` holds the log ids ("org/collection") this org may read besides its own;
    ``accept_push`` lets it push its own logs to this node (PROTOCOL §6).
    Raises ConfigError when a field is invalid.
    """

    org: str
    verifiers: tuple[Verifier, ...]
    readable: frozenset[str] = frozenset()
    accept_push: bool = False

    def __post_init__(self) -> None:
        if not is_org_id(self.org):
            raise ConfigError(f"trusted org {self.org!r} is not an org id")
        verifiers = tuple(self.verifiers)
        readable = frozenset(self.readable)
        object.__setattr__(self, "verifiers", verifiers)
        object.__setattr__(self, "readable", readable)
        for verifier in verifiers:
            if not isinstance(verifier, Verifier):
                raise ConfigError(f"trusted org {self.org}: {verifier!r} is not a Verifier")
            if verifier.name != self.org:
                raise ConfigError(f"trusted org {self.org} lists a key named {verifier.name}: {verifier.vkey()}")
        if len({v.key_id for v in verifiers}) != len(verifiers):
            raise ConfigError(f"trusted org {self.org} lists the same key id twice")
        for log_id in readable:
            if not _is_log_id(log_id):
                raise ConfigError(f"trusted org {self.org}: readable log {log_id!r} is not a log id")
        if not isinstance(self.accept_push, bool):
            raise ConfigError(f"trusted org {self.org}: accept_push must be true or false")


class TrustStore:
    """An immutable set of TrustedOrg, looked up by org id or by key id."""

    __slots__ = ("_orgs", "_by_key_id")

    def __init__(self, orgs: Iterable[TrustedOrg]) -> None:
        """Raises ConfigError on a duplicate org or key id."""
        by_org: dict[str, TrustedOrg] = {}
        by_key_id: dict[str, Verifier] = {}
        for trusted in orgs:
            if not isinstance(trusted, TrustedOrg):
                raise ConfigError(f"{trusted!r} is not a TrustedOrg")
            if trusted.org in by_org:
                raise ConfigError(f"org {trusted.org} is configured twice")
            by_org[trusted.org] = trusted
            for verifier in trusted.verifiers:
                by_key_id[verifier.key_id] = verifier  # unique: key ids start with the org id
        self._orgs = by_org
        self._by_key_id = by_key_id

    def get(self, org: str) -> TrustedOrg | None:
        """The trusted org ``org``, or None."""
        return self._orgs.get(org)

    def verifiers_for(self, org: str) -> tuple[Verifier, ...]:
        """The keys trusted for ``org``; () when the org is unknown."""
        trusted = self._orgs.get(org)
        return trusted.verifiers if trusted is not None else ()

    def by_key_id(self, key_id: str) -> Verifier | None:
        """The trusted key with key id ``<name>+<hash8>``, or None."""
        return self._by_key_id.get(key_id)

    def may_read(self, reader_org: str, log_id: str) -> bool:
        """Whether ``reader_org`` may read the log ``log_id``.

        The log's own org always may (PROTOCOL §6); another org only when the log is in
        its ``readable`` set. A malformed log id is never readable.
        """
        if not _is_log_id(log_id):
            return False
        if log_id.partition("/")[0] == reader_org:
            return True
        trusted = self._orgs.get(reader_org)
        return trusted is not None and log_id in trusted.readable

    def orgs(self) -> tuple[str, ...]:
        """The org ids in the store, in configuration order."""
        return tuple(self._orgs)

    def __iter__(self) -> Iterator[TrustedOrg]:
        return iter(self._orgs.values())

    def __len__(self) -> int:
        return len(self._orgs)

    def __contains__(self, org: object) -> bool:
        return org in self._orgs

    def __repr__(self) -> str:
        return f"TrustStore(orgs={self.orgs()!r})"


def _is_log_id(log_id: object) -> bool:
    if not isinstance(log_id, str):
        return False
    try:
        parse_log_id(log_id)
    except ProtocolError:
        return False
    return True
