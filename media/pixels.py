"""How a decoded image, in any Pillow mode, becomes the RGB array PDQ takes. Pure.

PDQ sees only luma (0.299 R + 0.587 G + 0.114 B), so what matters is that each mode maps
to the picture a person sees, the same way every time. The rules, by mode:

- ``RGB``: as decoded.
- ``1``, ``L``, ``P`` (no transparency), ``CMYK``, ``LAB``, ``YCbCr``, ``HSV``, ``RGBX``:
  Pillow's own conversion to RGB. ``CMYK`` uses Pillow's plain formula, with no ICC colour
  management: an embedded profile is ignored (managing it would need LittleCMS profiles
  and changes luma by a few levels, hash bits rarely).
- With alpha (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La``, and ``P``/``L``/``RGB`` carrying a
  transparency key): **composited on white**, out = (c·a + 255·(255 − a)) / 255 rounded.
  Not dropped: the colour under a fully transparent pixel is invisible and arbitrary
  (encoders often leave black or stale pixels there), so two files that look identical
  would hash apart, and a logo on a transparent background would hash as a black box.
  White, because that is how viewers and the platforms that flatten uploads to JPEG show
  transparency most often; any fixed choice keeps one image's hash stable, white keeps it
  close to the flattened copies that circulate.
- ``I;16`` (``I;16L``, ``I;16B``, ``I;16N``): full-range 16-bit samples, to 8 bits by
  keeping the high byte (v >> 8), then grey.
- ``I`` (32-bit int): Pillow's decoders make it from 16-bit sources (PNG, PGM, TIFF), so it
  is taken the same way: clipped to 0..65535, then v >> 8.
- ``F`` (32-bit float): floats carry no agreed range (0..1, 0..255, physical units), so
  the finite values are stretched linearly from their own minimum to maximum onto 0..255
  (NaN and infinities count as the minimum). PDQ's bits do not change under a linear
  change of luma, so this keeps the picture without guessing a range. A constant image
  becomes black, whose quality is 0.

The 16-bit and float rules add one-channel grey, replicated to R = G = B, for which the
reference's luma equals the grey level.

EXIF orientation is **applied** (:func:`upright`): the hash is of the image as a viewer
shows it, which is also what circulates once a platform re-encodes the upload and drops
the tag. Tools that ignore the tag (the reference's CImg loader does) produce, for the
seven non-trivial orientations, exactly one of our dihedral variants, so the two agree
under dihedral matching.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_VIA_PILLOW = frozenset({"1", "L", "P", "CMYK", "LAB", "YCbCr", "HSV", "RGBX"})


_ORIENTATION = 0x0112


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation tag says (itself if no tag or tag 1)."""
    if image.getexif().get(_ORIENTATION, 1) == 1:
        return image  # the common case: no copy
    return ImageOps.exif_transpose(image)


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """H x W x 4 uint8 RGBA over an opaque white background, rounded to nearest."""
    colour = rgba[:, :, :3].astype(np.uint32)
    alpha = rgba[:, :, 3:4].astype(np.uint32)
    mixed = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    return mixed.astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)


def _stretch_float(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    low, high = values[finite].min(), values[finite].max()
    values = np.where(finite, values, low)
    if high == low:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _has_transparency_key(image: Image.Image) -> bool:
    return image.mode in ("P", "L", "RGB") and "transparency" in image.info


def to_rgb(image: Image.Image) -> np.ndarray:
    """The H x W x 3 uint8 RGB array of a loaded image, by the module's rules.

    Raises ``ValueError`` for a mode with no rule and no Pillow conversion to RGB.
    """
    mode = image.mode
    if mode in _ALPHA_MODES or _has_transparency_key(image):
        rgb = composite_on_white(np.asarray(image.convert("RGBA")))
    elif mode == "RGB":
        rgb = np.asarray(image)
    elif mode in _SIXTEEN_BIT:
        rgb = _grey_to_rgb((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8))
    elif mode == "I":
        clipped = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        rgb = _grey_to_rgb((clipped >> 8).astype(np.uint8))
    elif mode == "F":
        rgb = _grey_to_rgb(_stretch_float(np.asarray(image)))
    elif mode in _VIA_PILLOW:
        rgb = np.asarray(image.convert("RGB"))
    else:
        try:
            rgb = np.asarray(image.convert("RGB"))
        except ValueError as exc:
            raise ValueError(f"no rule for pixel mode {mode}") from exc
    return np.ascontiguousarray(rgb, dtype=np.uint8)


__all__ = ["upright", "composite_on_white", "to_rgb"]
