"""The one base64 decoder of hashfed: canonical standard base64 (RFC 4648 §4, padded,
alphabet only, zero padding bits), so that every byte string has exactly one text form and
no two texts decode to the same key, signature, root, proof hash or note. It lives at the
bottom layer because keys, protocol and federation all decode with it.

And the one reader of a whole number typed or sent as text (a query parameter, a port, a
distance): ``decimal`` takes ASCII digits only, canonical (no sign, space, ``_`` or
leading zero) and bounded, because ``str.isdigit`` accepts ``²`` (which ``int`` refuses)
and ``int`` accepts ``٣`` (Arabic-Indic three), and a 5,000-digit value costs a big-number
conversion before any range check.
"""

from __future__ import annotations

import base64
import binascii
import re

from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import show

_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, what: str) -> bytes:
    """Decode canonical base64 or raise ProtocolError naming ``what`` was being decoded."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ProtocolError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ProtocolError(f"{what} is not canonical base64")
    return raw


def decimal(text: str, *, what: str, max_value: int) -> int:
    """The whole number ``text`` spells in canonical ASCII decimal, from 0 to ``max_value``;
    else ProtocolError naming ``what``. The length is checked before any conversion."""
    if (
        len(text) > len(str(max_value))
        or not _DECIMAL.fullmatch(text)
        or int(text) > max_value
    ):
        raise ProtocolError(f"{what} must be a whole number from 0 to {max_value}, not {show(text)}")
    return int(text)
