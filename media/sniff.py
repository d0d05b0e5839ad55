"""What a file is, from its first bytes (magic numbers), never from its name. Pure.

A name can lie (``.jpg`` on a PNG, on an HTML page, on a video); the first bytes of every
format hashed here identify it. What is recognised:

=========  ======================================================  =========
format     first bytes                                              kind
=========  ======================================================  =========
JPEG       ``FF D8 FF``                                             image
PNG        ``89 'PNG' 0D 0A 1A 0A``                                 image
GIF        ``'GIF87a'`` or ``'GIF89a'``                             image
WebP       ``'RIFF'`` size ``'WEBP'``                               image
TIFF       ``'II' 2A 00``, ``'MM' 00 2A`` (BigTIFF: 2B)             image
BMP        ``'BM'``, and a known info-header size at byte 14        image
AVI        ``'RIFF'`` size ``'AVI '``                               video
MP4, MOV   a box type at byte 4: ``ftyp`` (QuickTime if the brand   video
           is ``'qt  '``), or ``moov``/``mdat``/``wide``/``free``/
           ``skip`` (old QuickTime files without ``ftyp``)
MKV, WebM  EBML ``1A 45 DF A3`` (WebM if the doctype says so)       video
=========  ======================================================  =========

HEIF and AVIF share MP4's ``ftyp`` box; their brands are recognised and refused by name
(Pillow needs a plugin for them), so they are not mistaken for videos.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SNIFF_BYTES = 64
"""How many leading bytes :func:`sniff` needs to tell every format apart."""

_BMP_INFO_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"})
_QUICKTIME_BOXES = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip"})


class Kind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class Sniffed:
    """A recognised format: ``kind`` decides the decoder, ``format`` names it in messages."""

    kind: Kind
    format: str


class Unrecognised(enum.Enum):
    """Why :func:`sniff` recognised nothing, for the message."""

    UNKNOWN = "unknown"
    HEIF = "HEIF/AVIF image"


def sniff(head: bytes) -> Sniffed | Unrecognised:
    """The format of a file whose first bytes (up to :data:`SNIFF_BYTES`) are ``head``."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed(Kind.IMAGE, "JPEG")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(Kind.IMAGE, "PNG")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed(Kind.IMAGE, "GIF")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed(Kind.IMAGE, "WebP")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return Sniffed(Kind.IMAGE, "TIFF")
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_INFO_SIZES:
        return Sniffed(Kind.IMAGE, "BMP")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed(Kind.VIDEO, "AVI")
    box = head[4:8]
    if box == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return Unrecognised.HEIF
        return Sniffed(Kind.VIDEO, "MOV" if brand == b"qt  " else "MP4")
    if box in _QUICKTIME_BOXES:
        return Sniffed(Kind.VIDEO, "MOV")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed(Kind.VIDEO, "WebM" if b"webm" in head else "MKV")
    return Unrecognised.UNKNOWN


__all__ = ["SNIFF_BYTES", "Kind", "Sniffed", "Unrecognised", "sniff"]
