"""PDQ of an RGB array, by Meta's reference C++ (the ``pdqhash`` package wraps it).

Pure: numpy arrays in, hex strings out; no IO. The reference computes luma as
0.299 R + 0.587 G + 0.114 B in floats, filters (Jarosz) down to 64 x 64, takes a 16 x 16
DCT and thresholds it at its median; quality (0-100) is the image's gradient sum, capped.
We feed it the full decoded pixels, unscaled, so a hash here equals
``pdqhash.compute`` on the same pixels bit for bit. (Meta's ``pdq-photo-hasher`` tool
first shrinks images larger than 512 pixels with CImg for speed; on such images its hash
can differ from the full-resolution one by a few bits, far inside the match distance.)

Hex form: 64 lowercase hex digits, most significant bit first, the reference's own
``Hash256::format`` order (word 15 first). ``pdqhash`` returns the 256 bits already in
that order, so packing them big-endian gives the reference's text.

The eight dihedral variants come from one pass (``compute_dihedral``): the DCT of a
rotated or mirrored image is a sign-and-transpose of the original's, so the reference
derives all eight from one 16 x 16 DCT. The variant named ``X`` is the hash the image
would have after the transform ``X``; names follow the reference's
(``pdqDihedralHash256esFromFloatLuma``), meanings as verified by our tests against numpy
transforms of the pixels (rows top to bottom, columns left to right):

==============  ==========================================================  ==================
variant         the image after                                             numpy on ``a``
==============  ==========================================================  ==================
original        nothing                                                     ``a``
rotate90        a quarter turn counter-clockwise                            ``rot90(a, 1)``
rotate180       a half turn                                                 ``rot90(a, 2)``
rotate270       a quarter turn clockwise                                    ``rot90(a, -1)``
flipx           a mirror across the horizontal axis (upside down)           ``a[::-1]``
flipy           a mirror across the vertical axis (left-right)              ``a[:, ::-1]``
flip_plus1      a mirror across the main diagonal (transpose)               ``a.swapaxes(0,1)``
flip_minus1     a mirror across the anti-diagonal                           ``rot90(a, 2)`` then transpose
==============  ==========================================================  ==================

Because the reference's filter windows are not perfectly symmetric, a hash computed from
actually rotated pixels is within a few bits of the matching variant, not always equal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import pdqhash

from hashfed.protocol.hashtypes import HASH_TYPES


class Dihedral(enum.Enum):
    """The eight rotations and mirrors, in the order the reference returns them."""

    ORIGINAL = "original"
    ROTATE90 = "rotate90"
    ROTATE180 = "rotate180"
    ROTATE270 = "rotate270"
    FLIPX = "flipx"
    FLIPY = "flipy"
    FLIP_PLUS1 = "flip_plus1"
    FLIP_MINUS1 = "flip_minus1"


_PDQ_PATTERN = HASH_TYPES["pdq"].pattern


@dataclass(frozen=True, slots=True)
class Pdq:
    """A PDQ hash (64 lowercase hex digits) and its quality (0-100)."""

    value: str
    quality: int

    def __post_init__(self) -> None:
        if type(self.value) is not str or _PDQ_PATTERN.fullmatch(self.value) is None:
            raise ValueError(f"PDQ value must be 64 lowercase hex digits, got {self.value!r}")
        if type(self.quality) is not int or not 0 <= self.quality <= 100:
            raise ValueError(f"PDQ quality must be an int in 0..100, got {self.quality!r}")


def bits_to_hex(bits: np.ndarray) -> str:
    """The reference's hex text of 256 bits given most significant first."""
    if bits.shape != (256,):
        raise ValueError(f"a PDQ hash has 256 bits, got shape {bits.shape}")
    return np.packbits(bits.astype(np.uint8, copy=False)).tobytes().hex()


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"need an H x W x 3 uint8 array, got {rgb.dtype} {rgb.shape}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"need at least one pixel, got {rgb.shape}")
    return rgb


def pdq_of_rgb(rgb: np.ndarray) -> Pdq:
    """PDQ of an H x W x 3 uint8 RGB array, as the reference computes it."""
    bits, quality = pdqhash.compute(_check_rgb(rgb))
    return Pdq(bits_to_hex(bits), int(quality))


def dihedral_of_rgb(rgb: np.ndarray) -> tuple[Pdq, dict[Dihedral, str]]:
    """PDQ of the array and the hex of all eight variants (one pass; one quality)."""
    all_bits, quality = pdqhash.compute_dihedral(_check_rgb(rgb))
    variants = {name: bits_to_hex(bits) for name, bits in zip(Dihedral, all_bits, strict=True)}
    return Pdq(variants[Dihedral.ORIGINAL], int(quality)), variants


def hamming(a: str, b: str) -> int:
    """Bits that differ between two PDQ hex values."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


__all__ = ["Dihedral", "Pdq", "bits_to_hex", "pdq_of_rgb", "dihedral_of_rgb", "hamming"]
