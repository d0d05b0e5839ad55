"""Names of PROTOCOL §1: org ids, collections, log ids and labels.

Every check returns its argument unchanged or raises :class:`ProtocolError` naming the
bad value. The patterns are compiled once and applied with ``fullmatch``, so a trailing
newline (which ``$`` would let through) is rejected, and their character classes are
spelled out in ASCII, so no Unicode letter or digit slips in.

:func:`show` and :func:`keys_difference` word the error messages of this package;
:func:`inert` makes text from elsewhere (a peer's problem detail, a redirect's Location)
safe to print on a terminal or write to a log.
"""

from __future__ import annotations

import re
from collections.abc import Set
from typing import Final

from hashfed.keys.errors import ProtocolError

ORG_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?")
COLLECTION_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
LABEL_RE: Final = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,63}")

_SHOW_CHARS: Final = 80


def show(value: object) -> str:
    """``repr`` of ``value`` for an error message, cut short if it is long."""
    if isinstance(value, (str, bytes)) and len(value) > _SHOW_CHARS:
        value = value[:_SHOW_CHARS]
    text = repr(value)
    if len(text) > _SHOW_CHARS:
        return text[: _SHOW_CHARS - 3] + "..."
    return text


INERT_MAX_CHARS: Final = 300


def inert(text: str, max_chars: int = INERT_MAX_CHARS) -> str:
    """``text`` made safe for a terminal or a log line, cut to ``max_chars`` characters.

    Every character that is not printable (C0 and C1 controls, so ESC and the CSI and OSC
    sequences it starts; DEL; newlines; Unicode format characters such as the bidi
    overrides; unassigned and surrogate code points) becomes its visible escape, as
    ``repr`` writes it (``\\x1b``, ``\\u202e``); printable text, the space included, is kept.
    So a peer's words can neither move the cursor, retitle a window, nor start a log line
    of their own. A longer text ends with ``...``, whose three dots count in the bound.
    """
    out: list[str] = []
    length = 0
    for char in text:
        piece = char if char.isprintable() else repr(char)[1:-1]
        if length + len(piece) > max_chars:
            while out and length + 3 > max_chars:  # never half an escape
                length -= len(out.pop())
            return "".join(out) + "..."
        out.append(piece)
        length += len(piece)
    return "".join(out)


def keys_difference(keys: Set[str], expected: Set[str]) -> str:
    """Say how a JSON object's ``keys`` differ from the ``expected`` ones, for a message."""
    missing = sorted(expected - keys)
    unknown = sorted(keys - expected)
    parts = []
    if missing:
        parts.append(f"missing {show(missing)}")
    if unknown:
        parts.append(f"unknown {show(unknown)}")
    return "; ".join(parts)


def _check(pattern: re.Pattern[str], what: str, value: object) -> str:
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise ProtocolError(f"bad {what} {show(value)}: must match ^{pattern.pattern}$")
    return value


def check_org(s: str) -> str:
    """Return ``s`` if it is an org id, else raise :class:`ProtocolError`."""
    return _check(ORG_RE, "org id", s)


def check_collection(s: str) -> str:
    """Return ``s`` if it is a collection name, else raise :class:`ProtocolError`."""
    return _check(COLLECTION_RE, "collection", s)


def check_label(s: str) -> str:
    """Return ``s`` if it is a label, else raise :class:`ProtocolError`."""
    return _check(LABEL_RE, "label", s)


def make_log_id(org: str, collection: str) -> str:
    """The log id ``<org>/<collection>``, after checking both parts."""
    return f"{check_org(org)}/{check_collection(collection)}"


def parse_log_id(s: str) -> tuple[str, str]:
    """Split a log id ``<org>/<collection>`` into ``(org, collection)``.

    Neither part may contain ``/``, so a log id has exactly one.
    """
    if type(s) is not str or s.count("/") != 1:
        raise ProtocolError(f"bad log id {show(s)}: must be <org>/<collection>")
    org, _, collection = s.partition("/")
    return check_org(org), check_collection(collection)


__all__ = [
    "ORG_RE",
    "COLLECTION_RE",
    "LABEL_RE",
    "check_org",
    "check_collection",
    "check_label",
    "inert",
    "make_log_id",
    "parse_log_id",
]
