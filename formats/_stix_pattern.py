"""A small strict parser for the STIX 2.1 patterns that carry file hashes, and their writer.

It reads exactly this subset of the STIX patterning grammar, and refuses the rest with an
error naming what it met and where (a character offset into the pattern):

    pattern      := observation ( "OR" observation )*
    observation  := "[" comparison ( ( "AND" | "OR" ) comparison )* "]"
    comparison   := "file:" property "=" string
    property     := "hashes." key | name      (name: letters, digits, "_")
    key          := name | "'" algorithm "'"  (algorithm: no quote, no backslash)
    string       := "'" ( any but "'" and "\\" | "\\'" | "\\\\" )* "'"

That is what MISP, OpenCTI and the ``stix2`` library write for file-hash indicators:
``[file:hashes.MD5 = '…']``, ``[file:hashes.'SHA-256' = '…' OR file:hashes.MD5 = '…']``,
``[file:name = 'x.jpg' AND file:hashes.MD5 = '…']``, ``[…] OR […]``. Every hash
comparison in the pattern is returned; comparisons on other file properties (a name, a
size as a string) narrow the indicator in a way a hash list cannot hold and are dropped
(the hash alone names the file). Parentheses, other operators (``!=``, ``LIKE``, ``IN``,
``MATCHES``), ``NOT``, observation operators other than ``OR`` (``AND``, ``FOLLOWEDBY``:
they speak of several observations, not one file), qualifiers (``WITHIN``, ``REPEATS``,
``START``), numbers and other object types are refused: nothing is evaluated.

Hash algorithm names are matched case-insensitively against :data:`ALGORITHMS`: STIX's
own names (``MD5``, ``SHA-1``, ``SHA-256``) and the spellings tools use in practice
(``SHA1``, ``SHA256``, ``SHA_256``); PDQ and PhotoDNA, which the open hash-algorithm-ov
vocabulary does not list and no tool has standardised, are ``PDQ`` and ``PhotoDNA``. An
algorithm hashfed does not hold (``SHA-512``, ``SSDEEP``) is returned as ``None`` so the
caller can decide.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import show

MAX_PATTERN_CHARS: Final = 1 << 16
MAX_COMPARISONS: Final = 1024

ALGORITHMS: Final = {
    "md5": "md5",
    "md-5": "md5",
    "sha-1": "sha1",
    "sha1": "sha1",
    "sha_1": "sha1",
    "sha-256": "sha256",
    "sha256": "sha256",
    "sha_256": "sha256",
    "pdq": "pdq",
    "photodna": "photodna",
}
"""Lower-cased STIX hash names to hashfed types."""

STIX_NAMES: Final = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "pdq": "PDQ",
    "photodna": "PhotoDNA",
}
"""The name each hashfed type is written with."""

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<open>\[)
  | (?P<close>\])
  | (?P<equals>=)
  | (?P<string>'(?:[^'\\]|\\['\\])*')
  | (?P<path>[a-z0-9][a-z0-9-]*:[A-Za-z0-9_]+(?:\.(?:[A-Za-z0-9_]+|'[^'\\]*'))*)
  | (?P<word>[A-Za-z_]+)
    """,
    re.VERBOSE,
)


class HashComparison(NamedTuple):
    algorithm: str
    """The algorithm as the pattern spells it (unquoted)."""
    type: str | None
    """The hashfed type, or ``None`` for an algorithm hashfed does not hold."""
    value: str


def _tokens(pattern: str) -> list[tuple[str, str, int]]:
    tokens = []
    at = 0
    while at < len(pattern):
        match = _TOKEN.match(pattern, at)
        if match is None:  # reported when the parser gets here, so an earlier error wins
            tokens.append(("bad", pattern[at : at + 20], at))
            break
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group(), at))
        at = match.end()
    return tokens


def _unquote(literal: str) -> str:
    return re.sub(r"\\(['\\])", r"\1", literal[1:-1])


def parse_hash_pattern(pattern: str) -> list[HashComparison]:
    """Every file-hash comparison of a STIX pattern of the subset above, in order.

    Raises :class:`ProtocolError` on anything outside the subset, or on a pattern with no
    hash comparison at all.
    """
    if type(pattern) is not str:
        raise ProtocolError(f"pattern must be a string, not {show(pattern)}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ProtocolError(f"pattern of {len(pattern)} characters: at most {MAX_PATTERN_CHARS}")
    tokens = _tokens(pattern)
    found: list[HashComparison] = []
    position = 0

    def take(kind: str, what: str) -> tuple[str, str, int]:
        nonlocal position
        if position == len(tokens):
            raise ProtocolError(f"pattern: expected {what}, got the end")
        token = tokens[position]
        if token[0] == "bad":
            raise ProtocolError(f"pattern: unexpected {show(token[1])} at offset {token[2]}")
        if token[0] != kind:
            raise ProtocolError(f"pattern: expected {what}, got {show(token[1])} at offset {token[2]}")
        position += 1
        return token

    comparisons = 0
    while True:
        take("open", "'['")
        while True:
            _, path, path_at = take("path", "an object path such as file:hashes.MD5")
            take("equals", "'=' (the only comparison read)")
            _, literal, _ = take("string", "a quoted string")
            comparisons += 1
            if comparisons > MAX_COMPARISONS:
                raise ProtocolError(f"pattern has more than {MAX_COMPARISONS} comparisons")
            comparison = _comparison(path, path_at, _unquote(literal))
            if comparison is not None:
                found.append(comparison)
            if position < len(tokens) and tokens[position][0] == "word" and tokens[position][1] in ("AND", "OR"):
                position += 1
                continue
            break
        take("close", "']', 'AND' or 'OR'")
        if position == len(tokens):
            break
        kind, text, at = tokens[position]
        if (kind, text) != ("word", "OR"):
            what = "unexpected" if kind == "bad" else "expected 'OR' or the end after an observation, got"
            raise ProtocolError(f"pattern: {what} {show(text)} at offset {at}")
        position += 1
    if not found:
        raise ProtocolError("pattern compares no file hash")
    return found


def _comparison(path: str, at: int, value: str) -> HashComparison | None:
    object_type, _, rest = path.partition(":")
    if object_type != "file":
        raise ProtocolError(f"pattern: {show(path)} at offset {at} is not about a file")
    steps = rest.split(".", 1)
    if steps[0] != "hashes":
        if len(steps) > 1:
            raise ProtocolError(f"pattern: {show(path)} at offset {at}: only file:hashes.<algorithm> and file:<property> are read")
        return None  # file:name and the like: dropped
    if len(steps) == 1 or "." in steps[1].strip("'") or steps[1].count("'") not in (0, 2):
        raise ProtocolError(f"pattern: {show(path)} at offset {at}: expected file:hashes.<algorithm>")
    algorithm = steps[1].strip("'") if steps[1].startswith("'") else steps[1]
    if not algorithm or "'" in algorithm:
        raise ProtocolError(f"pattern: {show(path)} at offset {at}: expected file:hashes.<algorithm>")
    return HashComparison(algorithm, ALGORITHMS.get(algorithm.lower()), value)


def hash_path(hash_type: str) -> str:
    """``file:hashes.<name>`` for a hashfed type, the name quoted where STIX requires it."""
    name = STIX_NAMES[hash_type]
    return f"file:hashes.{name}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"file:hashes.'{name}'"


def hash_pattern(hash_type: str, value: str) -> str:
    """The pattern of one hash: ``[file:hashes.'SHA-256' = '…']``. ``value`` is a
    normalised hex value, so it needs no escaping."""
    return f"[{hash_path(hash_type)} = '{value}']"
