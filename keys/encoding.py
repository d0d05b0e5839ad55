"""The one base64 decoder of hashfed: canonical standard base64 (RFC 4648 §4, padded,
alphabet only, zero padding bits), so that every byte string has exactly one text form and
no two texts decode to the same key, signature, root, proof hash or note. It lives at the
bottom layer because keys, protocol and federation all decode with it.
"""

from __future__ import annotations

import base64
import binascii

from hashfed.keys.errors import ProtocolError


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
