"""The hash-type registry of PROTOCOL §3.

Each row names a type and says what its normalised value looks like: exactly
``hex_digits`` lowercase hex digits. A new type is a new row. One entry point for a type's
name and two for a value, for the two places a value comes from:

- :func:`parse_hash_type` takes a type name as a person or a file spells it (``MD5``,
  `` Sha256 ``) and returns the registry's name. Names are lower case in the registry, in
  entries and in batches; only input is folded, so signed bytes keep one spelling and the
  batch decoder stays strict.
- :func:`normalise` takes user input (any case, surrounding white space) and returns the
  normalised value, or raises :class:`ProtocolError`.
- :func:`check_normalised` takes a value read from a batch, which must already be
  normalised. A type missing from the registry is a :class:`VerificationError` there
  (the batch may be well formed for a newer registry, but this node cannot vouch for it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from hashfed.keys.errors import ProtocolError, VerificationError
from hashfed.keys.names import show

PDQ_MATCH_DISTANCE: Final = 31
"""Default PDQ match threshold: Hamming distance at most this many bits."""

PDQ_MAX_DISTANCE: Final = 64
"""The widest PDQ search a node answers, in bits: a quarter of the hash (random PDQ hashes
are about 128 apart, so wider radii match noise)."""


@dataclass(frozen=True)
class HashType:
    """One row of the registry: a hash type and the shape of its normalised value."""

    name: str
    hex_digits: int
    description: str
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    """Matches (with ``fullmatch``) a normalised value: ``hex_digits`` lowercase hex."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(f"[0-9a-f]{{{self.hex_digits}}}"))


def _registry(*rows: HashType) -> Mapping[str, HashType]:
    return MappingProxyType({row.name: row for row in rows})


HASH_TYPES: Final[Mapping[str, HashType]] = _registry(
    HashType("md5", 32, "MD5 digest of the file's bytes"),
    HashType("sha1", 40, "SHA-1 digest of the file's bytes"),
    HashType("sha256", 64, "SHA-256 digest of the file's bytes"),
    HashType("pdq", 64, "PDQ perceptual image hash, 256 bits; matched by Hamming distance"),
    HashType("photodna", 288, "PhotoDNA perceptual image hash, 144 bytes"),
)


def _lookup_for_input(type_: str) -> HashType:
    hash_type = HASH_TYPES.get(type_) if type(type_) is str else None
    if hash_type is None:
        raise ProtocolError(f"unknown hash type {show(type_)}; known: {', '.join(HASH_TYPES)}")
    return hash_type


def parse_hash_type(text: str) -> str:
    """The registry name of a hash type as input spells it: any case, surrounding white space.

    Raises :class:`ProtocolError` naming the text and the known types. Only ASCII text is
    folded, so no non-ASCII letter (a Kelvin sign, a dotted capital I) folds into a name.
    """
    stripped = text.strip() if type(text) is str else text
    name = stripped.lower() if type(stripped) is str and stripped.isascii() else None
    if name not in HASH_TYPES:
        raise ProtocolError(f"unknown hash type {show(stripped)}; known: {', '.join(HASH_TYPES)}")
    return name


def normalise(type_: str, value: str) -> str:
    """Normalise a user-supplied hash value of type ``type_``.

    Strips surrounding white space (Unicode's notion of it, so a pasted no-break space
    goes too) and lower-cases; the rest must be exactly the type's number of hex digits.
    Only ASCII text is lower-cased, so no non-ASCII character can turn into a hex digit
    on the way.
    """
    hash_type = _lookup_for_input(type_)
    stripped = value.strip() if type(value) is str else ""
    lowered = stripped.lower() if stripped.isascii() else ""
    if hash_type.pattern.fullmatch(lowered) is None:
        raise ProtocolError(
            f"bad {type_} value {show(value)}: need {hash_type.hex_digits} hex digits"
        )
    return lowered


def check_known(type_: str) -> HashType:
    """Return the registry row for a type read from a batch.

    Raises :class:`VerificationError` for a type this node does not know
    (PROTOCOL §3: an unknown type in a batch is a verification error).
    """
    hash_type = HASH_TYPES.get(type_) if type(type_) is str else None
    if hash_type is None:
        raise VerificationError(f"unknown hash type {show(type_)}")
    return hash_type


def check_normalised(type_: str, value: str) -> None:
    """Check a hash value read from a batch: it must already be normalised.

    Raises :class:`VerificationError` for an unknown type and :class:`ProtocolError` for
    a value that is not exactly the type's number of lowercase hex digits.
    """
    hash_type = check_known(type_)
    if type(value) is not str or hash_type.pattern.fullmatch(value) is None:
        raise ProtocolError(
            f"bad {type_} value {show(value)}: need {hash_type.hex_digits} lowercase hex digits"
        )


__all__ = [
    "HashType",
    "HASH_TYPES",
    "PDQ_MATCH_DISTANCE",
    "PDQ_MAX_DISTANCE",
    "parse_hash_type",
    "normalise",
    "check_known",
    "check_normalised",
]
