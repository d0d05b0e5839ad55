"""Decode one image file (already opened and sniffed) into its PDQ. IO: reads the file.

Pillow is told which format the bytes were sniffed as, so no other of its parsers ever
sees them. The declared size is checked against our own bound right after the header is
read, before a pixel is decoded; Pillow's own decompression-bomb bound (2 x
``Image.MAX_IMAGE_PIXELS``, 179 million pixels by default) refuses even earlier, inside
``Image.open``, and gives the same message. Pillow's warnings while decoding (bad EXIF, a
bomb warning we already bounded) are kept as the result's warnings, never printed; the
warning filters this swaps are process-wide, so hash from one thread at a time in a
process (the pool uses processes).
Animated GIF, WebP and multi-page TIFF: the first frame is hashed.
"""

from __future__ import annotations

import warnings
from typing import BinaryIO

from PIL import Image

from .errors import MediaError
from .options import HashOptions
from .pdq import Dihedral, Pdq, dihedral_of_rgb, pdq_of_rgb
from .pixels import to_rgb, upright

_PILLOW_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "GIF": "GIF", "WebP": "WEBP", "TIFF": "TIFF", "BMP": "BMP"}


def bomb_message(limit: int) -> str:
    return f"image declares more than {limit} pixels; refused before decoding (decompression bomb?)"


def _open(file: BinaryIO, fmt: str, limit: int) -> Image.Image:
    try:
        image = Image.open(file, formats=[_PILLOW_FORMATS[fmt]])
    except Image.DecompressionBombError as exc:
        raise MediaError(bomb_message(limit), detail=str(exc)) from exc
    except Exception as exc:  # Pillow raises many types for a bad header
        raise MediaError(f"corrupt or truncated {fmt} image", detail=f"{type(exc).__name__}: {exc}") from exc
    width, height = image.size
    if width * height > limit:
        raise MediaError(bomb_message(limit), detail=f"{width}x{height}")
    if width < 1 or height < 1:
        raise MediaError(f"corrupt or truncated {fmt} image", detail=f"size {width}x{height}")
    return image


def image_pdq(
    file: BinaryIO, fmt: str, options: HashOptions
) -> tuple[Pdq | None, dict[Dihedral, str], tuple[str, ...]]:
    """``(pdq, variants, warnings)`` of the image in ``file``; ``pdq`` None if dropped."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = _open(file, fmt, options.max_image_pixels)
        try:
            image.load()
        except Exception as exc:  # truncated data, broken streams, bad tables
            raise MediaError(f"corrupt or truncated {fmt} image", detail=f"{type(exc).__name__}: {exc}") from exc
        try:
            image = upright(image)
        except Exception as exc:  # a broken EXIF block: hash the pixels as stored
            notes.append(f"EXIF orientation unreadable, hashed as stored ({type(exc).__name__})")
        try:
            rgb = to_rgb(image)
        except ValueError as exc:
            raise MediaError(f"unsupported pixel mode {image.mode} in {fmt} image", detail=str(exc)) from exc
    notes.extend(
        f"decoder warning: {w.message}" for w in caught if not issubclass(w.category, Image.DecompressionBombWarning)
    )
    if options.dihedral:
        pdq, variants = dihedral_of_rgb(rgb)
    else:
        pdq, variants = pdq_of_rgb(rgb), {}
    if pdq.quality < options.min_quality:
        notes.append(quality_warning(pdq.quality, options.min_quality))
        return None, {}, tuple(notes)
    return pdq, variants, tuple(notes)


def quality_warning(quality: int, bound: int) -> str:
    return f"PDQ quality {quality} is under {bound}: PDQ left out (it would match unrelated images)"


__all__ = ["image_pdq", "bomb_message", "quality_warning"]
